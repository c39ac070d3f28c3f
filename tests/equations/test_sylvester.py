"""Forward values of solve_sylvester / solve_stein against SciPy and independent references."""

import numpy as np
import pytest
import scipy.linalg as sl
import torch
from _eqhelpers import DTYPES, METHODS, contractive, randn, real_with_complex_pairs, shifted

import difflinalg as dl


def rel(x, ref):
    x, ref = np.asarray(x), np.asarray(ref)
    return np.abs(x - ref).max() / np.abs(ref).max()


def stein_reference(A, B, C):
    """Dense Kronecker solve in float64/complex128 (independent of the library)."""
    m, n = C.shape
    M = np.eye(m * n) - np.kron(A, B.T)
    return np.linalg.solve(M, C.reshape(-1)).reshape(m, n)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", ["auto"] + METHODS)
@pytest.mark.parametrize("m,n", [(6, 4), (4, 7), (12, 9)])
def test_sylvester_matches_scipy(dtype, method, m, n, gen):
    A, B = shifted(dtype, m, 2.0, gen=gen), shifted(dtype, n, 2.0, gen=gen)
    C = randn(dtype, m, n, gen=gen)
    X = dl.solve_sylvester(A, B, C, method=method)
    assert X.dtype == dtype and X.shape == (m, n)
    assert rel(X, sl.solve_sylvester(A.numpy(), B.numpy(), C.numpy())) < 1e-12


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [60, pytest.param(200, marks=pytest.mark.slow)])
def test_sylvester_larger_matches_scipy(dtype, n, gen):
    A, B = shifted(dtype, n, 2.0, gen=gen), shifted(dtype, n - 7, 2.0, gen=gen)
    C = randn(dtype, n, n - 7, gen=gen)
    X = dl.solve_sylvester(A, B, C)
    assert rel(X, sl.solve_sylvester(A.numpy(), B.numpy(), C.numpy())) < 1e-12


@pytest.mark.parametrize("method", METHODS)
def test_sylvester_real_schur_blocks(method, gen):
    """Real coefficients with complex-conjugate eigenvalues: 2 x 2 blocks in the real Schur form."""
    A = real_with_complex_pairs(7, gen)
    B = real_with_complex_pairs(6, gen) + 3 * torch.eye(6, dtype=torch.float64)
    C = randn(torch.float64, 7, 6, gen=gen)
    X = dl.solve_sylvester(A, B, C, method=method)
    assert X.dtype == torch.float64
    assert rel(X, sl.solve_sylvester(A.numpy(), B.numpy(), C.numpy())) < 1e-11


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", ["auto"] + METHODS)
@pytest.mark.parametrize("m,n", [(6, 4), (4, 7), (11, 10)])
def test_stein_matches_reference(dtype, method, m, n, gen):
    A, B = contractive(dtype, m, gen=gen), contractive(dtype, n, 1.2, gen=gen)
    C = randn(dtype, m, n, gen=gen)
    X = dl.solve_stein(A, B, C, method=method)
    assert X.dtype == dtype
    assert rel(X, stein_reference(A.numpy(), B.numpy(), C.numpy())) < 1e-12
    # residual of the equation itself
    assert float((X - A @ X @ B - C).abs().max()) < 1e-12 * float(C.abs().max()) * 10


@pytest.mark.parametrize("method", ["schur", "schur-torch"])
@pytest.mark.parametrize("m,n", [(7, 6), (5, 8)])
def test_stein_real_schur_blocks(method, m, n, gen):
    A = real_with_complex_pairs(m, gen, scale=0.4)
    B = real_with_complex_pairs(n, gen, scale=0.5)
    C = randn(torch.float64, m, n, gen=gen)
    X = dl.solve_stein(A, B, C, method=method)
    assert rel(X, stein_reference(A.numpy(), B.numpy(), C.numpy())) < 1e-11


def test_stein_nilpotent_coefficient(gen):
    """A singular (shift) coefficient, as for RARL2's FIR targets: the recurrence's t = 0 branch."""
    A = torch.diag(torch.ones(5, dtype=torch.float64), -1)
    B = contractive(torch.float64, 3, 0.9, gen=gen)
    C = randn(torch.float64, 6, 3, gen=gen)
    for method in METHODS[:2]:
        X = dl.solve_stein(A, B, C, method=method)
        X2 = dl.solve_stein(B, A, C.mT.contiguous(), method=method)
        assert rel(X, stein_reference(A.numpy(), B.numpy(), C.numpy())) < 1e-13
        assert rel(X2, stein_reference(B.numpy(), A.numpy(), C.mT.numpy())) < 1e-13


