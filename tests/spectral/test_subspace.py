"""``eigh_subspace`` / ``subspace_projector``: values, derivatives in every mode (generic, batched,
degenerate kept block, degenerate complement, clusters 1e-12 .. 1e-3), invariance under rotations
of the complement, agreement with full-eigh gradients, the zero-gap policy, torch.func, bad input."""

import pytest
import torch
from torch.func import grad, hessian, jacfwd, jacrev, jvp, vmap

from difflinalg import DegenerateSpectrumError, InputError, eigh, eigh_subspace, subspace_projector
from difflinalg.check import gradcheck
from difflinalg.spectral._cases_eigh import hermitian_with_spectrum, randn
from difflinalg.spectral._subspace import (
    subspace_jvp_jvp,
    subspace_jvp_vjp,
    subspace_vjp,
    subspace_vjp_jvp,
    subspace_vjp_vjp,
)

from _helpers import gen

pytestmark = pytest.mark.usefixtures("one_thread")

F32, F64, C64, C128 = torch.float32, torch.float64, torch.complex64, torch.complex128
ALL = ("vjp", "jvp", "hvp", "hvp_rev", "jvp2")


def proj(U):
    return U @ U.mH


@pytest.mark.parametrize("dtype", [F32, F64, C64, C128])
@pytest.mark.parametrize("largest", [False, True])
def test_values(dtype, largest):
    A = randn(dtype, gen(), 2, 6, 6)
    w, V = torch.linalg.eigh(0.5 * (A + A.mH))
    w1, U1 = eigh_subspace(A, 2, largest=largest)
    if largest:
        assert torch.equal(w1, w[..., [5, 4]]) and torch.equal(U1, V[..., [5, 4]])
    else:
        assert torch.equal(w1, w[..., :2]) and torch.equal(U1, V[..., :2])
    P = subspace_projector(A, 2, largest=largest)
    tol = 1e-5 if dtype in (F32, C64) else 1e-12
    assert torch.allclose(P @ P, P, atol=tol) and torch.allclose(P, P.mH, atol=tol)
    assert torch.allclose(P.diagonal(dim1=-2, dim2=-1).real.sum(-1), torch.full((2,), 2.0, dtype=w.dtype), atol=tol)


@pytest.mark.parametrize("dtype", [F64, C128])
@pytest.mark.parametrize("largest", [False, True])
def test_gradient_equals_full_eigh_generic(dtype, largest):
    """Simple spectrum: gradients (eigenvalues and projector) equal those through a full
    eigendecomposition (torch.linalg.eigh, an independent implementation)."""
    A = hermitian_with_spectrum(dtype, gen(1), [-2.0, -0.5, 0.4, 1.0, 2.5, 3.0], batch=(3,))
    B = randn(dtype, gen(2), 6, 6)

    def loss(w1, U1):
        return (w1**2).sum() + (proj(U1) * B).real.sum()

    A1 = A.clone().requires_grad_()
    g1, = torch.autograd.grad(loss(*eigh_subspace(A1, 2, largest=largest)), A1)
    A2 = A.clone().requires_grad_()
    w, V = torch.linalg.eigh(A2)
    sl = slice(4, 6) if largest else slice(0, 2)
    g2, = torch.autograd.grad(loss(w[..., sl], V[..., sl]), A2)
    assert torch.allclose(g1, 0.5 * (g2 + g2.mH), atol=1e-12)


@pytest.mark.parametrize("dtype", [F64, C128])
@pytest.mark.parametrize("spread", [0.0, 1e-12, 1e-9, 1e-6, 1e-3])
@pytest.mark.parametrize("largest", [False, True])
def test_degenerate_blocks_all_modes(dtype, spread, largest):
    """Kept block and complement each (nearly) degenerate; batched; every mode. The eigenvalues
    enter through their sum (the individual values of a repeat are not differentiable)."""
    s = spread
    spec = [1.0, 1.0 + s, 1.0 - 0.5 * s, 1.0 + 0.3 * s, 4.0, 4.0 + s, 4.0 - s]
    A = hermitian_with_spectrum(dtype, gen(3), sorted(spec), batch=(2,))
    k = 3 if largest else 4
    x = randn(dtype, gen(4), 7, 2)

    def fn(A):  # the eigenvalue sum and the subspace losses from separate calls (_eigh_ties)
        w1 = eigh_subspace(A, k, largest=largest).eigenvalues
        P = proj(eigh_subspace(A, k, largest=largest).eigenvectors)
        return w1.sum(-1), P, ((P @ x).abs() ** 2).sum((-2, -1)) ** 2

    assert gradcheck(fn, A, modes=ALL, max_step=1e-2).passed


