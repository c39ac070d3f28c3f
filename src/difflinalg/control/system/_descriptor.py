r"""Dense descriptor systems ``E x' = A x + B u``: ``E`` folded in at construction.

A dense ``StateSpace`` holds ``(E^{-1} A, E^{-1} B, C, D)``: one LU of ``E``
(``torch.linalg.lu_factor``, differentiable in ``E``, ``A`` and ``B``), two triangular solves. The
transfer function ``C (sE - A)^{-1} B + D = C (sI - E^{-1} A)^{-1} E^{-1} B + D`` is unchanged, so
every analysis and reduction of ``control`` applies as is.

Accuracy. The folded matrices carry a relative error of about ``cond(E) eps`` (Higham, *Accuracy
and Stability of Numerical Algorithms*, 2nd ed., sec. 9.3 and 14.1); so an ``E`` with
``cond(E) eps`` above ``PRECISION_TOL`` warns ``PrecisionWarning`` with the condition number, and an
``E`` whose condition number reaches ``1 / (n eps)`` (numerically singular: a differential-algebraic
system, which has no state-space form) is an ``InputError``. Inside ``torch.func`` transforms the
check cannot raise: the folded matrices of a numerically singular ``E`` are NaN and
``TransformCheckWarning`` is issued once (docs/conventions.md, "Checks inside torch.func").
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..._errors import InputError, TransformCheckWarning
from ..._utils import check_matrix, check_precision, check_same_dtype, eps, is_wrapped, warn_once


def is_sparse_matrix(x) -> bool:
    """True for a ``scipy.sparse`` matrix or array (scipy is imported only if ``x`` may be one)."""
    if x is None or isinstance(x, Tensor) or not hasattr(x, "tocsc"):
        return False
    import scipy.sparse as sps

    return sps.issparse(x)


def fold_descriptor(A: Tensor, B: Tensor, E: Tensor) -> tuple[Tensor, Tensor]:
    """``(E^{-1} A, E^{-1} B)`` by one LU of ``E`` (module docstring).

    Args:
        A: (..., n, n) state matrix. B: (..., n, m) input matrix.
        E: (..., n, n) mass matrix, the dtype of ``A``; batch dimensions broadcast.

    Returns:
        ``(E^{-1} A, E^{-1} B)``, differentiable in ``A``, ``B`` and ``E``.

    Raises:
        InputError: ``E`` not square, of another size or dtype than ``A``, or numerically singular
            (``cond(E) >= 1 / (n eps)``; the message gives the condition number).

    Warns:
        PrecisionWarning: ``cond(E) eps > PRECISION_TOL``. TransformCheckWarning: inside
            ``torch.func``, where a singular ``E`` gives NaN instead of raising.
    """
    E = check_matrix(E, "E", square=True)
    n = A.shape[-1]
    if E.shape[-1] != n:
        raise InputError(f"E: expected shape (..., {n}, {n}) to match A, got {tuple(E.shape)}")
    check_same_dtype(A=A, E=E)
    LU, piv, info = torch.linalg.lu_factor_ex(E)
    # 1-norm condition number ||E||_1 ||E^{-1}||_1 from the LU (LAPACK's cheaper estimate is not
    # exposed by torch; the inverse costs O(n^3), as the LU itself). An exact zero pivot: infinite.
    with torch.no_grad():
        Einv = torch.linalg.lu_solve(LU.detach(), piv, torch.eye(n, dtype=E.dtype, device=E.device).expand_as(E))
        norm1 = torch.linalg.matrix_norm(E.detach(), ord=1) * torch.linalg.matrix_norm(Einv, ord=1)
        cond = torch.where((info == 0) & torch.isfinite(norm1), norm1, torch.full_like(norm1, float("inf")))
    limit = 1.0 / (n * eps(E.dtype))
    if is_wrapped(E) or is_wrapped(cond):
        warn_once("StateSpace.E", "StateSpace: inside torch.func the singularity check of E cannot raise; "
                  "a numerically singular E gives NaN matrices", TransformCheckWarning)
        bad = ~(cond < limit)
        A2, B2 = torch.linalg.lu_solve(LU, piv, A), torch.linalg.lu_solve(LU, piv, B)
        nan = torch.full((), float("nan"), dtype=A2.real.dtype)
        return (torch.where(bad[..., None, None], nan.to(A2.dtype), A2),
                torch.where(bad[..., None, None], nan.to(B2.dtype), B2))
    worst = float(cond.max()) if cond.numel() else 0.0
    if not worst < limit:
        raise InputError(f"E: the mass matrix is numerically singular (1-norm condition number {worst:.3g} "
                         f">= 1 / (n eps) = {limit:.3g}); a differential-algebraic system has no state-space "
                         "form: eliminate its algebraic equations first, or pass E=None for the identity")
    check_precision("StateSpace", worst, E.dtype, "the mass matrix E (folded as E^{-1} A, E^{-1} B)")
    return torch.linalg.lu_solve(LU, piv, A), torch.linalg.lu_solve(LU, piv, B)
