"""binomial_loop: gradients of the unrolled loop, the optimal step count, bounded memory, closure
parameters (leaf, non-leaf, modules, explicit), tuple and complex states, double backward, errors.
Captured tensors in depth: test_capture.py."""

import gc
import weakref

import pytest
import torch

from difflinalg import InputError
from difflinalg.check import gradcheck
from difflinalg.checkpoint import binomial_loop, revolve_cost

DT = torch.float64


def unrolled(step, x0, n):
    x = x0
    for _ in range(n):
        x = step(x)
    return x


@pytest.fixture
def net():
    g = torch.Generator().manual_seed(0)
    n = 8
    W = (torch.randn(n, n, generator=g, dtype=DT) / n**0.5).requires_grad_()
    b = torch.randn(n, generator=g, dtype=DT, requires_grad=True)
    x0 = torch.randn(n, generator=g, dtype=DT, requires_grad=True)
    return W, b, x0


@pytest.mark.parametrize("n_steps,snapshots", [(1, 1), (2, 1), (10, 1), (37, 3), (60, 4), (25, 30)])
def test_gradients_equal_unrolled_and_stats_optimal(net, n_steps, snapshots):
    W, b, x0 = net
    calls = [0]

    def step(x):
        calls[0] += 1
        return x + 0.1 * torch.tanh(W @ x + b)

    xn, stats = binomial_loop(step, x0, n_steps, snapshots=snapshots, return_stats=True)
    assert xn.requires_grad
    g1 = torch.autograd.grad((xn**3).sum(), (x0, W, b))
    ref = unrolled(step, x0, n_steps)
    g2 = torch.autograd.grad((ref**3).sum(), (x0, W, b))
    for a, c in zip(g1, g2):
        assert torch.allclose(a, c, rtol=1e-13, atol=1e-15)
    assert torch.equal(xn, ref)
    opt = revolve_cost(n_steps, snapshots)
    assert stats.forward_steps == stats.optimal_forward_steps == opt
    assert stats.taped_steps == n_steps and stats.backward_passes == 1
    assert stats.peak_snapshots <= snapshots
    assert calls[0] == opt + n_steps + n_steps  # ours (advances + tapes) + the reference loop


def test_backward_accumulates_into_leaf_grads(net):
    W, b, x0 = net
    step = lambda x: torch.tanh(W @ x + b)  # noqa: E731
    binomial_loop(step, x0, 20, snapshots=3).sum().backward()
    gW, gb = W.grad.clone(), b.grad.clone()
    W.grad = b.grad = x0.grad = None
    unrolled(step, x0, 20).sum().backward()
    assert torch.allclose(gW, W.grad, rtol=1e-13) and torch.allclose(gb, b.grad, rtol=1e-13)


@pytest.mark.parametrize("captured", [False, True])
def test_memory_bounded_by_snapshots(captured):
    """Count the step outputs alive at any time: snapshots + the working and taped states (also
    when the step captures a non-leaf, whose stand-in must not keep tapes alive)."""
    n, N, s = 16, 200, 4
    W = (torch.randn(n, n, dtype=DT) / n**0.5).requires_grad_()
    c = W.sum(0) if captured else torch.zeros(n, dtype=DT)
    alive: list = []
    peak = [0]

    def step(x):
        y = torch.tanh(W @ x + c)
        alive.append(weakref.ref(y))
        peak[0] = max(peak[0], sum(r() is not None for r in alive))
        return y

    x0 = torch.randn(n, dtype=DT, requires_grad=True)
    out, stats = binomial_loop(step, x0, N, snapshots=s, return_stats=True)
    gc.collect()
    torch.autograd.grad(out.sum(), (x0, W))
    assert stats.peak_snapshots == s
    assert peak[0] <= s + 3  # plain autograd would keep all N outputs alive
    alive.clear()
    peak[0] = 0
    out = unrolled(step, x0, N)
    assert peak[0] >= N  # the reference does hold every state


def test_non_leaf_closure_tensor_is_found(net):
    W, b, x0 = net
    theta = torch.randn(8, dtype=DT, requires_grad=True)
    scale = torch.tensor(0.3, dtype=DT, requires_grad=True)

    def grads(loop):
        c = torch.sin(theta) * scale  # non-leaf, computed before the loop
        out = loop(lambda x: torch.tanh(W @ x + c), x0)
        return torch.autograd.grad((out**2).sum(), (theta, scale, W, x0))

    g1 = grads(lambda f, x: binomial_loop(f, x, 15, snapshots=2))
    g2 = grads(lambda f, x: unrolled(f, x, 15))
    for a, c in zip(g1, g2):
        assert torch.allclose(a, c, rtol=1e-13, atol=1e-15)


def test_module_step_and_explicit_params():
    torch.manual_seed(1)
    lin = torch.nn.Linear(6, 6, dtype=DT)
    step = lambda x: x + 0.2 * torch.tanh(lin(x))  # noqa: E731
    x0 = torch.randn(3, 6, dtype=DT)  # x0 needs no gradient: only the module's parameters
    out = binomial_loop(step, x0, 30, snapshots=3)
    g1 = torch.autograd.grad(out.sum(), list(lin.parameters()))
    g2 = torch.autograd.grad(unrolled(step, x0, 30).sum(), list(lin.parameters()))
    for a, c in zip(g1, g2):
        assert torch.allclose(a, c, rtol=1e-13)
    out = binomial_loop(step, x0, 30, snapshots=3, params=list(lin.parameters()))
    g3 = torch.autograd.grad(out.sum(), list(lin.parameters()))
    for a, c in zip(g3, g2):
        assert torch.allclose(a, c, rtol=1e-13)


