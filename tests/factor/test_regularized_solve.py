"""``difflinalg.regularized_solve``: value against an explicit solve, the seed note's closed forms
(eqs. 21 and 41), gradcheck on every input and mode, direct vs Woodbury, tall and wide D, batched
rho, one factorization per call, torch.func transforms, and bad input."""

import numpy as np
import pytest
import scipy.linalg
import torch

from difflinalg import InputError, NotPositiveDefiniteError, RegularizedSolver, regularized_solve
from difflinalg.check import gradcheck

from _helpers import randn

F32, F64, C64, C128 = torch.float32, torch.float64, torch.complex64, torch.complex128
ALL = ("vjp", "jvp", "hvp", "hvp_rev", "jvp2")
GRAMS = ("DhD", "DDh")
METHODS = ("direct", "woodbury")


def operator(D, rho, gram):
    """The explicit matrix rho I + D^H D or rho I + D D^H (reference only)."""
    G = D.mH @ D if gram == "DhD" else D @ D.mH
    rho = torch.as_tensor(rho, dtype=G.real.dtype)
    return G + rho.reshape(*rho.shape, 1, 1) * torch.eye(G.shape[-1], dtype=G.dtype)


def k_of(D, gram):
    return D.shape[-1] if gram == "DhD" else D.shape[-2]


# --- value ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [F64, C128])
@pytest.mark.parametrize("gram", GRAMS)
@pytest.mark.parametrize("shape", [(6, 3), (3, 6)], ids=["tall", "wide"])
def test_value_against_scipy(dtype, gram, shape):
    D = randn(*shape, dtype=dtype)
    x = randn(k_of(D, gram), 2, dtype=dtype, seed=1)
    ref = scipy.linalg.solve(operator(D, 0.3, gram).numpy(), x.numpy(), assume_a="pos")
    for method in ("auto", *METHODS):
        y = regularized_solve(D, x, 0.3, gram=gram, method=method)
        np.testing.assert_allclose(y.numpy(), ref, atol=1e-12, rtol=0)


@pytest.mark.parametrize("dtype", [F32, C64])
def test_value_single_precision(dtype):
    D, rho = randn(4, 16, 8, dtype=dtype), 0.5
    x = randn(4, 8, 3, dtype=dtype, seed=1)
    ref = torch.linalg.solve(operator(D.to(C128), rho, "DhD"), x.to(C128))
    for method in METHODS:
        y = regularized_solve(D, x, rho, method=method)
        assert y.dtype == dtype
        assert (y.to(C128) - ref).abs().max() <= 1e-5 * ref.abs().max()


# --- the seed note's closed forms ------------------------------------------------------------------

