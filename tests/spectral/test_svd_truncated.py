"""``difflinalg.svd_truncated``: values and gradients equal to those through a full SVD (1e-10
relative, float64), both methods, tall and wide, forward mode and double backward, the fallback
of method="auto", degenerate splits, torch.func transforms, and bad input."""

import functools

import pytest
import torch
import torch.autograd.forward_ad as fwAD
from torch.func import grad, jvp, vmap

import difflinalg.spectral._svd_complement as complement_mod
import difflinalg.spectral._svd_iterative as iter_mod
import difflinalg.spectral._svd_truncated as trunc_mod
from difflinalg import ConvergenceError, DegenerateSpectrumError, GaugeError, InputError, svd_truncated
from difflinalg._utils import eps
from difflinalg.check import gradcheck
from difflinalg.spectral._cases_svd import proj, randn, with_spectrum

F32, F64, C128 = torch.float32, torch.float64, torch.complex128

# The iterative path runs many small BLAS/LAPACK calls: with two threads on a busy shared
# machine each of them can wait for the other core (measured 30x slower), so one thread here.
pytestmark = pytest.mark.usefixtures("one_thread")


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def loss_k(U, S, Vh, W, x):
    """A gauge-invariant loss of the k leading triplets (every one of them enters)."""
    M = (U * S.to(U.dtype)[..., None, :]) @ Vh
    return ((M.conj() * W).real.sum() + (U.mH @ x).abs().square().sum()
            + (Vh @ W[..., :1, :].mT).abs().square().sum() + S.square().sum() + S.sum())


def full_reference(A, k, W, x):
    A = A.clone().requires_grad_()
    U, S, Vh = torch.linalg.svd(A, full_matrices=False)
    L = loss_k(U[..., :k], S[..., :k], Vh[..., :k, :], W, x)
    return torch.autograd.grad(L, A)[0]


def truncated_grad(A, k, W, x, **kw):
    """The gradient of ``loss_k`` through ``svd_truncated(A, k, **kw)`` (compare with ``full_reference``)."""
    A1 = A.clone().requires_grad_()
    return torch.autograd.grad(loss_k(*svd_truncated(A1, k, **kw), W, x), A1)[0]


def decaying(dtype, m, n, rate=0.8, seed=0, batch=()):
    """Geometric decay down to a floor of distinct values near 1e-3 (torch's full-SVD reference
    gradient divides by s_i^2 - s_j^2 over all pairs: values below rounding would give NaN)."""
    k0 = min(m, n)
    s = rate ** torch.arange(k0, dtype=F64) + 1e-3 * torch.linspace(2.0, 1.0, k0, dtype=F64)
    return with_spectrum(dtype, gen(seed), s, m, n, batch)


@pytest.mark.parametrize("dtype", [F64, C128])
@pytest.mark.parametrize("shape,k", [((30, 20), 4), ((20, 30), 4), ((2, 25, 25), 3)])
@pytest.mark.parametrize("method", ["full", "iterative"])
def test_gradient_equals_full_svd_random(dtype, shape, k, method):
    """Full-rank random (Gaussian) matrices, tall, wide and batched: 1e-10 relative."""
    A = randn(dtype, gen(1), *shape)
    W = randn(dtype, gen(2), *shape)
    x = randn(dtype, gen(3), *shape[:-1], 1)
    A1 = A.clone().requires_grad_()
    U, S, Vh = svd_truncated(A1, k, method=method)
    S0 = torch.linalg.svdvals(A)[..., :k]
    assert torch.allclose(S, S0, rtol=1e-12)
    g, = torch.autograd.grad(loss_k(U, S, Vh, W, x), A1)
    g0 = full_reference(A, k, W, x)
    assert (g - g0).norm() <= 1e-10 * g0.norm()


@pytest.mark.parametrize("dtype", [F64, C128])
@pytest.mark.parametrize("shape", [(300, 200), (200, 300)])
def test_gradient_equals_full_svd_iterative_large(dtype, shape):
    """The iterative path on larger matrices (deflation-preconditioned CG in backward)."""
    A = decaying(dtype, *shape, rate=0.85, seed=4)
    W = randn(dtype, gen(5), *shape)
    x = randn(dtype, gen(6), shape[0], 1)
    g = truncated_grad(A, 8, W, x, method="iterative")
    g0 = full_reference(A, 8, W, x)
    assert (g - g0).norm() <= 1e-10 * g0.norm()


