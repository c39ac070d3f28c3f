"""``difflinalg.cholesky``: derivatives in every mode (real and complex, batched, upper, hard
points), torch.func transforms, the value and gradient against torch.linalg.cholesky, and errors."""

import pytest
import scipy.linalg
import torch

from difflinalg import InputError, NotPositiveDefiniteError, cholesky
from difflinalg.check import derivative, gradcheck

from _helpers import randn

F64, C128 = torch.float64, torch.complex128
ALL = ("vjp", "jvp", "hvp", "hvp_rev")


def spd(n, batch=(), dtype=F64, seed=0, cond=None):
    X = randn(*batch, n, n, dtype=dtype, seed=seed)
    if cond is None:
        return X @ X.mH + n * torch.eye(n, dtype=dtype)
    Q, _ = torch.linalg.qr(X)
    w = torch.logspace(0, -torch.log10(torch.tensor(cond)).item(), n, dtype=F64).to(dtype)
    return Q @ torch.diag_embed(w) @ Q.mH


@pytest.mark.parametrize("dtype", [F64, C128])
@pytest.mark.parametrize("batch", [(), (2, 3)], ids=["single", "batched"])
def test_gradcheck_all_modes(dtype, batch):
    A = spd(3, batch, dtype)
    assert gradcheck(cholesky, A, modes=ALL, names=["A"]).passed
    assert gradcheck(lambda A: cholesky(A, upper=True), A, modes=ALL).passed


@pytest.mark.parametrize("dtype", [F64, C128])
def test_gradcheck_hard_points(dtype):
    # Condition number 1e6: the step must keep A + t U positive definite (smallest eigenvalue 1e-6).
    A = spd(4, dtype=dtype, cond=1e6)
    rep = gradcheck(cholesky, A, modes=ALL, max_step=1e-8)
    assert rep.passed
    # Scales spread over 8 orders of magnitude (well conditioned after diagonal scaling).
    d = torch.logspace(-4, 4, 4, dtype=F64).to(dtype)
    B = d[:, None] * spd(4, dtype=dtype, seed=1) * d[None, :]
    assert gradcheck(cholesky, B, modes=ALL, max_step=1e-9).passed
    # 1 x 1: L = sqrt(a).
    assert gradcheck(cholesky, torch.tensor([[2.5]], dtype=dtype), modes=ALL).passed


def test_gradcheck_full_jacobian():
    assert gradcheck(cholesky, spd(2, dtype=C128), modes=("vjp", "jvp"), full=True).passed


@pytest.mark.parametrize("dtype", [F64, C128])
def test_value_against_torch_and_scipy(dtype):
    A = spd(4, (3,), dtype)
    L = cholesky(A)
    torch.testing.assert_close(L, torch.linalg.cholesky(A), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(cholesky(A, upper=True), torch.linalg.cholesky(A, upper=True), rtol=1e-12, atol=1e-12)
    ref = torch.from_numpy(scipy.linalg.cholesky(A[1].numpy(), lower=True))
    torch.testing.assert_close(L[1], ref, rtol=1e-12, atol=1e-12)
    diag = L.diagonal(dim1=-2, dim2=-1)
    assert torch.all(diag.real > 0) and (not dtype.is_complex or torch.all(diag.imag == 0))
    torch.testing.assert_close(L @ L.mH, A, rtol=1e-12, atol=1e-12)


def test_non_hermitian_input_uses_the_hermitian_part():
    A = spd(3, dtype=C128)
    K = randn(3, 3, dtype=C128, seed=5)
    skew = 0.1 * (K - K.mH)
    torch.testing.assert_close(cholesky(A + skew), torch.linalg.cholesky(A), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [F64, C128])
@pytest.mark.parametrize("upper", [False, True])
def test_gradient_and_jvp_match_torch_on_hermitian_input(dtype, upper):
    A = spd(4, (2,), dtype)
    W = randn(2, 4, 4, dtype=dtype, seed=3)

    def loss(fn, A):
        return (W.conj() * fn(A, upper=upper)).real.sum()

    grads = []
    for fn in (cholesky, torch.linalg.cholesky):
        X = A.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(loss(fn, X), X)
        grads.append(g)
    ours, theirs = grads
    torch.testing.assert_close(ours, ours.mH, rtol=0, atol=0)  # a Hermitian gradient
    # torch.linalg.cholesky's complex gradient is not Hermitian (torch 2.13); both agree on
    # Hermitian perturbations, i.e. ours is the Hermitian part of torch's.
    torch.testing.assert_close(ours, 0.5 * (theirs + theirs.mH), rtol=1e-10, atol=1e-12)
    dA = randn(2, 4, 4, dtype=dtype, seed=4)
    dA = dA + dA.mH
    _, ours = torch.func.jvp(lambda A: cholesky(A, upper=upper), (A,), (dA,))
    _, theirs = torch.func.jvp(lambda A: torch.linalg.cholesky(A, upper=upper), (A,), (dA,))
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [F64, C128])
def test_vmap_against_a_loop(dtype):
    A = spd(3, (4,), dtype)
    W = randn(4, 3, 3, dtype=dtype, seed=2)
    torch.testing.assert_close(torch.func.vmap(cholesky)(A), torch.stack([cholesky(a) for a in A]))

    def loss(A, W):
        return (W.conj() * cholesky(A)).real.sum()

    g_vmap = torch.func.vmap(torch.func.grad(loss))(A, W)
    g_loop = torch.stack([torch.func.grad(loss)(a, w) for a, w in zip(A, W)])
    torch.testing.assert_close(g_vmap, g_loop, rtol=1e-12, atol=1e-12)
    # Forward mode under vmap too.
    dA = randn(4, 3, 3, dtype=dtype, seed=3)
    _, t_vmap = torch.func.vmap(lambda a, d: torch.func.jvp(cholesky, (a,), (d,)))(A, dA)
    t_loop = torch.stack([torch.func.jvp(cholesky, (a,), (d,))[1] for a, d in zip(A, dA)])
    torch.testing.assert_close(t_vmap, t_loop, rtol=1e-12, atol=1e-12)


