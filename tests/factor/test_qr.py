"""``difflinalg.qr`` / ``difflinalg.lq``: derivatives in every mode and shape (real and complex,
batched), the normalization against torch.linalg.qr, complete mode (invariant losses exact, others
detected), rank deficiency, torch.func transforms, and bad input."""

import pytest
import torch

from difflinalg import GaugeError, InputError, TransformCheckWarning, lq, qr
from difflinalg.check import gradcheck

from _helpers import randn

F32, F64, C64, C128 = torch.float32, torch.float64, torch.complex64, torch.complex128
ALL = ("vjp", "jvp", "hvp", "hvp_rev", "jvp2")
SHAPES = {"tall": (5, 3), "square": (4, 4), "wide": (3, 5), "batched_tall": (2, 4, 3), "batched_wide": (2, 2, 5)}


def sgn(d):
    """Phase of d (differentiable where d != 0)."""
    return d / d.abs()


def diag(X):
    return X.diagonal(dim1=-2, dim2=-1)


def positive_real(d):
    return bool(torch.all(d.real > 0)) and (not d.is_complex() or bool(torch.all(d.imag == 0)))


# --- value ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [F32, F64, C64, C128])
@pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))
def test_value_normalized_torch_qr(dtype, shape):
    A = randn(*shape, dtype=dtype)
    tol = 1e-5 if dtype in (F32, C64) else 1e-12
    m, n = shape[-2:]
    k = min(m, n)
    for mode in ("reduced", "complete"):
        Q, R = qr(A, mode=mode)
        Qt, Rt = torch.linalg.qr(A, mode=mode)
        assert Q.shape == Qt.shape and R.shape == Rt.shape
        d = diag(R)[..., :k]
        assert positive_real(d)
        assert torch.equal(R, R.triu())
        torch.testing.assert_close(Q @ R, A, atol=tol, rtol=0)
        torch.testing.assert_close(Q.mH @ Q, torch.eye(Q.shape[-1], dtype=dtype).expand_as(Q.mH @ Q), atol=tol, rtol=0)
        # Same factorization as torch's up to the phases s of the first k columns / rows.
        s = sgn(diag(Rt)[..., :k])
        torch.testing.assert_close(Q[..., :k], Qt[..., :k] * s.unsqueeze(-2), atol=tol, rtol=0)
        torch.testing.assert_close(R[..., :k, :], Rt[..., :k, :] * s.conj().unsqueeze(-1), atol=tol, rtol=0)
        if Q.shape[-1] > k:  # the complement columns are torch's own
            torch.testing.assert_close(Q[..., k:], Qt[..., k:], atol=0, rtol=0)
    torch.testing.assert_close(qr(A, mode="r").R, qr(A)[1], atol=0, rtol=0)


@pytest.mark.parametrize("dtype", [F64, C128])
@pytest.mark.parametrize("shape", [(5, 3), (3, 5), (2, 4, 4)])
def test_lq_value(dtype, shape):
    A = randn(*shape, dtype=dtype)
    m, n = shape[-2:]
    for mode in ("reduced", "complete"):
        L, Q = lq(A, mode=mode)
        assert L.shape[-2:] == ((m, min(m, n)) if mode == "reduced" else (m, n))
        torch.testing.assert_close(L @ Q, A, atol=1e-12, rtol=0)
        torch.testing.assert_close(Q @ Q.mH, torch.eye(Q.shape[-2], dtype=dtype).expand_as(Q @ Q.mH), atol=1e-12, rtol=0)
        assert torch.equal(L, L.tril())
        assert positive_real(diag(L))
    torch.testing.assert_close(lq(A, mode="r").L, lq(A)[0], atol=0, rtol=0)


# --- gradcheck -----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [F64, C128])
@pytest.mark.parametrize("shape", [s if k in ("tall", "wide", "batched_wide") else pytest.param(s, marks=pytest.mark.slow)
                                   for k, s in SHAPES.items()], ids=list(SHAPES))
def test_gradcheck_reduced(dtype, shape):
    A = randn(*shape, dtype=dtype, seed=1)
    assert gradcheck(qr, A, modes=ALL, names=["A"]).passed


