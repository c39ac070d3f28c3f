"""Batched CG / GMRES against dense solves, including early convergence and breakdown."""

import pytest
import torch

from difflinalg.implicit._krylov import cg, gmres

DT = torch.float64


def _mv(A):
    return lambda v: (A @ v[..., None])[..., 0]


def test_gmres_matches_dense_batched_nonsymmetric():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(3, 2, 12, 12, generator=g, dtype=DT) + 6 * torch.eye(12, dtype=DT)
    b = torch.randn(3, 2, 12, generator=g, dtype=DT)
    x, info = gmres(_mv(A), b, tol=1e-13, restart=12, maxiter=200)
    ref = torch.linalg.solve(A, b)
    assert torch.allclose(x, ref, rtol=1e-10, atol=1e-12)
    assert info.residual.shape == (3, 2)
    assert float(info.residual.max()) <= 1e-13 * float(torch.linalg.vector_norm(b, dim=-1).max())


def test_gmres_restarted_converges():
    g = torch.Generator().manual_seed(1)
    A = torch.randn(30, 30, generator=g, dtype=DT) / 30**0.5 + 2 * torch.eye(30, dtype=DT)
    b = torch.randn(30, generator=g, dtype=DT)
    x, info = gmres(_mv(A), b, tol=1e-12, restart=5, maxiter=500)
    assert info.iterations > 5  # it did restart
    assert torch.allclose(A @ x, b, atol=1e-10)


def test_gmres_mixed_convergence_and_lucky_breakdown():
    # System 0 is the identity (converges in one step with an exact breakdown), system 1 is not:
    # the frozen system must keep its exact answer while the other iterates.
    g = torch.Generator().manual_seed(2)
    A = torch.stack([torch.eye(8, dtype=DT), torch.randn(8, 8, generator=g, dtype=DT) + 4 * torch.eye(8, dtype=DT)])
    b = torch.randn(2, 8, generator=g, dtype=DT)
    x, _ = gmres(_mv(A), b, tol=1e-13, restart=8, maxiter=100)
    assert torch.isfinite(x).all()
    assert torch.allclose(x, torch.linalg.solve(A, b), atol=1e-11)


def test_gmres_zero_rhs_and_singular_operator():
    A = torch.zeros(4, 4, dtype=DT)
    x, info = gmres(_mv(A), torch.zeros(4, dtype=DT), tol=1e-12, restart=4, maxiter=10)
    assert torch.equal(x, torch.zeros(4, dtype=DT))
    # A singular operator with b outside its range: no finite exact answer; the residual says so.
    # The solver must neither divide by zero nor claim convergence.
    x, info = gmres(_mv(A), torch.ones(4, dtype=DT), tol=1e-12, restart=4, maxiter=10)
    assert torch.isfinite(x).all()
    assert float(info.residual) == pytest.approx(2.0)
    # Singular on part of the space, consistent elsewhere: one system breaks down, one converges.
    D = torch.stack([torch.diag(torch.tensor([1.0, 2.0, 0.0], dtype=DT)), torch.eye(3, dtype=DT)])
    b = torch.tensor([[0.0, 0.0, 1.0], [1.0, 2.0, 3.0]], dtype=DT)
    x, info = gmres(_mv(D), b, tol=1e-12, restart=3, maxiter=20)
    assert torch.isfinite(x).all()
    assert float(info.residual[0]) == pytest.approx(1.0)
    assert torch.allclose(x[1], b[1])


def test_cg_matches_dense_batched_spd():
    g = torch.Generator().manual_seed(3)
    X = torch.randn(4, 10, 10, generator=g, dtype=DT)
    A = X @ X.mT + torch.eye(10, dtype=DT)
    b = torch.randn(4, 10, generator=g, dtype=DT)
    x, info = cg(_mv(A), b, tol=1e-13, maxiter=200)
    assert torch.allclose(x, torch.linalg.solve(A, b), rtol=1e-9, atol=1e-10)
    assert info.iterations <= 200


def test_cg_frozen_system_stays_exact():
    A = torch.stack([torch.eye(5, dtype=DT), torch.diag(torch.arange(1.0, 6.0, dtype=DT))])
    b = torch.ones(2, 5, dtype=DT)
    x, _ = cg(_mv(A), b, tol=1e-14, maxiter=50)
    assert torch.isfinite(x).all()
    assert torch.allclose(x, torch.linalg.solve(A, b), atol=1e-13)


@pytest.mark.parametrize("solver", ["cg", "gmres"])
def test_maxiter_respected(solver):
    g = torch.Generator().manual_seed(4)
    X = torch.randn(40, 40, generator=g, dtype=DT)
    A = X @ X.mT + 1e-3 * torch.eye(40, dtype=DT)
    b = torch.randn(40, generator=g, dtype=DT)
    if solver == "cg":
        x, info = cg(_mv(A), b, tol=1e-14, maxiter=3)
    else:
        x, info = gmres(_mv(A), b, tol=1e-14, restart=10, maxiter=3)
    assert info.iterations == 3
    assert float(torch.linalg.vector_norm(A @ x - b)) > 1e-8  # not converged: detectable