def test_hessian_against_finite_differences():
    """torch.func.hessian (forward over reverse) of a scalar loss, column by column against the
    finite-difference derivative of the gradient."""
    A = spd(3)
    W = randn(3, 3, seed=6)

    def loss(A):
        L = cholesky(A)
        return (W * L).sum() + (L.diagonal().log()).sum()

    H = torch.func.hessian(loss)(A).reshape(9, 9)
    grad = torch.func.grad(loss)
    for k in range(9):
        e = torch.zeros(9, dtype=F64)
        e[k] = 1.0
        col = derivative(grad, A, direction=e.reshape(3, 3))
        err = (H[:, k] - col.value.reshape(9)).abs()
        assert torch.all(err <= 1e-9 * H.abs().max() + 4 * col.error.reshape(9)), (k, err.max())
    torch.testing.assert_close(H, H.T, rtol=1e-10, atol=1e-12)


def test_not_positive_definite_names_argument_and_minor():
    A = torch.diag(torch.tensor([1.0, -1.0, 2.0], dtype=F64))
    with pytest.raises(NotPositiveDefiniteError, match=r"A: matrix is not Hermitian positive definite: "
                       r"the leading minor of order 2 is not positive; regularize it") as exc:
        cholesky(A)
    assert isinstance(exc.value, InputError) and isinstance(exc.value, ValueError)
    with pytest.raises(NotPositiveDefiniteError, match="minor of order 1"):
        cholesky(-torch.eye(2, dtype=C128))


def test_not_positive_definite_in_a_batch_names_the_batch_index():
    A = torch.eye(3, dtype=F64).repeat(2, 3, 1, 1)
    A[1, 2, 1, 1] = -1.0
    with pytest.raises(NotPositiveDefiniteError, match=r"batch index \(1, 2\)"):
        cholesky(A)


def test_not_positive_definite_in_a_batch_names_the_minor():
    A = torch.eye(3, dtype=F64).repeat(4, 1, 1)
    A[3, 0, 0] = -1.0
    with pytest.raises(NotPositiveDefiniteError, match=r"batch index \(3,\).*leading minor of order 1 "):
        cholesky(A)


@pytest.mark.parametrize(
    "A, match",
    [
        (torch.ones(3, 4, dtype=F64), r"A: expected a square matrix \(\.\.\., n, n\), got shape \(3, 4\)"),
        (torch.ones(3, dtype=F64), r"A: expected a matrix of shape \(\.\.\., m, n\), got shape \(3,\)"),
        (torch.eye(3, dtype=torch.int64), "A: dtype int64 is not supported; expected one of float32"),
        (torch.tensor([[1.0, float("nan")], [0.0, 1.0]], dtype=F64), r"A: contains 1 non-finite value\(s\)"),
        (torch.tensor([[float("inf"), 0.0], [0.0, 1.0]], dtype=C128), r"A: contains 1 non-finite value\(s\)"),
    ],
)
def test_bad_input(A, match):
    with pytest.raises(InputError, match=match):
        cholesky(A)


# --- single precision, views, empty shapes, meta -----------------------------------------------------

def _grad(A, W):
    Ag = A.clone().requires_grad_()
    (W.to(A.dtype) * cholesky(Ag)).real.sum().backward()
    return Ag.grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.complex64])
