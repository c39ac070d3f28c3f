"""``difflinalg.svd``: values, derivatives in every mode against finite differences and against
torch.linalg.svd / eigh, the complex gauge term and its check, degenerate and rank-deficient
inputs, ``full_matrices``, torch.func transforms, and bad input."""

import warnings

import pytest
import torch
from torch.func import grad, hessian, jvp, vmap

from difflinalg import GaugeError, GaugeWarning, InputError, svd
from difflinalg.check import gradcheck
from difflinalg.spectral._cases_svd import cluster_invariants, proj, randn, with_spectrum

from _helpers import assert_vmap_grad_and_jvp, gen

F32, F64, C64, C128 = torch.float32, torch.float64, torch.complex64, torch.complex128
ALL = ("vjp", "jvp", "hvp", "hvp_rev", "jvp2")


def invariant_loss(U, S, Vh, x, k=2):
    """A gauge-invariant real loss of the leading ``k`` triplets (and all singular values)."""
    Uk, Vk = U[..., :k], Vh[..., :k, :].mH
    M = (Uk * S[..., :k].to(U.dtype)[..., None, :]) @ Vk.mH
    return ((M.conj() * x).real.sum() + (Uk.mH @ x[..., :1]).abs().square().sum()
            + (Vk.mH @ x[..., :1, :].mT).abs().square().sum() + S.square().sum())


@pytest.mark.parametrize("dtype", [F32, F64, C64, C128])
@pytest.mark.parametrize("shape", [(5, 5), (7, 4), (3, 6), (2, 3, 4, 3)])
@pytest.mark.parametrize("full_matrices", [False, True])
def test_values_match_torch(dtype, shape, full_matrices):
    A = randn(dtype, gen(), *shape)
    U, S, Vh = svd(A, full_matrices=full_matrices)
    U0, S0, Vh0 = torch.linalg.svd(A, full_matrices=full_matrices)
    assert torch.equal(S, S0) and torch.equal(U, U0) and torch.equal(Vh, Vh0)
    k = S.shape[-1]
    rec = (U[..., :k] * S.to(dtype)[..., None, :]) @ Vh[..., :k, :]
    assert torch.allclose(rec, A, atol=1e-5 if dtype in (F32, C64) else 1e-12)


@pytest.mark.parametrize("dtype", [F64, C128])
@pytest.mark.parametrize("shape", [(5, 5), (7, 4), (4, 7), (2, 6, 5)])
def test_gradient_matches_torch(dtype, shape):
    """Generic input: the gradient equals PyTorch's (an independent implementation)."""
    A = randn(dtype, gen(1), *shape)
    x = randn(dtype, gen(2), *shape)
    A1 = A.clone().requires_grad_()
    g1, = torch.autograd.grad(invariant_loss(*svd(A1), x), A1)
    A2 = A.clone().requires_grad_()
    g2, = torch.autograd.grad(invariant_loss(*torch.linalg.svd(A2, full_matrices=False), x), A2)
    assert torch.allclose(g1, g2, rtol=1e-10, atol=1e-12)


def test_complex_gauge_invariant_loss_against_eigh():
    """|U[:, 0]^H x|^2 = x^H P x with P the top eigenprojector of A A^H: an independent rule."""
    A = randn(C128, gen(3), 6, 4)
    x = randn(C128, gen(4), 6)

    def by_svd(A):
        U, _, _ = svd(A)
        return (U[:, 0].conj() @ x).abs().square()

    def by_eigh(A):
        _, W = torch.linalg.eigh(A @ A.mH)
        return (W[:, -1].conj() @ x).abs().square()

    g1 = grad(by_svd)(A)
    g2 = grad(by_eigh)(A)
    assert torch.allclose(g1, g2, rtol=1e-9, atol=1e-12)
    # Purely real and purely imaginary perturbations (a missing conjugate would fail one of them).
    assert gradcheck(by_svd, A, modes=ALL, n_directions=2).passed


def test_gauge_dependent_loss_error_warn_ignore():
    A = randn(C128, gen(5), 4, 3)

    def run(gauge):
        A1 = A.clone().requires_grad_()
        U, _, _ = svd(A1, gauge=gauge)
        U[0, 0].real.backward()  # depends on the phase of u_0
        return A1.grad

    with pytest.raises(GaugeError, match="gauge"):
        run("error")
    with pytest.warns(GaugeWarning):
        g = run("warn")
    assert torch.isfinite(g).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(run("ignore"), g)
    # The real case has no continuous gauge: no error.
    Ar = A.real.clone().requires_grad_()
    svd(Ar)[0][0, 0].backward()
    assert torch.isfinite(Ar.grad).all()


