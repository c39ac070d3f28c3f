"""torch.func transforms through the equation rules: vmap, jacrev/jacfwd, hessian."""

import pytest
import torch
from _eqhelpers import DTYPES, METHODS, contractive, randn, shifted
from torch.func import grad, hessian, jacfwd, jacrev, vmap

import difflinalg as dl


def close(x, y, tol=1e-12):
    return float((x - y).abs().max()) <= tol * max(1.0, float(y.abs().max()))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", METHODS)
def test_vmap(dtype, method, gen):
    A, B = shifted(dtype, 4, 2.0, 5, gen=gen), shifted(dtype, 3, 2.0, 5, gen=gen)
    C = randn(dtype, 5, 4, 3, gen=gen)

    def f(a, b, c):
        return dl.solve_sylvester(a, b, c, method=method)

    assert close(vmap(f)(A, B, C), f(A, B, C))
    assert close(vmap(f, in_dims=(0, None, 0))(A, B[0], C), f(A, B[0], C))
    # batch dimension in the middle of C, output dimension moved
    out = vmap(f, in_dims=(None, 0, 1), out_dims=2)(A[0], B, C.movedim(0, 1))
    assert close(out, f(A[0], B, C).movedim(0, 2))
    # nested vmap over a tensor that has its own batch dimension
    A2 = shifted(dtype, 4, 2.0, 2, 5, gen=gen)
    nested = vmap(vmap(f, in_dims=(0, None, None)), in_dims=(0, None, None))(A2, B[0], C[0])
    assert close(nested, f(A2, B[0], C[0]))

    def g(a, b, c):  # operator construction and adjoint solve inside vmap
        op = dl.SteinOperator(0.3 * a, 0.3 * b, method=method)
        return op.solve_adjoint(c)

    assert close(vmap(g)(A, B, C), g(A, B, C))


@pytest.mark.parametrize("method", METHODS)
def test_jacobians_and_hessian(method, gen):
    d = torch.float64
    a, b, c = shifted(d, 4, 2.0, gen=gen), shifted(d, 3, 2.0, gen=gen), randn(d, 4, 3, gen=gen)

    def f(a, b, c):
        return dl.solve_sylvester(a, b, c, method=method)

    Jr = jacrev(f, argnums=(0, 1, 2))(a, b, c)
    Jf = jacfwd(f, argnums=(0, 1, 2))(a, b, c)
    for x, y in zip(Jr, Jf):
        assert close(x, y)

    def loss(a):
        return (dl.solve_stein(0.4 * a, 0.3 * b, c, method=method) ** 2).sum()

    H = hessian(loss)(a)  # forward-over-reverse
    H2 = jacrev(jacrev(loss))(a)  # reverse-over-reverse
    assert close(H, H2, 1e-11)
    assert close(H, H.reshape(16, 16).mT.reshape(4, 4, 4, 4), 1e-11)  # symmetric
    assert close(grad(loss)(a), torch.func.vjp(loss, a)[1](torch.tensor(1.0, dtype=d))[0])


@pytest.mark.parametrize("method", METHODS)
def test_forward_over_forward(method, gen):
    """jacfwd(jacfwd) through the rule (PyTorch drops outer tangents in a Function's jvp unless the
    rule routes its arithmetic through difflinalg._nested.call, pytorch/pytorch#197867)."""
    d = torch.float64
    a, b, c = shifted(d, 3, 2.0, gen=gen), shifted(d, 2, 2.0, gen=gen), randn(d, 3, 2, gen=gen)

    def loss(a, b):
        return (dl.solve_stein(0.3 * a, 0.3 * b, c, method=method) ** 2).sum()

    for argnums in (0, 1):
        H = hessian(loss, argnums=argnums)(a, b)
        assert close(jacfwd(jacfwd(loss, argnums=argnums), argnums=argnums)(a, b), H, 1e-10)


def test_contractive_helper_sanity(gen):
    A = contractive(torch.complex128, 5, 0.5, gen=gen)
    assert abs(float(torch.linalg.eigvals(A).abs().max()) - 0.5) < 1e-12