VARIANTS = {"qr_r": lambda A: qr(A, mode="r").R, "lq": lq, "lq_r": lambda A: lq(A, mode="r").L}


@pytest.mark.parametrize("dtype", [F64, C128])
@pytest.mark.parametrize("variant, shape", [
    ("qr_r", (4, 3)), pytest.param("qr_r", (2, 3, 5), marks=pytest.mark.slow), ("lq", (2, 3, 5)), ("lq_r", (4, 3)),
    pytest.param("lq", (4, 3), marks=pytest.mark.slow), pytest.param("lq_r", (2, 3, 5), marks=pytest.mark.slow),
])
def test_gradcheck_r_mode_and_lq(dtype, variant, shape):
    A = randn(*shape, dtype=dtype, seed=1)
    assert gradcheck(VARIANTS[variant], A, modes=ALL).passed


@pytest.mark.parametrize("dtype", [F64, C128])
def test_gradcheck_complete_square_and_wide(dtype):
    # Q is unique (k = m): complete mode is differentiable for every loss.
    A = randn(2, 3, 4, dtype=dtype, seed=2)
    assert gradcheck(lambda A: qr(A, mode="complete"), A, modes=ALL).passed
    assert gradcheck(lambda A: lq(A, mode="complete"), A.mT, modes=ALL).passed


def qr_invariant(A, x):
    """Losses invariant under Q2 -> Q2 W: the projector Q2 Q2^H, ||Q2^H x||, Q1 and R."""
    Q, R = qr(A, mode="complete")
    n = A.shape[-1]
    Q2 = Q[..., n:]
    return Q2 @ Q2.mH, torch.linalg.vector_norm(Q2.mH @ x, dim=-2), Q[..., :n], R


@pytest.mark.parametrize("dtype", [F64, C128])
@pytest.mark.parametrize("shape", [(5, 2), (2, 6, 3), (13, 2)], ids=["tall", "batched", "sketched_check"])
def test_gradcheck_complete_tall_invariant_losses(dtype, shape):
    A = randn(*shape, dtype=dtype, seed=3)
    x = randn(shape[-2], 2, dtype=dtype, seed=4)
    assert gradcheck(qr_invariant, A, x, modes=ALL, wrt=[0]).passed


@pytest.mark.parametrize("dtype", [F64, C128])
def test_gradcheck_lq_complete_wide_invariant(dtype):
    A = randn(2, 5, dtype=dtype, seed=5)

    def fn(A):
        L, Q = lq(A, mode="complete")
        Q2 = Q[..., 2:, :]
        return Q2.mH @ Q2, torch.linalg.vector_norm(Q2 @ torch.ones(5, 1, dtype=dtype), dim=-2), Q[..., :2, :], L

    assert gradcheck(fn, A, modes=ALL).passed


@pytest.mark.parametrize("dtype", [F64, C128])
def test_gradcheck_hard_points(dtype):
    # Condition number 1e5 (smallest R_ii ~ 1e-5): small steps keep the factorization well defined.
    U, _ = torch.linalg.qr(randn(5, 3, dtype=dtype, seed=6))
    V, _ = torch.linalg.qr(randn(3, 3, dtype=dtype, seed=7))
    A = (U * torch.tensor([1.0, 1e-2, 1e-5], dtype=F64).to(dtype)) @ V.mH
    assert gradcheck(qr, A, modes=ALL, max_step=1e-7).passed
    # Wide with nearly dependent leading block X: the derivative runs through X's QR. Here the
    # second differences of the forward-over-forward check are roundoff-dominated below ~1e-6.
    W = torch.cat([A[:3], randn(3, 2, dtype=dtype, seed=8)], dim=-1)
    assert gradcheck(qr, W, modes=ALL, max_step=1e-6).passed
    # Tiny scale (R ~ 1e-6, Q scale-free): the rule has no absolute thresholds.
    assert gradcheck(qr, 1e-6 * randn(4, 3, dtype=dtype), modes=("vjp", "jvp"), max_step=1e-9).passed


