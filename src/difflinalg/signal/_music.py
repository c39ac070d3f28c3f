r"""MUSIC pseudospectrum from the noise subspace of a covariance, differentiable with respect to it.

With ``k`` the number of sources (the signal subspace dimension), the signal subspace ``U_s`` is
the invariant subspace of the k largest eigenvalues of ``R`` and the noise subspace ``E_n`` its
orthogonal complement (the ``n - k`` smallest). For each steering vector ``a``::

    noise_subspace_power(R, a, k) = ||E_n^H a||^2 = ||(I - U_s U_s^H) a||^2
    music_spectrum(R, a, k)       = 1 / ||E_n^H a||^2

Only the k signal vectors are used (``E_n E_n^H = I - U_s U_s^H``), and the residual
``a - U_s (U_s^H a)`` is formed before its norm (rather than ``a^H a - ||U_s^H a||^2``), which
keeps the relative accuracy at the spectrum's peaks, where the residual is small.

Derivatives involve only the gaps between signal and noise eigenvalues (and inside the signal
subspace, where the loss is invariant), so they are exact and finite on a flat (exactly or nearly
degenerate) noise floor and with repeated signal eigenvalues. With ``R`` a matrix and an int
``k`` they go through ``eigh_subspace(R, k, largest=True)`` (``O(n^2 k)`` beyond the
eigendecomposition); with a shared ``SpectralDecomposition`` (``decompose``) or a per-sample
tensor ``k`` through ``difflinalg.eigh`` with cotangents on the signal eigenvectors only (the noise
columns of each sample are masked by exact zeros, no loop over groups of samples). A gap
between ``lambda_k`` and ``lambda_{k+1}`` at rounding level (k larger than the number of sources
the data support) raises ``DegenerateSpectrumError`` on both paths (inside ``torch.func`` the
affected samples are NaN, with one ``TransformCheckWarning``); estimate k first
(``estimate_source_count``). Small but resolved gaps enter the derivative as
``1 / (lambda_k - lambda_{k+1})``, as they must.

Reference: R. O. Schmidt, Multiple emitter location and signal parameter estimation, IEEE Trans.
Antennas Propag. 34 (1986) 276-280.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._errors import InputError
from .._utils import check_matrix
from ..spectral import eigh_subspace
from ._decomposition import (SpectralDecomposition, as_decomposition, check_sources, check_split, covariance,
                             resolve_views, signal_columns)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def _check_steering(steering, n: int, dtype: torch.dtype, batch: tuple[int, ...]) -> Tensor:
    steering = resolve_views(check_matrix(steering, "steering"))
    if steering.shape[-2] != n:
        raise InputError(
            f"steering: expected shape (..., n, G) with n = {n} (one steering vector per column, "
            f"as returned by ula_steering / ura_steering), got {tuple(steering.shape)}"
        )
    if steering.dtype != dtype:
        # In a training loop R comes from the network (its dtype is the one to keep); steering
        # vectors are fixed data: cast them, rather than upcasting the network's output.
        raise InputError(
            f"R, steering: dtypes differ ({_dtype_name(dtype)}, {_dtype_name(steering.dtype)}); cast the "
            f"steering vectors to the covariance's dtype with steering.to(R.dtype) (e.g. the network's "
            f"complex64), or build them in that dtype (float32 angles give complex64 vectors)"
        )
    try:
        torch.broadcast_shapes(batch, steering.shape[:-2])
    except RuntimeError:
        raise InputError(
            f"R, steering: batch shapes {batch} and {tuple(steering.shape[:-2])} do not broadcast"
        ) from None
    return steering


def noise_subspace_power(R, steering: Tensor, k) -> Tensor:
    """``||E_n^H a||^2`` for every steering vector ``a`` (column of ``steering``).

    Args:
        R: (..., n, n) covariance (Hermitian part used), finite, conjugate views accepted; or a
            ``SpectralDecomposition`` of it (``decompose(R)``) shared with other losses.
        steering: (..., n, G) steering vectors as columns, same dtype as ``R``; batch dimensions
            broadcast with those of ``R``.
        k: number of sources, ``1 <= k <= n - 1`` (the noise subspace has dimension ``n - k``): an
            int, or an integer tensor broadcasting to the batch shape of ``R`` (one k per sample).

    Returns:
        (..., G) real, ``a^H (I - U_s U_s^H) a`` per column.

    Raises:
        InputError: shapes, dtypes (cast with ``steering.to(R.dtype)``), or k out of range.
        DegenerateSpectrumError: ``lambda_k == lambda_{k+1}`` up to rounding in some sample (the
            signal subspace is not defined; inside ``torch.func`` that sample is NaN instead).
    """
    if isinstance(R, SpectralDecomposition):
        d = as_decomposition(R)
        ref = d.eigenvectors
    else:
        d, R = None, covariance(R)
        ref = R
    n, batch = ref.shape[-1], tuple(ref.shape[:-2])
    steering = _check_steering(steering, n, ref.dtype, batch)
    k = check_sources(k, batch, n, ref.device)
    if d is None and isinstance(k, int):
        # eigh_subspace checks the split gap itself
        Us = eigh_subspace(R, k, largest=True).eigenvectors
    else:
        d = d if d is not None else as_decomposition(R)
        Us = signal_columns(d.eigenvectors, k)
    resid = steering - Us @ (Us.mH @ steering)
    out = (resid.real**2 + resid.imag**2).sum(-2) if resid.is_complex() else (resid**2).sum(-2)
    return out if d is None else check_split(d.eigenvalues, k, out)


def music_spectrum(R, steering: Tensor, k) -> Tensor:
    """MUSIC pseudospectrum ``1 / ||E_n^H a||^2`` for every steering vector (column of ``steering``).

    Args:
        R: (..., n, n) covariance or its ``SpectralDecomposition``, as in ``noise_subspace_power``.
        steering: (..., n, G) steering vectors as columns, same dtype as ``R``.
        k: number of sources: int or per-sample integer tensor, ``1 <= k <= n - 1``.

    Returns:
        (..., G) real, differentiable with respect to ``R`` (and ``steering``).

    Raises:
        InputError, DegenerateSpectrumError: as ``noise_subspace_power``.
    """
    return 1.0 / noise_subspace_power(R, steering, k)