@pytest.mark.parametrize("dtype", [F64, C128])
def test_forward_mode_iterative_equals_full(dtype):
    """Forward mode (jvp) of the iterative path, through torch.autograd.forward_ad."""
    A = decaying(dtype, 40, 30, seed=7)
    W = randn(dtype, gen(8), 40, 30)
    x = randn(dtype, gen(9), 40, 1)
    d = randn(dtype, gen(10), 40, 30)
    with fwAD.dual_level():
        out = svd_truncated(fwAD.make_dual(A, d), 3, method="iterative")
        t_it = fwAD.unpack_dual(loss_k(*out, W, x)).tangent
    _, t_full = jvp(lambda A: loss_k(*svd_truncated(A, 3, method="full"), W, x), (A,), (d,))
    g0 = full_reference(A, 3, W, x)
    assert torch.allclose(t_it, t_full, rtol=1e-10)
    assert torch.allclose(t_full, (g0.conj() * d).real.sum(), rtol=1e-10)


def test_iterative_under_grad_and_jvp_transforms():
    A = decaying(C128, 30, 24, seed=11)
    W = randn(C128, gen(12), 30, 24)
    x = randn(C128, gen(13), 30, 1)

    def f(A, method):
        return loss_k(*svd_truncated(A, 3, method=method), W, x)

    assert torch.allclose(grad(f)(A, "iterative"), grad(f)(A, "full"), rtol=1e-10, atol=1e-12)
    d = torch.ones_like(A)
    hv_it = jvp(grad(lambda A: f(A, "iterative")), (A,), (d,))[1]
    hv_full = jvp(grad(lambda A: f(A, "full")), (A,), (d,))[1]
    assert torch.allclose(hv_it, hv_full, rtol=1e-9, atol=1e-10)
    with pytest.raises(InputError, match="vmap"):
        vmap(lambda a: f(a, "iterative"))(A[None])


def test_vmap_auto():
    A = randn(F64, gen(14), 3, 6, 5)
    W = randn(F64, gen(15), 6, 5)
    x = randn(F64, gen(16), 6, 1)
    f = lambda A: loss_k(*svd_truncated(A, 2), W, x)  # noqa: E731
    g_vmap = vmap(grad(f))(A)
    g_loop = torch.stack([full_reference(a, 2, W, x) for a in A])
    assert torch.allclose(g_vmap, g_loop, rtol=1e-10, atol=1e-12)


@pytest.fixture
def krylov_calls(monkeypatch):
    """Records, per call of the Krylov path inside ``svd_truncated``, whether it converged (a
    result) or gave up (None: the full SVD takes over)."""
    calls = []
    orig = trunc_mod.krylov_svd

    def spy(*args, **kwargs):
        out = orig(*args, **kwargs)
        calls.append(out is not None)
        return out

    monkeypatch.setattr(trunc_mod, "krylov_svd", spy)
    return calls


def test_auto_uses_iterative_on_large_and_falls_back(krylov_calls):
    """method='auto': iterative on a large matrix with a decaying spectrum; on a flat spectrum
    (Gaussian) the iteration gives up early and a full SVD takes over; both exact."""
    W = randn(F64, gen(17), 300, 280)
    x = randn(F64, gen(18), 300, 1)
    for A, converged in [(decaying(F64, 300, 280, rate=0.7, seed=19), True),
                         (randn(F64, gen(20), 300, 280), False)]:
        g = truncated_grad(A, 4, W, x)
        assert krylov_calls[-1] is converged
        g0 = full_reference(A, 4, W, x)
        assert (g - g0).norm() <= 1e-10 * g0.norm()


def test_krylov_reports_non_convergence():
    """A flat spectrum past s_2 needs many Krylov steps: with a small budget the kernel says it
    did not converge (returns None), and gives up at once with give_up_early."""
    s = [3.0, 2.0] + torch.linspace(1.0, 0.99, 118, dtype=F64).tolist()
    A = with_spectrum(F64, gen(21), s, 150, 120)
    assert trunc_mod.krylov_svd(A, 3, maxiter=5) is None
    out = trunc_mod.krylov_svd(A, 3, maxiter=300)
    assert out is not None and torch.allclose(out[1], torch.tensor(s[:3], dtype=F64), rtol=1e-13)


