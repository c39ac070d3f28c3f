"""The masked gap structure of the SVD rules (``_svd.py``, shared with ``_svd_truncated.py``).

With singular values ``S`` (descending) and an absolute tolerance ``tol = tol_rel * max(S)``:
``G1_ij = 1/(s_j - s_i)`` (0 inside a chain cluster, ``_gaps.cluster_mask``, and on the
diagonal), ``G2_ij = 1/(s_j + s_i)`` and ``Sinv = 1/s`` (0 where ``<= tol``); the block tangent
``D`` of the second-order rules and the first-order block inverse ``Sinv - Sinv D Sinv``. The
formulas that use them and why each gap is masked: the module notes of ``_svd.py``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .._utils import herm, is_wrapped
from ._gaps import cluster_mask, masked_reciprocal, spectral_scale




def masked_inverse(x: Tensor, tol: Tensor | float) -> Tensor:
    """``1/x`` where ``|x| > tol`` and ``0`` elsewhere (no inf/NaN in values or derivatives)."""
    return masked_reciprocal(x, x.abs() > tol)


class SVDGaps(NamedTuple):
    """The masked gap structure of a (thin) SVD with singular values ``S`` (..., k).

    ``G1 = 1/(s_j - s_i)`` (0 inside clusters and on the diagonal), ``G2 = 1/(s_j + s_i)``,
    ``Sinv = 1/s`` (0 where masked); ``tol`` (..., 1, 1) absolute; ``cluster`` (..., k, k) bool,
    chain clusters (``_gaps.cluster_mask``); ``block`` (..., k, k) bool, the off-diagonal pairs
    of clusters away from zero (where the block tangent ``D`` of the second-order rules lives).
    """

    G1: Tensor
    G2: Tensor
    Sinv: Tensor
    tol: Tensor
    cluster: Tensor
    block: Tensor


def svd_gaps(S: Tensor, tol_rel: float) -> SVDGaps:
    """Masks and inverse gaps of the rules for the relative tolerance ``tol_rel``
    (``_svd_ties.resolve_tol``); differentiable through ``S``, the masks are not."""
    k = S.shape[-1]
    tol = (tol_rel * spectral_scale(S))[..., None]  # (..., 1, 1)
    cluster = cluster_mask(S, tol_rel)
    diff = S[..., None, :] - S[..., :, None]
    G1 = masked_reciprocal(diff, ~cluster & (diff.detach() != 0))
    G2 = masked_inverse(S[..., None, :] + S[..., :, None], tol)
    Sinv = masked_inverse(S, tol[..., 0])
    zero = S.detach() <= tol[..., 0]
    eye = torch.eye(k, dtype=torch.bool, device=S.device)
    block = cluster & ~eye & ~zero[..., :, None] & ~zero[..., None, :]
    return SVDGaps(G1, G2, Sinv, tol, cluster, block)


def block_tangent(A: Tensor, U: Tensor, Vh: Tensor, gaps: SVDGaps) -> Tensor:
    """``D``: the off-diagonal in-cluster part of ``herm(U^H A V) - diag(S)``, as a tensor whose
    value is exactly 0 but whose derivative is that of the block (see the module notes); an
    ``O(m n k)`` product."""
    Hs = herm(U.mH @ A @ Vh.mH)
    return (Hs - Hs.detach()) * gaps.block


def needs_block(gaps: SVDGaps) -> bool:
    """Whether the block tangent can be nonzero: inside ``torch.func`` always assumed (no host
    synchronisation), outside one check whether any cluster away from zero exists (otherwise
    ``D`` is exactly zero and its ``O(m n k)`` product is skipped)."""
    return is_wrapped(gaps.block) or bool(gaps.block.any())


def inv_block(Sinv: Tensor, D: Tensor | None) -> Tensor:
    """``Sigma^{-1}`` to first order in the block tangent: ``Sinv - Sinv D Sinv`` (a matrix)."""
    M = torch.diag_embed(Sinv)
    if D is None:
        return M
    M = M.to(D.dtype)
    return M - Sinv[..., :, None].to(D.dtype) * D * Sinv[..., None, :].to(D.dtype)


def comm(D: Tensor, X: Tensor) -> Tensor:
    return D @ X - X @ D


def acomm(D: Tensor, X: Tensor) -> Tensor:
    return D @ X + X @ D
