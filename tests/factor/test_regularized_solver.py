"""``difflinalg.RegularizedSolver``: one factorization for many solves; values and gradients equal
``regularized_solve``'s; gradcheck in every mode (real and complex, batched, several solves through
one solver); no factorization in backward or JVP; torch.func; ``binomial_loop``; bad input."""

import pytest
import torch

from difflinalg import InputError, RegularizedSolver, regularized_solve
from difflinalg.checkpoint import binomial_loop
from difflinalg.check import gradcheck

from _helpers import randn

F64, C64, C128 = torch.float64, torch.complex64, torch.complex128
ALL = ("vjp", "jvp", "hvp", "hvp_rev", "jvp2")
GRAMS = ("DhD", "DDh")


def k_of(D, gram):
    return D.shape[-1] if gram == "DhD" else D.shape[-2]


@pytest.mark.parametrize("dtype", [F64, C128])
@pytest.mark.parametrize("gram", GRAMS)
@pytest.mark.parametrize("method", ["auto", "direct", "woodbury"])
@pytest.mark.parametrize("shape", [(6, 3), (3, 6), (2, 4, 7)], ids=["tall", "wide", "batched"])
def test_values_and_gradients_equal_regularized_solve(dtype, gram, method, shape):
    D = randn(*shape, dtype=dtype).requires_grad_()
    rho = torch.tensor(0.4, dtype=F64, requires_grad=True)
    k = k_of(D, gram)
    xs = [randn(*shape[:-2], k, dtype=dtype, seed=1), randn(k, 3, dtype=dtype, seed=2)]
    solver = RegularizedSolver(D, rho, gram=gram, method=method)
    ys = [solver.solve(x) for x in xs]
    refs = [regularized_solve(D, x, rho, gram=gram, method=method) for x in xs]
    for y, ref in zip(ys, refs):
        assert y.shape == ref.shape
        torch.testing.assert_close(y, ref, atol=1e-13, rtol=1e-12)
    loss = lambda ys: sum((y.abs() ** 2).sum() + y.real.sum() for y in ys)  # noqa: E731
    g = torch.autograd.grad(loss(ys), (D, rho))
    g_ref = torch.autograd.grad(loss(refs), (D, rho))
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-11)


@pytest.mark.parametrize("dtype,gram", [
    (F64, "DhD"), (C128, "DDh"),
    pytest.param(C128, "DhD", marks=pytest.mark.slow), pytest.param(F64, "DDh", marks=pytest.mark.slow)])
def test_gradcheck_all_modes_several_solves(dtype, gram):
    """Two solves through one solver, one of them chained (a solve of a solve, as in an unrolled
    loop): every derivative (D, x1, x2, rho), every mode, including second order."""
    D = randn(2, 3, 4, dtype=dtype)
    k = k_of(D, gram)
    x1, x2 = randn(2, k, dtype=dtype, seed=1), randn(k, 2, dtype=dtype, seed=2)
    rho = torch.tensor([0.5, 1.5], dtype=F64)

    def f(D, x1, x2, rho):
        s = RegularizedSolver(D, rho, gram=gram)
        return s.solve(x1), s.solve(s.solve(x2) * 0.5 + x2)

    assert gradcheck(f, D, x1, x2, rho, modes=ALL, names=["D", "x1", "x2", "rho"]).passed


def test_factorizes_once_for_all_solves_and_derivatives(monkeypatch):
    calls = []
    orig_ex, orig_chol = torch.linalg.cholesky_ex, torch.linalg.cholesky
    monkeypatch.setattr(torch.linalg, "cholesky_ex", lambda *a, **k: calls.append(1) or orig_ex(*a, **k))
    monkeypatch.setattr(torch.linalg, "cholesky", lambda *a, **k: calls.append(1) or orig_chol(*a, **k))
    D = randn(8, 12, dtype=C128).requires_grad_()
    solver = RegularizedSolver(D, 0.3)
    assert len(calls) == 1
    z = torch.zeros(12, dtype=C128)
    for _ in range(5):
        z = solver.solve(D.mH @ randn(8, dtype=C128) + 0.3 * z)
    g, = torch.autograd.grad((z.abs() ** 2).sum(), D, create_graph=True)
    (g.abs() ** 2).sum().backward()  # double backward too
    assert len(calls) == 1
    assert solver.factor.grad_fn is None and not solver.factor.requires_grad


