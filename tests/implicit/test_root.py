"""root / custom_root: closed forms (ridge, least squares, complex non-holomorphic), all modes of
gradcheck, torch.func transforms, batching, pytrees, and the residual diagnostics."""

import warnings

import pytest
import torch

from difflinalg import ConvergenceError, InputError
from difflinalg.check import gradcheck
from difflinalg.implicit import ImplicitDiffWarning, custom_root, root

MODES = ("vjp", "jvp", "hvp", "hvp_rev")
SOLVES = ("dense", "gmres", "cg")


def _randn(*shape, dtype=torch.float64, gen=None):
    if dtype.is_complex:
        rdt = torch.empty((), dtype=dtype).real.dtype
        return torch.complex(torch.randn(*shape, generator=gen, dtype=rdt),
                             torch.randn(*shape, generator=gen, dtype=rdt))
    return torch.randn(*shape, generator=gen, dtype=dtype)


# ---------------------------------------------------------------- ridge regression (closed form)

def ridge_F(w, X, y, lam):
    """Normal equations of min ||X w - y||^2 / 2 + lam ||w||^2 / 2 (complex: X^H)."""
    return X.mH @ (X @ w - y) + lam * w


def ridge_closed(X, y, lam):
    n = X.shape[-1]
    return torch.linalg.solve(X.mH @ X + lam * torch.eye(n, dtype=X.dtype), (X.mH @ y[..., None])[..., 0])


def ridge_root(X, y, lam, solve="dense", **kw):
    with torch.no_grad():
        w = ridge_closed(X, y, lam)
    return root(ridge_F, w, X, y, lam, solve=solve, **kw)


@pytest.fixture
def ridge_data():
    g = torch.Generator().manual_seed(0)
    return _randn(7, 4, gen=g), _randn(7, gen=g), torch.tensor(0.8, dtype=torch.float64)


@pytest.mark.parametrize("solve", SOLVES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
def test_ridge_gradients_match_closed_form(solve, dtype):
    g = torch.Generator().manual_seed(1)
    X, y = _randn(7, 4, dtype=dtype, gen=g), _randn(7, dtype=dtype, gen=g)
    lam = torch.tensor(0.8, dtype=torch.float64)
    ins = [t.clone().requires_grad_() for t in (X, y, lam)]

    def loss(w):  # real loss, non-holomorphic in w: catches a missing conjugate
        return (w.abs() ** 3).sum() + (w.real * w.imag).sum() if dtype.is_complex else (w**3).sum()

    ga = torch.autograd.grad(loss(ridge_root(*ins, solve=solve)), ins)
    gb = torch.autograd.grad(loss(ridge_closed(*ins)), ins)
    for a, b in zip(ga, gb):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-11)
    # value unchanged
    assert torch.allclose(ridge_root(X, y, lam, solve), ridge_closed(X, y, lam))


@pytest.mark.parametrize("solve", SOLVES)
def test_ridge_gradcheck_all_modes(ridge_data, solve):
    gradcheck(lambda X, y, lam: ridge_root(X, y, lam, solve), *ridge_data, modes=MODES)


def test_ridge_complex_gradcheck_all_modes():
    g = torch.Generator().manual_seed(2)
    X, y = _randn(6, 3, dtype=torch.complex128, gen=g), _randn(6, dtype=torch.complex128, gen=g)
    lam = torch.tensor(0.5, dtype=torch.float64)
    gradcheck(lambda X, y, lam: ridge_root(X, y, lam, "gmres"), X, y, lam, modes=MODES)