def test_gradcheck_full_jacobian_complex():
    A = randn(3, 2, dtype=C128, seed=9)
    assert gradcheck(qr, A, modes=("vjp", "jvp"), full=True).passed


@pytest.mark.parametrize("dtype", [F32, C64])
def test_gradcheck_single_precision(dtype):
    A = randn(2, 4, 3, dtype=dtype, seed=10)
    assert gradcheck(qr, A, modes=("vjp", "jvp")).passed
    assert gradcheck(lq, A, modes=("vjp", "jvp")).passed


# --- against torch's own rule and internal consistency --------------------------------------------

@pytest.mark.parametrize("dtype", [F64, C128])
@pytest.mark.parametrize("shape", [(5, 3), (4, 4), (3, 5)])
def test_gradient_matches_torch_through_normalization(dtype, shape):
    """torch.linalg.qr followed by a differentiable phase fix is the same function as ours."""
    A = randn(*shape, dtype=dtype, seed=11)
    k = min(shape)
    gQ = randn(shape[0], k, dtype=dtype, seed=12)
    gR = randn(k, shape[1], dtype=dtype, seed=13)

    def loss(Q, R):
        return (gQ.conj() * Q).real.sum() + (gR.conj() * R).real.sum()

    A1 = A.clone().requires_grad_()
    loss(*qr(A1)).backward()
    A2 = A.clone().requires_grad_()
    Qt, Rt = torch.linalg.qr(A2)
    s = sgn(diag(Rt))
    loss(Qt * s.unsqueeze(-2), Rt * s.conj().unsqueeze(-1)).backward()
    torch.testing.assert_close(A1.grad, A2.grad, atol=1e-12, rtol=1e-10)


def test_complete_gradient_of_q1_r_equals_reduced():
    A = randn(6, 2, dtype=C128, seed=14)
    g = randn(6, 2, dtype=C128, seed=15)

    def loss(mode):
        A1 = A.clone().requires_grad_()
        Q, R = qr(A1, mode=mode)
        ((g.conj() * Q[:, :2]).real.sum() + R[:2].abs().pow(2).sum()).backward()
        return A1.grad

    torch.testing.assert_close(loss("complete"), loss("reduced"), atol=1e-13, rtol=0)


def test_complete_projector_gradient_matches_reduced_formula():
    """Q2 Q2^H = I - Q1 Q1^H: the complete-mode gradient equals that of the reduced expression."""
    A = randn(7, 3, dtype=C128, seed=16)
    G = randn(7, 7, dtype=C128, seed=17)
    A1 = A.clone().requires_grad_()
    Q, _ = qr(A1, mode="complete")
    (G.conj() * (Q[:, 3:] @ Q[:, 3:].mH)).real.sum().backward()
    A2 = A.clone().requires_grad_()
    Q1, _ = qr(A2)
    (G.conj() * (torch.eye(7, dtype=C128) - Q1 @ Q1.mH)).real.sum().backward()
    torch.testing.assert_close(A1.grad, A2.grad, atol=1e-12, rtol=0)


def test_r_mode_torch_refuses_ours_works():
    A = randn(4, 3).requires_grad_()
    with pytest.raises(RuntimeError):
        torch.linalg.qr(A, mode="r")[1].sum().backward()
    qr(A, mode="r").R.sum().backward()
    assert torch.isfinite(A.grad).all()


# --- complete mode: non-invariant losses ----------------------------------------------------------

@pytest.mark.parametrize("dtype", [F64, C128])
@pytest.mark.parametrize("m", [5, 14], ids=["exact_check", "sketched_check"])
def test_complete_non_invariant_loss_raises(dtype, m):
    A = randn(m, 2, dtype=dtype).requires_grad_()
    Q, _ = qr(A, mode="complete")
    with pytest.raises(GaugeError, match="Q2"):
        Q[:, 2:].real.sum().backward()
    # The same columns through an invariant function are fine, also for a tiny gradient.
    A.grad = None
    Q, _ = qr(A, mode="complete")
    (1e-30 * torch.linalg.vector_norm(Q[:, 2:].mH @ torch.ones(m, 1, dtype=dtype))).backward()
    assert torch.isfinite(A.grad).all()


