"""General ``sqrtm`` and ``logm``: values against SciPy, derivatives in every mode (and third order),
independent checks of the Frechet derivatives (the Sylvester equation of sqrtm, expm's derivative
for logm), the eig path, torch.func transforms, and errors."""

import numpy as np
import pytest
import scipy.linalg
import torch

import difflinalg as dl
from difflinalg import InputError
from difflinalg.check import gradcheck
from difflinalg.matfun._sqrt_log_triangular import (
    log_plan,
    log_triangular,
    quasi_eigvals,
    rotate_right_h,
    sqrt_quasi_triangular,
    sqrt_triangular,
    to_complex_triangular,
)

from _helpers import randn
from _mfhelpers import assert_hessian_matches_fd

F64, C128 = torch.float64, torch.complex128
ALL = ("vjp", "jvp", "hvp", "hvp_rev")
OPS = {"sqrtm": (dl.sqrtm, scipy.linalg.sqrtm), "logm": (dl.logm, scipy.linalg.logm)}


def general(n, batch=(), dtype=F64, seed=0, shift=2.0):
    return randn(*batch, n, n, dtype=dtype, seed=seed) / n**0.5 + shift * torch.eye(n, dtype=dtype)


def rel(a, b):
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(np.asarray(b)).max())


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("dtype", [F64, C128])
@pytest.mark.parametrize("n", [1, 2, 7, 40])
def test_value_against_scipy(op, dtype, n):
    fn, ref = OPS[op]
    A = general(n, (3,), dtype, seed=n)
    F = fn(A)
    assert F.dtype == dtype  # real input, real principal function: real result
    expected = np.stack([ref(a) for a in A.numpy()])
    assert rel(F, expected) <= 1e-12


@pytest.mark.parametrize("op", list(OPS))
def test_value_nonnormal_and_wide_spectrum(op):
    fn, ref = OPS[op]
    g = torch.Generator().manual_seed(3)
    T = torch.diag(torch.logspace(-2, 2, 12, dtype=F64)) + torch.randn(12, 12, generator=g, dtype=F64).triu(1)
    Q, _ = torch.linalg.qr(torch.randn(12, 12, generator=g, dtype=F64))
    A = Q @ T @ Q.T
    assert rel(fn(A), ref(A.numpy())) <= 1e-12
    # real matrix with complex-conjugate eigenvalues far from the real axis
    R = torch.tensor([[1.0, -5.0, 0.3], [5.0, 1.0, 0.2], [0.0, 0.1, 2.0]], dtype=F64)
    assert rel(fn(R), ref(R.numpy())) <= 1e-12


def test_inverse_relations():
    A = general(6, (2,), C128, seed=4)
    X = dl.sqrtm(A)
    assert torch.allclose(X @ X, A, atol=1e-13)
    assert (torch.linalg.eigvals(X).real > 0).all()  # the principal root
    L = dl.logm(A)
    assert torch.allclose(torch.linalg.matrix_exp(L), A, atol=1e-13)
    assert (torch.linalg.eigvals(L).imag.abs() < torch.pi).all()


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("dtype", [F64, C128])
@pytest.mark.parametrize("method", ["schur", "eig"])
def test_gradcheck_all_modes_batched(op, dtype, method):
    fn = OPS[op][0]
    A = general(3, (2,), dtype, seed=1)
    assert gradcheck(lambda A: fn(A, method=method), A, modes=ALL).passed


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("dtype", [F64, C128])
def test_gradcheck_nonnormal(op, dtype):
    fn = OPS[op][0]
    T = torch.diag(torch.tensor([1.0, 1.5, 3.0], dtype=dtype)) + 3 * randn(3, 3, dtype=dtype, seed=2).triu(1)
    S = general(3, dtype=dtype, seed=5)
    A = S @ T @ torch.linalg.inv(S)
    assert gradcheck(fn, A, modes=ALL, max_step=1e-2).passed


@pytest.mark.parametrize("op", list(OPS))
def test_third_order(op):
    # The derivative rules are the op itself, so differentiating three times is exact as well.
    fn = OPS[op][0]
    A = general(3, seed=6)
    W = randn(3, 3, seed=7)
    V = randn(3, 3, seed=8)

    def grad_dot(X):  # <V, grad of <W, f(X)>> as a function of X (one more derivative inside)
        g = torch.func.grad(lambda Y: (fn(Y) * W).sum())(X)
        return torch.func.jvp(torch.func.grad(lambda Y: (fn(Y) * W).sum()), (X,), (V,))[1] + g

    assert gradcheck(grad_dot, A, modes=("vjp", "jvp")).passed


