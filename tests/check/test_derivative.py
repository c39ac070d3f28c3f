"""``derivative``: convergence order, roundoff-optimal accuracy, error estimate, Richardson, bad input."""

import math

import numpy as np
import pytest
import scipy.special as sp
import torch

from difflinalg import InputError
from difflinalg.check import central_fdm, derivative, forward_fdm
from difflinalg.check._functions import bessel_j_series
from difflinalg.check._gradcheck import FD_SAFETY

F64, F32 = torch.float64, torch.float32

# (name, f, f', points): smooth functions with known derivatives.
FUNCTIONS = [
    ("exp", torch.exp, math.exp, (-1.0, 0.3, 2.0)),
    ("sin", torch.sin, math.cos, (0.1, 0.7, 2.5)),
    ("bessel_j2", lambda z: bessel_j_series(2, z), lambda z: sp.jvp(2, z), (0.5, 1.0, 2.0)),
    ("bessel_j0", lambda z: bessel_j_series(0, z), lambda z: sp.jvp(0, z), (0.8, 1.5, 3.0)),
]


def _rel(d, true):
    return abs(float(d.value) - true) / abs(true)


@pytest.mark.parametrize("make, p", [(central_fdm, 3), (central_fdm, 5), (central_fdm, 7), (forward_fdm, 3),
                                     (forward_fdm, 5)])
def test_convergence_order_with_fixed_step(make, p):
    """Truncation-dominated steps: the error shrinks like step^order (p - 1 for odd central p)."""
    kind = "central" if make is central_fdm else "forward"
    order = make(p, 1).order
    assert order == p - 1
    h0 = {2: 0.1, 4: 0.2, 6: 0.4}[order]
    steps = [h0 / 2**j for j in range(4)]
    errs = [abs(float(derivative(torch.exp, 0.3, p=p, step=h, kind=kind).value) - math.exp(0.3)) for h in steps]
    slopes = np.diff(np.log(errs)) / np.diff(np.log(steps))
    assert np.all(np.abs(slopes - order) < 0.3), slopes


def test_convergence_order_second_derivative():
    for p, order in [(3, 2), (5, 4)]:
        steps = [0.2 / 2**j for j in range(4)]
        errs = [abs(float(derivative(torch.sin, 0.7, p=p, q=2, step=h).value) + math.sin(0.7)) for h in steps]
        slopes = np.diff(np.log(errs)) / np.diff(np.log(steps))
        assert np.all(np.abs(slopes - order) < 0.3), slopes


def test_roundoff_floor():
    """Below the optimal step rounding takes over: the error grows again as the step shrinks."""
    err = {h: abs(float(derivative(torch.exp, 0.3, step=h).value) - math.exp(0.3)) for h in (1e-3, 1e-6, 1e-9)}
    assert err[1e-3] < 1e-12
    assert err[1e-6] > 10 * err[1e-3]
    assert err[1e-9] > 10 * err[1e-6]


@pytest.mark.parametrize("name, f, df, points", FUNCTIONS, ids=[f[0] for f in FUNCTIONS])
def test_adaptive_float64_roundoff_optimal(name, f, df, points):
    """p = 5 with the adaptive step: ~1e-12 relative or better, and the error estimate covers the
    actual error without being wildly pessimistic."""
    for x in points:
        d = derivative(f, torch.tensor(x, dtype=F64))
        true = df(x)
        err, est = abs(float(d.value) - true), float(d.error)
        assert err / abs(true) < 1e-12, (x, err)
        assert err <= est < 1e-12 * abs(true) * 5, (x, err, est)


@pytest.mark.parametrize("name, f, df, points", FUNCTIONS, ids=[f[0] for f in FUNCTIONS])
def test_adaptive_float32_at_its_own_level(name, f, df, points):
    """Float32 gets its own step: error ~ a few float32 epsilons, where torch.autograd.gradcheck's
    fixed eps = 1e-6 central difference loses everything to rounding."""
    eps32 = torch.finfo(F32).eps
    for x in points:
        xt = torch.tensor(x, dtype=F32)
        d = derivative(f, xt)
        true = df(x)
        assert d.value.dtype == F32
        err, est = abs(float(d.value) - true), float(d.error)
        assert err / abs(true) < 100 * eps32, (x, err)
        assert err <= est < 1000 * eps32 * abs(true)
        fixed = float((f(xt + 1e-6) - f(xt - 1e-6)) / 2e-6)
        assert abs(fixed - true) > 100 * err