@pytest.mark.parametrize("solve", ["dense", "gmres"])
def test_hessian_matches_closed_form_and_finite_differences(ridge_data, solve):
    """Forward-over-reverse Hessian through root against the closed form and against finite
    differences of the reverse-mode gradient (difflinalg.check.derivative)."""
    from difflinalg.check import derivative

    X, y, lam = ridge_data
    L_root = lambda y: (ridge_root(X, y, lam, solve) ** 3).sum()  # noqa: E731
    L_ref = lambda y: (ridge_closed(X, y, lam) ** 3).sum()  # noqa: E731
    H = torch.func.hessian(L_root)(y)
    assert torch.allclose(H, torch.func.hessian(L_ref)(y), rtol=1e-9, atol=1e-11)
    u = torch.randn(7, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    fd = derivative(lambda t: torch.func.grad(L_root)(y + t * u), 0.0)
    assert torch.allclose(H @ u, fd.value, atol=4 * float(fd.error.max()) + 1e-9)
    # double backward gives the same Hessian
    yr = y.clone().requires_grad_()
    (gy,) = torch.autograd.grad(L_root(yr), yr, create_graph=True)
    (Hu,) = torch.autograd.grad(gy, yr, u)
    assert torch.allclose(Hu, H @ u, rtol=1e-10, atol=1e-12)


def test_least_squares_tall_system():
    """Least squares min ||A x - b||: root of the normal equations vs the pseudo-inverse."""
    g = torch.Generator().manual_seed(3)
    A, b = _randn(9, 3, gen=g), _randn(9, gen=g)

    def ls(A, b):
        with torch.no_grad():
            x = torch.linalg.lstsq(A, b[:, None]).solution[:, 0]
        return root(lambda x, A, b: A.mT @ (A @ x - b), x, A, b)

    for f_ref in (lambda A, b: torch.linalg.pinv(A) @ b,):
        J1 = torch.func.jacrev(ls, argnums=(0, 1))(A, b)
        J2 = torch.func.jacrev(f_ref, argnums=(0, 1))(A, b)
        for a, c in zip(J1, J2):
            assert torch.allclose(a, c, rtol=1e-9, atol=1e-11)
    gradcheck(ls, A, b, modes=MODES)


# ---------------------------------------------------------------- complex, non-holomorphic F

def nonholo_F(x, a, c):
    return x + a * x.conj() - c


def nonholo_closed(a, c):
    # x + a conj(x) = c and its conjugate give x = (c - a conj(c)) / (1 - |a|^2)
    return (c - a * c.conj()) / (1 - (a * a.conj()).real)


@pytest.mark.parametrize("solve", ["dense", "gmres"])
def test_complex_non_holomorphic_root(solve):
    """dF/dx is only real-linear (dF = dx + a conj(dx)): a complex-linear solve would be wrong."""
    g = torch.Generator().manual_seed(4)
    a = _randn(5, dtype=torch.complex128, gen=g) * 0.4
    c = _randn(5, dtype=torch.complex128, gen=g)

    def f(a, c):
        return root(nonholo_F, nonholo_closed(a, c).detach(), a, c, solve=solve)

    ar, cr = a.clone().requires_grad_(), c.clone().requires_grad_()
    loss = lambda x: (x.real ** 2 * x.imag).sum()  # noqa: E731
    ga = torch.autograd.grad(loss(f(ar, cr)), (ar, cr))
    gb = torch.autograd.grad(loss(nonholo_closed(ar, cr)), (ar, cr))
    for u, v in zip(ga, gb):
        assert torch.allclose(u, v, rtol=1e-10, atol=1e-12)
    # jvp along a purely imaginary direction of c
    dc = 1j * torch.ones_like(c)
    _, t1 = torch.func.jvp(lambda c: f(a, c), (c,), (dc,))
    _, t2 = torch.func.jvp(lambda c: nonholo_closed(a, c), (c,), (dc,))
    assert torch.allclose(t1, t2, rtol=1e-10, atol=1e-12)
    gradcheck(f, a, c, modes=MODES)


def test_real_unknown_complex_parameter():
    # x real, parameter complex: F(x, z) = x - |z|^2 ; dx/dz in PyTorch convention is 2 z
    z = torch.tensor([0.3 + 0.4j, -1.0 + 0.2j], dtype=torch.complex128)
    g = torch.func.grad(lambda z: root(lambda x, z: x - (z * z.conj()).real,
                                       (z * z.conj()).real.detach(), z).sum())(z)
    assert torch.allclose(g, 2 * z)


# ---------------------------------------------------------------- torch.func transforms, batching

@pytest.mark.parametrize("solve", SOLVES)
def test_vmap_jacrev_jacfwd(ridge_data, solve):
    X, y, lam = ridge_data
    Xb = X + 0.1 * torch.randn(3, *X.shape, generator=torch.Generator().manual_seed(6), dtype=X.dtype)
    v = torch.func.vmap(lambda X: ridge_root(X, y, lam, solve))(Xb)
    assert torch.allclose(v, ridge_closed(Xb, y.expand(3, -1), lam))
    for jac in (torch.func.jacrev, torch.func.jacfwd):
        J1 = torch.func.vmap(jac(lambda X: ridge_root(X, y, lam, solve)))(Xb)
        # Reference per sample: torch 2.13's vmap(jacfwd(torch.linalg.solve)) is itself wrong
        # (see test_torch_vmap_jacfwd_solve_reference below).
        J2 = torch.stack([torch.func.jacrev(lambda X: ridge_closed(X, y, lam))(Xi) for Xi in Xb])
        assert torch.allclose(J1, J2, rtol=1e-9, atol=1e-11)
    # parameter batched, unknown shared: F(x, s) = s (x - c) has the root c for every s
    c = torch.tensor([1.0, -2.0], dtype=torch.float64)
    s = torch.tensor([0.5, 2.0, 3.0], dtype=torch.float64)
    out = torch.func.vmap(lambda s: root(lambda x, s: s * (x - c), c, s, solve=solve))(s)
    assert torch.allclose(out, c.expand(3, 2))


def test_torch_vmap_jacfwd_solve_reference():
    """Records why the test above uses a per-sample reference: in torch 2.13, forward-mode AD of
    torch.linalg.solve under two nested vmaps (primal batched outside, tangent inside) is wrong,
    while root's own rules are right. If this starts failing, torch fixed it: drop the loop."""
    g = torch.Generator().manual_seed(9)
    A = torch.randn(3, 4, 4, generator=g, dtype=torch.float64) + 4 * torch.eye(4, dtype=torch.float64)
    b = torch.randn(4, generator=g, dtype=torch.float64)
    J_torch = torch.func.vmap(torch.func.jacfwd(lambda A: torch.linalg.solve(A, b)))(A)
    J_loop = torch.stack([torch.func.jacfwd(lambda A: torch.linalg.solve(A, b))(Ai) for Ai in A])
    J_root = torch.func.vmap(torch.func.jacfwd(
        lambda A: root(lambda x, A: A @ x - b, torch.linalg.solve(A, b).detach(), A)))(A)
    assert torch.allclose(J_root, J_loop, rtol=1e-10, atol=1e-12)
    assert not torch.allclose(J_torch, J_loop, rtol=1e-6)


def test_vmap_of_grad_and_grad_of_vmap(ridge_data):
    X, y, lam = ridge_data
    lams = torch.tensor([0.3, 0.8, 2.0], dtype=torch.float64)
    g1 = torch.func.vmap(torch.func.grad(lambda l: ridge_root(X, y, l, "gmres").sum()))(lams)
    g2 = torch.func.vmap(torch.func.grad(lambda l: ridge_closed(X, y, l).sum()))(lams)
    assert torch.allclose(g1, g2, rtol=1e-9)
    h1 = torch.func.grad(lambda ls: torch.func.vmap(lambda l: ridge_root(X, y, l, "cg"))(ls).pow(2).sum())(lams)
    h2 = torch.func.grad(lambda ls: torch.func.vmap(lambda l: ridge_closed(X, y, l))(ls).pow(2).sum())(lams)
    assert torch.allclose(h1, h2, rtol=1e-9)


@pytest.mark.parametrize("solve", SOLVES)
def test_batch_dims(solve):
    g = torch.Generator().manual_seed(7)
    X, y = _randn(2, 3, 6, 4, gen=g), _randn(2, 3, 6, gen=g)
    lam = torch.tensor([[0.5], [1.5]], dtype=torch.float64)  # (2, 1): broadcasts over (2, 3)

    def F(w, X, y, lam):
        return (X.mT @ (X @ w[..., None] - y[..., None]))[..., 0] + lam[..., None] * w

    def ref(X, y, lam):
        return ridge_closed(X, y, lam[..., None, None])

    def f(X, y, lam):
        with torch.no_grad():
            w = ref(X, y, lam)
        return root(F, w, X, y, lam, solve=solve, batch_dims=2)

    ins = [t.clone().requires_grad_() for t in (X, y, lam)]
    ga = torch.autograd.grad((f(*ins) ** 2).sum(), ins)
    gb = torch.autograd.grad((ref(*ins) ** 2).sum(), ins)
    for a, b in zip(ga, gb):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-11)
    gradcheck(f, X[:1, :2], y[:1, :2], lam[:1], modes=MODES)