def test_tuple_state_and_complex():
    """A leapfrog-like tuple state (q, p) with complex p; PyTorch's complex gradient convention."""
    g = torch.Generator().manual_seed(2)
    K = torch.randn(5, 5, generator=g, dtype=DT)
    K = (K @ K.mT / 5).requires_grad_()
    q0 = torch.randn(5, generator=g, dtype=DT, requires_grad=True)
    p0 = torch.complex(torch.randn(5, generator=g, dtype=DT), torch.randn(5, generator=g, dtype=DT)).requires_grad_()

    def step(state):
        q, p = state
        p = p - 0.05 * torch.sin(K @ q).to(p.dtype) * (1 + 0.1j)
        q = q + 0.05 * p.real + 0.01 * p.imag
        return q, p

    loss = lambda s: (s[0] ** 2).sum() + (s[1].abs() ** 2).sum()  # noqa: E731
    out, stats = binomial_loop(step, (q0, p0), 40, snapshots=3, return_stats=True)
    assert isinstance(out, tuple) and out[1].dtype == torch.complex128
    g1 = torch.autograd.grad(loss(out), (q0, p0, K))
    g2 = torch.autograd.grad(loss(unrolled(step, (q0, p0), 40)), (q0, p0, K))
    for a, c in zip(g1, g2):
        assert torch.allclose(a, c, rtol=1e-12, atol=1e-14)
    assert stats.forward_steps == revolve_cost(40, 3)


def test_state_with_an_integer_counter(net):
    W, b, x0 = net
    step = lambda s: (torch.tanh(W @ s[0] + b * s[1]), s[1] + 1)  # noqa: E731
    k0 = torch.tensor(0)
    (xn, kn), stats = binomial_loop(step, (x0, k0), 17, snapshots=3, return_stats=True)
    assert int(kn) == 17 and not kn.requires_grad
    g1 = torch.autograd.grad(xn.sum(), (x0, W, b))
    g2 = torch.autograd.grad(unrolled(step, (x0, k0), 17)[0].sum(), (x0, W, b))
    for a, c in zip(g1, g2):
        assert torch.allclose(a, c, rtol=1e-13)


def test_double_backward_is_exact(net):
    W, b, x0 = net
    step = lambda x: torch.tanh(W @ x + b)  # noqa: E731
    v = torch.randn(8, dtype=DT)

    def hvp(loop):
        out = loop(x0)
        (g,) = torch.autograd.grad((out**3).sum(), x0, create_graph=True)
        return torch.autograd.grad((g * v).sum(), (x0, W))

    h1 = hvp(lambda x: binomial_loop(step, x, 12, snapshots=2))
    h2 = hvp(lambda x: unrolled(step, x, 12))
    for a, c in zip(h1, h2):
        assert torch.allclose(a, c, rtol=1e-12, atol=1e-14)


def test_gradcheck_vjp_and_double_backward(net):
    W, b, x0 = net
    f = lambda x0, W: binomial_loop(lambda x: torch.tanh(W @ x + b.detach()), x0, 9, snapshots=2)  # noqa: E731
    gradcheck(f, x0.detach(), W.detach(), modes=("vjp", "hvp_rev"))


def test_second_backward_with_retain_graph(net):
    W, b, x0 = net
    step = lambda x: torch.tanh(W @ x + b)  # noqa: E731
    out, stats = binomial_loop(step, x0, 30, snapshots=3, return_stats=True)
    g1 = torch.autograd.grad(out.sum(), (x0, W), retain_graph=True)
    g2 = torch.autograd.grad(out.sum(), (x0, W))
    for a, c in zip(g1, g2):
        assert torch.equal(a, c)
    assert stats.backward_passes == 2
    # the second pass redoes the forward sweep: one more optimal reversal's worth of work
    assert stats.forward_steps == 2 * revolve_cost(30, 3)


def test_no_grad_and_trivial_lengths(net):
    W, b, x0 = net
    step = lambda x: torch.tanh(W @ x + b)  # noqa: E731
    with torch.no_grad():
        out, stats = binomial_loop(step, x0, 7, snapshots=2, return_stats=True)
    assert not out.requires_grad and torch.allclose(out, unrolled(step, x0, 7))
    assert stats.forward_steps == 7
    assert binomial_loop(step, x0, 0, snapshots=1) is x0
    x = torch.randn(8, dtype=DT)  # nothing requires grad in the state, and step has no params
    out = binomial_loop(lambda x: torch.tanh(x), x, 4, snapshots=2)
    assert not out.requires_grad and torch.allclose(out, unrolled(torch.tanh, x, 4))


def test_bad_input(net):
    W, b, x0 = net
    step = lambda x: torch.tanh(W @ x + b)  # noqa: E731
    with pytest.raises(InputError, match="snapshots: expected at least 1"):
        binomial_loop(step, x0, 5, snapshots=0)
    with pytest.raises(InputError, match="n_steps: expected n_steps >= 0"):
        binomial_loop(step, x0, -2, snapshots=2)
    with pytest.raises(InputError, match=r"step: returned shape \(4,\)"):
        binomial_loop(lambda x: x[:4], x0, 5, snapshots=2)
    with pytest.raises(InputError, match="dtype float32"):
        binomial_loop(lambda x: x.float(), x0, 5, snapshots=2)
    with pytest.raises(InputError, match="structure"):
        binomial_loop(lambda x: (x, x), x0, 5, snapshots=2)
    with pytest.raises(InputError, match="step: expected a callable"):
        binomial_loop(None, x0, 5, snapshots=2)
    with pytest.raises(InputError, match="x0: expected a tensor"):
        binomial_loop(step, [1.0, 2.0], 5, snapshots=2)
    with pytest.raises(InputError, match="torch.func transforms"):
        torch.func.grad(lambda x: binomial_loop(step, x, 3, snapshots=2).sum())(x0.detach())
