"""binomial_loop with captured tensors (issue 19 item 2): leaves and non-leaves computed before the
loop, however the step reaches them; gradients equal to plain autograd's, the captured history run
once, double backward, complex, custom Functions, ADMM with D and D^H X, errors."""

import functools
import types

import pytest
import torch

import difflinalg
from difflinalg import InputError
from difflinalg.check import gradcheck
from difflinalg.checkpoint import binomial_loop, revolve_cost
from difflinalg.checkpoint._cases import admm_lasso

DT = torch.float64
CT = torch.complex128
SCHEDULES = [(1, 1), (4, 1), (4, 2), (9, 3), (7, 7), (5, 12)]  # snapshots 1, < n, = n, > n


def unrolled(step, x0, n):
    x = x0
    for _ in range(n):
        x = step(x)
    return x


def assert_close(got, want, rtol=1e-13, atol=1e-15):
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a is not None and b is not None
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol)


def both(make, wrt, n, s, loss=lambda y: (y**2).sum(), **kw):
    """Gradients of ``loss(loop)`` w.r.t. ``wrt`` through binomial_loop and through plain
    autograd; ``make()`` builds (step, x0) afresh, so each run has its own captured graph."""
    step, x0 = make()
    out, stats = binomial_loop(step, x0, n, snapshots=s, return_stats=True, **kw)
    g1 = torch.autograd.grad(loss(out), wrt)
    step, x0 = make()
    g2 = torch.autograd.grad(loss(unrolled(step, x0, n)), wrt)
    assert stats.forward_steps == revolve_cost(n, s) and stats.taped_steps == n
    return g1, g2


@pytest.mark.parametrize("n_steps,snapshots", SCHEDULES)
@pytest.mark.parametrize("declare", [False, True])
def test_issue_reproducer(n_steps, snapshots, declare):
    """A leaf W and c = 2 W: 'backward through the graph a second time' before, exact now."""
    W = torch.randn(3, dtype=DT, generator=torch.Generator().manual_seed(0), requires_grad=True)

    def make():
        c = 2 * W
        make.c = c
        return (lambda x: torch.tanh(x * W + c)), torch.ones(3, dtype=DT)

    step, x0 = make()
    params = [W, make.c] if declare else None
    y = binomial_loop(step, x0, n_steps, snapshots=snapshots, params=params)
    (g1,) = torch.autograd.grad(y.sum(), W)
    step, x0 = make()
    (g2,) = torch.autograd.grad(unrolled(step, x0, n_steps).sum(), W)
    torch.testing.assert_close(g1, g2, rtol=1e-14, atol=1e-15)


class Holder:
    def __init__(self, W, c):
        self.W, self.c = W, c

    def step(self, x):
        return torch.tanh(self.W @ x + self.c)


class Cell(torch.nn.Module):
    """A module whose parameter is a leaf and whose attribute is a non-leaf made from it."""

    def __init__(self, n):
        super().__init__()
        self.lin = torch.nn.Linear(n, n, dtype=DT)
        self.shift = None

    def forward(self, x):
        return x + 0.3 * torch.tanh(self.lin(x) + self.shift)


def _ways(W, theta):
    """(name, make) pairs: the same loop with the captured tensors reached in different ways."""
    def closure():
        c = torch.sin(theta) * W.sum(0)
        return lambda x: torch.tanh(W @ x + c)

    def defaults():
        c = torch.sin(theta) * W.sum(0)
        return lambda x, W=W, c=c: torch.tanh(W @ x + c)

    def namespace():
        ns = types.SimpleNamespace(W=W, c=torch.sin(theta) * W.sum(0))
        return lambda x: torch.tanh(ns.W @ x + ns.c)

    def partial():
        def f(x, A, c):
            return torch.tanh(A @ x + c)
        return functools.partial(f, A=W, c=torch.sin(theta) * W.sum(0))

    def method():
        return Holder(W, torch.sin(theta) * W.sum(0)).step

    def dict_and_list():
        box = {"mats": [W, W.mT @ W / 8], "c": (torch.sin(theta),)}
        return lambda x: torch.tanh(box["mats"][0] @ x + 0.1 * box["mats"][1] @ x + box["c"][0])

    return [closure, defaults, namespace, partial, method, dict_and_list]