def test_non_convergence_error_and_fallback(monkeypatch):
    """If an iteration does not converge: method='iterative' raises ConvergenceError naming the
    fix, method='auto' falls back to a full SVD (forward or backward) with the exact result."""
    A = decaying(F64, 300, 280, rate=0.7, seed=19)
    W = randn(F64, gen(17), 300, 280)
    x = randn(F64, gen(18), 300, 1)
    g0 = full_reference(A, 4, W, x)
    for mod, target in ((trunc_mod, "krylov_svd"), (complement_mod, "resolvent_pcg")):
        with monkeypatch.context() as mp:
            mp.setattr(mod, target, lambda *a, **kw: None)
            with pytest.raises(ConvergenceError, match="method='full'"):
                truncated_grad(A, 4, W, x, method="iterative")
            g = truncated_grad(A, 4, W, x, method="auto")
            assert (g - g0).norm() <= 1e-10 * g0.norm()


@pytest.mark.parametrize("dtype", [F64, C128])
@pytest.mark.parametrize("shape", [(120, 90), (90, 120), (2, 70, 60)])
@pytest.mark.parametrize("opts", [{}, {"max_dim": 24}, {"max_dim": 13}, {"block": 3}],
                         ids=["default", "restarts", "tightest_restarts", "small_block"])
def test_krylov_svd_forward_accuracy(dtype, shape, opts):
    """The Golub-Kahan-Lanczos forward: values, both residuals and orthonormality at rounding
    level (50 eps s_1; a full SVD's residuals are 6-40 eps s_1), tall/wide (run on
    A^H)/batched, with thick restarts (max_dim 24 < the ~40 columns it needs; 13 = k + block,
    the smallest allowed) and with blocks narrower than k; the extra Ritz pairs interlace below
    s_k."""
    m, n = shape[-2:]
    k = 5
    A = decaying(dtype, m, n, rate=0.75, seed=40, batch=shape[:-2])
    Uk, Sk, Vhk, Ue, se, steps = iter_mod.krylov_svd(A, k, **opts)
    if "max_dim" in opts:
        assert steps * iter_mod.default_block(k, min(m, n)) > opts["max_dim"]  # it restarted
    S0 = torch.linalg.svdvals(A)
    s1 = S0[..., :1]
    tol = 50 * eps(dtype) * s1
    assert ((Sk - S0[..., :k]).abs() <= tol).all()
    Sd = Sk.to(dtype)[..., None, :]
    assert (torch.linalg.vector_norm(A @ Vhk.mH - Uk * Sd, dim=-2) <= tol).all()
    assert (torch.linalg.vector_norm(A.mH @ Uk - Vhk.mH * Sd, dim=-2) <= tol).all()
    eye = torch.eye(k, dtype=dtype)
    assert (Uk.mH @ Uk - eye).abs().max() < 1e-13 and (Vhk @ Vhk.mH - eye).abs().max() < 1e-13
    assert Ue.shape[-2] == m and (Ue.mH @ Uk).abs().max() < 1e-12
    assert (se <= Sk[..., -1:] + tol).all()


def test_krylov_svd_rank_deficient_and_zero():
    """Invariant subspaces (rank 3 < block): the QR fills in orthogonal directions of rounding
    size and the exact triplets come out; the zero matrix gives zeros."""
    A = with_spectrum(C128, gen(41), [3.0, 2.0, 1.0], 100, 80)
    for k in (2, 3):
        Uk, Sk, Vhk, Ue, se, _ = iter_mod.krylov_svd(A, k)
        assert torch.allclose(Sk, torch.tensor([3.0, 2.0, 1.0][:k], dtype=F64), rtol=1e-14)
        assert (se[..., k - 2:] <= 1.0 + 1e-14).all() and torch.isfinite(Ue).all()
    assert torch.allclose((Uk * Sk.to(C128)) @ Vhk, A, atol=1e-13)  # k = 3: all of A
    Uk, Sk, Vhk, *_ = iter_mod.krylov_svd(torch.zeros(50, 40, dtype=F64), 2)
    assert (Sk == 0).all() and torch.isfinite(Uk).all() and torch.isfinite(Vhk).all()