def test_pytree_unknowns_and_params_and_scalars():
    """Tuple unknowns, dict parameters, scalar (0-dim) leaves and a non-tensor parameter leaf."""

    def F(x, p, k):
        u, v = x
        return (u - p["a"] * torch.sin(v) * k, v - p["b"] ** 2)

    p = {"a": torch.tensor(0.5, dtype=torch.float64), "b": torch.tensor([1.2, -0.3], dtype=torch.float64)}

    def f(p):
        with torch.no_grad():
            v = p["b"] ** 2
            u = p["a"] * torch.sin(v) * 2.0
        return root(F, (u, v), p, 2.0)

    def ref(p):
        v = p["b"] ** 2
        return (p["a"] * torch.sin(v) * 2.0, v)

    J1 = torch.func.jacrev(f)(p)
    J2 = torch.func.jacrev(ref)(p)
    for a, b in zip(torch.utils._pytree.tree_leaves(J1), torch.utils._pytree.tree_leaves(J2)):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-14)
    gradcheck(lambda a, b: f({"a": a, "b": b}), p["a"], p["b"], modes=MODES)


def test_custom_root_decorator(ridge_data):
    X, y, lam = ridge_data
    calls = []

    @custom_root(ridge_F, solve="gmres")
    def solver(w0, X, y, lam):
        calls.append(torch.is_grad_enabled())
        w = w0
        A = X.mH @ X + lam * torch.eye(X.shape[-1], dtype=X.dtype)
        for _ in range(500):  # a plain iterative solver (Richardson), never differentiated
            w = w - 0.05 * (A @ w - X.mH @ y)
        return w

    w0 = torch.zeros(4, dtype=torch.float64)
    Xr = X.clone().requires_grad_()
    w = solver(w0, Xr, y, lam)
    assert calls == [False]
    (g1,) = torch.autograd.grad(w.sum(), Xr)
    (g2,) = torch.autograd.grad(ridge_closed(Xr, y, lam).sum(), Xr)
    assert torch.allclose(g1, g2, rtol=1e-7)
    _, t = torch.func.jvp(lambda l: solver(w0, X, y, l), (lam,), (torch.ones_like(lam),))
    _, t2 = torch.func.jvp(lambda l: ridge_closed(X, y, l), (lam,), (torch.ones_like(lam),))
    assert torch.allclose(t, t2, rtol=1e-7)