@pytest.mark.parametrize("dtype", [F64, C128])
def test_sqrtm_derivative_solves_sylvester(dtype):
    # X dX + dX X = dA, and the adjoint: X^H G' + G' X^H = G.
    A, dA, G = general(5, dtype=dtype, seed=1), randn(5, 5, dtype=dtype, seed=2), randn(5, 5, dtype=dtype, seed=3)
    X, dX = torch.func.jvp(dl.sqrtm, (A,), (dA,))
    assert torch.allclose(X @ dX + dX @ X, dA, atol=1e-13)
    _, vjp = torch.func.vjp(dl.sqrtm, A)
    (gA,) = vjp(G)
    assert torch.allclose(X.mH @ gA + gA @ X.mH, G, atol=1e-13)


@pytest.mark.parametrize("dtype", [F64, C128])
def test_logm_derivative_inverts_expm_derivative(dtype):
    A, dA = general(5, dtype=dtype, seed=1), randn(5, 5, dtype=dtype, seed=2)
    L, dL = torch.func.jvp(dl.logm, (A,), (dA,))
    _, back = torch.func.jvp(torch.linalg.matrix_exp, (L,), (dL,))
    assert torch.allclose(back, dA, atol=1e-12)


@pytest.mark.parametrize("dtype", [F64, C128])
def test_derivative_at_identity(dtype):
    E = randn(4, 4, dtype=dtype, seed=9)
    I = torch.eye(4, dtype=dtype)
    assert torch.allclose(torch.func.jvp(dl.sqrtm, (I,), (E,))[1], E / 2, atol=1e-15)
    assert torch.allclose(torch.func.jvp(dl.logm, (I,), (E,))[1], E, atol=1e-14)
    G = randn(4, 4, dtype=dtype, seed=10)
    assert torch.allclose(torch.func.vjp(dl.logm, I)[1](G)[0], G, atol=1e-14)


def test_vmap_hessian_and_float32():
    A = general(3, (4,), C128, seed=2)
    for fn in (dl.sqrtm, dl.logm):
        assert torch.allclose(torch.func.vmap(fn)(A), fn(A), atol=1e-14)
        f = lambda X, fn=fn: (fn(X).abs() ** 2).sum()  # noqa: E731
        g = torch.func.vmap(torch.func.grad(f))(A)
        assert torch.allclose(g, torch.stack([torch.func.grad(f)(a) for a in A]), atol=1e-13)
        assert_hessian_matches_fd(f, A[0].real)
    for dtype in (torch.float32, torch.complex64):
        A32 = general(4, dtype=dtype, seed=3)
        X = dl.sqrtm(A32)
        assert X.dtype == dtype and torch.allclose(X @ X, A32, atol=1e-5)
        assert torch.allclose(torch.linalg.matrix_exp(dl.logm(A32)), A32, atol=1e-5)
        assert gradcheck(dl.sqrtm, A32, modes=("vjp", "jvp")).passed