@pytest.mark.parametrize("method", METHODS)
def test_eq21_DhD_gradient(method):
    """grad_D L = -(D A^{-1} x)(A^{-1} g)^H - (D A^{-1} g)(A^{-1} x)^H, A = rho I + D^H D."""
    D, x, g, rho = randn(7, 4, dtype=C128), randn(4, dtype=C128, seed=1), randn(4, dtype=C128, seed=2), 0.8
    Dr = D.clone().requires_grad_()
    y = regularized_solve(Dr, x, rho, gram="DhD", method=method)
    (g.conj() * y).real.sum().backward()  # dL/dy = g in PyTorch's convention
    Ainv = torch.linalg.inv(operator(D, rho, "DhD"))
    ax, ag = (Ainv @ x)[:, None], (Ainv @ g)[:, None]
    eq21 = -(D @ ax) @ ag.mH - (D @ ag) @ ax.mH
    torch.testing.assert_close(Dr.grad, eq21, atol=1e-13, rtol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_eq41_DDh_gradient(method):
    """grad_D L = -(A^{-1} g)(D^H A^{-1} x)^H - (A^{-1} x)(D^H A^{-1} g)^H, A = rho I + D D^H."""
    D, x, g, rho = randn(4, 7, dtype=C128), randn(4, dtype=C128, seed=1), randn(4, dtype=C128, seed=2), 0.8
    Dr = D.clone().requires_grad_()
    y = regularized_solve(Dr, x, rho, gram="DDh", method=method)
    (g.conj() * y).real.sum().backward()
    Ainv = torch.linalg.inv(operator(D, rho, "DDh"))
    ax, ag = (Ainv @ x)[:, None], (Ainv @ g)[:, None]
    eq41 = -ag @ (D.mH @ ax).mH - ax @ (D.mH @ ag).mH
    torch.testing.assert_close(Dr.grad, eq41, atol=1e-13, rtol=1e-12)


def test_complex_convention_imaginary_direction():
    """The gradient predicts the change of a real loss along a purely imaginary perturbation of D
    (a missing conjugate would flip the sign of this directional derivative)."""
    D, x, rho = randn(5, 3, dtype=C128), randn(3, 2, dtype=C128, seed=1), 0.5
    U = 1j * randn(5, 3, dtype=F64, seed=2).to(C128)

    def loss(D):
        return regularized_solve(D, x, rho).abs().pow(2).sum()

    Dr = D.clone().requires_grad_()
    loss(Dr).backward()
    predicted = (Dr.grad.conj() * U).real.sum()
    h = 1e-6
    fd = (loss(D + h * U) - loss(D - h * U)) / (2 * h)
    torch.testing.assert_close(predicted, fd, atol=1e-8, rtol=1e-7)
    assert abs(float(predicted)) > 1e-3  # the direction matters


# --- gradcheck -----------------------------------------------------------------------------------

# Each gram, method and shape appears; the full product with both dtypes runs with -m slow.
COMBOS = [("DhD", "direct", (5, 3)), ("DhD", "woodbury", (3, 5)), ("DDh", "direct", (3, 5)),
          ("DDh", "woodbury", (5, 3))]
ALL_COMBOS = [(g, m, s) for g in GRAMS for m in METHODS for s in [(5, 3), (3, 5)]]


def _gradcheck_all_inputs(dtype, gram, method, shape):
    D = randn(*shape, dtype=dtype)
    x = randn(k_of(D, gram), 2, dtype=dtype, seed=1)
    rho = torch.tensor(1.3, dtype=F64)

    def fn(D, x, rho):
        return regularized_solve(D, x, rho, gram=gram, method=method)

    # max_step keeps rho + t u > 0 along the finite-difference stencil.
    assert gradcheck(fn, D, x, rho, modes=ALL, names=["D", "x", "rho"], max_step=0.05).passed


# complex128 on every combination of COMBOS, float64 on two of them; the rest with -m slow.
FAST = [(C128, *c) for c in COMBOS] + [(F64, *COMBOS[0]), (F64, *COMBOS[3])]


@pytest.mark.parametrize("dtype, gram, method, shape", FAST)
def test_gradcheck_all_inputs(dtype, gram, method, shape):
    _gradcheck_all_inputs(dtype, gram, method, shape)


@pytest.mark.slow
@pytest.mark.parametrize("dtype, gram, method, shape",
                         [(d, *c) for d in (F64, C128) for c in ALL_COMBOS if (d, *c) not in FAST])
def test_gradcheck_all_inputs_remaining_combinations(dtype, gram, method, shape):
    _gradcheck_all_inputs(dtype, gram, method, shape)


@pytest.mark.parametrize("dtype", [F64, C128])
def test_gradcheck_batched_rho_and_broadcast(dtype):
    D = randn(3, 4, 2, dtype=dtype)
    x = randn(3, 2, dtype=dtype, seed=1)  # a batch of vectors (x.shape[:-1] == D.shape[:-2])
    rho = torch.tensor([0.5, 1.0, 2.0], dtype=F64)
    assert gradcheck(regularized_solve, D, x, rho, modes=ALL, max_step=0.05).passed
    # One D for a batch of blocks and rhos (gradients reduce over the broadcast dimension).
    D1, X = randn(2, 4, dtype=dtype), randn(3, 4, 2, dtype=dtype, seed=2)
    assert gradcheck(lambda D, X, r: regularized_solve(D, X, r, method="woodbury"), D1, X, rho,
                     modes=ALL, max_step=0.05).passed


@pytest.mark.parametrize("dtype, methods", [(F64, ("direct",)), (C128, ("woodbury",)),
                                            pytest.param(F64, ("woodbury",), marks=pytest.mark.slow),
                                            pytest.param(C128, ("direct",), marks=pytest.mark.slow)])
def test_gradcheck_hard_small_rho(dtype, methods):
    # rho = 1e-3 with a rank-deficient Gram part (wide D, gram="DhD"): cond(A) ~ 1e4.
    D = randn(2, 5, dtype=dtype)
    x = randn(5, dtype=dtype, seed=1)
    rho = torch.tensor(1e-3, dtype=F64)
    for method in methods:
        assert gradcheck(lambda D, x, r: regularized_solve(D, x, r, method=method), D, x, rho,
                         modes=ALL, max_step=1e-5).passed


@pytest.mark.parametrize("dtype", [F32, C64])
def test_gradcheck_single_precision(dtype):
    D, x = randn(2, 5, 3, dtype=dtype), randn(2, 3, 2, dtype=dtype, seed=1)
    rho = torch.tensor(0.8, dtype=torch.empty((), dtype=dtype).real.dtype)
    for method in METHODS:
        assert gradcheck(lambda D, x, r: regularized_solve(D, x, r, method=method), D, x, rho,
                         modes=("vjp", "jvp"), max_step=0.05).passed


def test_gradcheck_full_jacobian_complex():
    D, x = randn(2, 2, dtype=C128), randn(2, dtype=C128, seed=1)
    rho = torch.tensor(0.7, dtype=F64)
    assert gradcheck(regularized_solve, D, x, rho, modes=("vjp", "jvp"), full=True, max_step=0.05).passed


# --- methods, shapes, rho forms -------------------------------------------------------------------

@pytest.mark.parametrize("gram", GRAMS)
@pytest.mark.parametrize("shape", [(6, 3), (3, 6)], ids=["tall", "wide"])
def test_methods_agree_value_and_gradients(gram, shape):
    D = randn(2, *shape, dtype=C128)
    x = randn(2, k_of(D, gram), 3, dtype=C128, seed=1)
    rho = torch.tensor([0.2, 0.9], dtype=F64)
    outs = []
    for method in ("auto", *METHODS):
        Dr, xr, rr = (t.clone().requires_grad_() for t in (D, x, rho))
        y = regularized_solve(Dr, xr, rr, gram=gram, method=method)
        (y.abs().pow(2).sum() + y.real.sum()).backward()
        outs.append((y.detach(), Dr.grad, xr.grad, rr.grad))
    for other in outs[1:]:
        for a, b in zip(outs[0], other):
            torch.testing.assert_close(a, b, atol=1e-11, rtol=1e-10)


def test_vector_and_block_recognition():
    D = randn(4, 6, 3)
    # Batch of vectors: x.shape[:-1] == D.shape[:-2].
    xv = randn(4, 3, seed=1)
    y = regularized_solve(D, xv, 0.5)
    assert y.shape == (4, 3)
    torch.testing.assert_close(y, torch.linalg.solve(operator(D, 0.5, "DhD"), xv))
    # One unbatched vector.
    assert regularized_solve(D[0], xv[0], 0.5).shape == (3,)
    # A block (3, 4) shared by the batch of D (x.ndim == D.ndim - 1 but x.shape[:-1] != D.shape[:-2]).
    xb = randn(3, 4, seed=2)
    yb = regularized_solve(D, xb, 0.5)
    assert yb.shape == (4, 3, 4)
    torch.testing.assert_close(yb, torch.linalg.solve(operator(D, 0.5, "DhD"), xb.expand(4, 3, 4)))


def test_rho_forms_and_gradient_shapes():
    D, x = randn(2, 5, 3, dtype=C128), randn(2, 3, 2, dtype=C128, seed=1)
    y_float = regularized_solve(D, x, 0.4)
    r0 = torch.tensor(0.4, dtype=F64, requires_grad=True)
    y_0d = regularized_solve(D, x, r0)
    rb = torch.tensor([0.4, 0.4], dtype=F64, requires_grad=True)
    y_b = regularized_solve(D, x, rb)
    torch.testing.assert_close(y_float, y_0d.detach())
    torch.testing.assert_close(y_float, y_b.detach())
    y_0d.abs().pow(2).sum().backward()
    y_b.abs().pow(2).sum().backward()
    assert r0.grad.shape == () and rb.grad.shape == (2,)
    torch.testing.assert_close(r0.grad, rb.grad.sum())
    # Closed form: dL/drho = -2 Re <A^{-1} y, y> for L = |y|^2.
    A = operator(D, 0.4, "DhD")
    z = torch.linalg.solve(A, 2 * y_float)
    torch.testing.assert_close(rb.grad, -(z.conj() * y_float).real.sum((-2, -1)))


def test_batched_rho_matches_separate_solves():
    D, x = randn(3, 4, 6, dtype=C128), randn(3, 6, dtype=C128, seed=1)
    rho = torch.tensor([1e-2, 1.0, 10.0], dtype=F64)
    y = regularized_solve(D, x, rho)
    for i in range(3):  # reference only: separate calls
        torch.testing.assert_close(y[i], regularized_solve(D[i], x[i], float(rho[i])))


def test_factor_computed_once(monkeypatch):
    """One Cholesky factorization per call, none in backward, JVP or double backward."""
    calls = []
    orig_ex, orig_chol = torch.linalg.cholesky_ex, torch.linalg.cholesky
    monkeypatch.setattr(torch.linalg, "cholesky_ex", lambda *a, **k: calls.append(1) or orig_ex(*a, **k))
    monkeypatch.setattr(torch.linalg, "cholesky", lambda *a, **k: calls.append(1) or orig_chol(*a, **k))
    D = randn(2, 4, 7, dtype=C128).requires_grad_()
    x = randn(2, 7, 2, dtype=C128, seed=1).requires_grad_()
    rho = torch.tensor(0.3, dtype=F64, requires_grad=True)
    y = regularized_solve(D, x, rho)
    assert len(calls) == 1
    g = torch.autograd.grad(y.abs().pow(2).sum(), (D, x, rho), create_graph=True)
    torch.autograd.grad(sum(t.abs().pow(2).sum() for t in g), (D, x, rho))
    torch.func.jvp(lambda D: regularized_solve(D, x.detach(), 0.3), (D.detach(),), (torch.ones_like(D),))
    assert len(calls) == 2  # the second factorization is the jvp call's own forward


# --- torch.func -----------------------------------------------------------------------------------

def test_vmap_value_and_grad():
    D, x = randn(4, 5, 3, dtype=C128), randn(4, 3, dtype=C128, seed=1)
    rho = torch.rand(4, dtype=F64, generator=torch.Generator().manual_seed(2)) + 0.1
    y_v = torch.func.vmap(regularized_solve)(D, x, rho)
    torch.testing.assert_close(y_v, regularized_solve(D, x, rho), atol=1e-14, rtol=0)

    def loss(D, x, r):
        return regularized_solve(D, x, r, method="woodbury").abs().pow(2).sum()

    g_v = torch.func.vmap(torch.func.grad(loss, argnums=(0, 1, 2)))(D, x, rho)
    Dr, xr, rr = (t.clone().requires_grad_() for t in (D, x, rho))
    loss(Dr, xr, rr).backward()
    for a, b in zip(g_v, (Dr.grad, xr.grad, rr.grad)):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


@pytest.mark.parametrize("method", METHODS)
def test_hessians_agree(method):
    """Forward-over-reverse (jvp rule), reverse-over-reverse and reverse-over-forward agree."""
    D, x = randn(3, 4), randn(4, 2, seed=1)

    def loss(p):
        Dp, xp, r = p[:12].reshape(3, 4), p[12:20].reshape(4, 2), p[20]
        return regularized_solve(Dp, xp, r, method=method).pow(2).sum()

    p = torch.cat([D.reshape(-1), x.reshape(-1), torch.tensor([0.6], dtype=F64)])
    H_rr = torch.func.jacrev(torch.func.jacrev(loss))(p)
    torch.testing.assert_close(torch.func.hessian(loss)(p), H_rr, atol=1e-11, rtol=1e-10)
    torch.testing.assert_close(torch.func.jacrev(torch.func.jacfwd(loss))(p), H_rr, atol=1e-11, rtol=1e-10)


def test_lazily_conjugated_inputs():
    """Conj-bit views of D and x give the same values and derivatives of every order."""
    D, x = randn(4, 3, dtype=C128), randn(3, 2, dtype=C128, seed=1)
    rho = torch.tensor(0.9, dtype=F64)
    torch.testing.assert_close(regularized_solve(D.conj(), x.conj(), rho),
                               regularized_solve(D.conj().resolve_conj(), x.conj().resolve_conj(), rho))
    # The failure mode was in forward mode over conj views: first and second forward order suffice.
    assert gradcheck(lambda D, x, r: regularized_solve(D.conj(), x.conj(), r), D, x, rho,
                     modes=("vjp", "jvp", "jvp2"), max_step=0.05).passed


# --- bad input ------------------------------------------------------------------------------------

def test_bad_rho():
    D, x = randn(4, 3), randn(3, seed=1)
    for bad in (0.0, -1.0, torch.tensor([0.5, -0.1], dtype=F64)):
        with pytest.raises(InputError, match="rho: must be positive"):
            regularized_solve(D, x, bad)
    with pytest.raises(InputError, match="rho: expected a positive real"):
        regularized_solve(D, x, 1 + 1j)
    with pytest.raises(InputError, match="rho: expected a positive real"):
        regularized_solve(D, x, torch.tensor(1.0 + 0j, dtype=C128))
    with pytest.raises(InputError, match="rho: dtype float32 does not match"):
        regularized_solve(D, x, torch.tensor(1.0, dtype=F32))
    with pytest.raises(InputError, match="rho: dtype int64"):
        regularized_solve(D, x, torch.tensor(1))
    with pytest.raises(InputError, match="rho: contains 1 non-finite"):
        regularized_solve(D, x, float("inf"))
    with pytest.raises(InputError, match="rho: expected a positive real scalar or a real tensor"):
        regularized_solve(D, x, "1.0")
    # rho's batch must broadcast with D's and x's.
    with pytest.raises(InputError, match="do not broadcast"):
        regularized_solve(randn(2, 4, 3), randn(2, 3), torch.ones(3, dtype=F64))


def test_python_number_rho_is_checked_inside_torch_func():
    """A Python-number rho is checked as a number: inside torch.func (grad, jacfwd, the solver too)
    a non-positive one raises instead of a NaN result (its tensor there comes out wrapped, where a
    data-dependent check cannot raise)."""
    D, x = randn(5, 4), randn(4, seed=1)
    calls = (lambda rho: torch.func.grad(lambda d: regularized_solve(d, x, rho).sum())(D),
             lambda rho: torch.func.jacfwd(lambda d: regularized_solve(d, x, rho).sum())(D),
             lambda rho: torch.func.grad(lambda d: RegularizedSolver(d, rho).solve(x).sum())(D))
    for call in calls:
        for bad in (-0.5, 0, 0.0):
            with pytest.raises(InputError, match="rho: must be positive"):
                call(bad)
        assert torch.isfinite(call(0.5)).all()


def test_bad_shapes_and_dtypes():
    D = randn(4, 3)
    with pytest.raises(InputError, match=r"x: shape \(4,\) does not match D of shape \(4, 3\).*gram='DDh'"):
        regularized_solve(D, randn(4), 1.0)  # x sized for D D^H
    with pytest.raises(InputError, match="x: shape"):
        regularized_solve(D, randn(3), 1.0, gram="DDh")
    with pytest.raises(InputError, match="read as a block"):
        regularized_solve(randn(2, 4, 3), randn(5, 3), 1.0)
    with pytest.raises(InputError, match="x: expected a vector"):
        regularized_solve(D, torch.tensor(1.0, dtype=F64), 1.0)
    with pytest.raises(InputError, match="D: expected a matrix"):
        regularized_solve(randn(3), randn(3), 1.0)
    with pytest.raises(InputError, match="share one dtype"):
        regularized_solve(D, randn(3, dtype=C128), 1.0)
    with pytest.raises(InputError, match="gram"):
        regularized_solve(D, randn(3), 1.0, gram="AtA")
    with pytest.raises(InputError, match="method"):
        regularized_solve(D, randn(3), 1.0, method="lu")


def test_non_finite():
    D, x = randn(4, 3), randn(3, seed=1)
    Dn, xn = D.clone(), x.clone()
    Dn[0, 0] = float("nan")
    xn[1] = float("inf")
    with pytest.raises(InputError, match="D: contains 1 non-finite"):
        regularized_solve(Dn, x, 1.0)
    with pytest.raises(InputError, match="x: contains 1 non-finite"):
        regularized_solve(D, xn, 1.0)


def test_not_numerically_positive_definite():
    # float32: rho = 1e-6 vanishes next to |D|^2 = 2e8 and the Gram part is singular.
    D = torch.full((2, 2), 1e4, dtype=F32)
    with pytest.raises(NotPositiveDefiniteError, match="rho: rho I \\+ D\\^H D is not numerically"):
        regularized_solve(D, torch.ones(2, dtype=F32), 1e-6, method="direct")


# --- single precision, views, empty shapes, meta -----------------------------------------------------

def _grads(D, x, rho, gram, W, solver=False):
    D = D.clone().requires_grad_()
    x = x.clone().requires_grad_()
    # The solver's Woodbury forms apply the precomputed V = F^{-1} D (one product per solve): the
    # same error bound is asserted for it.
    y = RegularizedSolver(D, rho, gram=gram).solve(x) if solver else regularized_solve(D, x, rho, gram=gram)
    (W.to(D.dtype).conj() * y).real.sum().backward()
    return D.grad, x.grad


@pytest.mark.parametrize("shape,gram", [((8, 16), "DhD"), ((16, 8), "DDh")])
@pytest.mark.parametrize("scale,rho", [(10.0, 1e-3), (10.0, 1e-4), (1.0, 1e-5)])
def test_single_precision_warns_when_ill_conditioned(shape, gram, scale, rho):
    """Condition ~3e5..3e7: the complex64 gradient in D is off by 0.03..3 (measured): warn."""
    import difflinalg

    D = scale * randn(*shape, dtype=C128)
    x = randn(k_of(D, gram), dtype=C128, seed=1)
    with pytest.warns(difflinalg.PrecisionWarning, match="regularized_solve.*complex64.*double precision"):
        regularized_solve(D.to(C64), x.to(C64), rho, gram=gram)


@pytest.mark.parametrize("solver", [False, True], ids=["one-shot", "solver"])
@pytest.mark.parametrize("dtype", [F32, C64])
@pytest.mark.parametrize("shape,gram,rho", [((8, 16), "DhD", 0.1), ((16, 8), "DDh", 0.01),
                                             ((12, 12), "DhD", 1e-3), ((16, 8), "DhD", 1e-4),
                                             ((8, 16), "DhD", 1e-4), ((16, 8), "DDh", 1e-4)])
def test_single_precision_quiet_and_within_bound(dtype, shape, gram, rho, solver):
    """Below the threshold: no warning, and the relative gradient error is at most 4 kappa eps
    with kappa the rule's own estimate (documented 4 kappa eps; measured ratios up to 1.8)."""
    import warnings

    import difflinalg
    from difflinalg.factor._cholesky import factor_condition
    from difflinalg._utils import real_dtype
    from difflinalg.factor._regularized_gram import gram_factor

    wide = C128 if dtype.is_complex else F64
    D = randn(*shape, dtype=wide) / shape[1] ** 0.5
    x = randn(k_of(D, gram), 2, dtype=wide, seed=1)
    W = randn(k_of(D, gram), 2, dtype=wide, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", difflinalg.PrecisionWarning)
        g32 = _grads(D.to(dtype), x.to(dtype), rho, gram, W, solver)
    g64 = _grads(D, x, rho, gram, W)
    m, n = shape
    factored = "DDh" if m < n else ("DhD" if n < m else gram)
    r = torch.tensor(rho, dtype=F64).reshape(1, 1)
    r = r.to(real_dtype(dtype))  # the estimate as the rule computes it, in single precision
    kappa = float(factor_condition(gram_factor(D.to(dtype), r, factored), None if factored == gram else r))
    for a, b in zip(g32, g64):
        err = float(torch.linalg.norm(a.to(wide) - b) / torch.linalg.norm(b))
        assert err <= 4 * kappa * torch.finfo(dtype).eps, (err, kappa)


def test_conj_and_neg_views():
    D, x = randn(5, 3, dtype=C128), randn(3, dtype=C128, seed=1)
    ref = regularized_solve(D.conj().resolve_conj(), x.conj().resolve_conj(), 0.5)
    torch.testing.assert_close(regularized_solve(D.conj(), x.conj(), 0.5), ref)
    Dn = (1j * randn(5, 3, dtype=C128, seed=2)).conj().imag  # a neg view
    assert Dn.is_neg()
    torch.testing.assert_close(regularized_solve(Dn, x.real, 0.5), regularized_solve(Dn.clone(), x.real, 0.5))
    assert gradcheck(lambda D, x: regularized_solve(D.conj(), x.conj(), 0.5), D, x, modes=("vjp", "jvp")).passed


@pytest.mark.parametrize("gram", GRAMS)
@pytest.mark.parametrize("Dshape,xshape", [((0, 4, 3), None), ((4, 0), None), ((0, 3), None), ((4, 3), 0)])
def test_empty_shapes_match_torch(gram, Dshape, xshape):
    """Empty batches, m = 0, n = 0 and zero right-hand sides give the shape torch.linalg.solve gives
    on the explicit operator, and zero gradients of that shape."""
    D = torch.randn(*Dshape, dtype=F64, requires_grad=True)
    k = k_of(D, gram)
    x = torch.randn(*Dshape[:-2], k, *(() if xshape is None else (xshape,)), dtype=F64, requires_grad=True)
    y = regularized_solve(D, x, 0.5, gram=gram)
    ref = torch.linalg.solve(operator(D.detach(), 0.5, gram), x.detach())
    assert y.shape == ref.shape
    torch.testing.assert_close(y, ref)
    gD, gx = torch.autograd.grad(y.sum(), (D, x), materialize_grads=True)
    assert gD.shape == D.shape and gx.shape == x.shape


@pytest.mark.parametrize("which", ["D", "x", "rho"])
def test_meta_tensor_named_error(which):
    args = {"D": torch.randn(4, 3), "x": torch.randn(3), "rho": torch.tensor(0.5)}
    args[which] = torch.empty_like(args[which], device="meta")
    with pytest.raises(InputError, match=f"{which}: meta tensors"):
        regularized_solve(args["D"], args["x"], args["rho"])


def test_single_precision_woodbury_cancellation_warns():
    """A well-conditioned operator (16 x 8 D, rho I + D^H D with condition ~6) through the forced
    Woodbury form: its subtraction cancels to the size of rho (measured gradient error 3e-2 in
    complex64 at rho = 1e-5); the estimate max ||L_i||^2 / rho sees it, the operator's condition
    would not."""
    import difflinalg

    D = randn(16, 8, dtype=C128) / 8 ** 0.5
    x = randn(8, dtype=C128, seed=1)
    assert float(torch.linalg.cond(operator(D, 1e-5, "DhD"))) < 100
    with pytest.warns(difflinalg.PrecisionWarning, match="regularized_solve"):
        regularized_solve(D.to(C64), x.to(C64), 1e-5, method="woodbury")


@pytest.mark.parametrize("dtype", [F32, C64])
def test_single_precision_square_gram_small_eigenvalue_warns(dtype):
    """Direct form, square D with singular values down to 10^-3.5 and rho = 1e-7: condition 5e6,
    measured float32 gradient error 4.5e-2. The diagonal bound alone reads 5e4 (quiet: a small
    eigenvalue hides from the diagonal); the inverse iteration in the estimate reads 3.6e5 and
    the rule warns."""
    import difflinalg

    wide = C128 if dtype.is_complex else F64
    U, _ = torch.linalg.qr(randn(32, 32, dtype=wide, seed=3))
    V, _ = torch.linalg.qr(randn(32, 32, dtype=wide, seed=4))
    D = (U * torch.logspace(0, -3.5, 32, dtype=F64).to(wide)) @ V.mH
    x = randn(32, dtype=wide, seed=5)
    assert float(torch.linalg.cond(operator(D, 1e-7, "DhD"))) > 1e6
    with pytest.warns(difflinalg.PrecisionWarning, match="regularized_solve"):
        regularized_solve(D.to(dtype), x.to(dtype), 1e-7, method="direct")


def test_failed_factor_under_vmap_is_nan():
    """The eager checks (rho > 0, rho I + Gram positive definite) cannot raise under vmap: a
    sample that fails them is NaN, with a TransformCheckWarning, never a finite wrong solve."""
    import warnings

    from difflinalg import TransformCheckWarning

    D = torch.tensor([[0.5, 0.1], [0.2, 0.3]], dtype=torch.float64)
    x = torch.ones(2, dtype=torch.float64)
    rhos = torch.tensor([-1.0, 1.0], dtype=torch.float64)
    with pytest.raises(InputError, match="rho"):
        regularized_solve(D, x, rhos[0], method="direct")
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always", TransformCheckWarning)
        y = torch.func.vmap(lambda r: regularized_solve(D, x, r, method="direct"))(rhos)
    assert torch.isnan(y[0]).all()
    assert torch.allclose(y[1], regularized_solve(D, x, rhos[1], method="direct"))
