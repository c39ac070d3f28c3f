"""argmin: minimizers with known derivatives and Hessians (quadratic, separable cosh, batched)."""

import pytest
import torch

from difflinalg import InputError
from difflinalg.check import gradcheck
from difflinalg.implicit import argmin

MODES = ("vjp", "jvp", "hvp", "hvp_rev")


def cosh_objective(x, th):
    return torch.cosh(x).sum() - (th * x).sum()


@pytest.mark.parametrize("solve", ["dense", "cg", "gmres"])
def test_separable_argmin_known_hessian(solve):
    """x*(th) = asinh(th): dx*/dth = (1 + th^2)^{-1/2}, d2x*/dth2 = -th (1 + th^2)^{-3/2}."""
    th = torch.linspace(-2, 3, 6, dtype=torch.float64)
    f = lambda th: argmin(cosh_objective, torch.asinh(th), th, solve=solve)  # noqa: E731
    J = torch.func.jacfwd(f)(th)
    assert torch.allclose(J, torch.diag((1 + th**2) ** -0.5), atol=1e-13)
    H = torch.func.hessian(lambda th: f(th).sum())(th)
    assert torch.allclose(H, torch.diag(-th * (1 + th**2) ** -1.5), atol=1e-13)
    gradcheck(f, th, modes=MODES)


def test_quadratic_argmin_hessian_of_loss():
    """f(x) = x^T A x / 2 - th^T x, x* = A^{-1} th; L = ||x*||^2 / 2 has Hessian A^{-2}."""
    g = torch.Generator().manual_seed(0)
    X = torch.randn(5, 5, generator=g, dtype=torch.float64)
    A = X @ X.mT + torch.eye(5, dtype=torch.float64)
    th = torch.randn(5, generator=g, dtype=torch.float64)
    q = lambda x, A, th: 0.5 * x @ A @ x - th @ x  # noqa: E731
    L = lambda th: 0.5 * (argmin(q, torch.linalg.solve(A, th), A, th) ** 2).sum()  # noqa: E731
    Ai = torch.linalg.inv(A)
    assert torch.allclose(torch.func.hessian(L)(th), Ai @ Ai, rtol=1e-10)
    # perturbations of A leave it non-symmetric: the minimizer uses its symmetric part
    gradcheck(lambda A, th: argmin(q, torch.linalg.solve(0.5 * (A + A.mT), th).detach(), A, th),
              A, th, modes=MODES)


def test_complex_argmin():
    """f(z) = ||M z - c||^2 + mu ||z||^2 over complex z: x* = (M^H M + mu)^{-1} M^H c."""
    g = torch.Generator().manual_seed(1)
    cplx = lambda *s: torch.complex(torch.randn(*s, generator=g, dtype=torch.float64),  # noqa: E731
                                    torch.randn(*s, generator=g, dtype=torch.float64))
    M, c = cplx(6, 3), cplx(6)
    mu = torch.tensor(0.4, dtype=torch.float64)
    f = lambda z, M, c, mu: ((M @ z - c).abs() ** 2).sum() + mu * (z.abs() ** 2).sum()  # noqa: E731
    closed = lambda M, c, mu: torch.linalg.solve(M.mH @ M + mu * torch.eye(3, dtype=M.dtype), M.mH @ c)  # noqa: E731
    am = lambda M, c, mu: argmin(f, closed(M, c, mu).detach(), M, c, mu)  # noqa: E731
    ins = [t.clone().requires_grad_() for t in (M, c, mu)]
    loss = lambda z: (z.real**3).sum() + (z.imag * z.real).sum()  # noqa: E731
    ga = torch.autograd.grad(loss(am(*ins)), ins)
    gb = torch.autograd.grad(loss(closed(*ins)), ins)
    for a, b in zip(ga, gb):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)
    gradcheck(am, M, c, mu, modes=MODES)


def test_batched_objectives():
    th = torch.randn(3, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    f = lambda x, th: (torch.cosh(x) - th * x).sum(-1)  # noqa: E731  # one objective per row
    out = argmin(f, torch.asinh(th), th, batch_dims=1)
    J = torch.func.jacrev(lambda th: argmin(f, torch.asinh(th), th, batch_dims=1))(th)
    assert torch.allclose(out, torch.asinh(th))
    assert torch.allclose(J, torch.func.jacrev(torch.asinh)(th), atol=1e-13)


def test_complex_objective_is_rejected():
    with pytest.raises(InputError, match="argmin: f must return a real tensor"):
        argmin(lambda z: (z**2).sum(), torch.zeros(2, dtype=torch.complex128))
