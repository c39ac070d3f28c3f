"""H2 norms and errors that stay right (issue 17, items 1b and 2): no under- or overflow for badly
scaled systems, the default method chosen by an error model on non-normal targets and targets with
(nearly) repeated poles, extended precision where double precision cannot resolve the error; and
RARL2 on such targets reporting the returned model's error."""

from __future__ import annotations

import math

import pytest
import torch

from difflinalg.control import StateSpace, balanced_truncation, h2_error, h2_norm, rarl2
from difflinalg.control.system._models import heat1d
from difflinalg.control.analysis._modal import squared_h2_error_residues
from difflinalg.control.analysis._modal_form import cached_modal_form, near_repeated
from difflinalg.control.reduction._rarl2._target import Target

from _controlhelpers import random_system

EPS = torch.finfo(torch.float64).eps


def convection_diffusion(n: int = 20, v=(30.0, 15.0)) -> StateSpace:
    """2-D upwind convection-diffusion on the unit square (n x n interior points, Dirichlet),
    velocity ``v``: non-normal (eigenvector condition ~1e7 for n = 20), input on the lower-left
    quarter, output the mean over the upper-right one."""
    h = 1.0 / (n + 1)
    eye = torch.eye(n, dtype=torch.float64)
    off = torch.diag(torch.ones(n - 1, dtype=torch.float64), -1)
    L = (-2 * eye + off + off.T) / h**2
    Dm = (eye - off) / h  # upwind (backward) difference
    A = torch.kron(eye, L) + torch.kron(L, eye) - v[0] * torch.kron(eye, Dm) - v[1] * torch.kron(Dm, eye)
    x = torch.arange(1, n + 1, dtype=torch.float64) * h
    X, Y = torch.meshgrid(x, x, indexing="ij")
    B = ((X < 0.5) & (Y < 0.5)).to(torch.float64).reshape(-1, 1)
    C = ((X > 0.5) & (Y > 0.5)).to(torch.float64).reshape(1, -1) * h**2
    return StateSpace(A, B, C)


def repeated_poles(N: int, p: int, m: int, seed: int, discrete: bool = True) -> StateSpace:
    """The structure of python-control's ``drss``/``rss``: real poles and conjugate pairs, some
    repeated on purpose, on the diagonal (2 x 2 blocks for pairs), hidden by a random (not
    orthogonal) similarity ``T^{-1} A T``: the repeated poles come out split by rounding (gaps of
    ~1e-15) with eigenvectors set by rounding."""
    g = torch.Generator().manual_seed(seed)

    def rand():
        return float(torch.rand((), generator=g, dtype=torch.float64))

    poles: list[complex] = []
    while len(poles) < N:
        i = len(poles)
        if i and i < N - 1 and rand() < 0.1:
            poles += [poles[-1]] if poles[-1].imag == 0 or i + 1 >= N else poles[-2:]
        elif rand() < 0.6 or i == N - 1:
            poles.append(complex(2 * rand() - 1 if discrete else -math.exp(2 * rand() - 1), 0))
        else:
            if discrete:
                z = complex(*(rand() * torch.tensor([math.cos(t := 2 * math.pi * rand()), math.sin(t)])).tolist())
            else:
                z = complex(-math.exp(2 * rand() - 1), 3 * math.exp(2 * rand() - 1))
            poles += [z, z.conjugate()]
    A = torch.zeros(N, N, dtype=torch.float64)
    i = 0
    while i < N:
        z = poles[i]
        if z.imag == 0 or i == N - 1:
            A[i, i] = z.real
            i += 1
        else:
            A[i, i] = A[i + 1, i + 1] = z.real
            A[i, i + 1], A[i + 1, i] = z.imag, -z.imag
            i += 2
    T = torch.randn(N, N, generator=g, dtype=torch.float64)
    A = torch.linalg.solve(T, A) @ T
    B = torch.randn(N, m, generator=g, dtype=torch.float64)
    C = torch.randn(p, N, generator=g, dtype=torch.float64)
    D = torch.randn(p, m, generator=g, dtype=torch.float64) if discrete else None
    return StateSpace(A, B, C, D, time="discrete" if discrete else "continuous")


def gramian_bound(F: StateSpace, H: StateSpace) -> float:
    """Rounding bound of ``h2_error(F, H, method="gramian")`` on the error: ``(N + n) eps
    (||F||^2 + ||H||^2)`` on its square."""
    n2 = float(h2_norm(F)) ** 2 + float(h2_norm(H)) ** 2
    return (F.order + H.order) * EPS * n2 / (2 * float(h2_error(F, H, method="gramian")))