@pytest.mark.parametrize("dtype", [F64, C128])
def test_gradient_invariant_under_rotations_of_degenerate_complement(dtype):
    """With an exactly degenerate complement, any orthonormal basis of it gives the same
    gradient and second-order terms: the formulas depend on the complement only through
    spectral functions of it."""
    n, k = 7, 2
    A = hermitian_with_spectrum(dtype, gen(5), [1.0] * 5 + [4.0, 6.0])
    w, V = eigh(A)
    w1, U1, w2, U2 = w[4 + 1:], V[:, 5:], w[:5], V[:, :5]
    Q = torch.linalg.qr(randn(dtype, gen(6), 5, 5)).Q
    gw1, gU1 = torch.randn(k, generator=gen(7), dtype=F64), randn(dtype, gen(8), n, k)
    dA, dgw1, dgU1, H = (randn(dtype, gen(9), n, n), torch.randn(k, generator=gen(10), dtype=F64),
                         randn(dtype, gen(11), n, k), randn(dtype, gen(12), n, n))
    # the rotated basis is an equally valid eigenbasis (eigenvalues equal up to rounding)
    for f, args in ((subspace_vjp, (gw1, gU1)), (subspace_vjp_jvp, (gw1, gU1, dA, dgw1, dgU1)),
                    (subspace_vjp_vjp, (gw1, gU1, H))):
        r1 = f(w1, U1, w2, U2, w, *args)
        r2 = f(w1, U1, w2, U2 @ Q, w, *args)
        for a, b in zip(r1 if isinstance(r1, tuple) else (r1,), r2 if isinstance(r2, tuple) else (r2,)):
            assert torch.allclose(a, b, atol=1e-12)


@pytest.mark.parametrize("dtype", [F64, C128])
def test_second_order_rules_are_adjoint(dtype):
    n, k = 6, 3
    A = hermitian_with_spectrum(dtype, gen(13), [0.0, 1.0, 1.0, 2.0, 3.0, 3.0])
    w, V = eigh(A)
    w1, U1, w2, U2 = w[:k], V[:, :k], w[k:], V[:, k:]
    gw1, gU1 = torch.randn(k, generator=gen(14), dtype=F64), randn(dtype, gen(15), n, k)
    dA, dgU1 = randn(dtype, gen(16), n, n), randn(dtype, gen(18), n, k)
    dgw1 = torch.randn(k, generator=gen(17), dtype=F64)
    H = randn(dtype, gen(19), n, n)
    lhs = (H.conj() * subspace_vjp_jvp(w1, U1, w2, U2, w, gw1, gU1, dA, dgw1, dgU1)).real.sum()
    gA, ggw1, ggU1 = subspace_vjp_vjp(w1, U1, w2, U2, w, gw1, gU1, H)
    rhs = (gA.conj() * dA).real.sum() + (ggw1 * dgw1).sum() + (ggU1.conj() * dgU1).real.sum()
    assert torch.allclose(lhs, rhs, rtol=1e-12, atol=1e-12)
    # the derivative of the forward rule and its adjoint
    a, b = randn(dtype, gen(30), n, n), randn(dtype, gen(31), n, n)
    hw1, hU1 = torch.randn(k, generator=gen(32), dtype=F64), randn(dtype, gen(33), n, k)
    ddw1, ddU1 = subspace_jvp_jvp(w1, U1, w2, U2, w, dA, a, b)
    lhs = (hw1 * ddw1).sum() + (hU1.conj() * ddU1).real.sum()
    ga, gb = subspace_jvp_vjp(w1, U1, w2, U2, w, dA, hw1, hU1)
    rhs = (ga.conj() * a).real.sum() + (gb.conj() * b).real.sum()
    assert torch.allclose(lhs, rhs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [F64, C128])
def test_torch_fails_on_flat_noise_subspace(dtype):
    """The noise-subspace projector E_n E_n^H of a flat floor: through torch.linalg.eigh (columns
    of the floor) the gradient is NaN or wrong; ours is finite and the same whether the floor is
    the kept block or the complement of the signal block."""
    A = hermitian_with_spectrum(dtype, gen(20), [1.0] * 6 + [3.0, 5.0])
    B = randn(dtype, gen(21), 8, 8)
    A1 = A.clone().requires_grad_()
    w, V = torch.linalg.eigh(A1)
    g_torch, = torch.autograd.grad((proj(V[:, :6]) * B).real.sum(), A1)
    g_noise = grad(lambda a: (subspace_projector(a, 6) * B).real.sum())(A)
    g_signal = grad(lambda a: -(subspace_projector(a, 2, largest=True) * B).real.sum())(A)
    assert torch.isfinite(g_noise).all()
    assert torch.allclose(g_noise, g_signal, atol=1e-12)
    assert (~torch.isfinite(g_torch)).any() or (g_torch - g_noise).abs().max() > 1e-3 * g_noise.abs().max()