def test_closure_tensor_is_a_constant(ridge_data):
    # Documented: tensors F captures are constants; only params are differentiated.
    X, y, lam = ridge_data
    Xr, yr = X.clone().requires_grad_(), y.clone().requires_grad_()
    w = root(lambda w, y: ridge_F(w, Xr, y, lam), ridge_closed(X, y, lam), yr)
    gX, gy = torch.autograd.grad(w.sum(), (Xr, yr), allow_unused=True)
    assert gX is None and gy is not None


# ---------------------------------------------------------------- diagnostics and bad input

def test_inaccurate_root_raises_or_warns(ridge_data):
    X, y, lam = ridge_data
    w = ridge_closed(X, y, lam) + 1e-4
    with pytest.raises(ConvergenceError, match=r"root: F\(x_star, \*params\) is not zero.*relative residual"):
        root(ridge_F, w, X, y, lam)
    with pytest.warns(ImplicitDiffWarning, match="relative residual"):
        root(ridge_F, w, X, y, lam, on_failure="warn")
    out = root(ridge_F, w, X, y, lam, residual_tol=1e-2)
    assert torch.equal(out, w)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        root(ridge_F, w, X, y, lam, on_failure="ignore")


def test_residual_check_names_the_batch_index():
    c = torch.zeros(3, 2, dtype=torch.float64)
    x = c.clone()
    x[1] += 1.0
    with pytest.raises(ConvergenceError, match=r"batch index \(1,\)"):
        root(lambda x, c: x - c, x, c, batch_dims=1)


