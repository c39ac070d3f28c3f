"""The derivative rule of the normalized QR (``_qr``): the factorization with a positive real
diagonal (``qr_factor``), and the reverse and forward rules of every shape and mode as one ``Rule``
(``_QR``): the tall/square ``copyltu`` rule, the wide rule ``A = [X, Y]``, the complete-mode term
of ``Q2`` (parallel-transport convention, gauge-checked), the leading-block rule at rank-deficient
points and the ``torch.func`` NaN marking. The formulas and their derivation are in ``_qr``'s module
docstring and ``docs/math/qr.md``; ``_qr`` assembles the public ``qr``/``lq`` results from it."""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor

from .._nested import call
from .._rule import Rule
from .._utils import is_wrapped, real_dtype
from ._qr_gauge import check_gauge_invariant
from ._qr_rank import first_deficient, poison_transformed, rank_error, unravel, vjp_deficient


def _sgn(d: Tensor) -> Tensor:
    """Unit-modulus phase of ``d`` with ``sgn(0) = 1`` (real: +-1)."""
    if d.is_complex():
        a = d.abs()
        return torch.where(a == 0, torch.ones_like(d), d / torch.where(a == 0, torch.ones_like(a), a))
    return torch.where(d < 0, -torch.ones_like(d), torch.ones_like(d))


def qr_factor(A: Tensor, complete: bool = False) -> tuple[Tensor, Tensor]:
    """Householder QR of ``A`` normalized to a positive real diagonal of ``R`` (no autograd rule)."""
    Q, R = torch.linalg.qr(A, mode="complete" if complete else "reduced")
    k = min(A.shape[-2], A.shape[-1])
    d = R.diagonal(dim1=-2, dim2=-1)[..., :k]
    s = _sgn(d)
    extra = Q.shape[-1] - k  # complete mode, m > n: columns of Q2 (rows of zeros in R) keep their basis
    if extra:
        s = torch.cat([s, s.new_ones(*s.shape[:-1], extra)], dim=-1)
    absd = d.abs()  # before R is rotated in place (d is a view of R)
    # In place: Q and R are fresh outputs of torch.linalg.qr (this runs without autograd).
    R.mul_(s.conj().unsqueeze(-1))
    if d.is_complex():  # conj(s) d is |d| up to a rounding-level imaginary part: make it exact
        R.diagonal(dim1=-2, dim2=-1)[..., :k].copy_(absd)
    return Q.mul_(s.unsqueeze(-2)), R


def _rinv_right(X: Tensor, R: Tensor) -> Tensor:
    """``X R^{-1}`` for upper triangular ``R``."""
    return torch.linalg.solve_triangular(R, X, upper=True, left=False)


def _rinvh_right(X: Tensor, R: Tensor) -> Tensor:
    """``X R^{-H}`` for upper triangular ``R``."""
    return torch.linalg.solve_triangular(R.mH, X, upper=False, left=False)


def _phi(M: Tensor) -> Tensor:
    """``tril(M)`` with the diagonal halved (``phi`` of ``_cholesky``) as one product with a constant
    n x n mask: cheaper than tril + a batch of diag_embed."""
    n = M.shape[-1]
    w = torch.ones(n, n, dtype=real_dtype(M.dtype), device=M.device).tril_()
    w.diagonal().fill_(0.5)
    return M * w


def copyltu(M: Tensor) -> Tensor:
    """Hermitian matrix with the strict lower triangle of ``M``, mirrored, and diagonal ``Re diag M``."""
    P = _phi(M)
    return P + P.mH