def test_zero_gap_across_split_raises():
    A = torch.diag(torch.tensor([1.0, 2.0, 2.0, 3.0], dtype=F64))
    with pytest.raises(DegenerateSpectrumError, match=r"A: eigenvalues 2 and 3 .*k at a gap"):
        eigh_subspace(A, 2)
    with pytest.raises(DegenerateSpectrumError, match=r"batch index \(1,\)"):
        subspace_projector(torch.stack([torch.diag(torch.tensor([1.0, 2.5, 3.0, 4.0], dtype=F64)), A]), 2)
    # near ties produced by rounding count as zero gaps
    H = hermitian_with_spectrum(C128, gen(22), [1.0, 2.0, 2.0, 3.0])
    with pytest.raises(DegenerateSpectrumError):
        eigh_subspace(H, 2)
    # a tiny but real gap is allowed (its derivative is large, and correct)
    eigh_subspace(torch.diag(torch.tensor([1.0, 2.0, 2.0 + 1e-9, 3.0], dtype=F64)), 2)


def test_zero_gap_under_transforms_gives_nan():
    """Inside torch.func transforms (no host synchronisation) the derivatives become NaN."""
    A = torch.stack([torch.diag(torch.tensor([1.0, 2.0, 2.0, 3.0], dtype=F64)),
                     torch.diag(torch.tensor([1.0, 2.0, 2.5, 3.0], dtype=F64))])
    g = vmap(grad(lambda a: subspace_projector(a, 2)[0, 1] + eigh_subspace(a, 2).eigenvalues.sum()))(A)
    assert torch.isnan(g[0]).all() and torch.isfinite(g[1]).all()
    _, t = vmap(lambda a, u: jvp(lambda b: subspace_projector(b, 2), (a,), (u,)))(A, A.flip(-1))
    assert torch.isnan(t[0]).all() and torch.isfinite(t[1]).all()


@pytest.mark.parametrize("dtype", [F64, C128])
def test_func_transforms(dtype):
    A = randn(dtype, gen(23), 3, 5, 5)
    b = randn(dtype, gen(24), 5)

    def loss(a):
        w1, U1 = eigh_subspace(a, 2, largest=True)
        return (U1.mH @ b).abs().square().sum() + w1[0]

    gv = vmap(grad(loss))(A)
    assert torch.allclose(gv, torch.stack([grad(loss)(a) for a in A]), atol=1e-12)
    P = vmap(lambda a: subspace_projector(a, 2))(A)
    assert torch.allclose(P, subspace_projector(A, 2), atol=1e-12)
    if dtype == F64:
        h = hessian(loss)(A[0])
        for other in (jacrev(jacrev(loss)), jacfwd(jacfwd(loss)), jacrev(jacfwd(loss))):
            assert torch.allclose(h, other(A[0]), atol=1e-10)
        assert torch.allclose(jacrev(lambda a: subspace_projector(a, 3))(A[0]),
                              jacfwd(lambda a: subspace_projector(a, 3))(A[0]), atol=1e-12)


def test_full_block():
    """k = n: the projector is the identity (zero derivative), eigenvalue gradients still right."""
    A = randn(C128, gen(25), 4, 4).requires_grad_()
    P = subspace_projector(A, 4)
    assert torch.allclose(P, torch.eye(4, dtype=C128), atol=1e-12)
    w1, _ = eigh_subspace(A, 4, largest=True)
    assert gradcheck(lambda A: (eigh_subspace(A, 4, largest=True).eigenvalues, subspace_projector(A, 4)),
                     A.detach(), modes=ALL).passed


@pytest.mark.parametrize("dtype", [F32, C64])
def test_single_precision_degenerate(dtype):
    """complex64/float32 on a flat floor: finite, close to the double-precision gradient."""
    hi = C128 if dtype.is_complex else F64
    A = hermitian_with_spectrum(hi, gen(26), [1.0] * 10 + [5.0, 8.0])
    B = randn(hi, gen(27), 12, 12)
    g64 = grad(lambda a: (subspace_projector(a, 2, largest=True) * B).real.sum())(A)
    g32 = grad(lambda a: (subspace_projector(a, 2, largest=True) * B.to(dtype)).real.sum())(A.to(dtype))
    assert torch.isfinite(g32).all()
    assert (g32.to(hi) - g64).norm() <= 1e-5 * g64.norm()


def test_bad_input():
    A = torch.eye(4, dtype=F64)
    for k in (0, 5, -1):
        with pytest.raises(InputError, match=r"k: expected 1 <= k <= 4"):
            eigh_subspace(A, k)
    for k in (1.0, True, "2", None):
        with pytest.raises(InputError, match="k: expected an integer"):
            subspace_projector(A, k)
    with pytest.raises(InputError, match="largest: expected a bool"):
        eigh_subspace(A, 1, largest=1)
    with pytest.raises(InputError, match="A: expected a square matrix"):
        eigh_subspace(torch.randn(4, 3, dtype=F64), 1)
    with pytest.raises(InputError, match="A: contains 1 non-finite"):
        subspace_projector(torch.tensor([[1.0, float("inf")], [0.0, 2.0]], dtype=F64), 1)