@pytest.mark.parametrize("dtype", [F32, C64])
def test_complete_invariant_loss_single_precision_no_false_alarm(dtype):
    """Rounding in float32 leaves Q2^H dL/dQ2 Hermitian to ~1e-7: the check (sqrt(eps)) stays quiet."""
    A = randn(8, 64, 4, dtype=dtype, seed=22).requires_grad_()
    x = randn(64, 3, dtype=dtype, seed=23)
    Q, R = qr(A, mode="complete")
    Q2 = Q[..., 4:]
    (torch.linalg.vector_norm(Q2.mH @ x, dim=-2).sum() + (Q2 @ Q2.mH).abs().pow(2).sum()).backward()
    assert torch.isfinite(A.grad).all()


def test_lq_complete_non_invariant_loss_raises():
    A = randn(2, 5, dtype=C128).requires_grad_()
    _, Q = lq(A, mode="complete")
    with pytest.raises(GaugeError, match="rows Q2"):
        Q[2:, :].abs().sum().backward()


def test_complete_non_invariant_phase_only_raises():
    """A loss that sees only a phase of Q2's columns is not invariant either (complex)."""
    A = randn(4, 2, dtype=C128).requires_grad_()
    Q, _ = qr(A, mode="complete")
    with pytest.raises(GaugeError):
        Q[0, 2:].imag.sum().backward()


# --- rank deficiency ------------------------------------------------------------------------------

def _fd_check(f, A, seed=1):
    """Reverse-mode gradient of the real scalar f at A against a central difference (derivative()
    with its error estimate) along a random direction."""
    from difflinalg.check import derivative

    Ag = A.clone().requires_grad_()
    (g,) = torch.autograd.grad(f(Ag), Ag)
    U = randn(*A.shape, dtype=A.dtype, seed=seed)
    fd, err = derivative(lambda t: f(A + t * U), torch.zeros((), dtype=F64))
    an = (g.conj() * U).real.sum()
    assert abs(an - fd) <= 10 * err + 1e-9 * abs(fd), (float(an), float(fd), float(err))
    return g


def _dependent_last(dtype):
    B = randn(5, 2, dtype=dtype)
    return torch.cat([B, B[:, :1] * 2.0], dim=-1)  # third column dependent: rank 2, j = 2


@pytest.mark.parametrize("dtype", [F64, C128])
def test_rank_deficient_leading_block_losses_exact(dtype):
    """At exact rank deficiency the losses of the leading block (and sum |R|^2 = ||A||^2, whose
    trailing cotangent 2 R[j:, :] is rounding-level) get the gradient; finite differences agree."""
    A = _dependent_last(dtype)
    Q, R = qr(A)
    assert torch.isfinite(Q).all() and torch.isfinite(R).all()  # the value is still returned
    torch.testing.assert_close(Q @ R, A, atol=1e-12, rtol=0)
    W = randn(5, 5, dtype=dtype, seed=3)
    W = W + W.mH
    C = randn(2, 3, dtype=dtype, seed=4)
    losses = {
        "R[:2, :]": lambda A: (C.conj() * qr(A)[1][:2, :]).real.sum(),
        "sum |R|^2": lambda A: (qr(A, mode="r").R.abs() ** 2).sum(),
        "<W, Q1 Q1^H>": lambda A: (W * (qr(A)[0][:, :2] @ qr(A)[0][:, :2].mH)).real.sum(),
        "lq L[:, :2]": lambda A: (C.mT.conj() * lq(A.mT)[0][:, :2]).real.sum(),
        "complete Q[:, :2]": lambda A: (W[:, :2] * qr(A, mode="complete")[0][:, :2]).real.sum(),
    }
    for name, f in losses.items():
        g = _fd_check(f, A)
        if name == "sum |R|^2":
            torch.testing.assert_close(g, 2 * A, atol=1e-12, rtol=0)


