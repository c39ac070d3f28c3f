"""``difflinalg.ConvolutionalSolver``: the per-frequency x-update of convolutional sparse coding.
Values and gradients against a dense solve per frequency (C = 1 Sherman-Morrison, C = 3 Woodbury);
gradcheck in every mode (complex128, batched); the float32 error bound and its warning;
torch.func; bad input."""

import warnings

import pytest
import torch
from _helpers import randn

import difflinalg
from difflinalg import (
    ConvolutionalSolver,
    InputError,
    PrecisionWarning,
    TransformCheckWarning,
)
from difflinalg.check import gradcheck
from difflinalg.checkpoint import binomial_loop

F64, C64, C128 = torch.float64, torch.complex64, torch.complex128
ALL = ("vjp", "jvp", "hvp", "hvp_rev", "jvp2")


def dense(D_hat, b_hat, rho):
    """The reference: ``torch.linalg.solve`` of the M x M system at every frequency."""
    M = D_hat.shape[-1]
    rho = torch.as_tensor(rho, dtype=D_hat.real.dtype)
    A = rho[..., None, None] * torch.eye(M, dtype=D_hat.dtype) + D_hat.mH @ D_hat
    batch = torch.broadcast_shapes(A.shape[:-2], b_hat.shape[:-1])
    return torch.linalg.solve(A.expand(*batch, M, M), b_hat.expand(*batch, M).unsqueeze(-1)).squeeze(-1)


CASES = [  # C, method, D_hat shape (..., C, M), b_hat shape, rho shape
    (1, "auto", (5, 3, 1, 6), (4, 5, 3, 6), ()),
    (1, "auto", (5, 3, 1, 6), (6,), ()),
    (1, "auto", (2, 5, 3, 1, 6), (2, 5, 3, 6), (2, 1, 1)),
    (1, "woodbury", (5, 3, 1, 6), (4, 5, 3, 6), ()),
    (3, "auto", (5, 3, 3, 6), (4, 5, 3, 6), ()),
    (3, "auto", (5, 3, 3, 6), (6,), ()),
    (3, "auto", (2, 5, 3, 3, 6), (2, 5, 3, 6), (2, 1, 1)),
    (3, "auto", (5, 3, 3, 6), (2, 4, 5, 3, 6), (5, 1)),
    (3, "direct", (5, 3, 3, 6), (4, 5, 3, 6), ()),
    (8, "auto", (4, 8, 6), (2, 4, 6), ()),  # C > M: the M x M form
]


def expected_method(C, M, method, rho_grad):
    if method != "auto":
        return method
    if C == 1 and not rho_grad:
        return "sherman-morrison"
    return "woodbury" if C < M else "direct"


@pytest.mark.parametrize("rho_grad", [False, True], ids=["rho_const", "rho_grad"])
@pytest.mark.parametrize("dtype", [F64, C128])
@pytest.mark.parametrize("C,method,dshape,bshape,rshape", CASES)
def test_values_and_gradients_equal_dense_solve(dtype, C, method, dshape, bshape, rshape, rho_grad):
    D = randn(*dshape, dtype=dtype).requires_grad_()
    b = randn(*bshape, dtype=dtype, seed=1).requires_grad_()
    rho = (0.3 + torch.rand(rshape, dtype=F64, generator=torch.Generator().manual_seed(2))).requires_grad_(rho_grad)
    solver = ConvolutionalSolver(D, rho, method=method)
    assert solver.method == expected_method(C, dshape[-1], method, rho_grad)
    x, ref = solver.solve(b), dense(D, b, rho)
    assert x.shape == ref.shape
    torch.testing.assert_close(x, ref, atol=1e-13, rtol=1e-12)
    w = randn(*ref.shape, dtype=dtype, seed=3)
    loss = lambda x: (x.abs() ** 2).sum() + (w.conj() * x).real.sum()
    wrt = (D, b, rho) if rho_grad else (D, b)
    g = torch.autograd.grad(loss(x), wrt)
    g_ref = torch.autograd.grad(loss(ref), wrt)
    for a, r in zip(g, g_ref):
        torch.testing.assert_close(a, r, atol=1e-12, rtol=1e-11)