def test_triangular_kernels():
    g = g0 = torch.Generator().manual_seed(0)
    T = (torch.randn(2, 9, 9, generator=g, dtype=C128) * 0.3).triu() + 2 * torch.eye(9)
    R = sqrt_triangular(T)
    assert torch.equal(R, R.triu()) and torch.allclose(R @ R, T, atol=1e-14)
    k, m = log_plan(T)
    L = log_triangular(T, k, m)
    assert rel(L, np.stack([scipy.linalg.logm(t) for t in T.numpy()])) <= 1e-13
    # real Schur -> complex Schur by commuting rotations
    A = torch.randn(3, 8, 8, generator=g, dtype=F64)
    Tr, Z = scipy.linalg.schur(A.numpy())
    Tr, Z = torch.from_numpy(Tr), torch.from_numpy(Z)
    Tc, g = to_complex_triangular(Tr)
    Q = rotate_right_h(g, Z.to(C128))
    assert torch.equal(Tc, Tc.triu())
    assert torch.allclose(Q @ Tc @ Q.mH, A.to(C128), atol=1e-13)
    assert torch.allclose(Q.mH @ Q, torch.eye(8, dtype=C128), atol=1e-14)
    ev = quasi_eigvals(Tr)
    assert torch.allclose(ev, Tc.diagonal(dim1=-2, dim2=-1), atol=1e-13)
    ref = np.sort_complex(np.linalg.eigvals(A.numpy()))
    assert np.allclose(np.sort_complex(ev.numpy()), ref, atol=1e-12)
    # real square root of the real Schur form: batched (complex route) and LAPACK (real) paths
    Ts = torch.from_numpy(scipy.linalg.schur(A.numpy() / 4 + 2 * np.eye(8))[0])
    Rr = sqrt_quasi_triangular(Ts)
    assert Rr.dtype == F64 and torch.allclose(Rr @ Rr, Ts, atol=1e-13)
    big = torch.from_numpy(scipy.linalg.schur(torch.randn(80, 80, generator=g0, dtype=F64).numpy() / 9
                                              + 1.5 * np.eye(80))[0])
    Rb = sqrt_quasi_triangular(big)
    assert torch.allclose(Rb @ Rb, big, atol=1e-13)
    assert torch.allclose(Rb, sqrt_quasi_triangular(big[None])[0], atol=1e-13)


def test_errors():
    with pytest.raises(InputError, match=r"square root: eigenvalue -1\.000e\+00.* negative real axis"):
        dl.sqrtm(torch.diag(torch.tensor([-1.0, 2.0], dtype=F64)))
    with pytest.raises(InputError, match=r"logarithm: eigenvalue .* singular"):
        dl.logm(torch.tensor([[1.0, 1.0], [1.0, 1.0]], dtype=F64))
    with pytest.raises(InputError, match=r"batch index \(1,\)"):
        dl.logm(torch.stack([torch.eye(2, dtype=C128), -torch.eye(2, dtype=C128)]))
    with pytest.raises(InputError, match="square root.*singular"):
        dl.sqrtm(torch.zeros(3, 3, dtype=F64))
    with pytest.raises(InputError, match="expected a square matrix"):
        dl.sqrtm(torch.ones(2, 3, dtype=F64))
    with pytest.raises(InputError, match="non-finite"):
        dl.logm(torch.tensor([[1.0, float("inf")], [0.0, 1.0]]))
    with pytest.raises(InputError, match="dtype int64"):
        dl.sqrtm(torch.eye(2, dtype=torch.int64))
    with pytest.raises(InputError, match="method: expected one of"):
        dl.sqrtm(torch.eye(2, dtype=F64), method="pade")
    jordan = torch.tensor([[2.0, 1.0], [0.0, 2.0]], dtype=F64)
    with pytest.raises(InputError, match="method='schur'"):
        dl.sqrtm(jordan, method="eig")
    assert torch.allclose(dl.sqrtm(jordan) @ dl.sqrtm(jordan), jordan, atol=1e-14)  # Schur path is fine


def test_lapack_and_batched_square_root_paths_agree():
    # One large matrix on the CPU takes the LAPACK recursion (trsyl), batches the torch recurrence.
    from difflinalg.matfun._sqrt_log_triangular import _sqrt_triangular_lapack, _sqrt_triangular_torch

    g = torch.Generator().manual_seed(1)
    T = (torch.randn(90, 90, generator=g, dtype=C128) * 0.2).triu() + 2 * torch.eye(90)
    R1, R2 = _sqrt_triangular_lapack(T), _sqrt_triangular_torch(T)
    assert torch.allclose(R1, R2, atol=1e-13, rtol=0)
    assert torch.allclose(R1 @ R1, T, atol=1e-13)


@pytest.mark.parametrize("dtype", [F64, C128])
def test_large_single_matrix_derivatives(dtype):
    # n = 70: forward and the 2n derivative level both go through the LAPACK path.
    A, dA, G = general(70, dtype=dtype, seed=11), randn(70, 70, dtype=dtype, seed=12), randn(70, 70, dtype=dtype, seed=13)
    X, dX = torch.func.jvp(dl.sqrtm, (A,), (dA,))
    assert rel(X, scipy.linalg.sqrtm(A.numpy())) <= 1e-12  # real input: the real quasi-triangular path
    assert rel(dl.logm(A), scipy.linalg.logm(A.numpy())) <= 1e-12
    assert torch.allclose(X @ dX + dX @ X, dA, atol=1e-12)
    (gA,) = torch.func.vjp(dl.sqrtm, A)[1](G)
    assert torch.allclose(X.mH @ gA + gA @ X.mH, G, atol=1e-12)
    L, dL = torch.func.jvp(dl.logm, (A,), (dA,))
    assert torch.allclose(torch.func.jvp(torch.linalg.matrix_exp, (L,), (dL,))[1], dA, atol=1e-11)