def test_gauge_ignore_is_adjoint_to_jvp():
    """For any loss (also a gauge-dependent one) reverse and forward mode are adjoint: both use
    the symmetric gauge (the phase change split half on u_i, half on v_i)."""
    A = randn(C128, gen(6), 4, 3)
    d = randn(C128, gen(7), 4, 3)

    def f(A):
        U, _, Vh = svd(A, gauge="ignore")
        return U[0].sum().real + 2.0 * Vh[:, 1].sum().imag

    A1 = A.clone().requires_grad_()
    g, = torch.autograd.grad(f(A1), A1)
    _, t = jvp(f, (A,), (d,))
    assert torch.allclose((g.conj() * d).real.sum(), t, rtol=1e-10)


def test_gauge_check_covers_degenerate_clusters():
    """With degeneracy_tol, a loss that picks one vector of a cluster is gauge dependent."""
    A = with_spectrum(F64, gen(7), [3.0, 2.0, 2.0, 1.0], 5, 4).requires_grad_()
    x = torch.ones(5, dtype=F64)
    U, _, _ = svd(A, degeneracy_tol=1e-8)
    with pytest.raises(GaugeError):
        (U[:, 1] @ x).square().backward()
    # The cluster's projector is invariant: no error, finite gradient.
    U, _, _ = svd(A, degeneracy_tol=1e-8)
    (proj(U[:, 1:3]) @ x).square().sum().backward()
    assert torch.isfinite(A.grad).all()


@pytest.mark.parametrize("dtype", [F64, C128])
def test_repeated_singular_values_torch_fails_ours_exact(dtype):
    """Exactly repeated singular values: torch's gradient of the cluster projector is not finite
    or wrong; ours (with degeneracy_tol) matches finite differences."""
    A = with_spectrum(dtype, gen(8), [3.0, 2.0, 2.0, 1.0], 4, 4)
    w = randn(dtype, gen(9), 4, 4)

    def loss(svd_fn):
        def f(A):  # values and vectors of the cluster from two calls (see _svd_ties.py)
            U, _, _ = svd_fn(A)
            return (proj(U[..., 1:3]) * w).real.sum() + svd_fn(A)[1][1:3].square().sum()
        return f

    A1 = A.clone().requires_grad_()
    g_torch, = torch.autograd.grad(loss(lambda A: torch.linalg.svd(A))(A1), A1)
    fn = loss(lambda A: svd(A, degeneracy_tol=1e-8))
    g = grad(fn)(A)
    assert torch.isfinite(g).all()
    assert gradcheck(fn, A, modes=("vjp", "jvp"), max_step=1e-3).passed
    assert not torch.isfinite(g_torch).all() or (g_torch - g).abs().max() > 1e-3 * g.abs().max()


@pytest.mark.parametrize("dtype", [F64, C128])
def test_exact_zero_singular_values_without_tol(dtype):
    """Exact zeros (zero rows): the 1/s terms are masked even with degeneracy_tol=None."""
    B = randn(dtype, gen(10), 3, 4)
    A = torch.cat([B, torch.zeros(2, 4, dtype=dtype)])  # 5 x 4, rank 3, s_4 = 0 exactly

    def f(A):
        U, S, Vh = svd(A)
        return proj(U[:, :3]), proj(Vh[:3].mH), S[:3]

    _, S, _ = svd(A)
    assert S[-1] == 0
    assert gradcheck(f, A, modes=("vjp", "jvp"), max_step=1e-3).passed


def test_full_matrices_gauge_of_extra_columns():
    A = randn(C128, gen(11), 5, 3)
    A1 = A.clone().requires_grad_()
    U, _, _ = svd(A1, full_matrices=True)
    with pytest.raises(GaugeError):
        U[0, 4].abs().backward()  # a single extra column: an arbitrary basis vector
    # Its span (the projector onto the complement) is fine and equals I - U_t U_t^H.
    g = grad(lambda A: (proj(svd(A, full_matrices=True)[0][:, 3:]) * A[:, :1]).real.sum())(A)
    g_ref = grad(lambda A: ((torch.eye(5, dtype=C128) - proj(svd(A, False)[0])) * A[:, :1]).real.sum())(A)
    assert torch.allclose(g, g_ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [F64, C128])
def test_torch_func_transforms(dtype):
    A = randn(dtype, gen(12), 3, 5, 4)
    x = randn(dtype, gen(13), 5, 4)

    def f(A):
        return invariant_loss(*svd(A), x)

    # vmap over the batch equals the batched call, for the values and the gradients
    Ub, Sb, Vhb = vmap(svd)(A)
    U, S, Vh = svd(A)
    assert torch.allclose(Sb, S) and torch.allclose(proj(Ub[..., :2]), proj(U[..., :2]))
    # vmap(grad) equals the loop; jvp agrees with the gradient (adjointness, complex convention)
    assert_vmap_grad_and_jvp(f, A, randn(dtype, gen(14), 5, 4))
    # forward-over-reverse (hessian) equals reverse-over-reverse
    if dtype == F64:
        H = hessian(f)(A[0])
        H2 = torch.autograd.functional.hessian(f, A[0])
        assert torch.allclose(H, H2, rtol=1e-9, atol=1e-10)
        assert torch.allclose(H, H.permute(2, 3, 0, 1), atol=1e-10)


