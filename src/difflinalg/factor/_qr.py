r"""QR and LQ decompositions with a unique normalization, in every mode, with reverse, forward and
second-order rules.

Forward definition. ``A = Q R`` with ``Q^H Q = I`` and ``R`` upper triangular (trapezoidal for a
wide ``A``) whose diagonal is real and positive; ``torch.linalg.qr`` (Householder) leaves the
signs / phases of the diagonal free, so we rotate them: with ``s = sgn(diag R)`` (``sgn(0) = 1``),
``Q <- Q diag(s)`` and ``R <- diag(conj s) R``. With ``k = min(m, n)``:

* ``mode="reduced"``: ``Q`` (m, k), ``R`` (k, n);
* ``mode="complete"``: ``Q`` (m, m), ``R`` (m, n) (rows ``k..m`` of ``R`` are zero);
* ``mode="r"``: ``R`` (k, n) only (``Q`` is still computed: the derivative of ``R`` needs it).

``lq(A) = (L, Q)`` with ``A = L Q``, ``Q Q^H = I`` and ``L`` lower triangular with a positive real
diagonal, is ``qr(A^H)`` transposed: ``L = R^H``, ``Q = Q_qr^H`` (the rules below, through
``.mH``).

Rules, square or tall block (``A`` (m, n), m >= n, ``Q`` (m, n), ``R`` (n, n); Hubig 2019, Liao et
al. 2019, the ``copyltu`` form of ``seed-autodiff-linear-algebra.md`` "QR decomposition")::

    forward:  B = dA R^{-1},  C = Q^H B,  T = triu(C + C^H) with its diagonal halved
              dR = T R,  dQ = B - Q T
    reverse:  M = R gR^H - gQ^H Q
              gA = (gQ + Q copyltu(M)) R^{-H},   copyltu(M) = tril(M, -1) + tril(M, -1)^H + Re diag M

(``Q^H dQ = C - T`` is skew-Hermitian and ``dR R^{-1} = T`` is upper triangular with a real
diagonal, which fixes ``T``.) Complex gradients follow PyTorch's convention
(``dL = Re tr(gQ^H dQ + gR^H dR)``, see ``docs/conventions.md``).

Wide ``A = [X, Y]`` (m < n, ``X`` (m, m)): ``X = Q U`` is a square QR and ``V = Q^H Y``, so
``R = [U, V]`` and::

    forward:  (dQ, dU) from the square rule at dX,  dV = dQ^H Y + Q^H dY
    reverse:  gY = Q gV,  gX = square rule at (gQ + Y gV^H, gU)

Complete mode with m > n: ``Q = [Q1, Q2]`` where ``Q2`` (m, m - n) spans the orthogonal complement
of range(A) and is determined only up to ``Q2 -> Q2 W`` (``W`` unitary). **Convention:** the
derivative of ``Q2`` has no component inside its own span (``Q2^H dQ2 = 0``, parallel transport),
which leaves::

    forward:  dQ2 = -Q1 R1^{-H} dA^H Q2 = -Q1 (Q2^H B)^H
    reverse:  gA += -Q2 (gQ2^H Q1) R1^{-H}

This is exact for every loss invariant under ``Q2 -> Q2 W`` (it depends on ``Q2`` through
``Q2 Q2^H``, ``||Q2^H x||``, ...), whatever algorithm produced ``Q2``. A loss is invariant exactly
when ``Q2^H gQ2`` is Hermitian; the backward checks this (exactly when m - n <= 8, else on a sketch
``Q2^H gQ2 V`` with 8 fixed probe columns: O(m (m - n)) work per probe instead of O(m (m - n)^2),
relative tolerance sqrt(eps)) and raises ``GaugeError`` for a
loss whose gradient would depend on the arbitrary basis. The check needs a host synchronisation and
is skipped inside ``torch.func`` transforms (the forward-mode value ``dQ2`` above is then the
convention's, not a derivative of torch's particular ``Q2``).

Second order: the backward is written in differentiable operations on the saved ``Q``, ``R`` (and
``A`` for the wide rule), so double backward, forward-over-reverse (``torch.func.hessian``) and
reverse-over-forward work. Nested forward mode (``jacfwd(jacfwd(...))``) through any
``torch.autograd.Function`` returns zero higher derivatives in torch 2.13 (pytorch/pytorch#197867).

Rank-deficient input (``|R_ii| <= 10 max(m, n) eps max_j |R_jj|``, i.e. the first ``k`` columns of
``A`` are numerically dependent): the factorization is not unique and the derivative does not
exist. The forward value is still returned (with ``sgn(0) = 1``); the backward and the JVP raise
``InputError`` (outside ``torch.func`` transforms, where value checks are skipped and the derivative
is inf/NaN).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._errors import GaugeError, InputError
from .._nested import call
from .._utils import check_finite_sum, check_matrix, eps, is_wrapped

_MODES = ("reduced", "complete", "r")
_GAUGE_PROBES = 8


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
    w = torch.ones(n, n, dtype=M.real.dtype, device=M.device).tril_()
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


def _check_full_rank(R: Tensor, op: str) -> None:
    """Raise if the leading k x k block of ``R`` is numerically singular (skipped under torch.func)."""
    if is_wrapped(R) or R.numel() == 0:
        return
    k = min(R.shape[-2], R.shape[-1])
    d = R.diagonal(dim1=-2, dim2=-1)[..., :k].abs()
    # Rounding leaves a dependent column with |R_kk| ~ a few eps |A| (a genuine one is far above).
    tol = 10 * max(R.shape[-2], R.shape[-1]) * eps(R.dtype) * d.amax(dim=-1, keepdim=True)
    bad = d <= tol
    if bool(bad.any()):
        idx = bad.nonzero()[0].tolist()
        where = f" (batch index {tuple(idx[:-1])})" if len(idx) > 1 else ""
        what = "rows" if op == "lq" else "columns"
        raise InputError(
            f"A: {op} derivative is undefined for rank-deficient input{where}: "
            f"|{'L' if op == 'lq' else 'R'}[{idx[-1]}, {idx[-1]}]| = {float(d[tuple(idx)]):.3e} is "
            f"negligible, so the first {k} {what} of A are linearly dependent and the factorization is "
            "not unique; make them independent (e.g. add a small multiple of the identity), or use "
            "difflinalg's SVD for rank-revealing work"
        )


def _gauge_probes(p: int, like: Tensor) -> Tensor:
    """Fixed (p, q) probe matrix (deterministic, dense, full column rank) for the gauge check."""
    q = min(p, _GAUGE_PROBES)
    if p <= _GAUGE_PROBES:
        return torch.eye(p, dtype=like.dtype, device=like.device)
    i = torch.arange(p, dtype=torch.float64).unsqueeze(-1)
    j = torch.arange(q, dtype=torch.float64).unsqueeze(0)
    V = torch.cos((i + 1) * (j + 1) * (math.sqrt(2.0) + 0.1 * j) + 0.3 * i)  # quasi-random, no RNG state
    return V.to(dtype=like.dtype, device=like.device)


def _check_gauge_invariant(Q2: Tensor, gQ2: Tensor, op: str) -> None:
    """Raise ``GaugeError`` unless ``Q2^H gQ2`` is Hermitian (the loss is invariant under Q2 -> Q2 W)."""
    if is_wrapped(Q2) or is_wrapped(gQ2) or gQ2.numel() == 0:
        return
    with torch.no_grad():
        V = _gauge_probes(Q2.shape[-1], Q2)
        BV = Q2.mH @ (gQ2 @ V)
        BhV = gQ2.mH @ (Q2 @ V)
        skew = torch.linalg.matrix_norm(BV - BhV)
        scale = torch.linalg.matrix_norm(BV) + torch.linalg.matrix_norm(BhV)
        bad = skew > math.sqrt(eps(Q2.dtype)) * scale
        if bool(bad.any()):
            rel = float((skew / scale.clamp_min(torch.finfo(scale.dtype).tiny)).amax())
            if op == "qr":
                part, gauge, ok = "last m - n columns Q2 of Q", "Q2 -> Q2 W", "Q2 Q2^H, ||Q2^H x||"
            else:
                part, gauge, ok = "last n - m rows Q2 of Q", "Q2 -> W Q2", "Q2^H Q2, ||Q2 x||"
            raise GaugeError(
                f"Q: the loss depends on the basis of the {part} (complete mode), which is only "
                f"determined up to a unitary factor W ({gauge}); the relative non-invariant part of "
                f"its gradient is {rel:.2e}. Make the loss invariant (use {ok}, ...) or use "
                "mode='reduced'"
            )


class _QR(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(A: Tensor, complete: bool, op: str) -> tuple[Tensor, Tensor]:
        return qr_factor(A, complete)

    @staticmethod
    def setup_context(ctx, inputs, output):
        A, complete, op = inputs
        Q, R = output
        ctx.op = op
        ctx.set_materialize_grads(False)
        m, n = A.shape[-2:]
        if m < n:  # the wide rule needs Y = A[..., m:]
            ctx.save_for_backward(Q, R, A)
            ctx.save_for_forward(Q, R, A)
        else:
            ctx.save_for_backward(Q, R)
            ctx.save_for_forward(Q, R)

    @staticmethod
    def backward(ctx, gQ: Tensor | None, gR: Tensor | None):
        Q, R = ctx.saved_tensors[:2]
        _check_full_rank(R, ctx.op)
        m, n = Q.shape[-2], R.shape[-1]
        if m < n:
            (A,) = ctx.saved_tensors[2:]
            U, Y = R[..., :m], A[..., m:]
            gU = None if gR is None else gR[..., :m]
            if gR is not None:
                gV = gR[..., m:]
                gQ = Y @ gV.mH if gQ is None else gQ + Y @ gV.mH
            gX = qr_vjp_tall(Q, U, gQ, gU)
            gY = torch.zeros_like(Y) if gR is None else Q @ gR[..., m:]
            return torch.cat([gX, gY], dim=-1), None, None
        Q1, R1 = Q[..., :n], R[..., :n, :]
        gQ1 = None if gQ is None else gQ[..., :n]
        gR1 = None if gR is None else gR[..., :n, :]
        extra = None
        if gQ is not None and Q.shape[-1] > n:  # complete mode, m > n
            Q2, gQ2 = Q[..., n:], gQ[..., n:]
            _check_gauge_invariant(Q2, gQ2, ctx.op)
            extra = -(Q2 @ (gQ2.mH @ Q1))
        return qr_vjp_tall(Q1, R1, gQ1, gR1, extra), None, None

    @staticmethod
    def jvp(ctx, dA: Tensor, _c, _o) -> tuple[Tensor, Tensor]:
        Q, R = ctx.saved_tensors[:2]
        _check_full_rank(R, ctx.op)
        # Through ``call`` so that an outer forward level sees the rule's arithmetic (jvp of jvp).
        if Q.shape[-2] < R.shape[-1]:
            return call(qr_jvp_wide, Q, R, ctx.saved_tensors[2], dA)
        return call(qr_jvp, Q, R, dA)


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


def _check_mode(mode: str) -> None:
    if mode not in _MODES:
        raise InputError(f"mode: expected one of {_MODES}, got {mode!r}")


def qr(A: Tensor, mode: str = "reduced") -> tuple[Tensor, Tensor] | Tensor:
    """QR decomposition ``A = Q R`` with ``R``'s diagonal real and positive, batched.

    Args:
        A: (..., m, n) real or complex; tall, square or wide.
        mode: ``"reduced"`` (``Q`` (m, k), ``R`` (k, n), k = min(m, n)), ``"complete"``
            (``Q`` (m, m), ``R`` (m, n)) or ``"r"`` (``R`` (k, n) only).

    Returns:
        ``(Q, R)``, or ``R`` for ``mode="r"``. The values equal ``torch.linalg.qr``'s up to the
        phases of the first k columns of ``Q`` (and rows of ``R``).

    Differentiable in every mode (reverse, forward, second order; ``torch.func`` compatible),
    including ``"r"`` and ``"complete"`` with m > n, which ``torch.linalg.qr`` refuses. In complete
    mode with m > n the last m - n columns of ``Q`` are defined only up to a unitary factor: the
    gradient is exact for losses invariant under that factor, and backward raises ``GaugeError``
    for other losses (see the module docstring).

    Raises:
        InputError: bad shape/dtype/mode, non-finite entries; when differentiating at a rank-deficient
            ``A`` (the first k columns dependent).
    """
    _check_mode(mode)
    A = check_matrix(A, "A", finite=False)
    check_finite_sum(A, "A")
    # A lazily conjugated input (A.conj(), A.mH) trips a torch assert on forward-mode views inside
    # the nested jvp (jvp of jvp): materialize the conjugation (a no-op without the conj bit).
    Q, R = _QR.apply(A.resolve_conj(), mode == "complete", "qr")
    return R if mode == "r" else (Q, R)


def lq(A: Tensor, mode: str = "reduced") -> tuple[Tensor, Tensor] | Tensor:
    """LQ decomposition ``A = L Q`` (``Q Q^H = I``, ``L`` lower triangular, diagonal real positive).

    Computed as the QR decomposition of ``A^H`` (``L = R^H``, ``Q = Q_qr^H``), sharing its rules.

    Args:
        A: (..., m, n) real or complex; tall, square or wide.
        mode: ``"reduced"`` (``L`` (m, k), ``Q`` (k, n), k = min(m, n)), ``"complete"``
            (``L`` (m, n), ``Q`` (n, n)) or ``"r"`` (``L`` (m, k) only).

    Returns:
        ``(L, Q)``, or ``L`` for ``mode="r"``. In complete mode with n > m the last n - m rows of
        ``Q`` are defined up to a unitary factor (same convention and check as ``qr``).
    """
    _check_mode(mode)
    A = check_matrix(A, "A", finite=False)
    check_finite_sum(A, "A")
    Q, R = _QR.apply(A.mH.resolve_conj(), mode == "complete", "lq")  # see qr on resolve_conj
    return R.mH if mode == "r" else (R.mH, Q.mH)
