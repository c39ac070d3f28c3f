r"""Eigengap hinges on a covariance: ``eigengap_loss`` (the k-th gap) and ``cluster_mean_gap_loss``
(the gap to the mean of the noise floor, smooth on a flat floor).

Both encourage a clear separation between a k-dimensional signal subspace and the noise floor of
a covariance estimate (behaviour at ties: ``docs/ties.md``). Eigenvalues are counted
in descending order, ``lambda_1 >= ... >= lambda_n``, and come from ``difflinalg.eigh`` (or a
shared ``SpectralDecomposition``, see ``decompose``).

``eigengap_loss`` is ``relu(margin - (lambda_k - lambda_{k+1}))``. The gradient of a simple
eigenvalue is ``v v^H`` (its eigenvector), which involves no gap, so the loss is differentiable
wherever ``lambda_k`` and ``lambda_{k+1}`` are simple, however degenerate the rest of the spectrum
is. At an exactly repeated ``lambda_{k+1}`` (a flat noise floor) the largest noise eigenvalue is not
differentiable (it is the maximum of the cluster: convex, piecewise smooth). There the loss reads
each of ``lambda_k``, ``lambda_{k+1}`` as the mean of its cluster of rounding-level ties (chain
clustering at ``n * eps * max|w|``, the tolerance of ``decompose``): the same value up to rounding,
and a gradient ``P_c / |c|`` (the cluster's projector over its size), a convex combination of the
``v v^H`` of the cluster and therefore a valid subgradient of its maximum that does not depend on
the basis the eigensolver picked -- in the exact class of ``difflinalg.eigh``, so its tie checks
pass. It is a subgradient, not a derivative: ``cluster_mean_gap_loss`` is the smooth loss.

``cluster_mean_gap_loss`` is the smooth alternative on a flat floor::

    relu(margin - (s_k - mean_{j > k} lambda_j)),   s_k = lambda_k  (signal="smallest")
                                                     s_k = mean_{i <= k} lambda_i  (signal="mean")

The noise mean is ``(tr R - sum_{i <= k} lambda_i) / (n - k)``, a smooth function of ``R``
wherever ``lambda_k > lambda_{k+1}`` (Ky Fan: the sum of the k largest eigenvalues is
differentiable where the k-th gap is open), with gradient ``E_n E_n^H / (n - k)``, the noise
projector: it does not depend on the basis the eigensolver picks inside the floor, so the
derivative is exact at exact ties of the floor (a function of cluster means of eigenvalues is in
the exact class of ``difflinalg.eigh``; so is its second derivative, whose eigenvalue curvature
terms ``|v_i^H dR v_j|^2 / (lambda_i - lambda_j)`` cancel inside a cluster that receives a uniform
cotangent). With ``signal="mean"`` the loss is exact also at repeated signal eigenvalues (equal
source powers); with ``signal="smallest"`` ``lambda_k`` must be simple.

The Hermitian part of ``R`` is used (as everywhere in difflinalg).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._errors import InputError
from .._utils import as_tensor, is_wrapped
from ..spectral._gaps import cluster_ids
from ._decomposition import as_decomposition, check_sources, rounding_tol

_REDUCTIONS = ("mean", "sum", "none")


def _setup(R, k, margin, reduction: str):
    """Shared checks: (eigenvalues ascending, k, margin as a tensor of their dtype)."""
    if reduction not in _REDUCTIONS:
        raise InputError(f"reduction: expected one of {_REDUCTIONS}, got {reduction!r}")
    margin = as_tensor(margin, "margin")
    if margin.is_complex() or margin.dtype == torch.bool:
        raise InputError(f"margin: expected a real number or tensor (the desired gap), got dtype {margin.dtype}")
    if not is_wrapped(margin) and margin.numel() and not bool(torch.isfinite(margin).all()):
        raise InputError(f"margin: expected a finite desired gap (e.g. 1.0), got {margin.flatten()[:5].tolist()}")
    w = as_decomposition(R).eigenvalues
    n = w.shape[-1]
    if n < 2:
        raise InputError(f"R: an eigengap needs n >= 2, got {n} x {n} matrices")
    batch = tuple(w.shape[:-1])
    k = check_sources(k, batch, n, w.device)
    try:
        torch.broadcast_shapes(margin.shape, batch)
    except RuntimeError:
        raise InputError(f"margin: shape {tuple(margin.shape)} does not broadcast with the batch shape {batch}") from None
    return w, k, margin.to(dtype=w.dtype, device=w.device)


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _at(w: Tensor, idx: Tensor | int) -> Tensor:
    """``w[..., idx]`` for an int or a per-sample index tensor."""
    if isinstance(idx, int):
        return w[..., idx]
    return w.gather(-1, idx.expand(w.shape[:-1])[..., None])[..., 0]


def eigengap_loss(R, k, margin, *, reduction: str = "mean") -> Tensor:
    """Hinge ``relu(margin - (lambda_k - lambda_{k+1}))`` on the k-th eigengap of Hermitian ``R``.

    Args:
        R: (..., n, n) Hermitian (its Hermitian part is used), float32/float64/complex64/complex128,
            finite, n >= 2, conjugate views accepted; or a ``SpectralDecomposition`` of it
            (``decompose(R)``) shared with other losses.
        k: number of signal eigenvalues: an int, or an integer tensor broadcasting to the batch
            shape ``R.shape[:-2]`` (one k per sample); ``1 <= k <= n - 1``. Eigenvalues are
            counted in descending order: ``lambda_1 >= lambda_2 >= ...``.
        margin: finite float or real tensor broadcasting to the batch shape (the desired gap).
        reduction: "mean" (default), "sum", or "none" (per-sample losses, shape ``R.shape[:-2]``).

    Returns:
        The loss in the real dtype of ``R``: a 0-d tensor for "mean" and "sum", the per-sample
        losses (the batch shape ``R.shape[:-2]`` broadcast with ``margin``'s) for "none".
        Differentiable with respect to ``R`` (and ``margin``); at a repeated ``lambda_k`` or
        ``lambda_{k+1}`` the gradient is the cluster-mean subgradient of the module docstring.

    Raises:
        InputError: ``R`` not a (batched) square floating matrix with n >= 2, non-finite, or a
            ``SpectralDecomposition`` with inconsistent shapes; ``k`` not an integer (tensor), out
            of ``1 .. n - 1`` or not broadcasting to the batch shape; ``margin`` complex,
            non-finite or not broadcasting; an unknown ``reduction``.

    Example::

        import torch
        from difflinalg import signal

        R = torch.diag(torch.tensor([1.0, 1.0, 3.0, 5.0], dtype=torch.float64)).requires_grad_()
        loss = signal.eigengap_loss(R, 2, 3.0)       # relu(3 - (lambda_2 - lambda_3)) = relu(3 - (3 - 1))
        assert torch.allclose(loss, torch.tensor(1.0, dtype=torch.float64))
        loss.backward()                              # -v_2 v_2^H + (floor projector) / 2: a subgradient
        assert torch.allclose(R.grad, torch.diag(torch.tensor([0.5, 0.5, -1.0, 0.0], dtype=torch.float64)))
    """
    w, k, margin = _setup(R, k, margin, reduction)
    n = w.shape[-1]
    ids = cluster_ids(w, rounding_tol(n, w.dtype))

    def cluster_mean(idx):  # w[idx], read as the mean of its cluster of ties (module docstring)
        sel = (ids == _at(ids, idx)[..., None]).to(w.dtype)
        return (w * sel).sum(-1) / sel.sum(-1)

    lam_k, lam_k1 = cluster_mean(n - k), cluster_mean(n - k - 1)  # ascending: lambda_k = w[n - k]
    return _reduce(torch.relu(margin - (lam_k - lam_k1)), reduction)


def cluster_mean_gap_loss(R, k, margin, *, signal: str = "smallest", reduction: str = "mean") -> Tensor:
    r"""Hinge on the gap between the signal eigenvalues and the mean of the noise floor.

    ``relu(margin - (s_k - mean_{j > k} lambda_j))`` with ``s_k = lambda_k`` (``signal="smallest"``)
    or the mean of the k largest eigenvalues (``signal="mean"``); eigenvalues descending. Smooth in
    ``R`` wherever ``lambda_k > lambda_{k+1}``, however degenerate the floor (its gradient there is
    the noise projector over ``n - k``): the exact replacement of ``eigengap_loss`` on a flat floor,
    where ``lambda_{k+1}`` itself is not differentiable. See the module docstring for the proof.

    Args:
        R: (..., n, n) Hermitian covariance (Hermitian part used), or a ``SpectralDecomposition``.
        k: number of signal eigenvalues, int or integer tensor of the batch shape, ``1 <= k <= n-1``.
        margin: finite float or real tensor broadcasting to the batch shape.
        signal: "smallest" (``lambda_k``; needs a simple ``lambda_k``) or "mean" (exact also at
            repeated signal eigenvalues).
        reduction: "mean" (default), "sum" or "none".

    Returns:
        The loss in the real dtype of ``R``, reduced as in ``eigengap_loss`` (0-d for "mean" and
        "sum", per sample for "none"); differentiable with respect to ``R``, exact at a flat floor.

    Raises:
        InputError: as ``eigengap_loss``, or an unknown ``signal``.

    Example::

        import torch
        from difflinalg import signal

        R = torch.diag(torch.tensor([1.0, 1.0, 3.0, 5.0], dtype=torch.float64)).requires_grad_()
        loss = signal.cluster_mean_gap_loss(R, 2, 4.0, signal="mean")   # relu(4 - ((5 + 3)/2 - 1))
        assert torch.allclose(loss, torch.tensor(1.0, dtype=torch.float64))
        loss.backward()                              # -P_signal / 2 + P_noise / 2
        assert torch.allclose(R.grad, torch.diag(torch.tensor([0.5, 0.5, -0.5, -0.5], dtype=torch.float64)))

    Reference: K. Fan, On a theorem of Weyl concerning eigenvalues of linear transformations,
    PNAS 35 (1949) (the sum of the k largest eigenvalues); A. S. Lewis, Derivatives of spectral
    functions, Math. Oper. Res. 21 (1996) (differentiability of symmetric functions of eigenvalues).
    """
    if signal not in ("smallest", "mean"):
        raise InputError(f"signal: expected 'smallest' or 'mean', got {signal!r}")
    w, k, margin = _setup(R, k, margin, reduction)
    n = w.shape[-1]
    idx = torch.arange(n, device=w.device)
    # A cluster's eigenvalues enter only through their sum: a uniform cotangent on the floor
    # (and on the signal cluster for "mean"), which the eigh rule turns into a projector.
    noise = idx < (n - k if isinstance(k, int) else (n - k)[..., None])
    noise_mean = (w * noise).sum(-1) / (n - k)
    if signal == "mean":
        s = (w * ~noise).sum(-1) / k
    else:
        s = _at(w, n - k)
    return _reduce(torch.relu(margin - (s - noise_mean)), reduction)
