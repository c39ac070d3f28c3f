"""fixed_point: the contraction x = tanh(W x + b) against autograd through the unrolled iteration."""

import pytest
import torch

from difflinalg import ConvergenceError
from difflinalg.check import gradcheck
from difflinalg.implicit import fixed_point

MODES = ("vjp", "jvp", "hvp", "hvp_rev")


def T(x, W, b):
    return torch.tanh(W @ x + b)


def unrolled(W, b, steps=120):
    x = torch.zeros(W.shape[-1], dtype=W.dtype)
    for _ in range(steps):
        x = T(x, W, b)
    return x


def implicit(W, b, solve="auto"):
    with torch.no_grad():
        x = unrolled(W, b)
    return fixed_point(T, x, W, b, solve=solve)


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(0)
    n = 6
    W = torch.randn(n, n, generator=g, dtype=torch.float64)
    W = 0.6 * W / torch.linalg.matrix_norm(W, 2)  # contraction: ||W||_2 = 0.6
    b = torch.randn(n, generator=g, dtype=torch.float64)
    return W, b


@pytest.mark.parametrize("solve", ["dense", "gmres"])
def test_matches_unrolled_autograd(data, solve):
    W, b = data
    Wr, br = W.clone().requires_grad_(), b.clone().requires_grad_()
    loss = lambda x: (x**2).sum() + x[0]  # noqa: E731
    ga = torch.autograd.grad(loss(implicit(Wr, br, solve)), (Wr, br))
    gb = torch.autograd.grad(loss(unrolled(Wr, br)), (Wr, br))
    for a, c in zip(ga, gb):
        assert torch.allclose(a, c, rtol=1e-10, atol=1e-13)
    # second order against the unrolled Hessian
    H1 = torch.func.hessian(lambda b: loss(implicit(W, b, solve)))(b)
    H2 = torch.func.hessian(lambda b: loss(unrolled(W, b)))(b)
    assert torch.allclose(H1, H2, rtol=1e-9, atol=1e-12)


def test_gradcheck_all_modes(data):
    W, b = data
    gradcheck(implicit, W, b, modes=MODES)


def test_vmap_over_biases(data):
    W, b = data
    bs = b + 0.3 * torch.randn(4, b.shape[0], generator=torch.Generator().manual_seed(1), dtype=b.dtype)
    J1 = torch.func.vmap(torch.func.jacrev(lambda b: implicit(W, b, "gmres")))(bs)
    J2 = torch.stack([torch.func.jacrev(lambda b: unrolled(W, b))(bi) for bi in bs])
    assert torch.allclose(J1, J2, rtol=1e-9, atol=1e-12)


def test_complex_fixed_point():
    g = torch.Generator().manual_seed(2)
    n = 4
    W = torch.complex(torch.randn(n, n, generator=g, dtype=torch.float64), torch.randn(n, n, generator=g, dtype=torch.float64))
    W = 0.5 * W / torch.linalg.matrix_norm(W, 2)
    c = torch.complex(torch.randn(n, generator=g, dtype=torch.float64), torch.randn(n, generator=g, dtype=torch.float64))

    def Tc(x, W, c):  # non-holomorphic map (|x|), still a contraction here
        return 0.5 * W @ x + 0.2 * torch.tanh(x.abs()).to(x.dtype) * c + c

    def unr(W, c):
        x = torch.zeros(n, dtype=W.dtype)
        for _ in range(120):
            x = Tc(x, W, c)
        return x

    def imp(W, c):
        with torch.no_grad():
            x = unr(W, c)
        return fixed_point(Tc, x, W, c)

    Wr, cr = W.clone().requires_grad_(), c.clone().requires_grad_()
    loss = lambda x: (x.real**2).sum() - x.imag.sum()  # noqa: E731
    ga = torch.autograd.grad(loss(imp(Wr, cr)), (Wr, cr))
    gb = torch.autograd.grad(loss(unr(Wr, cr)), (Wr, cr))
    for a, b in zip(ga, gb):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-13)
    gradcheck(imp, W, c, modes=MODES)


def test_not_converged_iterate_is_rejected(data):
    W, b = data
    x = unrolled(W, b, steps=5)  # far from converged
    with pytest.raises(ConvergenceError, match=r"fixed_point: T\(x_star, \*params\) - x_star is not zero"):
        fixed_point(T, x, W, b)