@pytest.mark.parametrize("dtype", [F64, C128])
def test_gradient_with_restarts_equals_full_svd(dtype, monkeypatch):
    """The backward deflated by the Ritz pairs of a restarted Krylov space (fewer and rougher
    than without restarts): still the full-SVD gradient to 1e-10."""
    monkeypatch.setattr(trunc_mod, "krylov_svd", functools.partial(iter_mod.krylov_svd, max_dim=32))
    A = decaying(dtype, 150, 120, rate=0.9, seed=42)
    W = randn(dtype, gen(43), 150, 120)
    x = randn(dtype, gen(44), 150, 1)
    g = truncated_grad(A, 6, W, x, method="iterative")
    g0 = full_reference(A, 6, W, x)
    assert (g - g0).norm() <= 1e-10 * g0.norm()


@pytest.mark.parametrize("dtype", [F64, C128])
def test_gradient_steep_spectrum_equals_full_svd(dtype):
    """s_i = 0.3^(i-1), k = 10 (s_k / s_1 = 2e-5): the resolvent solve works on the complement
    of U_k with the projected operator, whose rounding error is ~ eps s_1 s_(k+1) instead of the
    eps s_1^2 of A (A^H x); unprojected, the gradient was off by 4e-9 here (the full-SVD
    gradient itself agrees with torch's to ~2e-12)."""
    m, n, k = 300, 250, 10
    i = torch.arange(1, n + 1, dtype=F64)
    A = with_spectrum(dtype, gen(50), 0.3 ** (i - 1) + 1e-9 * (2 - i / n), m, n)
    W = randn(dtype, gen(51), m, n)
    x = randn(dtype, gen(52), m, 1)
    g = truncated_grad(A, k, W, x, method="iterative")
    g0 = full_reference(A, k, W, x)
    assert (g - g0).norm() <= 1e-10 * g0.norm()


def test_adjoint_mm():
    A = randn(C128, gen(45), 2, 30, 20)
    X = randn(C128, gen(46), 2, 30, 4)
    assert torch.allclose(iter_mod.adjoint_mm(A, X), A.mH @ X, rtol=1e-14, atol=1e-14)


def test_auto_budgets():
    """The budgets of method='auto' (cost of a full SVD with backward, in Krylov steps / CG
    iterations): at 2000 x 2000, k = 16 they leave room for the ~50 restarted steps a Gaussian
    matrix needs (the iteration is ~3x cheaper than the full SVD there); at 300 x 280 the
    per-step overhead leaves few steps, so a flat spectrum falls back (see above)."""
    fwd, cg = trunc_mod._budgets(2000, 2000, 16)
    assert 200 <= fwd <= 1000 and 200 <= cg <= 2000
    fwd_small, _ = trunc_mod._budgets(300, 280, 4)
    assert 10 <= fwd_small <= 30
    assert trunc_mod._budgets(4000, 4000, 16)[0] > fwd  # a full SVD grows faster than a step


def test_convergence_rate_helpers():
    """``hopeless`` extrapolates the observed geometric rate to the budget (pessimistic: rates
    improve), ``_next_check`` skips Rayleigh-Ritz checks by half the predicted remainder."""
    steady = [(i, 1e14 * 10.0 ** (-i)) for i in range(1, 8)]  # one decade per step
    assert not iter_mod.hopeless(steady, maxiter=30)  # needs ~7 more steps
    assert iter_mod.hopeless(steady, maxiter=10)
    slow = [(i, 1e14 * 0.99 ** i) for i in range(1, 8)]
    assert iter_mod.hopeless(slow, maxiter=100) and not iter_mod.hopeless(slow, maxiter=5000)
    assert not iter_mod.hopeless([(1, 1e14), (2, 1e13)], maxiter=3)  # too early to say
    # checks: every step while cheap and the rate is unknown, then half the predicted remainder
    assert iter_mod._next_check(1, [(1, 1e14)], 2000, 2000, 16, 16) == 2
    nxt = iter_mod._next_check(20, [(10, 1e12), (20, 1e10)], 2000, 2000, 16, 160)
    assert nxt == 20 + 10  # 0.2 decades per step: 50 more steps predicted, capped at it / 2
    nxt = iter_mod._next_check(4, [(3, 1e12), (4, 1e8)], 2000, 2000, 16, 64)
    assert nxt == 4 + 1
    # a large projected matrix (SVD ~ 20 d^3) is not decomposed every step
    assert iter_mod._next_check(5, [(5, 1e3)], 2000, 2000, 16, 1000) >= 5 + 3


