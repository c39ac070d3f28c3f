"""Lyapunov equations (SciPy's conventions) and Gramians."""

import numpy as np
import pytest
import scipy.linalg as sl
import torch
from _eqhelpers import DTYPES, METHODS, contractive, randn, shifted

import difflinalg as dl


def rel(x, ref):
    x, ref = np.asarray(x), np.asarray(ref)
    return np.abs(x - ref).max() / np.abs(ref).max()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", ["auto"] + METHODS)
@pytest.mark.parametrize("n", [5, 12])
def test_continuous_matches_scipy(dtype, method, n, gen):
    A, Q = shifted(dtype, n, -2.0, gen=gen), randn(dtype, n, n, gen=gen)
    X = dl.solve_continuous_lyapunov(A, Q, method=method)
    assert rel(X, sl.solve_continuous_lyapunov(A.numpy(), Q.numpy())) < 1e-12


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", ["auto"] + METHODS)
@pytest.mark.parametrize("n", [5, 12])
def test_discrete_matches_scipy(dtype, method, n, gen):
    A, Q = contractive(dtype, n, gen=gen), randn(dtype, n, n, gen=gen)
    X = dl.solve_discrete_lyapunov(A, Q, method=method)
    # SciPy's direct (Kronecker) method is the accurate reference at these sizes.
    assert rel(X, sl.solve_discrete_lyapunov(A.numpy(), Q.numpy(), method="direct")) < 1e-12


def test_unstable_coefficient_is_solved_unless_required_stable(gen):
    d = torch.float64
    A, Q = shifted(d, 6, 1.5, gen=gen), randn(d, 6, 6, gen=gen)
    X = dl.solve_continuous_lyapunov(A, Q)  # uniquely solvable, just not a Gramian
    assert rel(X, sl.solve_continuous_lyapunov(A.numpy(), Q.numpy())) < 1e-12
    with pytest.raises(dl.UnstableSystemError, match="Hurwitz-stable.*real part"):
        dl.solve_continuous_lyapunov(A, Q, require_stable=True)
    Ad = contractive(d, 6, 1.3, gen=gen)
    dl.solve_discrete_lyapunov(Ad, Q)
    with pytest.raises(dl.UnstableSystemError, match="spectral radius < 1.*modulus 1.3"):
        dl.solve_discrete_lyapunov(Ad, Q, require_stable=True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gramians(dtype, gen):
    n = 6
    A, B, C = shifted(dtype, n, -3.0, gen=gen), randn(dtype, n, 2, gen=gen), randn(dtype, 3, n, gen=gen)
    P = dl.controllability_gramian(A, B)
    Qo = dl.observability_gramian(A, C)
    assert torch.equal(P, P.mH) and torch.equal(Qo, Qo.mH)
    assert float((A @ P + P @ A.mH + B @ B.mH).abs().max()) < 1e-12 * float((B @ B.mH).abs().max())
    assert float((A.mH @ Qo + Qo @ A + C.mH @ C).abs().max()) < 1e-12 * float((C.mH @ C).abs().max())
    assert float(torch.linalg.eigvalsh(P).min()) > 0
    # discrete: the Gramian is the sum over the impulse response
    Ad = contractive(dtype, n, 0.5, gen=gen)
    Pd = dl.controllability_gramian(Ad, B, discrete=True)
    Qd = dl.observability_gramian(Ad, C, discrete=True)
    Ps = sum(torch.linalg.matrix_power(Ad, k) @ B @ B.mH @ torch.linalg.matrix_power(Ad, k).mH for k in range(200))
    Qs = sum(torch.linalg.matrix_power(Ad, k).mH @ C.mH @ C @ torch.linalg.matrix_power(Ad, k) for k in range(200))
    assert rel(Pd, Ps) < 1e-12 and rel(Qd, Qs) < 1e-12
    with pytest.raises(dl.UnstableSystemError, match="eigenvalue"):
        dl.observability_gramian(-A, C)


def test_lyapunov_singular_names_the_pair():
    d = torch.float64
    S = torch.tensor([[0.0, 2.0], [-2.0, 0.0]], dtype=d)  # eigenvalues +-2i on the imaginary axis
    for method in METHODS:
        with pytest.raises(dl.SingularEquationError, match="imaginary axis"):
            dl.solve_continuous_lyapunov(S, torch.eye(2, dtype=d), method=method)
    R = torch.tensor([[0.0, 1.0], [-1.0, 0.0]], dtype=d)  # eigenvalues +-i on the unit circle
    with pytest.raises(dl.SingularEquationError, match="unit circle"):
        dl.solve_discrete_lyapunov(R, torch.eye(2, dtype=d))


def test_lyapunov_gradient_collects_both_occurrences(gen):
    """d/dA of the continuous Lyapunov solution includes the A^H term: compare with the Sylvester
    solve where B = A^H is a separate tensor tied to A by autograd."""
    d = torch.complex128
    A, Q, W = shifted(d, 5, -1.0, gen=gen), randn(d, 5, 5, gen=gen), randn(d, 5, 5, gen=gen)
    a1 = A.clone().requires_grad_()
    (dl.solve_continuous_lyapunov(a1, Q) * W.conj()).real.sum().backward()
    a2 = A.clone().requires_grad_()
    (dl.solve_sylvester(a2, a2.mH, Q, method="kron") * W.conj()).real.sum().backward()
    assert rel(a1.grad, a2.grad) < 1e-12