def test_torch_func_transforms():
    D = randn(5, 3, dtype=C128)
    solver = RegularizedSolver(D, 0.6)
    X = randn(4, 3, dtype=C128, seed=1)
    torch.testing.assert_close(torch.func.vmap(solver.solve)(X), solver.solve(X.mT).mT)

    def loss(D, x, rho):
        return (RegularizedSolver(D, rho).solve(x).abs() ** 2).sum()

    Ds, xs, rhos = randn(3, 5, 3, dtype=C128), randn(3, 3, dtype=C128, seed=2), torch.tensor([0.5, 1.0, 2.0], dtype=F64)
    g = torch.func.vmap(torch.func.grad(loss, argnums=(0, 1, 2)))(Ds, xs, rhos)
    for i in range(3):
        Di, xi, ri = (t[i].clone().requires_grad_() for t in (Ds, xs, rhos))
        ref = torch.autograd.grad(loss(Di, xi, ri), (Di, xi, ri))
        for a, b in zip(g, ref):
            torch.testing.assert_close(a[i], b, atol=1e-12, rtol=1e-12)
    Dr = randn(4, 3, dtype=F64)
    H = torch.func.hessian(lambda D: (RegularizedSolver(D, 0.7).solve(torch.ones(3, dtype=F64)) ** 2).sum())(Dr)
    Hm = H.reshape(12, 12)
    torch.testing.assert_close(Hm, Hm.mT, atol=1e-10, rtol=1e-10)


def _admm(D, s, rho, n_iter, loop=None):
    """Unrolled ADMM for complex sparse coding (z-update through the solver)."""
    solver = RegularizedSolver(D, rho)
    Dhs = D.mH @ s
    lam = 0.05

    def step(state):
        z, u = state
        v = solver.solve(Dhs + rho * (z - u))
        w = v + u
        z = torch.sgn(w) * torch.relu(w.abs() - lam / rho)
        return z, u + v - z

    x0 = (torch.zeros_like(Dhs), torch.zeros_like(Dhs))
    if loop:
        z, _ = binomial_loop(step, x0, n_iter, snapshots=loop)
    else:
        z, u = x0
        for _ in range(n_iter):
            z, u = step((z, u))
    return ((D @ z - s).abs() ** 2).sum() + z.abs().sum()


@pytest.mark.parametrize("nonleaf", [False, True], ids=["leaf_D", "D_computed_from_W"])
def test_binomial_loop_gradients_equal_plain_autograd(nonleaf):
    """The solver captured by a checkpointed ADMM step (with D^H s computed from D before the loop,
    and D itself possibly computed from a parameter W): gradients equal to plain autograd's."""
    W = randn(6, 10, dtype=C128).requires_grad_()
    rho = torch.tensor(0.8, dtype=F64, requires_grad=True)
    s = randn(6, 3, dtype=C128, seed=1)
    make_D = (lambda: W * 2) if nonleaf else (lambda: W)  # a fresh graph for each run
    ref = torch.autograd.grad(_admm(make_D(), s, rho, 7), (W, rho))
    got = torch.autograd.grad(_admm(make_D(), s, rho, 7, loop=2), (W, rho))
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, atol=1e-13, rtol=1e-12)


def test_bad_input():
    D = randn(4, 3, dtype=C128)
    with pytest.raises(InputError, match="gram"):
        RegularizedSolver(D, 0.5, gram="DtD")
    with pytest.raises(InputError, match="method"):
        RegularizedSolver(D, 0.5, method="lu")
    with pytest.raises(InputError, match="rho: must be positive"):
        RegularizedSolver(D, 0.0)
    with pytest.raises(InputError, match="D: meta tensors"):
        RegularizedSolver(torch.empty(4, 3, device="meta"), 0.5)
    solver = RegularizedSolver(D, 0.5)
    with pytest.raises(InputError, match="x: shape .* gram='DDh'"):
        solver.solve(randn(4, dtype=C128))
    with pytest.raises(InputError, match="share one dtype"):
        solver.solve(randn(3, dtype=C64))
    with pytest.raises(InputError, match="x: contains 1 non-finite"):
        solver.solve(torch.tensor([1.0, float("nan"), 0.0], dtype=C128))
    assert "factored='DhD'" in repr(solver)