def test_zero_gap_across_split_raises_in_backward():
    """s_k = s_(k+1): the leading-k subspaces are not unique; the forward works, backward says
    why it cannot (the iterative forward does not converge there: see above)."""
    A = with_spectrum(F64, gen(22), [3.0, 2.0, 1.0, 1.0], 6, 5).requires_grad_()
    U, S, Vh = svd_truncated(A, 3, method="full")
    assert torch.allclose(S, torch.tensor([3.0, 2.0, 1.0], dtype=F64))
    with pytest.raises(DegenerateSpectrumError, match="k: "):
        proj(U).sum().backward()


def test_rank_deficient_wide_keep_all_and_zero_split():
    """k = min(m, n) on a wide matrix: the split against the zero singular values of the
    dilation; a zero kept singular value is a zero gap."""
    A = randn(F64, gen(23), 3, 5)
    g = grad(lambda A: proj(svd_truncated(A, 3)[2].mH).sum())(A)
    g0 = grad(lambda A: proj(torch.linalg.svd(A, full_matrices=False)[2].mH).sum())(A)
    assert torch.allclose(g, g0, rtol=1e-10, atol=1e-12)
    B = with_spectrum(F64, gen(24), [2.0, 1.0], 3, 5).requires_grad_()  # s_3 = 0, k = 3
    U, S, Vh = svd_truncated(B, 3)
    with pytest.raises(DegenerateSpectrumError):
        proj(Vh.mH).sum().backward()


def test_gauge_error():
    A = randn(C128, gen(25), 6, 4).requires_grad_()
    U, _, _ = svd_truncated(A, 2)
    with pytest.raises(GaugeError):
        U[0, 0].real.backward()


def test_single_precision_iterative():
    A = decaying(torch.complex64, 60, 40, seed=26)
    W = randn(torch.complex64, gen(27), 60, 40)
    x = randn(torch.complex64, gen(28), 60, 1)
    g = truncated_grad(A, 3, W, x, method="iterative")
    g0 = full_reference(A.to(C128), 3, W.to(C128), x.to(C128))
    assert g.dtype == torch.complex64
    assert (g.to(C128) - g0).norm() <= 1e-4 * g0.norm()


def test_bad_input():
    A = randn(F64, gen(), 4, 3)
    for k in (4, -1, 2.0, True, None):
        with pytest.raises(InputError, match="k: expected an integer"):
            svd_truncated(A, k)
    with pytest.raises(InputError, match="method"):
        svd_truncated(A, 2, method="lanczos")
    bad = A.clone()
    bad[1, 1] = float("inf")
    with pytest.raises(InputError, match="A: contains 1 non-finite"):
        svd_truncated(bad, 2)
    with pytest.raises(InputError, match="A: expected a matrix"):
        svd_truncated(torch.ones(3, dtype=F64), 1)
    with pytest.raises(InputError, match="degeneracy_tol"):
        svd_truncated(A, 2, degeneracy_tol=-1e-3)
    with pytest.raises(InputError, match="gauge"):
        svd_truncated(A, 2, gauge="off")


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [F64, C128])
def test_large_auto_gradient_equals_full_svd(dtype):
    """1000 x 800, k = 16, s_i = i^-2: method='auto' takes the iterative path (checked)."""
    i = torch.arange(1, 801, dtype=F64)
    A = with_spectrum(dtype, gen(29), i ** -2.0, 1000, 800)
    W = randn(dtype, gen(30), 1000, 800)
    x = randn(dtype, gen(31), 1000, 1)
    assert trunc_mod._prefers_iterative(1000, 800, 16)
    g = truncated_grad(A, 16, W, x)
    g0 = full_reference(A, 16, W, x)
    assert (g - g0).norm() <= 1e-10 * g0.norm()