def test_empty_inputs():
    for shape in ((0, 0), (0, 3, 3), (2, 0, 0)):
        for fn in (dl.sqrtm, dl.logm, dl.sqrtmh, lambda A: dl.logm(A, method="eig")):
            assert fn(torch.zeros(shape, dtype=F64)).shape == shape


def _issue_matrix():
    # issue 16 item 4: a real matrix with a complex-conjugate eigenpair
    return 0.2 * torch.randn(3, 3, dtype=F64, generator=torch.Generator().manual_seed(0)) + 2 * torch.eye(3, dtype=F64)


@pytest.mark.parametrize("c", [1e-300, 1e-200, 1e-160, 1e200, 1e300])
def test_scaling_laws_values_and_gradients(c):
    # sqrtm(cA) = sqrt(c) sqrtm(A) and logm(cA) = log(c) I + logm(A) to rounding; gradients with
    # respect to B = cA: grad sqrtm = grad_A / sqrt(c), grad logm = grad_A / c. Before: NaN at 1e+-200.
    A = _issue_matrix()
    assert bool((torch.linalg.eigvals(A).imag.abs() > 0.1).any())  # the complex pair is there
    W = randn(3, 3, seed=7)
    I = torch.eye(3, dtype=F64)

    def value_and_grad(fn, M):
        M = M.clone().requires_grad_()
        F = fn(M)
        return F.detach(), torch.autograd.grad((W * F).sum(), M)[0]

    S1, gS1 = value_and_grad(dl.sqrtm, A)
    Sc, gSc = value_and_grad(dl.sqrtm, c * A)
    assert rel(Sc / c ** 0.5, S1) < 1e-14
    assert rel(gSc * c ** 0.5, gS1) < 1e-14
    L1, gL1 = value_and_grad(dl.logm, A)
    Lc, gLc = value_and_grad(dl.logm, c * A)
    assert rel(Lc, L1 + np.log(c) * I) < 1e-14
    assert rel(gLc * c, gL1) < 1e-14
    # forward mode obeys the same law
    E = randn(3, 3, seed=8)
    dS = torch.func.jvp(dl.sqrtm, (c * A,), (c * E,))[1]
    assert rel(dS / c ** 0.5, torch.func.jvp(dl.sqrtm, (A,), (E,))[1]) < 1e-14


def test_scaling_is_exact_inside_the_band():
    # matrices of ordinary size are not rescaled: bit-identical to the unscaled algorithm
    from difflinalg.matfun._primary import unit_scale_exponent

    A = _issue_matrix()
    assert bool((unit_scale_exponent(A * 1e4) == 0).all())
    assert float(unit_scale_exponent(A * 1e-200)) == round(np.log2(float((A * 1e-200).abs().max())) / 2)


@pytest.mark.parametrize("op", list(OPS))
def test_negative_and_conjugate_views(op):
    fn = OPS[op][0]
    R = general(3, seed=4)
    N = (-1j * R.to(C128)).conj().imag  # a real tensor with the negative bit set
    assert N.is_neg()
    torch.testing.assert_close(fn(N), fn(R), rtol=0, atol=0)
    Z = general(3, dtype=C128, seed=5)
    torch.testing.assert_close(fn(Z.conj()), fn(Z.conj().resolve_conj()), rtol=0, atol=0)
    torch.testing.assert_close(fn(Z.mH), fn(Z.mH.resolve_conj()), rtol=0, atol=0)
    # and differentiable through the view
    Rg = R.clone().requires_grad_()
    g = torch.autograd.grad(fn((-1j * Rg.to(C128)).conj().imag).sum(), Rg)[0]
    torch.testing.assert_close(g, torch.autograd.grad(fn(Rg).sum(), Rg)[0])