@pytest.mark.parametrize("C,method,modes", [
    (1, "auto", ("vjp", "jvp", "hvp")), (1, "sherman-morrison", ("vjp", "jvp", "hvp")),
    (3, "auto", ("vjp", "jvp", "hvp")),
    pytest.param(1, "auto", ALL, marks=pytest.mark.slow),
    pytest.param(1, "sherman-morrison", ALL, marks=pytest.mark.slow),
    pytest.param(3, "auto", ALL, marks=pytest.mark.slow)])
def test_gradcheck_batched(C, method, modes):
    """Two solves through one solver, one chained (an unrolled iteration), with a per-problem rho:
    every derivative (D_hat, b1, b2, rho) in every mode, second order included (C = 1: the 1 x 1
    factor under ``"auto"``, rho being differentiated; the closed form when forced)."""
    D = randn(2, 3, C, 4, dtype=C128)
    b1, b2 = randn(2, 3, 4, dtype=C128, seed=1), randn(2, 2, 3, 4, dtype=C128, seed=2)
    rho = torch.tensor([[0.5], [1.5]], dtype=F64)

    def f(D, b1, b2, rho):
        s = ConvolutionalSolver(D, rho, method=method)
        return s.solve(b1), s.solve(0.5 * s.solve(b2) + b2)

    assert gradcheck(f, D, b1, b2, rho, modes=modes, names=["D_hat", "b1", "b2", "rho"]).passed


@pytest.mark.parametrize("modes", [("vjp", "jvp", "hvp"), pytest.param(ALL, marks=pytest.mark.slow)])
def test_gradcheck_sherman_morrison_constant_rho(modes):
    """C = 1 with a constant rho (``"auto"`` picks the closed form): D_hat, b1, b2 in every mode."""
    D = randn(2, 3, 1, 4, dtype=C128)
    b1, b2 = randn(2, 3, 4, dtype=C128, seed=1), randn(2, 2, 3, 4, dtype=C128, seed=2)

    def f(D, b1, b2):
        s = ConvolutionalSolver(D, 0.7)
        assert s.method == "sherman-morrison"
        return s.solve(b1), s.solve(0.5 * s.solve(b2) + b2)

    assert gradcheck(f, D, b1, b2, modes=modes, names=["D_hat", "b1", "b2"]).passed


def test_sherman_morrison_equals_the_factored_form():
    """C = 1: the closed form and the 1 x 1 Cholesky (``RegularizedSolver``'s Woodbury) agree in
    values and in first and second derivatives."""
    D = randn(7, 1, 5, dtype=C128).requires_grad_()
    b = randn(3, 7, 5, dtype=C128, seed=1)
    out = {}
    for method in ("sherman-morrison", "woodbury"):
        x = ConvolutionalSolver(D, 0.2, method=method).solve(b)
        g, = torch.autograd.grad((x.abs() ** 2).sum(), D, create_graph=True)
        h, = torch.autograd.grad((g.abs() ** 2).sum(), D)
        out[method] = (x, g, h)
    for a, r in zip(out["sherman-morrison"], out["woodbury"]):
        torch.testing.assert_close(a, r, atol=1e-12, rtol=1e-11)


