"""The masked gap structure of the eigh rules (``_eigh``, ``_subspace``), as ``_svd_gaps`` is the
SVD's: eigenvalues ``w`` closer than ``tol * max|w|`` form chain clusters (``_gaps.cluster_ids``),
the inverse gaps ``F_ij = 1/(w_j - w_i)`` are 0 inside a cluster (and on the diagonal), and
``cluster_width`` bounds the index band that holds every in-cluster pair (for the cheap checks of
``_eigh_ties``). Why pairs inside a cluster are masked: ``_eigh_ties``' module docstring.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ._gaps import cluster_ids, inverse_gaps, spectral_scale


class EighGaps(NamedTuple):
    """Cluster structure of a spectrum ``w`` (..., k): ``F`` masked inverse gaps, ``cluster``
    (bool, diagonal included), ``block`` (in-cluster off-diagonal pairs), ``tol`` the relative
    tolerance, ``wmax`` (..., 1) the spectral scale ``max|w|`` of the whole matrix, ``ids``
    (..., k) the cluster index of every entry (``_gaps.cluster_ids``)."""

    F: Tensor
    cluster: Tensor
    block: Tensor
    tol: float
    wmax: Tensor
    ids: Tensor


def eigh_gaps(w: Tensor, tol: float, wmax: Tensor | None = None, F: Tensor | None = None) -> EighGaps:
    """Masks for ``w`` (..., k); chain clusters at ``tol * wmax`` (default ``wmax = max|w|``; a
    kept block passes the whole spectrum's). ``F``: skip computing the inverse gaps (the caller
    does not need them)."""
    w = w.detach()
    wmax = spectral_scale(w) if wmax is None else wmax.detach()
    ids = cluster_ids(w, tol, wmax)
    cluster = ids[..., :, None] == ids[..., None, :]
    eye = torch.eye(w.shape[-1], dtype=torch.bool, device=w.device)
    return EighGaps(inverse_gaps(w, cluster) if F is None else F, cluster, cluster & ~eye, tol, wmax, ids)


def cluster_width(gaps: EighGaps) -> Tensor:
    """The largest index distance ``|i - j|`` between two members of one cluster, over the batch
    (0-dim long; 0: no ties). Every in-cluster pair lies in the band ``0 < j - i <= width``
    (``band_stats``); for a sorted spectrum it is the largest cluster size minus one. O(k)."""
    ids = gaps.ids
    k = ids.shape[-1]
    if ids.numel() == 0:
        return ids.new_zeros(())
    pos = torch.arange(k, device=ids.device).expand_as(ids)
    first = torch.full_like(ids, k).scatter_reduce(-1, ids, pos, "amin")
    last = torch.full_like(ids, -1).scatter_reduce(-1, ids, pos, "amax")
    return (last - first).amax().clamp_min(0)
