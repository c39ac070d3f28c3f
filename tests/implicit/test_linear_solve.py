"""The differentiable matrix-free solve behind root: exact derivatives of every order, and one
dense factorization per point (reused by the derivative solves and by jacrev/jacfwd columns)."""

import pytest
import torch

from difflinalg.check import gradcheck
from difflinalg.implicit import root
from difflinalg.implicit._diagnostics import Options
from difflinalg.implicit._linear_solve import LinearOp, solve

MODES = ("vjp", "jvp", "hvp", "hvp_rev")


def matrix_op(method, n):
    mv = lambda v, M: (M @ v[..., None])[..., 0]  # noqa: E731
    rmv = lambda w, M: (M.mT @ w[..., None])[..., 0]  # noqa: E731
    return LinearOp(mv, rmv, n, 0, method, Options(), label="test solve", fix="")


@pytest.mark.parametrize("method", ["dense", "gmres"])
def test_solve_all_modes_against_torch(method):
    g = torch.Generator().manual_seed(0)
    M = torch.randn(5, 5, generator=g, dtype=torch.float64) + 3 * torch.eye(5, dtype=torch.float64)
    b = torch.randn(5, generator=g, dtype=torch.float64)
    op = matrix_op(method, 5)
    f = lambda M, b: solve(op, b, (M,))  # noqa: E731
    assert torch.allclose(f(M, b), torch.linalg.solve(M, b))
    gradcheck(f, M, b, modes=MODES)
    # the transposed op solves with M^T
    assert torch.allclose(solve(op.T, b, (M,)), torch.linalg.solve(M.mT, b))
    # third derivative (jvp of hessian) against torch.linalg.solve
    L = lambda b: (f(M, b) ** 4).sum()  # noqa: E731
    Lr = lambda b: (torch.linalg.solve(M, b) ** 4).sum()  # noqa: E731
    u = torch.ones(5, dtype=torch.float64)
    t1 = torch.func.jvp(torch.func.hessian(L), (b,), (u,))[1]
    t2 = torch.func.jvp(torch.func.hessian(Lr), (b,), (u,))[1]
    assert torch.allclose(t1, t2, rtol=1e-9)


def _count_factorizations(monkeypatch):
    calls = []
    orig = torch.linalg.lu_factor_ex

    def counting(A, *a, **k):
        calls.append(tuple(A.shape))
        return orig(A, *a, **k)

    monkeypatch.setattr(torch.linalg, "lu_factor_ex", counting)
    return calls


def test_one_factorization_per_point(monkeypatch):
    g = torch.Generator().manual_seed(1)
    X, y = torch.randn(8, 4, generator=g, dtype=torch.float64), torch.randn(8, generator=g, dtype=torch.float64)
    F = lambda w, X, y: X.mT @ (X @ w - y) + 0.5 * w  # noqa: E731
    w = torch.linalg.solve(X.mT @ X + 0.5 * torch.eye(4, dtype=torch.float64), X.mT @ y)
    f = lambda y: root(F, w, X, y, solve="dense")  # noqa: E731
    calls = _count_factorizations(monkeypatch)
    J = torch.func.jacrev(f)(y)  # 4 cotangents, one (multi right-hand side) factorization
    assert J.shape == (4, 8) and calls == [(4, 4)]
    calls.clear()
    torch.func.jacfwd(f)(y)  # 8 tangents, one factorization
    assert calls == [(4, 4)]
    calls.clear()
    # Hessian: the jvp of root and its backward each factorize dF/dx once; the derivative of the
    # backward solve reuses its factor.
    torch.func.hessian(lambda y: (f(y) ** 3).sum())(y)
    assert len(calls) == 2
    calls.clear()
    # batched under vmap: one batched factorization
    torch.func.vmap(torch.func.jacrev(f))(y + torch.zeros(3, 1, dtype=torch.float64))
    assert calls == [(3, 4, 4)]