@pytest.mark.parametrize("dtype", [F64, C128])
def test_rank_deficient_middle_column_and_wide(dtype):
    B = randn(5, 2, dtype=dtype)
    A = torch.cat([B[:, :1], B[:, :1] * -3.0, B[:, 1:]], dim=-1)  # j = 1; column 2 adds rank again
    _fd_check(lambda A: (qr(A)[1][:1, :].abs() ** 2).sum() + qr(A)[0][:, 0].real.sum(), A)
    with pytest.raises(InputError, match=r"trailing part R\[1:, :\]"):
        Ag = A.clone().requires_grad_()
        qr(Ag)[1][1:, :].abs().sum().backward()
    # Wide A = [X, Y] with a rank-deficient X: the leading block still determines R[:1, :].
    Wd = torch.cat([B.mT[:, :1], 2 * B.mT[:, :1], B.mT[:, 1:]], dim=-1)
    _fd_check(lambda A: qr(A)[1][:1, :].real.sum() + qr(A)[0][:, :1].abs().sum(), Wd)


@pytest.mark.parametrize("dtype", [F64, C128])
def test_rank_deficient_raises_where_no_derivative(dtype):
    A = _dependent_last(dtype)
    Ag = A.clone().requires_grad_()
    with pytest.raises(InputError, match=r"rank-deficient A: \|R\[2, 2\]\|.*trailing part R\[2:, :\]"):
        qr(Ag)[1][2, 2].real.backward()  # R_22 = ||(I - Q1 Q1^H) a_2||: like |t|, no derivative
    with pytest.raises(InputError, match=r"trailing part Q\[:, 2:\]"):
        qr(Ag)[0].abs().sum().backward()  # Q[:, 2] is discontinuous at A
    with pytest.raises(InputError, match=r"trailing part Q\[2:, :\]"):
        lq(A.mT.clone().requires_grad_())[1].abs().sum().backward()
    import torch.autograd.forward_ad as fwAD

    with fwAD.dual_level(), pytest.raises(InputError, match="forward mode"):
        qr(fwAD.make_dual(A, torch.ones_like(A)))
    # Batched: the error names the batch entry; the full-rank entries do not matter.
    Ab = torch.stack([randn(5, 3, dtype=dtype, seed=7), A]).requires_grad_()
    with pytest.raises(InputError, match=r"batch index \(1,\)"):
        qr(Ab)[0].abs().sum().backward()


def test_rank_deficient_batched_mixed_gradient():
    """A batch mixing full-rank and rank-deficient entries: each gets its own rule."""
    A = torch.stack([randn(5, 3, seed=7), _dependent_last(F64), randn(5, 3, seed=8)])
    f = lambda A: (qr(A)[1][..., :2, :] ** 2).sum() + qr(A)[0][..., :2].sum()  # noqa: E731
    g = _fd_check(f, A)
    for i in range(3):
        Ai = A[i].clone().requires_grad_()
        (gi,) = torch.autograd.grad(f(Ai), Ai)
        torch.testing.assert_close(g[i], gi, atol=1e-13, rtol=1e-12)


def test_rank_deficient_inside_torch_func_is_nan_not_wrong():
    from difflinalg import _utils

    A = _dependent_last(F64)
    _utils._warned.discard("qr-rank")  # warn_once: earlier tests may have used the key
    with pytest.warns(TransformCheckWarning, match="rank-deficiency"):
        g = torch.func.grad(lambda A: (qr(A)[1][:2, :] ** 2).sum())(A)
    assert torch.isnan(g).all()
    good = randn(5, 3, seed=7)
    g = torch.func.vmap(torch.func.grad(lambda A: (qr(A)[1] ** 2).sum()))(torch.stack([good, A]))
    torch.testing.assert_close(g[0], 2 * good, atol=1e-12, rtol=0)
    assert torch.isnan(g[1]).all()


def test_zero_matrix_value_and_error():
    A = torch.zeros(3, 2, dtype=F64)
    Q, R = qr(A)
    assert torch.isfinite(Q).all() and torch.equal(R, torch.zeros(2, 2, dtype=F64))
    with pytest.raises(InputError):
        qr(A.requires_grad_())[1].sum().backward()