@pytest.mark.parametrize("method", METHODS)
def test_batched_broadcast(method, gen):
    dt = torch.complex128
    A = shifted(dt, 4, 1.0, 2, 1, gen=gen)
    B = shifted(dt, 3, 1.0, 5, gen=gen)
    C = randn(dt, 3, 1, 1, 4, 3, gen=gen)
    X = dl.solve_sylvester(A, B, C, method=method)
    assert X.shape == (3, 2, 5, 4, 3)
    for i in range(3):
        for j in range(2):
            for k in range(5):
                ref = sl.solve_sylvester(A[j, 0].numpy(), B[k].numpy(), C[i, 0, 0].numpy())
                assert rel(X[i, j, k], ref) < 1e-12


@pytest.mark.parametrize("dtype", [torch.float32, torch.complex64])
@pytest.mark.parametrize("method", METHODS)
def test_single_precision(dtype, method, gen):
    hi = torch.complex128 if dtype.is_complex else torch.float64
    A, B = shifted(hi, 9, 2.0, gen=gen), shifted(hi, 8, 2.0, gen=gen)
    C = randn(hi, 9, 8, gen=gen)
    ref = dl.solve_sylvester(A, B, C)
    X = dl.solve_sylvester(A.to(dtype), B.to(dtype), C.to(dtype), method=method)
    assert X.dtype == dtype
    assert rel(X.to(hi), ref) < 1e-5
    As, Bs = 0.5 * A / 2, 0.5 * B / 2
    refs = dl.solve_stein(As, Bs, C)
    Xs = dl.solve_stein(As.to(dtype), Bs.to(dtype), C.to(dtype), method=method)
    assert rel(Xs.to(hi), refs) < 1e-5


def test_single_precision_gradient(gen):
    A, B = shifted(torch.float64, 6, 2.0, gen=gen), shifted(torch.float64, 5, 2.0, gen=gen)
    C, W = randn(torch.float64, 6, 5, gen=gen), randn(torch.float64, 6, 5, gen=gen)
    grads = []
    for dt in (torch.float64, torch.float32):
        a, b, c = (x.detach().to(dt).clone().requires_grad_() for x in (A, B, C))
        (dl.solve_sylvester(a, b, c, method="schur") * W.to(dt)).sum().backward()
        grads.append([x.grad.double() for x in (a, b, c)])
    for g64, g32 in zip(*grads):
        assert rel(g32, g64) < 1e-5


def test_empty():
    d = torch.float64
    for method in ("auto", "schur", "schur-torch"):
        X = dl.solve_sylvester(torch.zeros(0, 0, dtype=d), torch.eye(3, dtype=d), torch.zeros(0, 3, dtype=d),
                               method=method)
        assert X.shape == (0, 3)
    for method in ["auto"] + METHODS:  # an empty batch
        X = dl.solve_sylvester(torch.zeros(0, 3, 3, dtype=d), torch.eye(2, dtype=d), torch.zeros(0, 3, 2, dtype=d),
                               method=method)
        assert X.shape == (0, 3, 2)


def test_near_singular_documented_accuracy(gen):
    """Eigenvalues of A and -B within 1e-8: solved (no error); the solution (size ~1/gap) has the
    documented relative accuracy ~ eps * scale / gap against the exact solution."""
    d = torch.float64
    gap = 1e-8
    QA = torch.linalg.qr(randn(d, 4, 4, gen=gen))[0]
    QB = torch.linalg.qr(randn(d, 3, 3, gen=gen))[0]
    la = torch.tensor([1.0, 2.0, 3.0, -0.7], dtype=d)
    lb = torch.tensor([-1.0 + gap, 0.5, 4.0], dtype=d)
    A, B = QA @ torch.diag(la) @ QA.T, QB @ torch.diag(lb) @ QB.T
    C = randn(d, 4, 3, gen=gen)
    exact = QA @ ((QA.T @ C @ QB) / (la[:, None] + lb[None, :])) @ QB.T
    for method in METHODS:
        X = dl.solve_sylvester(A, B, C, method=method)
        assert float(X.abs().max()) > 1e6  # the solution really is large
        err = rel(X, exact)
        assert err < 100 * 2.2e-16 * 10 / gap, (method, err)


def test_exactly_singular_raises_with_pair():
    d = torch.float64
    A = torch.diag(torch.tensor([1.0, 2.0, 3.0], dtype=d))
    B = -torch.diag(torch.tensor([5.0, 4.0, 2.0], dtype=d))
    for method in METHODS:
        with pytest.raises(dl.SingularEquationError, match=r"lambda_A\[1\] = 2\+0j, -lambda_B\[2\] = 2"):
            dl.solve_sylvester(A, B, torch.ones(3, 3, dtype=d), method=method)
    with pytest.raises(dl.SingularEquationError, match=r"\|1 - lambda_A lambda_B\|"):
        dl.solve_stein(2 * torch.eye(2, dtype=d), 0.5 * torch.eye(2, dtype=d), torch.ones(2, 2, dtype=d))