@pytest.mark.parametrize("way", range(6))
@pytest.mark.parametrize("n_steps,snapshots", [(9, 3), (6, 1)])
def test_tensors_reached_any_way(way, n_steps, snapshots):
    g = torch.Generator().manual_seed(way)
    W = (torch.randn(8, 8, generator=g, dtype=DT) / 3).requires_grad_()
    theta = torch.randn(8, generator=g, dtype=DT, requires_grad=True)
    x0 = torch.randn(8, generator=g, dtype=DT, requires_grad=True)
    build = _ways(W, theta)[way]
    g1, g2 = both(lambda: (build(), x0), (W, theta, x0), n_steps, snapshots)
    assert_close(g1, g2)


def test_module_parameter_and_non_leaf_attribute():
    torch.manual_seed(3)
    cell = Cell(5)
    theta = torch.randn(5, dtype=DT, requires_grad=True)
    x0 = torch.randn(4, 5, dtype=DT)  # batched state that needs no gradient

    def make():
        cell.shift = torch.cos(theta) @ cell.lin.weight  # non-leaf from a leaf the step also uses
        return cell, x0

    wrt = (theta, *cell.parameters())
    g1, g2 = both(make, wrt, 12, 3)
    assert_close(g1, g2)


def test_nested_captured_graphs_and_non_leaf_state():
    """c2 is made from c1, both from W; views of them; x0 itself computed from W; W is also x0's
    neighbour in the step."""
    g = torch.Generator().manual_seed(5)
    W = (torch.randn(6, 6, generator=g, dtype=DT) / 3).requires_grad_()
    v = torch.randn(6, generator=g, dtype=DT, requires_grad=True)

    def make():
        c1 = torch.tanh(W @ v)
        c2 = c1 * W.diagonal() + c1.sum()
        Wt = W.mT  # a view made before the loop
        x0 = torch.sin(W[0]) + v  # the state is computed from W as well
        return (lambda x: torch.tanh(Wt @ x + c2[None, :].squeeze(0) * c1) + 0.1 * x), x0

    for n, s in SCHEDULES:
        g1, g2 = both(make, (W, v), n, s)
        assert_close(g1, g2)


def test_state_is_the_captured_tensor():
    W = torch.randn(4, dtype=DT, generator=torch.Generator().manual_seed(6), requires_grad=True)

    def make():
        c = W.exp()
        return (lambda x: torch.tanh(x * W + c)), W

    g1, g2 = both(make, (W,), 8, 2)
    assert_close(g1, g2)


class CountedIdentity(torch.autograd.Function):
    calls = 0

    @staticmethod
    def forward(x):
        return x.clone()

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, g):
        CountedIdentity.calls += 1
        return g