# --- torch.func -----------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["reduced", "r"])
def test_vmap_and_grad(mode):
    A = randn(3, 5, 4, dtype=C128, seed=18)
    out_v = torch.func.vmap(lambda a: qr(a, mode=mode))(A)
    out_b = qr(A, mode=mode)
    # mode "r": Q is an empty placeholder (vmap stacks it to (3, 0)); compare R
    for a, b in zip(out_v if mode != "r" else [out_v.R], out_b if mode != "r" else [out_b.R]):
        torch.testing.assert_close(a, b, atol=1e-14, rtol=0)

    def loss(a):
        R = qr(a, mode="r").R if mode == "r" else qr(a)[1]
        return R.abs().pow(3).sum()

    g_v = torch.func.vmap(torch.func.grad(loss))(A)
    Ab = A.clone().requires_grad_()
    loss(Ab).backward()
    torch.testing.assert_close(g_v, Ab.grad, atol=1e-12, rtol=0)


def test_hessian_forward_over_reverse_equals_double_backward():
    A = randn(4, 3, seed=19)

    def loss(a):
        Q, R = qr(a, mode="complete")
        return (Q[:, 3:] @ Q[:, 3:].mT)[0].pow(2).sum() + R.pow(3).sum() + Q[:, :3].sin().sum()

    H_fr = torch.func.hessian(loss)(A)  # forward-over-reverse (uses the jvp rule)
    H_rr = torch.func.jacrev(torch.func.jacrev(loss))(A)
    H_rf = torch.func.jacrev(torch.func.jacfwd(loss))(A)
    torch.testing.assert_close(H_fr, H_rr, atol=1e-11, rtol=1e-10)
    torch.testing.assert_close(H_rf, H_rr, atol=1e-11, rtol=1e-10)


def test_forward_ad_dual_tensor():
    import torch.autograd.forward_ad as fwAD

    A, dA = randn(2, 3, 5, dtype=C128, seed=20), randn(2, 3, 5, dtype=C128, seed=21)
    with fwAD.dual_level():
        Q, R = qr(fwAD.make_dual(A, dA))
        dQ, dR = fwAD.unpack_dual(Q).tangent, fwAD.unpack_dual(R).tangent
    _, (dQ2, dR2) = torch.func.jvp(qr, (A,), (dA,))
    torch.testing.assert_close(dQ, dQ2, atol=1e-14, rtol=0)
    torch.testing.assert_close(dR, dR2, atol=1e-14, rtol=0)
    # The tangent of R stays upper triangular with a real diagonal.
    assert torch.equal(dR2[..., :, :3], dR2[..., :, :3].triu()) and torch.all(diag(dR2).imag.abs() < 1e-14)


def test_lazily_conjugated_input():
    """Conj-bit views (A.conj(), A.mH) give the same values and derivatives of every order."""
    A = randn(4, 3, dtype=C128, seed=24)
    torch.testing.assert_close(qr(A.conj())[1], qr(A.conj().resolve_conj())[1], atol=0, rtol=0)
    # The failure mode was in forward mode over conj views: first and second forward order suffice.
    assert gradcheck(lambda A: qr(A.conj()), A, modes=("vjp", "jvp", "jvp2")).passed
    assert gradcheck(lambda A: lq(A.mH), A, modes=("vjp", "jvp", "jvp2")).passed


# --- bad input ------------------------------------------------------------------------------------

def test_bad_input():
    with pytest.raises(InputError, match="mode"):
        qr(randn(3, 2), mode="economic")
    with pytest.raises(InputError, match="mode"):
        lq(randn(3, 2), mode="full")
    with pytest.raises(InputError, match="A: expected a matrix"):
        qr(randn(3))
    with pytest.raises(InputError, match="A: dtype int64"):
        qr(torch.ones(3, 2, dtype=torch.int64))
    bad = randn(3, 2)
    bad[1, 1] = float("nan")
    with pytest.raises(InputError, match="A: contains 1 non-finite"):
        qr(bad)
    with pytest.raises(InputError, match="A: contains"):
        lq(bad)