def test_end_to_end_csc_step_gradient_wrt_spatial_filters():
    """Two ADMM iterations of single-channel CSC on 8 x 8 images from 3 x 3 filters (rfft2 layout of
    the docstring): the filters' gradient equals the dense per-frequency solve's."""
    g = torch.Generator().manual_seed(0)
    M, H, W, rho, lam = 3, 8, 8, 0.7, 0.1
    s = torch.randn(2, H, W, 1, dtype=F64, generator=g)
    d0 = torch.randn(M, 1, 3, 3, dtype=F64, generator=g)

    def loss(zupdate):
        d = d0.clone().requires_grad_()
        D_hat = torch.fft.rfft2(d, s=(H, W)).permute(2, 3, 1, 0)
        solve = zupdate(D_hat)
        Dhs = (D_hat.mH @ torch.fft.rfft2(s, dim=(1, 2)).unsqueeze(-1)).squeeze(-1)
        z = u = torch.zeros(2, H, W, M, dtype=F64)
        for _ in range(2):
            x = torch.fft.irfft2(solve(Dhs + rho * torch.fft.rfft2(z - u, dim=(1, 2))), s=(H, W), dim=(1, 2))
            z_new = torch.sign(x + u) * torch.relu((x + u).abs() - lam / rho)
            u, z = u + x - z_new, z_new
        rec = torch.fft.irfft2((D_hat @ torch.fft.rfft2(z, dim=(1, 2)).unsqueeze(-1)).squeeze(-1), s=(H, W), dim=(1, 2))
        return torch.autograd.grad(((rec - s) ** 2).sum() + lam * z.abs().sum(), d)[0]

    got = loss(lambda D: ConvolutionalSolver(D, rho).solve)
    ref = loss(lambda D: (lambda b: dense(D, b, rho)))
    assert got.abs().max() > 0
    torch.testing.assert_close(got, ref, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("C", [1, 3])
def test_single_precision_error_bound_and_warning(C):
    """complex64: the relative error per frequency against complex128 stays below the module's
    bound ``(3 + M) kappa_f eps``, and right-hand sides in the range of ``D_f^H`` (where ``x`` is
    the small difference of two large terms) come within a factor 10 of it, so the warning's
    ``kappa eps`` is the right scale; a rho so small that ``kappa eps > PRECISION_TOL`` warns."""
    M = 16
    D = randn(40, C, M, dtype=C128)
    b = torch.stack([randn(40, M, dtype=C128, seed=1),                        # generic
                     (D.mH @ randn(40, C, 1, dtype=C128, seed=2))[..., 0]])   # worst case
    eps = torch.finfo(torch.float32).eps
    for rho in (1.0, 1e-2, 1e-3):  # kappa up to ~5e4, below the warning's 8.4e4
        with warnings.catch_warnings():
            warnings.simplefilter("error", PrecisionWarning)
            x32 = ConvolutionalSolver(D.to(C64), rho).solve(b.to(C64)).to(C128)
        x = ConvolutionalSolver(D, rho).solve(b)
        kappa = 1 + torch.linalg.matrix_norm(D, ord=2) ** 2 / rho  # exact condition per frequency
        ratio = torch.linalg.vector_norm(x32 - x, dim=-1) / torch.linalg.vector_norm(x, dim=-1) / (kappa * eps)
        assert (ratio <= 3 + M).all(), float(ratio.max())
        assert ratio[1].max() >= 0.1, float(ratio[1].max())
    with pytest.warns(PrecisionWarning, match="ConvolutionalSolver|regularized_solve"):
        ConvolutionalSolver(D.to(C64), 1e-5)


def test_float64_does_not_warn_at_small_rho():
    with warnings.catch_warnings():
        warnings.simplefilter("error", PrecisionWarning)
        ConvolutionalSolver(randn(10, 1, 8, dtype=C128), 1e-8).solve(randn(10, 8, dtype=C128))


@pytest.mark.parametrize("C", [1, 3])
def test_torch_func_transforms(C):
    D = randn(4, C, 5, dtype=C128)
    solver = ConvolutionalSolver(D, 0.6)
    B = randn(3, 4, 5, dtype=C128, seed=1)
    torch.testing.assert_close(torch.func.vmap(solver.solve)(B), solver.solve(B), atol=1e-14, rtol=1e-13)

    def loss(D, b, rho):
        return (ConvolutionalSolver(D, rho).solve(b).abs() ** 2).sum()

    Ds, bs = randn(3, 4, C, 5, dtype=C128, seed=2), randn(3, 4, 5, dtype=C128, seed=3)
    rhos = torch.tensor([0.5, 1.0, 2.0], dtype=F64)
    g = torch.func.vmap(torch.func.grad(loss, argnums=(0, 1, 2)))(Ds, bs, rhos)
    for i in range(3):
        Di, bi, ri = (t[i].clone().requires_grad_() for t in (Ds, bs, rhos))
        ref = torch.autograd.grad(loss(Di, bi, ri), (Di, bi, ri))
        for a, r in zip(g, ref):
            torch.testing.assert_close(a[i], r, atol=1e-12, rtol=1e-12)
    _, t = torch.func.jvp(lambda D: loss(D, bs[0], 0.5), (Ds[0],), (D,))
    gD = torch.func.grad(loss)(Ds[0], bs[0], torch.tensor(0.5, dtype=F64))
    torch.testing.assert_close(t, (gD.conj() * D).real.sum(), atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("method,key,match", [
    ("sherman-morrison", "convolutional-transform-rho", "rho > 0 cannot be checked"),
    ("auto", "regularized_solve-transform-pd", "positive-definiteness check cannot raise")])
def test_rho_not_positive_inside_vmap_is_nan_and_warns(method, key, match):
    D = randn(4, 1, 5, dtype=C128)
    b = randn(4, 5, dtype=C128, seed=1)
    difflinalg._utils._warned.discard(key)
    with pytest.warns(TransformCheckWarning, match=match):
        x = torch.func.vmap(lambda r: ConvolutionalSolver(D, r, method=method).solve(b))(
            torch.tensor([-1.0, 0.5], dtype=F64))
    assert x[0].isnan().all()
    torch.testing.assert_close(x[1], dense(D, b, 0.5), atol=1e-13, rtol=1e-12)


def test_rho_gradient_in_single_precision():
    """complex64, b and the cotangent in the range of D_f^H (the worst case): the closed form's
    autograd derivative in rho cancels (eps kappa^2), so a differentiated rho gets the 1 x 1 factor's
    analytic rule, within ``2 (3 + M) kappa eps`` of the complex128 value relative to
    ``sum_f |z_f| |y_f|`` (both solves within their bound); forcing the closed form warns."""
    M = 16
    D = randn(40, 1, M, dtype=C128)
    b = (D.mH @ randn(40, 1, 1, dtype=C128, seed=1))[..., 0]
    w = (D.mH @ randn(40, 1, 1, dtype=C128, seed=2))[..., 0]
    eps = torch.finfo(torch.float32).eps
    rho = 1e-2
    grads = []
    for dt in (C64, C128):
        r = torch.tensor(rho, dtype=dt.to_real(), requires_grad=True)
        solver = ConvolutionalSolver(D.to(dt), r)
        assert solver.method == "woodbury"
        x = solver.solve(b.to(dt))
        grads.append(torch.autograd.grad((w.to(dt).conj() * x).real.sum(), r)[0].double())
    ref_solver = ConvolutionalSolver(D, rho)
    y, z = ref_solver.solve(b), ref_solver.solve(w)
    scale = (torch.linalg.vector_norm(y, dim=-1) * torch.linalg.vector_norm(z, dim=-1)).sum()
    kappa = float((1 + torch.linalg.matrix_norm(D, ord=2) ** 2 / rho).max())
    assert abs(grads[0] - grads[1]) <= 2 * (3 + M) * kappa * eps * scale
    assert kappa * eps < 1e-2  # no warning for the solve itself; the closed form's rho-derivative:
    with pytest.warns(PrecisionWarning, match="derivative in rho of the Sherman-Morrison"):
        ConvolutionalSolver(D.to(C64), torch.tensor(rho, requires_grad=True), method="sherman-morrison")


@pytest.mark.parametrize("C", [1, 3])
def test_binomial_loop_gradients_equal_plain_autograd(C):
    """A checkpointed ADMM step capturing the solver (its per-frequency constants, or its factor,
    computed from a non-leaf D_hat = 2 W before the loop) and D_hat^H s: the gradients wrt W and
    rho equal plain autograd's."""
    W = randn(5, C, 4, dtype=C128).requires_grad_()
    rho = torch.tensor(0.8, dtype=F64, requires_grad=True)
    s = randn(2, 5, C, dtype=C128, seed=1)

    def run(snapshots):
        D = 2 * W
        solver = ConvolutionalSolver(D, rho)
        Dhs = (D.mH @ s.unsqueeze(-1)).squeeze(-1)

        def step(state):
            z, u = state
            v = solver.solve(Dhs + rho * (z - u))
            w = v + u
            z = torch.sgn(w) * torch.relu(w.abs() - 0.05 / rho)
            return z, u + v - z

        state = (torch.zeros_like(Dhs), torch.zeros_like(Dhs))
        if snapshots:
            state = binomial_loop(step, state, 6, snapshots=snapshots)
        else:
            for _ in range(6):
                state = step(state)
        return torch.autograd.grad((state[0].abs() ** 2).sum(), (W, rho))

    for a, r in zip(run(2), run(None)):
        assert r.abs().max() > 0
        torch.testing.assert_close(a, r, atol=1e-13, rtol=1e-12)


def test_bad_input():
    D1, D3 = randn(4, 1, 5, dtype=C128), randn(4, 3, 5, dtype=C128)
    with pytest.raises(InputError, match="method: expected one of"):
        ConvolutionalSolver(D1, 0.5, method="lu")
    with pytest.raises(InputError, match="method: 'sherman-morrison' needs a single channel"):
        ConvolutionalSolver(D3, 0.5, method="sherman-morrison")
    with pytest.raises(InputError, match="rho: must be positive"):
        ConvolutionalSolver(D1, 0.0)
    with pytest.raises(InputError, match="rho: expected a positive real"):
        ConvolutionalSolver(D1, 1 + 1j)
    with pytest.raises(InputError, match="rho: shape .* does not broadcast"):
        ConvolutionalSolver(D1, torch.ones(3, dtype=F64))
    with pytest.raises(InputError, match="D_hat: expected a matrix"):
        ConvolutionalSolver(randn(5, dtype=C128), 0.5)
    with pytest.raises(InputError, match="D_hat: meta tensors"):
        ConvolutionalSolver(torch.empty(4, 1, 5, device="meta", dtype=C128), 0.5)
    with pytest.raises(InputError, match="D_hat: contains 4 non-finite"):
        ConvolutionalSolver(D1.index_fill(-1, torch.tensor([2]), float("nan")), 0.5)
    with pytest.raises(InputError, match="D_hat: dtype int64"):
        ConvolutionalSolver(torch.ones(4, 1, 5, dtype=torch.int64), 0.5)
    for D in (D1, D3):
        solver = ConvolutionalSolver(D, 0.5)
        with pytest.raises(InputError, match="b_hat: expected complex128 .* DFT"):
            solver.solve(randn(4, 5, dtype=F64))
        with pytest.raises(InputError, match="share one dtype"):
            solver.solve(randn(4, 5, dtype=C64))
        with pytest.raises(InputError, match=r"b_hat: expected shape \(\.\.\., 5\)"):
            solver.solve(randn(4, 6, dtype=C128))
        with pytest.raises(InputError, match="b_hat: batch shape .* does not broadcast"):
            solver.solve(randn(3, 5, dtype=C128))
        for bad in (float("nan"), float("inf")):
            b = randn(2, 4, 5, dtype=C128).index_fill(-1, torch.tensor([1]), bad)
            with pytest.raises(InputError, match="b_hat: contains 8 non-finite"):
                solver.solve(b)
        assert f"C={D.shape[-2]}" in repr(solver)


def test_nonfinite_b_where_the_filter_dft_vanishes_is_caught():
    """The single-channel finiteness check reads sum(d * b): a NaN or inf of b where d_f = 0
    still makes it non-finite (0 * inf = NaN)."""
    D = randn(4, 1, 5, dtype=C128)
    D[..., 3] = 0
    solver = ConvolutionalSolver(D, 0.5)
    for bad in (float("nan"), float("inf")):
        b = randn(4, 5, dtype=C128)
        b[2, 3] = bad
        with pytest.raises(InputError, match="b_hat: contains 1 non-finite"):
            solver.solve(b)


def test_empty_and_conj_inputs():
    assert ConvolutionalSolver(randn(0, 1, 5, dtype=C128), 0.5).solve(randn(2, 0, 5, dtype=C128)).shape == (2, 0, 5)
    assert ConvolutionalSolver(randn(0, 3, 5, dtype=C128), 0.5).solve(randn(2, 0, 5, dtype=C128)).shape == (2, 0, 5)
    for C in (1, 3):
        D, b = randn(4, C, 5, dtype=C128), randn(4, 5, dtype=C128, seed=1)
        torch.testing.assert_close(ConvolutionalSolver(D.conj(), 0.5).solve(b.conj()),
                                   dense(D.conj().resolve_conj(), b.conj().resolve_conj(), 0.5))
