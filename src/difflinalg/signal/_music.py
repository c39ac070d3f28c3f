r"""MUSIC pseudospectrum from the noise subspace of a covariance, differentiable with respect to it.

With ``k`` the number of sources (the signal subspace dimension), the signal subspace ``U_s`` is
the invariant subspace of the k largest eigenvalues of ``R`` and the noise subspace ``E_n`` its
orthogonal complement (the ``n - k`` smallest). For each steering vector ``a``::

    noise_subspace_power(R, a, k) = ||E_n^H a||^2 = ||(I - U_s U_s^H) a||^2
    music_spectrum(R, a, k)       = 1 / ||E_n^H a||^2

Only the k signal vectors are used (``E_n E_n^H = I - U_s U_s^H``), and the residual
``a - U_s (U_s^H a)`` is formed before its norm (rather than ``a^H a - ||U_s^H a||^2``), which
keeps the relative accuracy at the spectrum's peaks, where the residual is small.

Derivatives go through ``eigh_subspace(R, k, largest=True)``: they involve only the gaps between
signal and noise eigenvalues, so they are exact and finite on a flat (exactly or nearly
degenerate) noise floor and with repeated signal eigenvalues, and cost ``O(n^2 k)`` beyond the
eigendecomposition. A zero gap between ``lambda_k`` and ``lambda_{k+1}`` (k larger than the number
of sources the data support) raises ``DegenerateSpectrumError``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._errors import InputError
from .._utils import check_matrix
from ..spectral._subspace import check_k, eigh_subspace


def _check(R: Tensor, steering: Tensor, k) -> tuple[Tensor, Tensor, int]:
    R = check_matrix(R, "R", square=True)
    steering = check_matrix(steering, "steering")
    n = R.shape[-1]
    if steering.shape[-2] != n:
        raise InputError(
            f"steering: expected shape (..., n, G) with n = {n} (one steering vector per column, "
            f"as returned by ula_steering / ura_steering), got {tuple(steering.shape)}"
        )
    if steering.dtype != R.dtype:
        raise InputError(
            f"R, steering: dtypes differ ({str(R.dtype).replace('torch.', '')}, "
            f"{str(steering.dtype).replace('torch.', '')}); convert them to one dtype "
            f"(e.g. R.to(steering.dtype))"
        )
    try:
        torch.broadcast_shapes(R.shape[:-2], steering.shape[:-2])
    except RuntimeError:
        raise InputError(
            f"R, steering: batch shapes {tuple(R.shape[:-2])} and {tuple(steering.shape[:-2])} do not broadcast"
        ) from None
    k = check_k(k, n, "k", 1, n - 1)
    return R, steering, k


def noise_subspace_power(R: Tensor, steering: Tensor, k: int) -> Tensor:
    """``||E_n^H a||^2`` for every steering vector ``a`` (column of ``steering``).

    Args:
        R: (..., n, n) covariance (Hermitian part used), finite.
        steering: (..., n, G) steering vectors as columns, same dtype as ``R``; batch dimensions
            broadcast with those of ``R``.
        k: number of sources, ``1 <= k <= n - 1``; the noise subspace has dimension ``n - k``.

    Returns:
        (..., G) real, ``a^H (I - U_s U_s^H) a`` per column.
    """
    R, steering, k = _check(R, steering, k)
    Us = eigh_subspace(R, k, largest=True).eigenvectors
    resid = steering - Us @ (Us.mH @ steering)
    return (resid.real**2 + resid.imag**2).sum(-2) if resid.is_complex() else (resid**2).sum(-2)


def music_spectrum(R: Tensor, steering: Tensor, k: int) -> Tensor:
    """MUSIC pseudospectrum ``1 / ||E_n^H a||^2`` for every steering vector (column of ``steering``).

    ``k`` is the number of sources (signal subspace dimension); see ``noise_subspace_power`` for
    the arguments. Returns (..., G) real, differentiable with respect to ``R`` (and ``steering``).
    """
    return 1.0 / noise_subspace_power(R, steering, k)