# --- views, empty shapes, meta, torch.func with complex LQ -----------------------------------------

@pytest.mark.parametrize("op", [qr, lq])
def test_complex_outputs_under_torch_func(op):
    """``.imag`` of the outputs under vmap/jacrev/hessian (a conj-view output made it a neg view,
    which has no batching rule), and the values agree with the eager ones."""
    A = randn(2, 4, 3, dtype=C128)
    f = lambda X, i: (op(X)[i].imag ** 2).sum() + op(X)[i].imag.sum()  # noqa: E731
    for i in (0, 1):
        g = torch.func.vmap(torch.func.grad(lambda X: f(X, i)))(A)
        for b in range(2):
            Ab = A[b].clone().requires_grad_()
            torch.testing.assert_close(g[b], torch.autograd.grad(f(Ab, i), Ab)[0], atol=1e-12, rtol=1e-12)
        torch.testing.assert_close(torch.func.vmap(lambda X: op(X)[i].imag)(A), op(A)[i].imag)
        H = torch.func.hessian(lambda x: f(x * (1 + 1j), i))(A[0].real)
        assert H.shape == (4, 3, 4, 3) and torch.isfinite(H).all()
        torch.testing.assert_close(H.flatten(0, 1).flatten(1), H.flatten(0, 1).flatten(1).mT, atol=1e-9, rtol=1e-9)
        J = torch.func.jacrev(lambda x: op(x * (1 + 1j))[i].imag)(A[0].real)
        assert torch.isfinite(J).all()
    assert not op(A)[0].is_conj() and not op(A)[1].is_conj()


@pytest.mark.parametrize("op", [qr, lq])
def test_conj_and_neg_views_match_materialized(op):
    Z = randn(4, 3, dtype=C128)
    views = {"conj": Z.conj(), "mH": Z.mH, "neg": (1j * randn(4, 3, dtype=C128, seed=2)).conj().imag}
    for name, V in views.items():
        M = V.clone().resolve_conj().resolve_neg()
        for a, b in zip(op(V), op(M)):
            torch.testing.assert_close(a, b, atol=1e-13, rtol=0)
        assert gradcheck(lambda X: op(X.conj() if name == "conj" else X), V.resolve_conj().resolve_neg(),
                         modes=("vjp", "jvp")).passed


@pytest.mark.parametrize("shape", [(0, 3, 3), (0, 4, 2), (2, 0, 3), (2, 3, 0), (0, 0)])
@pytest.mark.parametrize("mode", ["reduced", "complete", "r"])
def test_empty_shapes_match_torch(shape, mode):
    A = torch.randn(*shape, dtype=F64, requires_grad=True)
    out = qr(A, mode=mode)
    ref = torch.linalg.qr(A.detach(), mode=mode)
    assert [o.shape for o in out] == [r.shape for r in ref]  # mode "r": torch's empty Q too
    (g,) = torch.autograd.grad(sum(o.sum() for o in out), A, allow_unused=True, materialize_grads=True)
    assert g.shape == A.shape and torch.all(g == 0)
    _, tangents = torch.func.jvp(lambda X: qr(X, mode=mode), (A.detach(),), (torch.ones_like(A.detach()),))
    assert [t.shape for t in tangents] == [r.shape for r in ref]
    # lq(A^T) is qr(A) transposed: the same shapes, transposed, and a zero gradient too.
    At = A.detach().mT.clone().requires_grad_()
    L, Q = lq(At, mode=mode)
    assert L.mT.shape == ref.R.shape and (Q.mT.shape if mode != "r" else Q.shape) == ref.Q.shape
    (g,) = torch.autograd.grad(L.sum() + Q.sum(), At, allow_unused=True, materialize_grads=True)
    assert g.shape == At.shape and torch.all(g == 0)


@pytest.mark.parametrize("op", [qr, lq])
def test_meta_tensor_named_error(op):
    with pytest.raises(InputError, match="A: meta tensors"):
        op(torch.empty(4, 3, device="meta"))