@pytest.mark.parametrize("q, p, tol", [(2, 5, 1e-9), (2, 7, 1e-11), (3, 6, 1e-8), (4, 7, 1e-7)])
def test_higher_derivatives(q, p, tol):
    true = [math.sin, math.cos, lambda x: -math.sin(x), lambda x: -math.cos(x)][q % 4](0.7)
    d = derivative(torch.sin, 0.7, p=p, q=q)
    err = abs(float(d.value) - true)
    assert err < tol
    assert err <= float(d.error) < 20 * tol


def test_error_estimate_detects_noise():
    """Far out, the Bessel series sums terms ~1e7 to get ~0.1: f is far noisier than eps * |f|.
    The residuals of the samples and the check against a second step reveal it; the model alone
    would claim ~1e-16. The error at one point is one draw of that noise (it can be lucky), so the
    estimate is judged over 21 points: it covers every error within gradcheck's FD_SAFETY and
    tracks the typical (RMS) error within a factor 4 (the old per-point check missed it by 46x)."""
    f = lambda z: bessel_j_series(2, z, terms=80)  # noqa: E731
    err, est = [], []
    for z in np.linspace(18.0, 22.0, 21):
        d = derivative(f, float(z))
        err.append(abs(float(d.value) - sp.jvp(2, float(z))))
        est.append(float(d.error))
    err, est = np.array(err), np.array(est)
    rms = math.sqrt(float(np.mean(err**2)))
    assert rms > 1e-8  # the function really is noisy
    assert (err <= FD_SAFETY * est).all()
    assert rms / 4 <= float(np.median(est)) <= 4 * rms


def test_error_estimate_covers_white_noise():
    """f = smooth + sigma * (pseudo-random, a function of the exact point): over 40 draws and
    outputs of 1, 5 and 50 components, every error of the values and of a projection ``w . f'``
    is within FD_SAFETY of its estimate (with the estimate from eps |f| alone, 126 of 200 draws
    failed for 5 components at sigma = 1e-12). Axis directions of norm 2 keep the evaluation points
    exact, so the draws are the same on every machine."""
    for n, sigma in [(1, 1e-12), (5, 1e-12), (50, 1e-9)]:
        k = torch.arange(1, n + 1, dtype=F64)
        for seed in range(40):
            def f(x, seed=seed):
                key = int.from_bytes(x.numpy().tobytes()[:16], "little") ^ seed
                e = torch.randn(n, dtype=F64, generator=torch.Generator().manual_seed(key % 2**63))
                return torch.sin(x.sum() * k) + sigma * e

            x = torch.randn(2, dtype=F64, generator=torch.Generator().manual_seed(seed))
            u = torch.zeros(2, dtype=F64)
            u[seed % 2] = 2.0
            d = derivative(f, x, direction=u)
            true = 2.0 * k * torch.cos(x.sum() * k)
            assert ((d.value - true).abs() <= FD_SAFETY * d.error).all(), (n, seed)
            w = torch.randn(n, dtype=F64, generator=torch.Generator().manual_seed(seed + 99))
            dw = d.dot(w)
            assert abs(float(dw.value - (w * true).sum())) <= FD_SAFETY * float(dw.error), (n, seed)


def test_error_estimate_when_the_higher_derivative_vanishes():
    """f^(5) = 243 cos(3x) vanishes at pi/6: the step is not chosen from a zero estimate blindly."""
    x = math.pi / 6
    d = derivative(lambda t: torch.sin(3 * t) + 3 * t, x)
    err = abs(float(d.value) - (3 * math.cos(3 * x) + 3))
    assert err <= float(d.error) < 1e-12


def test_function_vanishing_at_the_point():
    """f(x) = 0 must not mean "no rounding error" (the step would collapse)."""
    d = derivative(lambda t: torch.sin(t - 1), 1.0)
    assert abs(float(d.value) - 1.0) < 1e-12
    assert d.step > 1e-5