def test_residual_check_under_vmap():
    c = torch.zeros(3, 2, dtype=torch.float64)
    x = c.clone()
    x[2] += 1.0
    with pytest.raises(ConvergenceError, match="relative residual"):
        torch.func.vmap(lambda x, c: root(lambda x, c: x - c, x, c))(x, c)


@pytest.mark.parametrize("solve", SOLVES)
def test_singular_jacobian_is_reported_in_backward(solve):
    # F(x, p) = x^2 - p at x = p = 0: the root is exact, but dF/dx = 0.
    p = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    x = root(lambda x, p: x**2 - p, torch.zeros(3, dtype=torch.float64), p, solve=solve)
    with pytest.raises(ConvergenceError, match="linear solve with dF/dx"):
        torch.autograd.grad(x.sum(), p)


def test_krylov_not_converged_is_reported():
    g = torch.Generator().manual_seed(8)
    A = torch.randn(30, 30, generator=g, dtype=torch.float64)
    b = torch.randn(30, generator=g, dtype=torch.float64, requires_grad=True)
    x = root(lambda x, A, b: A @ x - b, torch.linalg.solve(A, b).detach(), A, b, solve="gmres", maxiter=2)
    with pytest.raises(ConvergenceError, match=r"gmres, 2 iterations"):
        torch.autograd.grad(x.sum(), b)


def test_bad_input_errors(ridge_data):
    X, y, lam = ridge_data
    w = ridge_closed(X, y, lam)
    with pytest.raises(InputError, match=r"returned shape \(3,\) for x of shape \(4,\)"):
        root(lambda w, X: (X @ w)[:3], w, X)
    with pytest.raises(InputError, match="returned dtype float32"):
        root(lambda w, X, y, lam: ridge_F(w, X, y, lam).float(), w, X, y, lam)
    with pytest.raises(InputError, match="structure"):
        root(lambda x: (x, x), w)
    with pytest.raises(InputError, match="x_star: dtype int64 is not differentiable"):
        root(lambda x: x, torch.arange(3))
    with pytest.raises(InputError, match="solve: expected one of"):
        root(ridge_F, w, X, y, lam, solve="lu")
    with pytest.raises(InputError, match="on_failure"):
        root(ridge_F, w, X, y, lam, on_failure="maybe")
    with pytest.raises(InputError, match="tol: expected a positive number"):
        root(ridge_F, w, X, y, lam, tol=-1.0)
    with pytest.raises(InputError, match="batch shape"):
        root(lambda x: x, (torch.zeros(2, 3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)), batch_dims=1)
    with pytest.raises(InputError, match="precisions"):
        root(lambda x: x, (torch.zeros(2), torch.zeros(2, dtype=torch.float64)))
    with pytest.raises(InputError, match="callable"):
        root(3, w)


# ---------------------------------------------------------------- every derivative order and mode

def _inv_ridge(X, y, lam):
    # reference through inv: torch 2.13's linalg.solve has wrong forward-over-forward and
    # reverse-over-forward second derivatives (test_torch_solve_second_order_reference)
    return torch.linalg.inv(X.mT @ X + lam * torch.eye(X.shape[-1], dtype=X.dtype)) @ (X.mT @ y)