@pytest.mark.parametrize("cond", [1e8, 1e10])
def test_single_precision_loud_when_ill_conditioned(dtype, cond):
    """Condition 1e8, 1e10 (the issue measured 0.08-0.86 relative gradient error in float32 at
    1e8..1e10): the rule warns (or, when rounding makes the matrix indefinite, raises), and the
    gradient it returns when it warns is indeed off by more than PRECISION_TOL's promise."""
    import warnings

    import difflinalg

    wide = torch.complex128 if dtype.is_complex else F64
    A = spd(6, dtype=wide, cond=cond, seed=2)
    W = randn(6, 6, dtype=wide, seed=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            g32 = _grad(A.to(dtype), W)
        except NotPositiveDefiniteError:
            return  # loud
    assert any(issubclass(w.category, difflinalg.PrecisionWarning) and "float64" in str(w.message)
               for w in caught)
    if cond >= 1e8:
        g64 = _grad(A, W)
        assert float(torch.linalg.norm(g32.to(wide) - g64) / torch.linalg.norm(g64)) > 1e-3


@pytest.mark.parametrize("dtype", [torch.float32, torch.complex64])
@pytest.mark.parametrize("cond", [1e1, 1e3, 1e4])
def test_single_precision_quiet_and_within_bound(dtype, cond):
    """Well conditioned: no warning, and the relative gradient error is below 4 kappa eps, with
    kappa the rule's own estimate (documented bound 4 kappa eps; measured ratios up to 1.0)."""
    import warnings

    import difflinalg
    from difflinalg.factor._cholesky import factor_condition

    wide = torch.complex128 if dtype.is_complex else F64
    A = spd(8, (2,), dtype=wide, cond=cond, seed=3)
    W = randn(8, 8, dtype=wide, seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", difflinalg.PrecisionWarning)
        g32 = _grad(A.to(dtype), W)
    g64 = _grad(A, W)
    kappa = float(factor_condition(torch.linalg.cholesky(A.to(dtype))).max())  # as the rule computes it
    err = float(torch.linalg.norm(g32.to(wide) - g64) / torch.linalg.norm(g64))
    assert err <= 4 * kappa * torch.finfo(dtype).eps, (err, kappa)


def test_double_precision_scaled_matrix_stays_quiet():
    """A badly scaled but well-conditioned matrix (diagonal scales over 8 decades): Cholesky is
    scaling-invariant, and so is the estimate: no warning, even though cond(A) ~ 1e16."""
    import warnings

    import difflinalg

    d = torch.logspace(-4, 4, 4, dtype=F64)
    B = d[:, None] * spd(4, seed=1) * d[None, :]
    with warnings.catch_warnings():
        warnings.simplefilter("error", difflinalg.PrecisionWarning)
        cholesky(B)


@pytest.mark.parametrize("upper", [False, True])
def test_conj_neg_views_and_upper_output(upper):
    A = spd(4, dtype=C128)
    for V in (A.conj(), A.mH, A.mT):
        torch.testing.assert_close(cholesky(V, upper=upper), cholesky(V.resolve_conj(), upper=upper))
    N = (1j * spd(4)).conj().imag  # a neg view of -spd
    assert N.is_neg()
    torch.testing.assert_close(cholesky(-N, upper=upper), cholesky(spd(4), upper=upper))
    U = cholesky(A, upper=upper)
    assert not U.is_conj()  # no conj view: its .imag would be a neg view (no vmap rule)
    g = torch.func.vmap(torch.func.grad(lambda X: cholesky(X, upper=upper).imag.sum()))(A.expand(2, 4, 4))
    assert torch.isfinite(g).all()


@pytest.mark.parametrize("shape", [(0, 3, 3), (2, 0, 0), (0, 0)])
def test_empty_shapes_match_torch(shape):
    A = torch.randn(*shape, dtype=F64, requires_grad=True)
    L = cholesky(A)
    assert L.shape == torch.linalg.cholesky(A.detach()).shape
    (g,) = torch.autograd.grad(L.sum(), A, materialize_grads=True)
    assert g.shape == A.shape


def test_meta_tensor_named_error():
    with pytest.raises(InputError, match="A: meta tensors"):
        cholesky(torch.empty(3, 3, device="meta"))


def test_not_positive_definite_under_vmap_is_nan_not_a_partial_factor():
    """Inside torch.func the check cannot raise: the failed matrix's factor is NaN (and a
    TransformCheckWarning says so), never cholesky_ex's finite partial factor."""
    import warnings

    from difflinalg import TransformCheckWarning, cholesky

    A = torch.stack([torch.tensor([[1.0, 2.0], [2.0, 1.0]], dtype=torch.float64),
                     torch.tensor([[2.0, 1.0], [1.0, 2.0]], dtype=torch.float64)])
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always", TransformCheckWarning)
        L = torch.func.vmap(cholesky)(A)
    assert torch.isnan(L[0]).all()
    assert torch.allclose(L[1], torch.linalg.cholesky(A[1]))