# -- item 2: no under- or overflow ---------------------------------------------------------------
@pytest.mark.parametrize("discrete", [False, True])
@pytest.mark.parametrize("scale", [1e-200, 1e160, 1e200])
def test_h2_norm_and_error_scale_without_under_or_overflow(discrete, scale):
    F = random_system(8, 2, 2, discrete=discrete, seed=3)
    H = balanced_truncation(F, 4)

    def scaled(S):  # the transfer function times `scale`: B and D scaled
        return StateSpace(S.A, S.B * scale, S.C, S.D * scale, time=S.time)

    Fs, Hs = scaled(F), scaled(H)
    assert float(h2_norm(Fs)) == pytest.approx(float(h2_norm(F)) * scale, rel=1e-13)
    for kw in ({}, {"method": "gramian"}, {"precise": True}):
        assert float(h2_error(Fs, Hs, **kw)) == pytest.approx(float(h2_error(F, H, **kw)) * scale, rel=1e-12), kw
    assert float(h2_error(Fs, Hs, relative=True)) == pytest.approx(float(h2_error(F, H, relative=True)), rel=1e-12)
    # C scaled the other way: in range again, and the product of the two far out of it
    Fc = StateSpace(Fs.A, Fs.B, Fs.C / scale, Fs.D / scale, time=F.time)
    assert float(h2_norm(Fc)) == pytest.approx(float(h2_norm(F)), rel=1e-13)


def test_scaled_h2_norm_is_differentiable():
    """``||s F||`` with ``B -> s B`` has the gradient of ``||F||`` at ``B`` (w.r.t. ``s B``)."""
    F = random_system(5, 1, 2, seed=4)
    grads = []
    for s in (1.0, 1e-200):
        B = (F.B * s).requires_grad_()
        grads.append(torch.autograd.grad(h2_norm(StateSpace(F.A, B, F.C)), B)[0])
    assert torch.allclose(grads[1], grads[0], rtol=1e-12, atol=0)


# -- item 1b: the default method ---------------------------------------------------------------------
def test_default_h2_error_is_right_on_a_non_normal_target():
    """Eigenvector condition 1.4e7 (below the residues' cut-off 1e8): the residue terms carry errors
    far above the Gramian formula's; the default takes the Gramian (and agrees with it)."""
    F = convection_diffusion()
    assert 1e6 < cached_modal_form(F)[3] < 1e8
    H = balanced_truncation(F, 8)
    val, est, absum = squared_h2_error_residues(F, H, bound=True)
    assert est > (F.order + H.order) * absum  # the error model rules the residues out
    g = float(h2_error(F, H, method="gramian"))
    assert float(h2_error(F, H)) == pytest.approx(g, abs=gramian_bound(F, H))


@pytest.mark.slow
def test_precise_h2_error_on_a_non_normal_target():
    """Extended precision (refined eigenpairs: data accurate to long double's unit roundoff times
    the eigenvector condition, 1e-12) agrees with the Gramian path within its bound."""
    F = convection_diffusion()
    H = balanced_truncation(F, 8)
    g = float(h2_error(F, H, method="gramian"))
    assert float(h2_error(F, H, precise=True)) == pytest.approx(g, abs=gramian_bound(F, H) + 1e-12 * g)


@pytest.mark.parametrize("discrete", [False, True])
def test_repeated_poles_have_no_modal_form(discrete):
    F = repeated_poles(60, 3, 2, seed=2, discrete=discrete)
    ev = torch.linalg.eigvals(F.A)
    gaps = (ev[:, None] - ev[None, :]).abs() + torch.eye(60) * 9
    assert float(gaps.min()) < 1e-12  # the structure: poles repeated to rounding
    assert bool(near_repeated(ev[None])[0])
    assert cached_modal_form(F)[3] == math.inf
    assert Target(F).method == "schur"
    H = balanced_truncation(F, 10)
    assert float(h2_error(F, H)) == pytest.approx(float(h2_error(F, H, method="gramian")), rel=1e-12)
    with pytest.raises(Exception, match="residues"):
        h2_error(F, H, method="residues")


def test_near_repeated_detection():
    lam = torch.tensor([[1.0, 1.0 + 1e-12, 2.0], [1.0, 1.5, 2.0]], dtype=torch.complex128)
    assert near_repeated(lam).tolist() == [True, False]
    big = torch.linspace(-1, -2, 500, dtype=torch.float64).to(torch.complex128)
    assert not bool(near_repeated(big[None], max_elements=1000)[0])  # chunked
    big[317] = big[42] * (1 + 1e-10)
    assert bool(near_repeated(big[None], max_elements=1000)[0])


def test_rarl2_reports_the_returned_models_error_on_repeated_poles():
    """drss-like target (N = 100, 3 outputs, 2 inputs): the modal path (whose norm was 0.6% off)
    falls back to the Schur form; the reported error is the model's by the Gramian path within the
    two rounding bounds."""
    F = repeated_poles(100, 3, 2, seed=2)
    res = rarl2(F, 20)
    assert res.method == "schur"
    g = float(h2_error(F, res.model, method="gramian"))
    assert abs(res.error - g) <= res.error_resolution + gramian_bound(F, res.model)
    assert res.target_norm == pytest.approx(float(h2_norm(F)), rel=1e-12)


def test_default_h2_error_resolves_tiny_errors():
    """heat equation at order 12: the double-precision value (Gramian or residues) is below its
    rounding bound; the default measures it in extended precision (never a rounded 0)."""
    F = heat1d(100)
    H = balanced_truncation(F, 12)
    e = float(h2_error(F, H))
    assert e > 0 and e == float(h2_error(F, H, precise=True))
    assert e < 1e-7 * float(h2_norm(F))