@pytest.mark.parametrize("dtype", [F32, C64])
def test_single_precision(dtype):
    A = randn(dtype, gen(15), 6, 4)
    x = randn(dtype, gen(16), 6, 4)
    hi = torch.complex128 if dtype.is_complex else F64
    g32 = grad(lambda A: invariant_loss(*svd(A), x))(A)
    g64 = grad(lambda A: invariant_loss(*svd(A), x.to(hi)))(A.to(hi))
    assert g32.dtype == dtype
    assert torch.allclose(g32.to(hi), g64, rtol=1e-4, atol=1e-4 * g64.abs().max())


def test_cluster_projector_spread_within_tol():
    """Clusters with a spread below the tolerance: invariant losses linear in the cluster's
    values stay exact, second order included (the block tangent of the rules)."""
    for spread in (0.0, 1e-12, 1e-8, 1e-5):
        A = with_spectrum(C128, gen(17), [3.0, 2 + spread, 2.0, 2 - spread, 1.0], 6, 5)
        def fn(A):
            return cluster_invariants(svd(A, degeneracy_tol=1e-3), svd(A, degeneracy_tol=1e-3), 1, 4)

        assert gradcheck(fn, A, modes=ALL, max_step=1e-3).passed


def test_bad_input():
    A = randn(F64, gen(), 3, 3)
    with pytest.raises(InputError, match="A: expected a matrix"):
        svd(torch.ones(3, dtype=F64))
    with pytest.raises(InputError, match="A: dtype int64"):
        svd(torch.ones(3, 3, dtype=torch.int64))
    bad = A.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(InputError, match="A: contains 1 non-finite"):
        svd(bad)
    with pytest.raises(InputError, match="gauge"):
        svd(A, gauge="raise")
    for tol in (-1.0, float("nan"), True, "1e-8"):
        with pytest.raises(InputError, match="degeneracy_tol"):
            svd(A, degeneracy_tol=tol)
    with pytest.raises(InputError, match="full_matrices"):
        svd(A, full_matrices=1)


@pytest.mark.parametrize("full_matrices", [False, True])
@pytest.mark.parametrize("shape", [(0, 3, 3), (2, 0, 4, 3), (0, 3), (3, 0), (2, 0, 4), (0, 0)])
def test_empty_inputs_match_torch(shape, full_matrices):
    """Empty batches and m = 0 or n = 0: values, shapes and gradients as torch.linalg.svd
    (an empty batch used to crash in backward: "amax(): Expected reduction dim")."""
    A = torch.randn(*shape, dtype=F64)

    def loss(fn, A):
        U, S, Vh = fn(A)
        return U.sum() + S.sum() + Vh.sum()

    out = svd(A, full_matrices=full_matrices)
    ref = torch.linalg.svd(A, full_matrices=full_matrices)
    for x, y in zip(out, ref):
        assert x.shape == y.shape and x.dtype == y.dtype
    A1, A2 = A.clone().requires_grad_(), A.clone().requires_grad_()
    g1, = torch.autograd.grad(loss(lambda A: svd(A, full_matrices=full_matrices), A1), A1,
                              allow_unused=True, materialize_grads=True)
    g2, = torch.autograd.grad(loss(lambda A: torch.linalg.svd(A, full_matrices=full_matrices), A2),
                              A2, allow_unused=True, materialize_grads=True)
    assert g1.shape == g2.shape == A.shape and torch.equal(g1, g2)


@pytest.mark.parametrize("view", ["conj", "mH"])
def test_conjugate_views(view):
    Z = randn(C128, gen(18), 5, 3)
    x = randn(C128, gen(19), 3, 5) if view == "mH" else randn(C128, gen(19), 5, 3)

    def f(Z, resolve):
        A = Z.conj() if view == "conj" else Z.mH
        if resolve:
            A = A.resolve_conj()
        return invariant_loss(*svd(A), x)

    assert torch.allclose(f(Z, False), f(Z, True))
    assert torch.allclose(grad(lambda Z: f(Z, False))(Z), grad(lambda Z: f(Z, True))(Z), atol=1e-12)
    Z1 = Z.clone().requires_grad_()
    f(Z1, False).backward()
    assert torch.allclose(Z1.grad, grad(lambda Z: f(Z, True))(Z), atol=1e-12)