def qr_jvp_tall(Q: Tensor, R: Tensor, dA: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Tangents ``(dQ, dR)`` of the reduced QR of a square or tall ``A``, and ``B = dA R^{-1}``."""
    B = _rinv_right(dA, R)
    C = Q.mH @ B
    T = _phi(C + C.mH).mH  # upper triangle of C + C^H, diagonal halved (= Re diag C)
    return B - Q @ T, T @ R, B


def qr_vjp_tall(Q: Tensor, R: Tensor, gQ: Tensor | None, gR: Tensor | None,
                extra: Tensor | None = None) -> Tensor:
    """Gradient wrt a square or tall ``A`` from ``gQ``, ``gR`` of its reduced QR.

    ``extra`` (m, n) is added to ``gQ + Q copyltu(M)`` before the final ``R^{-H}`` (the complete-mode
    term ``-Q2 gQ2^H Q1``), so that it shares the triangular solve.
    """
    M = None
    if gR is not None:
        M = R @ gR.mH
    if gQ is not None:
        M = -(gQ.mH @ Q) if M is None else M - gQ.mH @ Q
    if M is None:
        G = torch.zeros_like(Q)
    else:
        G = Q @ copyltu(M)
        if gQ is not None:
            G = G + gQ
    if extra is not None:
        G = G + extra
    return _rinvh_right(G, R)


def qr_vjp_leading(Q: Tensor, R: Tensor, A: Tensor, gQ: Tensor | None, gR: Tensor | None,
                   j: int) -> Tensor:
    """Gradient wrt ``A`` of a loss of the leading block ``(Q[:, :j], R[:j, :])`` only (the wide rule
    with ``m`` replaced by ``j``; see the module docstring). Trailing cotangents are ignored."""
    Q1, R11, Y = Q[..., :j], R[..., :j, :j], A[..., j:]
    gQ1 = None if gQ is None else gQ[..., :j]
    gR11 = None if gR is None else gR[..., :j, :j]
    if gR is not None:
        gV = gR[..., :j, j:]
        gQ1 = Y @ gV.mH if gQ1 is None else gQ1 + Y @ gV.mH
        gY = Q1 @ gV
    else:
        gY = torch.zeros_like(Y)
    return torch.cat([qr_vjp_tall(Q1, R11, gQ1, gR11), gY], dim=-1)


def _qr_vjp(Q: Tensor, R: Tensor, A: Tensor, gQ: Tensor | None, gR: Tensor | None, op: str) -> Tensor:
    """Gradient of the normalized QR (any mode and shape) at a full-rank ``A``."""
    m, n = Q.shape[-2], R.shape[-1]
    if m < n:
        return qr_vjp_leading(Q, R, A, gQ, gR, m)
    Q1, R1 = Q[..., :n], R[..., :n, :]
    gQ1 = None if gQ is None else gQ[..., :n]
    gR1 = None if gR is None else gR[..., :n, :]
    extra = None
    if gQ is not None and Q.shape[-1] > n:  # complete mode, m > n
        Q2, gQ2 = Q[..., n:], gQ[..., n:]
        check_gauge_invariant(Q2, gQ2, op)
        extra = -(Q2 @ (gQ2.mH @ Q1))
    return qr_vjp_tall(Q1, R1, gQ1, gR1, extra)


class _QR(Rule):
    @staticmethod
    def forward(A: Tensor, complete: bool, op: str) -> tuple[Tensor, Tensor]:
        return qr_factor(A, complete)

    @staticmethod
    def save(ctx, inputs, output):
        ctx.op = inputs[2]
        ctx.set_materialize_grads(False)
        # A itself (for Y = A[..., j:] of the wide and the rank-deficient rules): a reference to
        # the input, exact, and differentiable for the second-order paths.
        return (*output, inputs[0])

    @staticmethod
    def gradients(ctx, Q: Tensor, R: Tensor, A: Tensor, gQ: Tensor | None, gR: Tensor | None):
        if R.numel() == 0 or A.numel() == 0:
            return torch.zeros_like(A)
        if is_wrapped(R):
            return poison_transformed(R, _qr_vjp(Q, R, A, gQ, gR, ctx.op), ctx.op)
        first = first_deficient(R)
        if first is None:
            return _qr_vjp(Q, R, A, gQ, gR, ctx.op)
        return vjp_deficient(_qr_vjp, qr_vjp_leading, Q, R, A, gQ, gR, ctx.op, first)

    @staticmethod
    def tangents(ctx, Q: Tensor, R: Tensor, A: Tensor, dA: Tensor, _c, _o) -> tuple[Tensor, Tensor]:
        if not is_wrapped(R) and R.numel():
            first = first_deficient(R)
            if first is not None:
                k = min(Q.shape[-2], R.shape[-1])
                ff = first.reshape(-1)
                i = int((ff < k).nonzero()[0, 0])
                j = int(ff[i])
                where = f" (batch index {unravel(i, R.shape[:-2])})" if R.ndim > 2 else ""
                raise rank_error(ctx.op, where, j, k, float(R.reshape(-1, *R.shape[-2:])[i, j, j].abs()),
                                  "forward mode propagates every output's tangent, and the trailing "
                                  "part's does not exist (use reverse mode for a loss of the leading block)")
        # Through ``call`` so that an outer forward level sees the rule's arithmetic (jvp of jvp);
        # the NaN marking under torch.func too, inside the called function for the same reason.
        fn = qr_jvp_wide if Q.shape[-2] < R.shape[-1] else qr_jvp
        args = (Q, R, A, dA) if Q.shape[-2] < R.shape[-1] else (Q, R, dA)
        if is_wrapped(R) and R.numel():
            return call(partial(_jvp_poisoned, fn, ctx.op), *args)
        return call(fn, *args)


def _jvp_poisoned(fn, op: str, *args: Tensor) -> tuple[Tensor, Tensor]:
    """``fn(*args)`` with NaN tangents for rank-deficient batch entries (``args[1]`` is ``R``)."""
    dQ, dR = fn(*args)
    return poison_transformed(args[1], dQ, op), poison_transformed(args[1], dR, op)


def qr_jvp(Q: Tensor, R: Tensor, dA: Tensor) -> tuple[Tensor, Tensor]:
    """Tangents of the normalized QR (reduced, "r" or complete mode) of a square or tall ``A``."""
    m, n = Q.shape[-2], R.shape[-1]
    Q1, R1 = Q[..., :n], R[..., :n, :]
    dQ1, dR1, B = qr_jvp_tall(Q1, R1, dA)
    if Q.shape[-1] == n:
        return dQ1, dR1
    Q2 = Q[..., n:]  # complete mode, m > n: parallel-transport convention Q2^H dQ2 = 0
    dQ2 = -(Q1 @ (Q2.mH @ B).mH)
    dR = torch.cat([dR1, dR1.new_zeros(*dR1.shape[:-2], m - n, n)], dim=-2)
    return torch.cat([dQ1, dQ2], dim=-1), dR


def qr_jvp_wide(Q: Tensor, R: Tensor, A: Tensor, dA: Tensor) -> tuple[Tensor, Tensor]:
    """Tangents of the normalized QR of a wide ``A = [X, Y]`` (m < n)."""
    m = Q.shape[-2]
    U, Y = R[..., :m], A[..., m:]
    dQ, dU, _ = qr_jvp_tall(Q, U, dA[..., :m])
    dV = dQ.mH @ Y + Q.mH @ dA[..., m:]
    return dQ, torch.cat([dU, dV], dim=-1)
