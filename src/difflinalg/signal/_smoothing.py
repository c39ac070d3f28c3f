r"""Forward-backward averaging and spatial smoothing of array covariances (coherent sources).

Coherent sources (multipath: one waveform arriving from several directions) make the source
covariance singular, so the signal subspace of ``R`` has fewer dimensions than there are sources
and MUSIC/ESPRIT fail. Both operations below restore its rank; both are linear in ``R``, hence
differentiable (plain torch operations) and exact under every transform.

Forward-backward averaging, for a centro-symmetric array (ULA, URA: element ``i`` and element
``n - 1 - i`` are mirror images, so ``J a(theta)^* = e^{-j phi} a(theta)``)::

    R_fb = (R + J R^* J) / 2,        J the exchange (reversal) matrix

decorrelates up to two coherent sources and makes ``R_fb`` centro-Hermitian (the structure that
unitary ESPRIT exploits).

Spatial smoothing averages the covariances of the ``L`` overlapping subarrays of size ``m``
(ULA) or ``mx x my`` (URA, 2-D smoothing), which share the steering vectors of the subarray up
to a per-source phase::

    R_ss = (1/L) sum_l R[I_l, I_l]

It decorrelates up to ``L`` coherent sources (``2 L`` with ``forward_backward=True``) at the cost
of a smaller aperture; the result is the covariance of a subarray (use the subarray's steering
vectors, e.g. ``ula_steering(m, ...)``, ``ura_steering(mx, my, ...)``).

References: T.-J. Shan, M. Wax, T. Kailath, On spatial smoothing for direction-of-arrival
estimation of coherent signals, IEEE Trans. ASSP 33 (1985) 806-811; S. U. Pillai and B. H. Kwon,
Forward/backward spatial smoothing techniques for coherent signal identification, IEEE Trans.
ASSP 37 (1989) 8-15; C.-C. Yeh, J.-H. Lee, Y.-M. Chen, Estimating two-dimensional angles of
arrival in coherent source environment, IEEE Trans. ASSP 37 (1989) 153-155.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._errors import InputError
from .._utils import check_int
from ._decomposition import covariance


def forward_backward_average(R: Tensor) -> Tensor:
    """``(R + J R^* J) / 2`` with ``J`` the exchange matrix (centro-symmetric arrays: ULA, URA).

    Args:
        R: (..., n, n) covariance, float32/float64/complex64/complex128, finite (conjugate views
            accepted).

    Returns:
        (..., n, n) in ``R``'s dtype, the forward-backward averaged covariance
        (centro-Hermitian: ``J R_fb^* J = R_fb`` for a Hermitian ``R``); linear in ``R``.

    Raises:
        InputError: ``R`` not a (batched) square floating matrix or not finite.

    Example::

        import torch
        from difflinalg import signal

        R = torch.tensor([[2.0, 1j, 0.5], [-1j, 1.0, 0.0], [0.5, 0.0, 3.0]], dtype=torch.complex128)
        Rfb = signal.forward_backward_average(R)
        J = torch.eye(3, dtype=torch.complex128).flip(0)
        assert torch.allclose(J @ Rfb.conj() @ J, Rfb)                 # centro-Hermitian
    """
    R = covariance(R)
    flipped = R.flip(-2, -1)
    return 0.5 * (R + (flipped.conj() if R.is_complex() else flipped))


def _sizes(shape, subarray) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(array shape, subarray shape) as tuples of the same length (1-D or 2-D)."""
    def as_tuple(x, name):
        items = x if isinstance(x, (tuple, list)) else (x,)
        if len(items) not in (1, 2):
            raise InputError(f"{name}: expected an int (ULA) or a pair (nx, ny) (URA), got {x!r}")
        return tuple(check_int(v, name, "positive integers") for v in items)
    sub = as_tuple(subarray, "subarray")
    full = as_tuple(shape, "shape")
    if len(sub) != len(full):
        raise InputError(f"subarray: {sub} must have as many dimensions as the array shape {full}")
    for s, f in zip(sub, full):
        if not 1 <= s <= f:
            raise InputError(f"subarray: expected 1 <= size <= array size per dimension, got {sub} for an array {full}")
    return full, sub


def spatial_smoothing(R: Tensor, subarray, *, shape=None, forward_backward: bool = False) -> Tensor:
    """Average of the covariances of all overlapping subarrays (1-D or 2-D spatial smoothing).

    Args:
        R: (..., n, n) covariance of a ULA (``n`` elements) or of an ``nx x ny`` URA (``n = nx ny``,
            element ``ix * ny + iy`` as in ``ura_steering``); float32/float64/complex64/complex128,
            finite.
        subarray: subarray size ``m`` (ULA) or ``(mx, my)`` (URA), positive integers.
        shape: ``(nx, ny)`` for a URA; default ``n`` (a ULA).
        forward_backward: average ``R`` forward-backward first (doubles the number of coherent
            sources that are decorrelated).

    Returns:
        (..., M, M) in ``R``'s dtype with ``M = m`` or ``mx * my``: the smoothed subarray
        covariance (the mean over the ``L`` subarrays); linear in ``R``.

    Raises:
        InputError: ``R`` not a (batched) square floating matrix or not finite; ``subarray`` or
            ``shape`` not an int or a pair of ints, of different lengths, or a subarray size
            outside ``1 .. array size``; ``shape`` whose product is not ``n``.

    Example::

        import torch
        from difflinalg import signal

        b = signal.ula_steering(8, torch.tensor([-0.3, 0.4], dtype=torch.float64)).sum(-1, keepdim=True)
        R = b @ b.mH                                 # two coherent sources: rank 1
        Rss = signal.spatial_smoothing(R, 6)         # mean over 3 subarrays of 6 elements
        w = torch.linalg.eigvalsh(Rss)
        assert Rss.shape == (6, 6) and int((w > 1e-9 * w.max()).sum()) == 2   # rank restored
    """
    R = covariance(R)
    n = R.shape[-1]
    full, sub = _sizes(n if shape is None else shape, subarray)
    if torch.Size(full).numel() != n:
        raise InputError(f"shape: {full} has {torch.Size(full).numel()} elements but R is {n} x {n}")
    if forward_backward:
        R = forward_backward_average(R)
    dev = R.device
    if len(full) == 1:
        offsets = torch.arange(full[0] - sub[0] + 1, device=dev)[:, None]
        idx = offsets + torch.arange(sub[0], device=dev)  # (L, m)
    else:
        (nx, ny), (mx, my) = full, sub
        ox, oy = torch.meshgrid(torch.arange(nx - mx + 1, device=dev), torch.arange(ny - my + 1, device=dev), indexing="ij")
        ix, iy = torch.meshgrid(torch.arange(mx, device=dev), torch.arange(my, device=dev), indexing="ij")
        idx = ((ox.reshape(-1, 1) + ix.reshape(1, -1)) * ny + oy.reshape(-1, 1) + iy.reshape(1, -1))  # (L, mx my)
    return R[..., idx[:, :, None], idx[:, None, :]].mean(-3)
