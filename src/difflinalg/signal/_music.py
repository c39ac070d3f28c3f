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
        R: (..., n, n) covariance (Hermitian part used), float32/float64/complex64/complex128,
            finite, conjugate views accepted; or a ``SpectralDecomposition`` of it
            (``decompose(R)``) shared with other losses.
        steering: (..., n, G) steering vectors as columns, same dtype as ``R``; batch dimensions
            broadcast with those of ``R``.
        k: number of sources, ``1 <= k <= n - 1`` (the noise subspace has dimension ``n - k``): an
            int, or an integer tensor broadcasting to the batch shape of ``R`` (one k per sample).

    Returns:
        (..., G) in the real dtype of ``R`` (batch shapes of ``R`` and ``steering`` broadcast),
        ``a^H (I - U_s U_s^H) a`` per column; differentiable with respect to ``R`` and
        ``steering``.

    Raises:
        InputError: ``R`` or ``steering`` not (batched) floating matrices, non-finite, with
            ``steering.shape[-2] != n`` or batch shapes that do not broadcast; a dtype of
            ``steering`` other than ``R``'s (cast with ``steering.to(R.dtype)``); ``k`` not an
            integer (tensor), out of ``1 .. n - 1`` or not broadcasting to the batch shape.
        DegenerateSpectrumError: ``lambda_k == lambda_{k+1}`` up to rounding in some sample (the
            signal subspace is not defined; inside ``torch.func`` that sample is NaN instead,
            with a ``TransformCheckWarning``).

    Example::

        import torch
        from difflinalg import signal

        theta = torch.tensor([-0.3, 0.4], dtype=torch.float64)
        A = signal.ula_steering(8, theta)            # (8, 2) complex128
        R = A @ A.mH + 0.1 * torch.eye(8, dtype=torch.complex128)
        a = signal.ula_steering(8, torch.tensor([-0.3, 0.0, 0.4], dtype=torch.float64))
        p = signal.noise_subspace_power(R, a, 2)     # (3,)
        assert p[0] < 1e-12 and p[2] < 1e-12 and p[1] > 1.0   # nulls at the sources
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
        (..., G) in the real dtype of ``R``, differentiable with respect to ``R`` (and
        ``steering``); ``inf`` where a steering vector lies exactly in the signal subspace.

    Raises:
        InputError, DegenerateSpectrumError: as ``noise_subspace_power``.

    Example::

        import torch
        from difflinalg import signal

        theta = torch.tensor([-0.3, 0.4], dtype=torch.float64)
        A = signal.ula_steering(8, theta)
        b = signal.ula_steering(8, torch.tensor([1.0], dtype=torch.float64))   # a weak third path
        R = A @ A.mH + 0.1 * b @ b.mH + 0.1 * torch.eye(8, dtype=torch.complex128)
        grid = torch.linspace(-1.2, 1.2, 241, dtype=torch.float64)     # step 0.01 rad
        P = signal.music_spectrum(R, signal.ula_steering(8, grid), 2)  # (241,)
        found = grid[signal.find_peaks(P, 2)].sort().values
        assert (found - theta).abs().max() <= 0.01
    """
    return 1.0 / noise_subspace_power(R, steering, k)
