r"""QR and LQ decompositions with a unique normalization, in every mode, with reverse, forward and
second-order rules: the public ``qr``/``lq`` (input checks, the reduced/complete/"r" results, LQ as
the QR of ``A^H``) here, the rule itself in ``_qr_rule``; the mathematics of both below.

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
al. 2019, the ``copyltu`` form; the derivation: ``docs/math/qr.md``)::

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
reverse-over-forward work, and so does nested forward mode (``jacfwd(jacfwd(...))``): the JVP
calls its differentiable parts through ``_nested.call`` (pytorch/pytorch#197867).

Rank-deficient input. Let ``j`` be the first index with ``|R_jj| <= 10 max(m, n) eps max_i |R_ii|``
(numerically zero; ``j < k``). Write ``A = [X, Y]`` with ``X = A[:, :j]`` (full column rank),
``Q = [Q1, Q2]`` (``Q1 = Q[:, :j]``) and ``R = [[R11, R12], [0, R22]]``. Then:

* The leading block ``(Q1, R[:j, :]) = (Q1, [R11, R12])`` is an analytic function of ``A`` near
  this point: ``X = Q1 R11`` is the QR of a full-rank matrix and ``R12 = Q1^H Y``. So for a loss
  whose cotangents vanish outside it (``gQ[:, j:] = 0``, ``gR[j:, :] = 0``; e.g. ``R[:j, :]``,
  ``Q1 Q1^H``) the gradient exists and is the wide rule above with ``m`` replaced by ``j``::

      gY = Q1 gR12,   gX = tall rule at (gQ1 + Y gR12^H, gR11)

  This also holds when ``gR[j:, :]`` is nonzero but ``R[j:, :] = 0`` (rank exactly ``j``) and the
  loss is smooth in ``R[j:, :]`` with zero derivative there, e.g. ``sum |R|^2 = ||A||_F^2``:
  ``R[j:, :]`` is Lipschitz in ``A`` (``||R[j:, :]|| = ||(I - Q1 Q1^H) Y||``), so its contribution is
  ``O(||dA||^2)``. The backward therefore takes this path when ``||gQ[:, j:]|| <= sqrt(eps) ||gQ||``
  and ``||gR[j:, :]|| <= sqrt(eps) ||gR||`` (rounding-level trailing cotangents).
* Otherwise it raises ``InputError``. A first-order dependence on ``R[j:, :]`` has no derivative:
  with rank ``j``, ``R_jj = ||(I - Q1 Q1^H) a_j||`` (one more column) behaves like ``|t|`` along
  ``dA = t (I - Q1 Q1^H) u``. ``Q2`` is not even continuous: arbitrarily small perturbations of
  ``A`` give it any orthonormal frame orthogonal to ``Q1`` (the direction of the vanishing residual),
  so a loss depending on it has a derivative only if it is invariant under that choice (e.g.
  ``Q Q^H`` of a square ``A``, a constant); the rule does not certify such losses and raises.

The JVP cannot know the loss: at a rank-deficient point it raises (eager mode). Inside
``torch.func`` transforms, where no value check can raise, the backward and the JVP return NaN for
the rank-deficient batch entries and warn once (``TransformCheckWarning``): loud, never a finite
wrong number.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor

from .._errors import InputError
from .._utils import check_finite_sum, check_matrix, reject_meta
from ._qr_rule import _QR

_MODES = ("reduced", "complete", "r")


class QRResult(NamedTuple):
    """``qr``'s result, as ``torch.linalg.qr``'s: ``Q`` (empty for ``mode="r"``, as torch's) and ``R``."""

    Q: Tensor
    R: Tensor


class LQResult(NamedTuple):
    """``lq``'s result: ``L`` and ``Q`` (empty for ``mode="r"``, as ``qr``'s ``Q``)."""

    L: Tensor
    Q: Tensor


def _check_mode(mode: str) -> None:
    if mode not in _MODES:
        raise InputError(f"mode: expected one of {_MODES}, got {mode!r}")


def qr(A: Tensor, mode: str = "reduced") -> QRResult:
    """QR decomposition ``A = Q R`` with ``R``'s diagonal real and positive, batched.

    Args:
        A: (..., m, n) float32, float64, complex64 or complex128, finite; tall, square or wide.
        mode: ``"reduced"`` (``Q`` (..., m, k), ``R`` (..., k, n), k = min(m, n)),
            ``"complete"`` (``Q`` (..., m, m), ``R`` (..., m, n)) or ``"r"`` (``R`` (..., k, n)
            only).

    Returns:
        ``QRResult(Q, R)`` in ``A``'s dtype (a named tuple, as ``torch.linalg.qr``'s); for
        ``mode="r"`` its ``Q`` is an empty tensor, as torch's. The values equal
        ``torch.linalg.qr``'s up to the phases of the first k columns of ``Q`` (and rows of ``R``).

    Differentiable in every mode (reverse, forward, second order; ``torch.func`` compatible),
    including ``"r"`` and ``"complete"`` with m > n, which ``torch.linalg.qr`` refuses. In complete
    mode with m > n the last m - n columns of ``Q`` are defined only up to a unitary factor: the
    gradient is exact for losses invariant under that factor, and backward raises ``GaugeError``
    for other losses (see the module docstring).

    At a rank-deficient ``A`` (pivot ``j`` numerically zero) the gradient of a loss of the leading
    block ``Q[:, :j]``, ``R[:j, :]`` exists and is returned exactly (also ``sum |R|^2``); a loss
    with a first-order dependence on ``R[j:, :]`` or on ``Q[:, j:]`` has none and raises (the
    proof is in the module docstring). Forward mode raises there (it propagates every output).

    Raises:
        InputError: ``A`` not a (batched) matrix, an unsupported dtype, non-finite entries, a meta
            tensor, or an unknown ``mode``. At a rank-deficient ``A``: in backward, for a loss
            that depends on the trailing block (the message names it); in forward mode, always.
        GaugeError: in backward, complete mode with m > n, for a loss that depends on the basis
            of the last m - n columns of ``Q`` (``Q2^H gQ2`` not Hermitian).

    Warns:
        TransformCheckWarning: inside ``torch.func`` transforms, where the rank and gauge checks
            cannot raise: the derivatives of rank-deficient batch entries are NaN (the gauge check
            is skipped).

    Example::

        import torch
        import difflinalg

        A = torch.tensor([[2.0, 1.0], [0.0, 1.0], [1.0, 3.0]], dtype=torch.float64, requires_grad=True)
        Q, R = difflinalg.qr(A)                      # Q (3, 2), R (2, 2) with a positive diagonal
        assert torch.allclose(Q @ R, A) and bool((R.diagonal() > 0).all())
        R.diagonal().log().sum().backward()          # log det(A^T A) / 2: gradient A (A^T A)^{-1}
        A0 = A.detach()
        assert torch.allclose(A.grad, A0 @ torch.linalg.inv(A0.mT @ A0))
    """
    _check_mode(mode)
    reject_meta("A", A)
    A = check_matrix(A, "A", finite=False)
    check_finite_sum(A, "A")
    # A lazily conjugated input (A.conj(), A.mH) trips a torch assert on forward-mode views inside
    # the nested jvp (jvp of jvp): materialize the conjugation (a no-op without the conj bit).
    Q, R = _QR.apply(A.resolve_conj().resolve_neg(), mode == "complete", "qr")
    return QRResult(A.new_empty(0) if mode == "r" else Q, R)


def lq(A: Tensor, mode: str = "reduced") -> LQResult:
    """LQ decomposition ``A = L Q`` (``Q Q^H = I``, ``L`` lower triangular, diagonal real positive).

    Computed as the QR decomposition of ``A^H`` (``L = R^H``, ``Q = Q_qr^H``), sharing its rules.

    Args:
        A: (..., m, n) float32, float64, complex64 or complex128, finite; tall, square or wide.
        mode: ``"reduced"`` (``L`` (..., m, k), ``Q`` (..., k, n), k = min(m, n)),
            ``"complete"`` (``L`` (..., m, n), ``Q`` (..., n, n)) or ``"r"`` (``L`` (..., m, k)
            only).

    Returns:
        ``LQResult(L, Q)`` in ``A``'s dtype (``Q`` empty for ``mode="r"``, as ``qr``'s). In
        complete mode with n > m the last n - m rows of ``Q`` are defined up to a unitary factor
        (same convention and check as ``qr``). The outputs carry no lazy conjugation (``.imag`` of them works under
        ``torch.func.vmap``). At rank-deficient rows the leading block ``L[:, :j]``, ``Q[:j, :]``
        is differentiable (as for ``qr``).

    Raises:
        InputError: ``A`` not a (batched) matrix, an unsupported dtype, non-finite entries, a meta
            tensor, or an unknown ``mode``. At rank-deficient rows of ``A``: in backward, for a
            loss that depends on the trailing block (``L[:, j:]`` or ``Q[j:, :]``); in forward
            mode, always.
        GaugeError: in backward, complete mode with n > m, for a loss that depends on the basis
            of the last n - m rows of ``Q``.

    Warns:
        TransformCheckWarning: as ``qr`` (NaN derivatives at rank-deficient batch entries inside
            ``torch.func`` transforms).

    Example::

        import torch
        import difflinalg

        A = torch.tensor([[2.0, 0.0, 1.0], [1.0, 1.0, 3.0]], dtype=torch.float64, requires_grad=True)
        L, Q = difflinalg.lq(A)                      # L (2, 2) lower triangular, Q (2, 3)
        assert torch.allclose(L @ Q, A) and torch.allclose(Q @ Q.mT, torch.eye(2, dtype=torch.float64))
        L.diagonal().log().sum().backward()          # log det(A A^T) / 2: gradient (A A^T)^{-1} A
        A0 = A.detach()
        assert torch.allclose(A.grad, torch.linalg.solve(A0 @ A0.mT, A0))
    """
    _check_mode(mode)
    reject_meta("A", A)
    A = check_matrix(A, "A", finite=False)
    check_finite_sum(A, "A")
    # Resolved conjugates in and out, never conj views: the ``.imag`` of a conj view is a neg view,
    # and ``aten::_neg_view`` has no vmap batching rule (vmap, jacrev, hessian would fail).
    Q, R = _QR.apply(_ht(A.resolve_neg()), mode == "complete", "lq")
    return LQResult(_ht(R), A.new_empty(0) if mode == "r" else _ht(Q))


def _ht(x: Tensor) -> Tensor:
    """``x^H`` as a tensor without the conjugate bit (``resolve_conj`` has a vmap rule;
    ``conj_physical`` runs vmap's slow per-sample fallback)."""
    return x.mH.resolve_conj()