@pytest.mark.slow
def test_large_gaussian_auto_takes_iterative_path(krylov_calls):
    """1000 x 1000 Gaussian (flat top of the spectrum), k = 8: within the budget method='auto'
    keeps the Krylov path (no fallback) and the gradient is the full-SVD one."""
    A = randn(F64, gen(47), 1000, 1000)
    W = randn(F64, gen(48), 1000, 1000)
    x = randn(F64, gen(49), 1000, 1)
    g = truncated_grad(A, 8, W, x)
    assert krylov_calls == [True]
    g0 = full_reference(A, 8, W, x)
    assert (g - g0).norm() <= 1e-10 * g0.norm()


@pytest.mark.parametrize("shape,k", [((0, 4, 3), 2), ((2, 0, 4, 3), 3), ((0, 3), 0), ((3, 0), 0),
                                     ((4, 3), 0)])
def test_empty_inputs(shape, k):
    """Empty batches, m = 0 or n = 0 (k = 0) and k = 0: the leading columns of torch's SVD, and
    gradients of the right shape (zero)."""
    A = torch.randn(*shape, dtype=F64, requires_grad=True)
    U, S, Vh = svd_truncated(A, k)
    U0, S0, Vh0 = torch.linalg.svd(A.detach(), full_matrices=False)
    assert U.shape == U0[..., :k].shape and S.shape == S0[..., :k].shape
    assert Vh.shape == Vh0[..., :k, :].shape
    (U.sum() + S.sum() + Vh.sum()).backward()
    assert A.grad.shape == A.shape and not A.grad.any()


@pytest.mark.parametrize("view", ["conj", "mH"])
@pytest.mark.parametrize("method", ["full", "iterative"])
def test_conjugate_views(view, method):
    """Z.conj() and Z.mH (lazily conjugated views) into svd_truncated: values and gradients
    equal those of the resolved matrix (they failed in view_as_real)."""
    Z = randn(C128, gen(40), 30, 20)
    A0 = Z.conj() if view == "conj" else Z.mH

    def f(Z, resolve):
        A = Z.conj() if view == "conj" else Z.mH
        if resolve:
            A = A.resolve_conj()
        U, S, Vh = svd_truncated(A, 2, method=method)
        return S.sum() + proj(U).real.diagonal().cumsum(0).sum() + proj(Vh.mH).real.trace()

    assert A0.is_conj()
    Z1, Z2 = Z.clone().requires_grad_(), Z.clone().requires_grad_()
    v1, v2 = f(Z1, False), f(Z2, True)
    assert torch.allclose(v1, v2, rtol=1e-12)
    v1.backward()
    v2.backward()
    assert torch.allclose(Z1.grad, Z2.grad, rtol=1e-9, atol=1e-11)


def test_ties_in_the_kept_block():
    """A tie inside the kept block: subspace losses exact, a coupled loss raises (as svd)."""
    A = with_spectrum(F64, gen(41), [3.0, 2.0, 2.0, 1.0, 0.5], 6, 5)
    W = randn(F64, gen(42), 6, 5)
    A1 = A.clone().requires_grad_()
    U, S, Vh = svd_truncated(A1, 3, method="full")
    with pytest.raises(DegenerateSpectrumError, match="svd_truncated: the singular values S\\[\\[1, 2\\]\\]"):
        (W * ((U * torch.sin(S)) @ Vh)).sum().backward()
    fn = lambda A: proj(svd_truncated(A, 3, method="full")[0][:, 1:3])  # noqa: E731
    assert gradcheck(fn, A, modes=("vjp", "jvp", "hvp"), max_step=1e-3).passed


def test_single_precision_split_gap_warns():
    """float32 with s_k - s_(k+1) = 3e-5 (not a tie, unresolvable in single precision): the
    complement terms divide by it, so a loss of the kept vectors warns (PrecisionWarning); the
    kept values alone do not (they do not use the gap)."""
    import warnings

    from difflinalg import PrecisionWarning

    A = with_spectrum(F64, gen(43), [3.0, 1.0 + 3e-5, 1.0, 0.5], 6, 5).to(torch.float32)
    A1 = A.clone().requires_grad_()
    with pytest.warns(PrecisionWarning, match="svd_truncated"):
        torch.autograd.grad(proj(svd_truncated(A1, 2, method="full")[0]).diagonal().cumsum(0).sum(), A1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        torch.autograd.grad(svd_truncated(A1, 2, method="full")[1].sum(), A1)
