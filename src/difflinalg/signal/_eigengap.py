r"""Eigengap hinge loss ``max(0, margin - (lambda_k - lambda_{k+1}))`` (eigenvalues descending).

Used to encourage a clear separation between a k-dimensional signal subspace and the noise floor
of a covariance estimate (``shared/reference/seed-stable-eigengap-loss.md``). The eigenvalues come
from ``difflinalg.eigh``; the gradient of an eigenvalue is ``v v^H`` (its eigenvector), which
involves no gap, so the loss is differentiable wherever ``lambda_k`` and ``lambda_{k+1}`` are
simple eigenvalues, however degenerate the rest of the spectrum is, and it stays finite when it
is combined with subspace losses of the same decomposition (``signal.noise_subspace_power``); a
``torch.linalg.eigh``-based loss that also uses the noise eigenvectors is NaN on a flat floor.
Second derivatives (the eigenvalue curvature ``sum_l |v_k^H dR v_l|^2 / (lambda_k - lambda_l)``)
are those of ``difflinalg.eigh``.

At an exactly repeated ``lambda_{k+1}`` (a flat noise floor) the largest noise eigenvalue is not
differentiable (it is the maximum of the cluster: a convex, piecewise-smooth function); the
gradient returned is then ``v v^H`` for the eigenvector ``v`` of the cluster that the
eigensolver returned, a valid subgradient of that maximum (finite, never NaN). Smooth alternatives
when the floor is flat: a hinge on the cluster mean.

The Hermitian part of ``R`` is used (as everywhere in difflinalg).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._errors import InputError
from .._utils import as_tensor, check_matrix, is_wrapped
from ..spectral._eigh import eigh

_REDUCTIONS = ("mean", "sum", "none")


def _check_k(k, batch: tuple[int, ...], n: int, device) -> Tensor | int:
    if isinstance(k, bool):
        raise InputError(f"k: expected an integer or an integer tensor, got {k!r}")
    if isinstance(k, int):
        if not 1 <= k <= n - 1:
            raise InputError(f"k: expected 1 <= k <= n - 1 = {n - 1} (signal subspace dimension), got {k}")
        return k
    k = as_tensor(k, "k")
    if k.is_floating_point() or k.is_complex() or k.dtype == torch.bool:
        raise InputError(f"k: expected an integer tensor, got dtype {k.dtype}; use k.long()")
    try:
        torch.broadcast_shapes(k.shape, batch)
    except RuntimeError:
        raise InputError(f"k: shape {tuple(k.shape)} does not broadcast with the batch shape {batch} of R") from None
    if torch.broadcast_shapes(k.shape, batch) != tuple(batch):
        raise InputError(f"k: shape {tuple(k.shape)} must broadcast to the batch shape {batch} of R")
    if not is_wrapped(k) and k.numel() and not bool(((k >= 1) & (k <= n - 1)).all()):
        bad = k[(k < 1) | (k > n - 1)]
        raise InputError(f"k: every entry must satisfy 1 <= k <= n - 1 = {n - 1}, got {bad.tolist()[:5]}")
    return k.to(device)


def eigengap_loss(R: Tensor, k, margin, *, reduction: str = "mean") -> Tensor:
    """Hinge ``relu(margin - (lambda_k - lambda_{k+1}))`` on the k-th eigengap of Hermitian ``R``.

    Args:
        R: (..., n, n) Hermitian (its Hermitian part is used), real or complex, finite.
        k: number of signal eigenvalues: an int, or an integer tensor broadcasting to the batch
            shape ``R.shape[:-2]`` (one k per sample); ``1 <= k <= n - 1``. Eigenvalues are
            counted in descending order: ``lambda_1 >= lambda_2 >= ...``.
        margin: float or real tensor broadcasting to the batch shape (the desired gap).
        reduction: "mean" (default), "sum", or "none" (per-sample losses, shape ``R.shape[:-2]``).

    Returns:
        The reduced loss (real).
    """
    R = check_matrix(R, "R", square=True)
    if reduction not in _REDUCTIONS:
        raise InputError(f"reduction: expected one of {_REDUCTIONS}, got {reduction!r}")
    n = R.shape[-1]
    if n < 2:
        raise InputError(f"R: an eigengap needs n >= 2, got shape {tuple(R.shape)}")
    batch = tuple(R.shape[:-2])
    k = _check_k(k, batch, n, R.device)
    # gauge="ignore": at a flat floor the documented subgradient (an eigenvalue of a cluster, which
    # eigh's tie checks refuse as not differentiable) is what this loss returns
    w = eigh(R, gauge="ignore").eigenvalues  # ascending: lambda_k (descending) = w[n - k]
    if isinstance(k, int):
        lam_k, lam_k1 = w[..., n - k], w[..., n - k - 1]
    else:
        idx = (n - k).expand(batch)[..., None]
        lam_k = w.gather(-1, idx)[..., 0]
        lam_k1 = w.gather(-1, idx - 1)[..., 0]
    margin = as_tensor(margin, "margin")
    if margin.is_complex():
        raise InputError("margin: expected a real number or tensor, got a complex one")
    margin = margin.to(dtype=w.dtype, device=w.device)
    loss = torch.relu(margin - (lam_k - lam_k1))
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss
