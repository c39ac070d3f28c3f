"""``difflinalg.eigh``: values, derivatives in every mode against finite differences and against
torch.linalg.eigh, clusters (exact and with spreads 1e-12 .. 1e-3), the second-order cluster terms,
torch.func transforms, and bad input."""

import numpy as np
import pytest
import torch
from torch.func import grad, hessian, jacfwd, jacrev, jvp, vmap

from difflinalg import EighResult, GaugeError, InputError, eigh
from difflinalg.check import gradcheck
from difflinalg.spectral._cases_eigh import cluster_invariants, clustered, hermitian_with_spectrum, randn
from difflinalg.spectral._eigh import eigh_jvp_jvp, eigh_jvp_vjp, eigh_vjp_jvp, eigh_vjp_vjp
from difflinalg.spectral._gaps import cluster_ids

from _helpers import gen

pytestmark = pytest.mark.usefixtures("one_thread")

F32, F64, C64, C128 = torch.float32, torch.float64, torch.complex64, torch.complex128
ALL = ("vjp", "jvp", "hvp", "hvp_rev", "jvp2")


@pytest.mark.parametrize("dtype", [F32, F64, C64, C128])
def test_values_match_numpy_on_hermitian_part(dtype):
    A = randn(dtype, gen(), 2, 5, 5)  # not Hermitian: the Hermitian part is decomposed
    w, V = eigh(A)
    H = (0.5 * (A + A.mH)).numpy()
    w0 = np.linalg.eigvalsh(H)
    tol = 1e-5 if dtype in (F32, C64) else 1e-12
    assert w.dtype == torch.empty((), dtype=dtype).real.dtype and V.dtype == dtype
    np.testing.assert_allclose(w.numpy(), w0, atol=tol * 10)
    assert torch.allclose(V @ torch.diag_embed(w.to(dtype)) @ V.mH, 0.5 * (A + A.mH), atol=tol * 10)
    assert torch.allclose(V.mH @ V, torch.eye(5, dtype=dtype).expand(2, 5, 5), atol=tol * 10)
    assert isinstance(eigh(A), EighResult)


def test_both_triangles_are_read():
    """Unlike torch.linalg.eigh (one triangle), the upper triangle matters: herm(A) is used,
    whatever UPLO says (accepted for torch's signature; on Hermitian input the triangles agree)."""
    A = randn(F64, gen(), 4, 4)
    U = torch.triu(A, 1)
    assert not torch.allclose(eigh(A).eigenvalues, eigh(A - U).eigenvalues)
    w = torch.linalg.eigvalsh(0.5 * (A + A.mT))
    for uplo in ("L", "U", "l", "u"):
        assert torch.equal(eigh(A, uplo).eigenvalues, eigh(A).eigenvalues)
    assert torch.allclose(eigh(A).eigenvalues, w)


@pytest.mark.parametrize("dtype", [F64, C128])
def test_gradient_matches_torch_generic(dtype):
    """Generic (simple) spectrum: the gradient equals torch.linalg.eigh's for a phase-free loss."""
    H = hermitian_with_spectrum(dtype, gen(1), [-1.0, 0.3, 1.1, 2.0, 4.0], batch=(2,))
    x = randn(dtype, gen(2), 2, 5, 5)

    def loss(w, V):
        return (w * torch.arange(5, dtype=w.dtype)).sum() + (V.abs() ** 2 * x.abs()).sum() \
            + (V[..., :2] @ V[..., :2].mH * x).real.sum()

    # On a Hermitian leaf torch's gradient is the Hermitian G (to rounding) for either triangle;
    # ours is G too, exactly Hermitian (herm(A) is decomposed), whatever UPLO says.
    for uplo in ("L", "U"):
        A1 = H.clone().requires_grad_()
        A2 = H.clone().requires_grad_()
        g1, = torch.autograd.grad(loss(*eigh(A1, uplo)), A1)
        g2, = torch.autograd.grad(loss(*torch.linalg.eigh(A2, uplo)), A2)
        assert torch.allclose(g1, g2, atol=1e-12)
        assert torch.equal(g1, g1.mH)


@pytest.mark.parametrize("dtype", [F64, C128])
def test_second_derivatives_match_torch_generic(dtype):
    """Hessian-vector products (both second-order modes) equal torch's on a simple spectrum."""
    A = hermitian_with_spectrum(dtype, gen(3), [-1.0, 0.5, 2.0, 3.5])
    B = randn(dtype, gen(4), 4, 4)
    u = randn(dtype, gen(5), 4, 4)
    u = u + u.mH

    def f(eig):
        def loss(A):
            w, V = eig(A)
            return (w**3).sum() + ((V.abs() ** 2) * B.abs()).sum()
        return loss

    _, h1 = jvp(grad(f(eigh)), (A,), (u,))
    _, h2 = jvp(grad(f(lambda A: torch.linalg.eigh(0.5 * (A + A.mH)))), (A,), (u,))
    assert torch.allclose(h1, h2, atol=1e-10)
    A1 = A.clone().requires_grad_()
    g, = torch.autograd.grad(f(eigh)(A1), A1, create_graph=True)
    h3, = torch.autograd.grad((g.conj() * u).real.sum(), A1)
    assert torch.allclose(h3, h2, atol=1e-10)


@pytest.mark.parametrize("dtype", [F64, C128])
@pytest.mark.parametrize("spread", [0.0, 1e-12, 1e-9, 1e-6, 1e-3])
def test_clusters_all_modes(dtype, spread):
    """Cluster-invariant losses at exact repeats and spreads 1e-12 .. 1e-3, batched, all modes."""
    A = hermitian_with_spectrum(dtype, gen(6), clustered(spread), batch=(2,))
    x = randn(dtype, gen(7), 6, 6)

    def fn(A):  # eigenvalue sums and eigenspace losses from separate calls (see _eigh_ties)
        w = eigh(A, degeneracy_tol=1e-2).eigenvalues
        V = eigh(A, degeneracy_tol=1e-2).eigenvectors
        outs = cluster_invariants(w, None, [(0, 1), (1, 4), (4, 6)], V)
        return outs + ((V[..., 1:4].mH @ x).abs().square().sum((-2, -1)),)

    rep = gradcheck(fn, A, modes=ALL, max_step=1e-2)
    assert rep.passed


@pytest.mark.parametrize("dtype", [F64, C128])
def test_torch_fails_on_exact_cluster(dtype):
    """Records why the rule exists: torch.linalg.eigh returns NaN (or garbage) at a repeat."""
    A = hermitian_with_spectrum(dtype, gen(8), clustered(0.0))

    def loss(w, V):
        return (V[..., 1:4] @ V[..., 1:4].mH).diagonal(dim1=-2, dim2=-1).real.square().sum()

    A1 = A.clone().requires_grad_()
    g_torch, = torch.autograd.grad(loss(*torch.linalg.eigh(A1)), A1)
    A2 = A.clone().requires_grad_()
    g_ours, = torch.autograd.grad(loss(*eigh(A2, degeneracy_tol=1e-8)), A2)
    assert torch.isfinite(g_ours).all()
    bad = (~torch.isfinite(g_torch)).any() or (g_torch - g_ours).abs().max() > 1e-3 * g_ours.abs().max()
    assert bad


@pytest.mark.parametrize("tol", [None, 1e-8])
def test_second_order_rules_are_adjoint(tol):
    """The JVP and VJP of the reverse rule (``_EighVJP``) are adjoint: <H, J t> = <J^T H, t>,
    at an exact cluster (tol masks it) and with every pair unmasked."""
    dtype = C128
    A = hermitian_with_spectrum(dtype, gen(9), clustered(0.0 if tol else 0.5))
    w, V = eigh(A, degeneracy_tol=tol)
    gw = torch.randn(6, generator=gen(10), dtype=F64)
    gV = randn(dtype, gen(11), 6, 6)
    u, H = randn(dtype, gen(12), 6, 6), randn(dtype, gen(13), 6, 6)
    dgw, dgV = torch.randn(6, generator=gen(14), dtype=F64), randn(dtype, gen(15), 6, 6)
    lhs = (H.conj() * eigh_vjp_jvp(w, V, gw, gV, u, dgw, dgV, tol)).real.sum()
    gA, ggw, ggV = eigh_vjp_vjp(w, V, gw, gV, H, tol)
    rhs = (gA.conj() * u).real.sum() + (ggw * dgw).sum() + (ggV.conj() * dgV).real.sum()
    assert torch.allclose(lhs, rhs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("tol", [None, 1e-8])
def test_second_order_forward_rules_are_adjoint(tol):
    """Same for the derivative of the forward rule (``_EighJVP``): forward-over-forward and
    reverse-over-forward use one linear map and its adjoint."""
    dtype = C128
    A = hermitian_with_spectrum(dtype, gen(16), clustered(0.0 if tol else 0.5))
    w, V = eigh(A, degeneracy_tol=tol)
    dA, a, b = (randn(dtype, gen(s), 6, 6) for s in (17, 18, 19))
    hw, hV = torch.randn(6, generator=gen(20), dtype=F64), randn(dtype, gen(21), 6, 6)
    ddw, ddV = eigh_jvp_jvp(w, V, dA, a, b, tol)
    lhs = (hw * ddw).sum() + (hV.conj() * ddV).real.sum()
    ga, gb = eigh_jvp_vjp(w, V, dA, hw, hV, tol)
    rhs = (ga.conj() * a).real.sum() + (gb.conj() * b).real.sum()
    assert torch.allclose(lhs, rhs, rtol=1e-12, atol=1e-12)


def test_degeneracy_tol_masks_pairs_inside_clusters():
    """A loss of one eigenvector inside a near-degenerate pair: 1/spread with the default tol
    (the pair is resolved), a GaugeError once a tolerance declares the pair a cluster (the loss
    then depends on a rotation inside it), masked with gauge='ignore'."""
    A = hermitian_with_spectrum(F64, gen(15), [0.0, 1.0, 1.0 + 1e-9, 3.0])
    x = randn(F64, gen(16), 4)

    def g(tol, gauge="error"):
        A1 = A.clone().requires_grad_()
        w, V = eigh(A1, degeneracy_tol=tol, gauge=gauge)
        (V[:, 1] @ x).square().backward()
        return A1.grad

    assert g(None).abs().max() > 1e6
    with pytest.raises(GaugeError, match="rotations inside a cluster"):
        g(1e-6)
    assert g(1e-6, "ignore").abs().max() < 1e2


def test_eigenvalue_only_loss_finite_at_exact_ties():
    """Exactly equal computed eigenvalues (a diagonal input): no NaN with the default tol."""
    A = torch.diag(torch.tensor([1.0, 2.0, 2.0, 2.0, 5.0], dtype=F64)).requires_grad_()
    w, V = eigh(A)
    (w[-1] - w[0]).backward()
    expected = torch.diag(torch.tensor([-1.0, 0, 0, 0, 1.0], dtype=F64))
    assert torch.allclose(A.grad, expected)
    h = hessian(lambda A: eigh(A).eigenvalues[-1] ** 2)(A.detach())
    assert torch.isfinite(h).all()


def test_cluster_ids_chain():
    w = torch.tensor([[0.0, 1e-3, 2e-3, 1.0, 1.0005], [5.0, 1.0, 1.0, 3.0, 1.0]], dtype=F64)
    ids = cluster_ids(w, 1.2e-3)  # row 0: steps of 1e-3 chain 0 .. 2e-3 although 2e-3 > threshold
    assert ids[0, 0] == ids[0, 1] == ids[0, 2] and ids[0, 3] == ids[0, 4] and ids[0, 2] != ids[0, 3]
    assert ids[1, 1] == ids[1, 2] == ids[1, 4] and len({int(ids[1, 0]), int(ids[1, 3]), int(ids[1, 1])}) == 3


@pytest.mark.parametrize("dtype", [F64, C128])
def test_vmap_and_func_transforms(dtype):
    A = randn(dtype, gen(17), 3, 4, 4)

    def loss(A):
        w, V = eigh(A)
        return w[-1] + (V[:, -2:] @ V[:, -2:].mH).diagonal().real @ torch.arange(4.0, dtype=w.dtype)

    gv = vmap(grad(loss))(A)
    gl = torch.stack([grad(loss)(a) for a in A])
    assert torch.allclose(gv, gl, atol=1e-12)
    w, V = vmap(eigh)(A)
    assert torch.allclose(w, eigh(A).eigenvalues)
    if dtype == F64:
        h1 = hessian(loss)(A[0])  # forward-over-reverse
        h2 = jacrev(jacrev(loss))(A[0])  # reverse-over-reverse
        h3 = jacfwd(jacfwd(loss))(A[0])  # forward-over-forward
        h4 = jacrev(jacfwd(loss))(A[0])  # reverse-over-forward
        for h in (h2, h3, h4):
            assert torch.allclose(h1, h, atol=1e-10)


@pytest.mark.parametrize("dtype", [F32, C64])
def test_single_precision(dtype):
    """float32/complex64: forward, backward and jvp run in the input precision and agree with
    the double-precision derivatives (to single-precision accuracy)."""
    A = hermitian_with_spectrum(C128 if dtype.is_complex else F64, gen(18), [-1.0, 0.5, 2.0, 3.0])
    u = randn(A.dtype, gen(19), 4, 4)

    def loss(A):
        w, V = eigh(A)
        return w[-1] ** 2 + V[:, :2].abs().square().sum(-1)[0]

    g64 = grad(loss)(A)
    g32 = grad(loss)(A.to(dtype))
    assert g32.dtype == dtype
    assert torch.allclose(g32.to(A.dtype), g64, atol=1e-4)
    _, t32 = jvp(loss, (A.to(dtype),), (u.to(dtype),))
    _, t64 = jvp(loss, (A,), (u,))
    assert abs(float(t32) - float(t64)) < 1e-4 * max(1.0, abs(float(t64)))


def test_complex_conjugate_convention():
    """L = Im(V[0, j] conj V[1, j]) for the top eigenvector is phase free; its gradient must match
    finite differences along real and imaginary perturbations separately."""
    A = hermitian_with_spectrum(C128, gen(20), [0.0, 1.0, 3.0])

    def fn(A):
        V = eigh(A).eigenvectors
        return (V[0, -1] * V[1, -1].conj()).imag

    rep = gradcheck(fn, A, modes=("vjp", "jvp"), n_directions=2)
    assert {r.direction[:2] for r in rep.records} >= {"re", "im"}


def test_bad_input():
    with pytest.raises(InputError, match="A: expected a square matrix"):
        eigh(torch.randn(3, 4, dtype=F64))
    with pytest.raises(InputError, match="A: expected a matrix"):
        eigh(torch.randn(3, dtype=F64))
    with pytest.raises(InputError, match="A: dtype int64"):
        eigh(torch.ones(3, 3, dtype=torch.long))
    with pytest.raises(InputError, match="A: contains 1 non-finite"):
        eigh(torch.tensor([[1.0, float("nan")], [0.0, 1.0]], dtype=F64))
    for bad in ("X", "lower", None, 0):
        with pytest.raises(InputError, match="UPLO: expected 'L' or 'U'"):
            eigh(torch.eye(3, dtype=F64), bad)
    for bad in (-1.0, float("inf"), "1e-3", True):
        with pytest.raises(InputError, match="degeneracy_tol"):
            eigh(torch.eye(3, dtype=F64), degeneracy_tol=bad)