def test_captured_history_runs_once():
    """The captured tensor's graph is backpropagated once per backward, as by plain autograd
    (not once per reversed step)."""
    W = torch.randn(5, 5, dtype=DT, generator=torch.Generator().manual_seed(7)).requires_grad_()
    c = CountedIdentity.apply(W.sum(0))
    CountedIdentity.calls = 0
    out = binomial_loop(lambda x: torch.tanh(W @ x + c), torch.ones(5, dtype=DT), 30, snapshots=3)
    out.sum().backward()
    assert CountedIdentity.calls == 1
    gW = W.grad.clone()
    W.grad = None
    c = CountedIdentity.apply(W.sum(0))
    unrolled(lambda x: torch.tanh(W @ x + c), torch.ones(5, dtype=DT), 30).sum().backward()
    torch.testing.assert_close(gW, W.grad, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("n_steps,snapshots", [(1, 1), (10, 1), (12, 3), (5, 6)])
def test_complex_captured(n_steps, snapshots):
    """Complex leaf and non-leaf (conjugates, real parts): PyTorch's convention, as plain autograd."""
    g = torch.Generator().manual_seed(8)
    A = torch.complex(torch.randn(5, 5, generator=g, dtype=DT), torch.randn(5, 5, generator=g, dtype=DT))
    A = (A / 6).requires_grad_()
    z0 = torch.complex(torch.randn(5, generator=g, dtype=DT), torch.randn(5, generator=g, dtype=DT))
    z0.requires_grad_()

    def make():
        B = A.mH @ A  # Hermitian non-leaf
        d = A.diagonal().conj() * 0.5
        return (lambda z: 0.5 * A @ z + 0.2 * torch.tanh((B @ z).real).to(z.dtype) + d), z0

    loss = lambda z: (z.abs() ** 2).sum() + (z**2).real.sum()  # noqa: E731
    g1, g2 = both(make, (A, z0), n_steps, snapshots, loss=loss)
    assert_close(g1, g2, rtol=1e-12, atol=1e-14)


def _gc_loop(theta, x0):
    """The step captures theta (an input) and c, a non-leaf made from it inside fn."""
    if theta.is_complex():
        c = theta.conj() * theta.abs()
        return binomial_loop(lambda x: 0.5 * theta * x + 0.3 * torch.tanh(x.real).to(x.dtype) + c,
                             x0, 7, snapshots=2)
    c = torch.sin(theta)
    return binomial_loop(lambda x: torch.tanh(theta * x + c) + 0.2 * x, x0, 7, snapshots=2)


@pytest.mark.parametrize("dtype", [DT, CT])
def test_gradcheck_with_captured_non_leaf(dtype):
    """Reverse and double backward against finite differences, batched state, real and complex."""
    g = torch.Generator().manual_seed(9)
    theta = difflinalg.check.randn(dtype, g, 4) * 0.5
    x0 = difflinalg.check.randn(dtype, g, 3, 4)
    gradcheck(_gc_loop, theta, x0, modes=("vjp", "hvp_rev"))


def test_double_backward_with_captured_non_leaf():
    g = torch.Generator().manual_seed(10)
    W = (torch.randn(6, 6, generator=g, dtype=DT) / 3).requires_grad_()
    x0 = torch.randn(6, generator=g, dtype=DT, requires_grad=True)
    v = torch.randn(6, generator=g, dtype=DT)

    def hvp(loop):
        c = torch.cos(W).sum(1)
        xs = torch.sin(W[1]) * x0  # a non-leaf state computed from W
        out = loop(lambda x: torch.tanh(W @ x + c), xs)
        (gx,) = torch.autograd.grad((out**3).sum(), x0, create_graph=True)
        return torch.autograd.grad((gx * v).sum(), (x0, W))

    h1 = hvp(lambda f, x: binomial_loop(f, x, 10, snapshots=2))
    h2 = hvp(lambda f, x: unrolled(f, x, 10))
    assert_close(h1, h2, rtol=1e-12, atol=1e-14)

    def hvp_raw(loop):  # c reaches a custom Function as it is; the state is W[0] itself
        c = torch.cos(W[2])
        out = loop(lambda x: torch.tanh(Scale.apply(c, W @ x)), W[0])
        (gW,) = torch.autograd.grad((out**3).sum(), W, create_graph=True)
        return torch.autograd.grad((gW * W).sum(), W)

    h1 = hvp_raw(lambda f, x: binomial_loop(f, x, 6, snapshots=3))
    h2 = hvp_raw(lambda f, x: unrolled(f, x, 6))
    assert_close(h1, h2, rtol=1e-12, atol=1e-14)


def test_retain_graph_and_backward_accumulation():
    g = torch.Generator().manual_seed(11)
    W = (torch.randn(6, 6, generator=g, dtype=DT) / 3).requires_grad_()
    c = W.sum(0).exp()
    out = binomial_loop(lambda x: torch.tanh(W @ x + c), torch.ones(6, dtype=DT), 20, snapshots=3)
    out.sum().backward(retain_graph=True)
    out.sum().backward()
    g1 = W.grad.clone()
    W.grad = None
    c = W.sum(0).exp()
    ref = unrolled(lambda x: torch.tanh(W @ x + c), torch.ones(6, dtype=DT), 20).sum()
    ref.backward(retain_graph=True)
    ref.backward()
    torch.testing.assert_close(g1, W.grad, rtol=1e-13, atol=1e-15)


class Scale(torch.autograd.Function):
    """y = a * x, a custom Function: Function.apply is invisible to a TorchFunctionMode."""

    @staticmethod
    def forward(a, x):
        return a * x

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, g):
        a, x = ctx.saved_tensors
        return (g * x.conj()).sum_to_size(a.shape), g * a.conj()


class ScaleIgnoring(torch.autograd.Function):
    """x * 2 with a gradient for an argument c that its forward never touches."""

    @staticmethod
    def forward(c, x):
        return 2 * x

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, g):
        return g.sum().expand(3).clone(), 2 * g