@pytest.mark.parametrize("solve", ["dense", "gmres"])
def test_every_composition_up_to_third_order(ridge_data, solve):
    """f(t) = loss(w*(X + t dX, y + t dy, lam + t/3)); all 2nd and 3rd order compositions of
    torch.func.jvp (J) and torch.func.grad (G) agree with the closed form."""
    X, y, lam = ridge_data
    g = torch.Generator().manual_seed(10)
    dX, dy = torch.randn(X.shape, generator=g, dtype=X.dtype), torch.randn(y.shape, generator=g, dtype=y.dtype)

    def along(f):
        return lambda t: (f(X + t * dX, y + t * dy, lam + t / 3) ** 3).sum()

    one, t0 = torch.tensor(1.0, dtype=X.dtype), torch.tensor(0.0, dtype=X.dtype)
    J = lambda f: (lambda t: torch.func.jvp(f, (t,), (one,))[1])  # noqa: E731
    G = torch.func.grad
    f1, f2 = along(lambda *a: ridge_root(*a, solve=solve)), along(_inv_ridge)
    for name in ["JJ", "JG", "GJ", "GG", "JJJ", "JJG", "JGJ", "JGG", "GJJ", "GJG", "GGJ", "GGG"]:
        a, b = f1, f2
        for c in reversed(name):
            a, b = (J(a), J(b)) if c == "J" else (G(a), G(b))
        va, vb = float(a(t0)), float(b(t0))
        assert va == pytest.approx(vb, rel=1e-9, abs=1e-12), name


def test_torch_solve_second_order_reference():
    """Records why the test above uses inv: in torch 2.13 the second derivative of
    torch.linalg.solve through forward mode (jvp of jvp, grad of jvp) is wrong, while reverse
    mode and root agree with finite differences."""
    from difflinalg.check import derivative

    g = torch.Generator().manual_seed(11)
    M = torch.randn(3, 3, generator=g, dtype=torch.float64) + 3 * torch.eye(3, dtype=torch.float64)
    U = torch.randn(3, 3, generator=g, dtype=torch.float64)
    b = torch.randn(3, generator=g, dtype=torch.float64)
    one, t0 = torch.tensor(1.0, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)
    J = lambda f: (lambda t: torch.func.jvp(f, (t,), (one,))[1])  # noqa: E731
    f_solve = lambda t: (torch.linalg.solve(M + t * U, b) ** 2).sum()  # noqa: E731
    f_root = lambda t: (root(lambda x, t: (M + t * U) @ x - b,  # noqa: E731
                             torch.linalg.solve(M, b), t) ** 2).sum()
    fd = derivative(lambda t: torch.func.grad(f_solve)(t), 0.0)
    assert float(J(J(f_root))(t0)) == pytest.approx(float(fd.value), abs=10 * float(fd.error) + 1e-9)
    assert float(J(J(f_solve))(t0)) != pytest.approx(float(fd.value), rel=1e-3)


def test_float32(ridge_data):
    X, y, lam = (t.float() for t in ridge_data)
    ins = [t.clone().requires_grad_() for t in (X, y, lam)]
    ga = torch.autograd.grad((ridge_root(*ins, solve="gmres") ** 2).sum(), ins)
    gb = torch.autograd.grad((ridge_closed(*ins) ** 2).sum(), ins)
    for a, b in zip(ga, gb):
        assert a.dtype == torch.float32
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)


def test_backward_solve_failure_can_warn():
    p = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    x = root(lambda x, p: x**2 - p, torch.zeros(2, dtype=torch.float64), p, on_failure="warn")
    with pytest.warns(ImplicitDiffWarning, match="linear solve with dF/dx"):
        torch.autograd.grad(x.sum(), p)


def test_custom_root_keyword_arguments_and_options():
    @custom_root(lambda x, a, *, power: x**power - a, solve="dense")
    def nth_root(x0, a, *, power):
        return a ** (1.0 / power)

    a = torch.tensor([2.0, 5.0], dtype=torch.float64)
    g = torch.func.jacrev(lambda a: nth_root(torch.ones(2, dtype=torch.float64), a, power=3))(a)
    assert torch.allclose(g, torch.diag(a ** (-2.0 / 3) / 3))
    with pytest.raises(InputError, match="solve: expected one of"):
        custom_root(lambda x: x, solve="qr")