def test_empty_and_conj_inputs():
    D = randn(0, 4, 3, dtype=C128)
    assert RegularizedSolver(D, 0.5).solve(randn(0, 3, dtype=C128)).shape == (0, 3)
    Dc = randn(4, 3, dtype=C128)
    x = randn(3, dtype=C128, seed=1)
    torch.testing.assert_close(RegularizedSolver(Dc.conj(), 0.5).solve(x.conj()),
                               regularized_solve(Dc.conj().resolve_conj(), x.conj().resolve_conj(), 0.5))


@pytest.mark.parametrize("shape,gram", [((6, 10), "DhD"), ((10, 6), "DDh"), ((2, 6, 10), "DhD")],
                         ids=["DhD", "DDh", "batched"])
def test_woodbury_solves_are_products_only(monkeypatch, shape, gram):
    """Woodbury forms: after construction, the first-order solves (the plain-block path and the
    general one) and their backward apply the precomputed ``V = F^{-1} D`` and never a triangular
    solve; values and gradients equal ``regularized_solve``'s (which solves with the factor)."""
    D = randn(*shape, dtype=C128).requires_grad_()
    rho = torch.tensor(0.7, dtype=F64, requires_grad=True)
    solver = RegularizedSolver(D, rho, gram=gram)
    assert solver.factored != gram
    k = k_of(D, gram)
    xs = [randn(k, 3, dtype=C128, seed=1).requires_grad_(), randn(*shape[:-2], k, dtype=C128, seed=2)]
    calls = []
    for owner, name in ((torch, "cholesky_solve"), (torch.linalg, "solve_triangular")):
        orig = getattr(owner, name)
        monkeypatch.setattr(owner, name, lambda *a, _o=orig, **kw: calls.append(1) or _o(*a, **kw))
    ys = [solver.solve(x) for x in xs]
    ys.append(solver.solve(ys[0] * 0.5 + xs[0]))  # chained, as in an unrolled loop
    loss = sum((y.abs() ** 2).sum() + y.real.sum() for y in ys)
    grads = torch.autograd.grad(loss, (D, rho, xs[0]))
    assert calls == []
    monkeypatch.undo()
    refs = [regularized_solve(D, x, rho, gram=gram) for x in xs]
    refs.append(regularized_solve(D, refs[0] * 0.5 + xs[0], rho, gram=gram))
    for y, ref in zip(ys, refs):
        torch.testing.assert_close(y, ref, atol=1e-13, rtol=1e-12)
    loss_ref = sum((y.abs() ** 2).sum() + y.real.sum() for y in refs)
    for a, b in zip(grads, torch.autograd.grad(loss_ref, (D, rho, xs[0]))):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-11)


def test_plain_block_path_checks_like_the_general_one():
    """The shorter path for an unbatched block keeps the named errors and hands other shapes on."""
    D = randn(4, 6, dtype=C128)
    solver = RegularizedSolver(D, 0.5)
    x = randn(6, 2, dtype=C128, seed=1)
    x[1, 0] = float("inf")
    with pytest.raises(InputError, match="x: contains 1 non-finite"):
        solver.solve(x)
    with pytest.raises(InputError, match="x: shape"):
        solver.solve(randn(4, 2, dtype=C128))
    with pytest.raises(InputError, match="share one dtype"):
        solver.solve(randn(6, 2, dtype=C64))
    xc = randn(6, 2, dtype=C128, seed=3)
    torch.testing.assert_close(solver.solve(xc.conj()), solver.solve(xc.conj().resolve_conj()))