def test_tensors_passed_straight_to_custom_functions():
    g = torch.Generator().manual_seed(12)
    W = torch.randn(3, generator=g, dtype=DT, requires_grad=True)
    x0 = torch.randn(3, generator=g, dtype=DT, requires_grad=True)

    def raw_non_leaf():  # c reaches Scale as it is; W is used through torch operations
        c = torch.sin(W)
        return (lambda x: torch.tanh(Scale.apply(c, x) + W)), x0

    def raw_leaf():  # W reaches Scale as it is; c through torch operations
        c = torch.sin(W)
        return (lambda x: torch.tanh(Scale.apply(W, x) + c)), x0

    for make in (raw_non_leaf, raw_leaf):
        for n, s in [(6, 2), (3, 1), (2, 5)]:
            g1, g2 = both(make, (W, x0), n, s)
            assert_close(g1, g2)

    c = torch.sin(W)  # both raw, one computed from the other: cannot be cut, so it says so
    with pytest.raises(InputError, match=r"both passed directly to a torch.autograd.Function"):
        binomial_loop(lambda x: Scale.apply(c, Scale.apply(W, x)), x0, 4, snapshots=2)
    with pytest.raises(InputError, match=r"carry that tensor in the loop state"):
        x1 = x0 * W  # double backward: x0's history reaches W, which Scale gets as it is
        out = binomial_loop(lambda x: torch.tanh(Scale.apply(W, x)), x1, 4, snapshots=2)
        torch.autograd.grad(out.sum(), W, create_graph=True)

    c = torch.cos(W)  # a tensor the loop never sees: found only through params=
    with pytest.raises(InputError, match=r"pass it in params="):
        binomial_loop(lambda x: ScaleIgnoring.apply(c, x), x0, 4, snapshots=2)
    out = binomial_loop(lambda x: torch.tanh(ScaleIgnoring.apply(c, x)), x0, 4, snapshots=2, params=[c])
    g1 = torch.autograd.grad(out.sum(), (W, x0))
    c = torch.cos(W)
    g2 = torch.autograd.grad(unrolled(lambda x: torch.tanh(ScaleIgnoring.apply(c, x)), x0, 4).sum(), (W, x0))
    assert_close(g1, g2)


@pytest.mark.parametrize("dtype", [DT, CT])
@pytest.mark.parametrize("n_steps,snapshots", [(15, 3), (8, 1), (6, 10)])
def test_admm_loop_equals_plain_autograd(dtype, n_steps, snapshots):
    """Issue 19's ADMM: the step uses D (leaf), chol(rho I + D D^H) and D^H X (non-leaves)."""
    g = torch.Generator().manual_seed(14)
    D = (difflinalg.check.randn(dtype, g, 6, 10) / 3).requires_grad_()
    X = difflinalg.check.randn(dtype, g, 4, 6).requires_grad_()

    def make():
        return admm_lasso(D, X, 1.5, 0.1)

    loss = lambda s: (s[0].abs() ** 2).sum() + s[1].real.sum()  # noqa: E731
    g1, g2 = both(make, (D, X), n_steps, snapshots, loss=loss)
    assert_close(g1, g2, rtol=1e-12, atol=1e-13)


def test_params_must_cover_the_captured_tensors():
    g = torch.Generator().manual_seed(13)
    W = torch.randn(3, generator=g, dtype=DT, requires_grad=True)
    c = torch.cos(W)
    step = lambda x: torch.tanh(W * x + c)  # noqa: E731
    x0 = torch.ones(3, dtype=DT)
    with pytest.raises(InputError, match=r"params: step uses a leaf tensor .* \(shape \(3,\)"):
        binomial_loop(step, x0, 5, snapshots=2, params=[c])
    with pytest.raises(InputError, match=r"params: step uses a non-leaf tensor .*made by CosBackward0"):
        binomial_loop(step, x0, 5, snapshots=2, params=[W])
    unused = torch.zeros(2, dtype=DT, requires_grad=True)  # declared but unused: no gradient
    out = binomial_loop(step, x0, 5, snapshots=2, params=[unused, W, c])
    gW, gu = torch.autograd.grad(out.sum(), (W, unused), allow_unused=True)
    assert gu is None
    c = torch.cos(W)
    torch.testing.assert_close(gW, torch.autograd.grad(unrolled(step, x0, 5).sum(), W)[0], rtol=1e-14, atol=0)


def test_torch_func_with_captured_tensor_is_an_error():
    x0 = torch.randn(3, dtype=DT)
    W = torch.randn(3, dtype=DT)
    with pytest.raises(InputError, match="torch.func transforms"):
        torch.func.grad(lambda W: binomial_loop(lambda x: torch.tanh(W * x), x0, 3, snapshots=2).sum())(W)
