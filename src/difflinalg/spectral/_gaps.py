r"""Masked and regularized inverse gaps of a spectrum, shared by the spectral rules.

Eigenvector (and singular-vector) derivatives divide by eigenvalue gaps ``w_j - w_i``. At a
(near-)degenerate spectrum the division must be controlled, with masks and without host
synchronisation (so that the rules run inside ``torch.func`` transforms and on any device):

* ``cluster_ids`` / ``cluster_mask``: chain clustering of a real spectrum. Two values belong to
  one cluster when a chain of neighbours (in sorted order) joins them with every step
  ``<= tol * scale``, ``scale = max |w|`` per matrix. Unlike a pairwise test ``|w_i - w_j| <= tol``
  this is an equivalence relation, so "rotations inside a cluster" is well defined (the rules'
  second-order terms rely on the mask being block diagonal in sorted order).
* ``inverse_gaps``: ``F_ij = 1/(w_j - w_i)`` with ``F = 0`` on masked pairs and on the diagonal
  (``1/0 := 0``, the pseudo-inverse convention); ``masked_reciprocal`` is its elementwise core,
  also for differentiated gaps (whose derivative stays finite where the entry is masked).
* ``cross_inverse_gaps``: ``C_ij = 1/(b_j - a_i)`` between two disjoint parts of a spectrum (a kept
  block and its complement) with NaN where ``|b_j - a_i| <= tol``: a zero gap across a split that
  the caller named is an error of the caller, so it is poisoned, never masked.
* ``divided_differences``: ``(g_j - g_i)/(w_j - w_i)`` on selected pairs (Daleckii-Krein terms of
  second derivatives through eigenvalue outputs).
* ``tie_tolerance``: ``n * eps * scale``, the size of a gap that rounding alone can produce
  (backward error of a Hermitian eigensolver, ``O(n eps ||A||_2)``).
* ``TIE_FACTOR`` / ``default_tol``: the relative clustering tolerance the spectral ops use by
  default, ``TIE_FACTOR * n * eps`` (``n`` the larger dimension): a computed tie comes out split
  by up to ``~0.4 n eps max|w|`` (measured for ``eigh`` and ``svd``, ranks 2..128, real and
  complex, single and double), so every rounding-level split is a tie and every gap a derivative
  can resolve is kept.
* ``check_degeneracy_tol``: validation of the relative clustering tolerance the ops take.

All functions take real tensors ``(..., n)`` and return ``(..., n, n)`` (or ``(..., m, n)``);
except ``masked_reciprocal`` they are not differentiated (the rules apply their own derivative
formulas), so the results are computed from detached values.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._errors import InputError
from .._utils import eps, is_wrapped


TIE_FACTOR = 4.0
"""Default relative tie tolerance, in units of ``n * eps`` (see the module notes)."""


def default_tol(degeneracy_tol: float | None, n: int, dtype: torch.dtype) -> float:
    """The relative clustering tolerance: ``None`` -> ``TIE_FACTOR * n * eps(dtype)``, else the
    (validated) float itself."""
    if degeneracy_tol is None:
        return TIE_FACTOR * max(n, 1) * eps(dtype)
    return float(degeneracy_tol)


def check_degeneracy_tol(degeneracy_tol, relative_to: str) -> float | None:
    """Validate an op's ``degeneracy_tol``: None, or a finite float >= 0 (relative to the spectral
    scale ``relative_to``, named in the message)."""
    if degeneracy_tol is None:
        return None
    if isinstance(degeneracy_tol, bool) or not isinstance(degeneracy_tol, (int, float)) \
            or not math.isfinite(degeneracy_tol) or degeneracy_tol < 0:
        raise InputError(
            f"degeneracy_tol: expected None or a finite float >= 0 (relative to {relative_to}), "
            f"got {degeneracy_tol!r}"
        )
    return float(degeneracy_tol)


def spectral_scale(w: Tensor) -> Tensor:
    """``max_i |w_i|`` per matrix, shape (..., 1) (0 for an empty spectrum)."""
    w = w.detach()
    if w.shape[-1] == 0:
        return torch.zeros(w.shape[:-1] + (1,), dtype=w.dtype, device=w.device)
    return w.abs().amax(dim=-1, keepdim=True)


def tie_tolerance(w: Tensor, n: int | None = None) -> Tensor:
    """Gap below which two eigenvalues are equal up to rounding: ``n * eps * max|w|``, (..., 1)."""
    n = w.shape[-1] if n is None else n
    return max(n, 1) * eps(w.dtype) * spectral_scale(w)


def cluster_ids(w: Tensor, tol: float, scale: Tensor | None = None) -> Tensor:
    """Cluster index of every entry of ``w`` (..., n) under chain clustering at ``tol * scale``
    (``scale`` (..., 1), default ``max|w|``; a part of a spectrum passes the whole one's).

    Indices are increasing along sorted order and start at 0 in every matrix; ``w`` need not be
    sorted. ``tol = 0`` clusters exactly equal values only.
    """
    w = w.detach()
    n = w.shape[-1]
    if n == 0:
        return torch.zeros_like(w, dtype=torch.long)
    thr = tol * (spectral_scale(w) if scale is None else scale)
    ws, perm = torch.sort(w, dim=-1)
    new = (ws[..., 1:] - ws[..., :-1]) > thr
    ids_sorted = torch.cat(
        [torch.zeros_like(ws[..., :1], dtype=torch.long), new.long().cumsum(dim=-1)], dim=-1
    )
    return torch.zeros_like(ids_sorted).scatter(-1, perm, ids_sorted)


def cluster_mask(w: Tensor, tol: float, scale: Tensor | None = None) -> Tensor:
    """Boolean (..., n, n): ``True`` where ``w_i`` and ``w_j`` are in one cluster (diagonal included)."""
    ids = cluster_ids(w, tol, scale)
    return ids[..., :, None] == ids[..., None, :]


def masked_reciprocal(x: Tensor, keep: Tensor) -> Tensor:
    """``1/x`` where ``keep`` (bool, broadcasting with ``x``), 0 elsewhere: no inf/NaN in the value
    or, when ``x`` is differentiated, in its derivative (the masked entries divide by 1)."""
    return torch.where(keep, 1.0 / torch.where(keep, x, torch.ones_like(x)), torch.zeros_like(x))


def inverse_gaps(w: Tensor, mask: Tensor | None = None) -> Tensor:
    """``F_ij = 1/(w_j - w_i)``; 0 on the diagonal and where ``mask`` (bool (..., n, n)) is True."""
    w = w.detach()
    d = w[..., None, :] - w[..., :, None]
    drop = d == 0  # the diagonal (w_i - w_i = 0 exactly) and exact ties
    if mask is not None:
        drop = drop | mask
    # masked_fill rather than torch.where (not differentiated here): torch.where with a bool mask
    # costs ~10x more on CPU, and this runs in every backward (~15% of a 144 x 144 eigh backward);
    # in place on the fresh d outside torch.func (each fresh n x n buffer costs page faults)
    if is_wrapped(d) or is_wrapped(drop):
        return (1.0 / d.masked_fill(drop, 1.0)).masked_fill(drop, 0.0)
    return d.masked_fill_(drop, 1.0).reciprocal_().masked_fill_(drop, 0.0)


def cross_inverse_gaps(a: Tensor, b: Tensor, tol: Tensor | float) -> Tensor:
    """``C_ij = 1/(b_j - a_i)`` for ``a`` (..., m) and ``b`` (..., n), NaN where ``|b_j - a_i| <= tol``.

    ``tol`` is a float or a tensor broadcasting against (..., 1, 1) (e.g. ``tie_tolerance(w)[..., None]``).
    """
    a, b = a.detach(), b.detach()
    d = b[..., None, :] - a[..., :, None]
    bad = d.abs() <= tol
    inv = 1.0 / torch.where(bad, torch.ones_like(d), d)
    return torch.where(bad, torch.full_like(d, float("nan")), inv)


def divided_differences(g: Tensor, w: Tensor, pairs: Tensor) -> Tensor:
    """``W_ij = (g_j - g_i)/(w_j - w_i)`` on ``pairs`` (bool (..., n, n), i != j, w_i != w_j), else 0.

    The quotient loses accuracy as ``|w_j - w_i|`` shrinks (absolute error ``~ eps |g| / gap``);
    callers exclude pairs that are ties up to rounding (``tie_tolerance``).
    """
    w, g = w.detach(), g.detach()
    d = w[..., None, :] - w[..., :, None]
    keep = pairs & (d != 0)
    num = g[..., None, :] - g[..., :, None]
    return torch.where(keep, num / torch.where(keep, d, torch.ones_like(d)), torch.zeros_like(d))


def off_diagonal_pairs(w: Tensor, mask: Tensor, tie_tol: Tensor) -> Tensor:
    """Pairs of ``mask`` that are off the diagonal and separated by more than ``tie_tol`` (..., 1)."""
    w = w.detach()
    d = (w[..., None, :] - w[..., :, None]).abs()
    eye = torch.eye(w.shape[-1], dtype=torch.bool, device=w.device)
    return mask & ~eye & (d > tie_tol[..., None])