def test_polynomials():
    # The 5-point stencil is exact on a cubic: only rounding is left.
    d = derivative(lambda t: t**3, 2.0, max_step=0.05)
    assert abs(float(d.value) - 12.0) <= float(d.error) < 1e-12 * 12
    # A constant has no truncation error at all: the largest step is taken.
    d = derivative(lambda t: 0 * t + 1.5, 2.0, max_step=0.05)
    assert d.step == 0.05 and float(d.value) == 0.0


def test_richardson_raises_the_order_with_a_fixed_step():
    true = math.exp(0.3)
    errs = [abs(float(derivative(torch.exp, 0.3, step=0.1, richardson=r).value) - true) for r in (0, 1, 2)]
    assert errs[0] > 1e-7
    assert errs[1] < errs[0] / 100
    assert errs[2] < 1e-12
    # One level removes h^4 and leaves h^6 (symmetric stencil): halving the step gains ~2^6.
    e1 = [abs(float(derivative(torch.exp, 0.3, step=h, richardson=1).value) - true) for h in (0.4, 0.2)]
    assert 2**5 < e1[0] / e1[1] < 2**7


@pytest.mark.parametrize("name, f, df, points", FUNCTIONS, ids=[f[0] for f in FUNCTIONS])
def test_richardson_adaptive_float64(name, f, df, points):
    for x in points:
        d = derivative(f, x, richardson=2)
        err = abs(float(d.value) - df(x))
        assert err < 1e-13 * abs(df(x)) * 5
        assert err <= float(d.error) < 1e-12 * abs(df(x))


def test_complex_values_and_points():
    # Real point, complex value: d/dx exp(ix) = i exp(ix).
    d = derivative(lambda x: torch.exp(1j * x), 0.4)
    assert d.value.is_complex()
    assert abs(complex(d.value) - 1j * complex(np.exp(0.4j))) < 1e-12
    # Complex point along 1 and along i: f'(z) and i f'(z) for holomorphic f.
    for dt, tol in ((torch.complex128, 1e-12), (torch.complex64, 1e-5)):
        z = torch.tensor(0.3 + 0.4j, dtype=dt)
        for direction in (1.0, 1j):
            d = derivative(torch.exp, z, direction=torch.tensor(direction, dtype=dt))
            true = direction * np.exp(0.3 + 0.4j)
            assert d.value.dtype == dt
            assert abs(complex(d.value) - true) < tol * abs(true)
            assert float(d.error) >= abs(complex(d.value) - true)
    # A non-holomorphic function: |z|^2 along i is 2 Im z.
    d = derivative(lambda z: (z * z.conj()).real, torch.tensor(0.3 + 0.4j, dtype=torch.complex128),
                   direction=torch.tensor(1j, dtype=torch.complex128))
    assert abs(float(d.value) - 0.8) < 1e-12


def test_directional_derivative_of_a_tensor_function():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, generator=g, dtype=F64)
    u = torch.randn(3, 4, generator=g, dtype=F64)

    def f(x):
        return torch.stack([x.exp().sum(), 1e3 * torch.sin(x).prod(), 1e-3 * (x**3).sum()])

    _, jv = torch.func.jvp(f, (x,), (u,))
    d = derivative(f, x, direction=u)
    assert d.value.shape == d.error.shape == (3,)
    assert torch.all((d.value - jv).abs() <= d.error)
    assert torch.all(d.error <= 1e-10 * jv.abs().max())
    # The direction's norm scales the result (and the reported step).
    d3 = derivative(f, x, direction=3 * u)
    torch.testing.assert_close(d3.value, 3 * jv, rtol=1e-11, atol=0)
    assert d3.step == pytest.approx(d.step / 3)


def test_dot_is_tighter_than_summed_bounds():
    """The error of w . D is estimated as a derivative of its own, not as sum |w_i| err_i."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(400, generator=g, dtype=F64)
    u = torch.randn(400, generator=g, dtype=F64)
    w = torch.randn(400, generator=g, dtype=F64)
    f = lambda x: torch.exp(x) * torch.sin(2 * x)  # noqa: E731
    d = derivative(f, x, direction=u)
    _, jv = torch.func.jvp(f, (x,), (u,))
    proj = d.dot(w)
    assert torch.allclose(proj.value, (w * d.value).sum())
    actual = float(((w * jv).sum() - proj.value).abs())
    crude = float((w.abs() * d.error).sum())
    assert actual <= float(proj.error) < crude / 5
    with pytest.raises(InputError, match="w: "):
        derivative(lambda t: torch.exp(1j * t), 0.3).dot(torch.ones(()))


@pytest.mark.parametrize("w", [torch.tensor([1.0 + 2.0j, -0.5j]), 1.0 + 0.5j, torch.tensor(1j)],
                         ids=["tensor", "python", "0-d"])
def test_dot_rejects_a_complex_weight(w):
    """Before: a complex tensor ``w`` was cast to the real dtype by torch (its imaginary part
    dropped, a finite wrong projection) and a complex number raised torch's TypeError."""
    d = derivative(lambda x: torch.stack([x.sin().sum(), x.cos().sum()]), torch.tensor([0.3, 0.9], dtype=F64),
                   direction=torch.ones(2, dtype=F64))
    with pytest.raises(InputError, match=r"w: .*complex.*pass w.real"):
        d.dot(w)
    real = w.real if isinstance(w, torch.Tensor) else torch.tensor(w.real)
    torch.testing.assert_close(d.dot(real).value, (real.to(F64) * d.value).sum())


def test_stays_within_max_step():
    seen = []

    def f(t):
        seen.append(float(t))
        return torch.sqrt(t)  # defined for t >= 0 only

    d = derivative(f, torch.tensor(0.05, dtype=F64), max_step=0.02)
    assert max(abs(t - 0.05) for t in seen) <= 2 * 0.02 * (1 + 1e-12)
    assert abs(float(d.value) - 0.5 / math.sqrt(0.05)) < 1e-9


def test_leaving_the_domain_is_reported():
    with pytest.raises(InputError, match="f: returned non-finite values.*max_step"):
        derivative(torch.log, 0.01, step=0.1)


def test_unpacking():
    value, error = derivative(torch.exp, 0.0)
    assert abs(float(value) - 1.0) < 1e-12 and float(error) > 0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(x=float("nan")), "x: contains non-finite"),
        (dict(x=torch.tensor([1.0, float("inf")]), direction=torch.ones(2)), "x: contains non-finite"),
        (dict(x=torch.tensor(1)), "x: integer dtype"),
        (dict(x="1.0"), "x: expected a float"),
        (dict(step=0.0), "step: must be a finite positive number"),
        (dict(step=-1e-3), "step: must be a finite positive number"),
        (dict(step=float("nan")), "step: must be a finite positive number"),
        (dict(p=2, q=2), r"p: need more points than the derivative order \(p > q\)"),
        (dict(p=1), r"p: need more points"),
        (dict(q=0), "q: the derivative order"),
        (dict(kind="upwind"), "kind: expected one of"),
        (dict(richardson=-1), "richardson: expected an integer >= 0"),
        (dict(factor=0.0), "factor: must be a finite positive number"),
        (dict(max_step=0.0), "max_step: must be a finite positive number"),
        (dict(x=torch.zeros(3)), "direction: x has 3 elements"),
        (dict(x=torch.zeros(3), direction=torch.ones(2)), r"direction: shape \(2,\) must match x's shape \(3,\)"),
        (dict(x=torch.zeros(3), direction=torch.zeros(3)), "direction: must be non-zero"),
        (dict(x=torch.zeros(3), direction=torch.ones(3, dtype=torch.complex128)), "direction: complex direction"),
    ],
)
def test_bad_input(kwargs, match):
    args = dict(f=lambda t: torch.sin(t).sum(), x=0.5) | kwargs
    with pytest.raises(InputError, match=match):
        derivative(args.pop("f"), args.pop("x"), **args)


def test_bad_function():
    with pytest.raises(InputError, match="f: expected a callable"):
        derivative(3.0, 0.5)
    with pytest.raises(InputError, match="f: must return a floating-point"):
        derivative(lambda t: (t > 0).int(), 0.5)
