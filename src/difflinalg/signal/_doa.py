r"""DOA readout from a spectrum on a 1-D or 2-D grid: peak picking and a differentiable soft-argmax
refinement.

``find_peaks`` returns the grid indices of the ``n_peaks`` largest local maxima (a point not
smaller than its 2 (1-D) or 8 (2-D) neighbours; grid edges count as lower neighbours), batched.

``soft_argmax_refine`` refines each peak below the grid spacing. A smooth score ``s`` (to be
maximized) that is locally quadratic around its maximum ``x0``, ``s(x) ~ s0 - (x - x0)^T H (x -
x0) / 2``, turns into Gaussian weights ``softmax(s / tau)`` centred at ``x0``; their mean over a
window of grid points around the peak::

    x_hat = sum_i softmax(s(x_i) / tau) x_i

is ``x0`` up to the truncation of the window and the aliasing of the grid, both small when the
weights' width ``sigma`` is a fraction of a grid step ``h`` and the window spans several widths:
the aliasing error of the mean of a Gaussian of width ``sigma`` sampled at spacing ``h`` is at
most ``~ 4 pi (sigma^2 / h) exp(-2 pi^2 sigma^2 / h^2)`` (Poisson summation) and the truncation error at most
``radius h Phi_c((radius - 1/2) h / sigma)``. A cubic term ``d3`` of the score (third derivative
over 6) adds a bias ``~ 3 d3 sigma^2 / (2 c)`` (``c`` the curvature over 2), which a small width
keeps small. The default temperature sets ``sigma = h / sqrt(2)`` (aliasing ``<= 2 pi h e^{-pi^2} ~ 3.3e-4 h``,
truncation ``< 2e-6 h`` at the default radius 4) from the score's discrete curvature at the peak:
``tau = -mean_axes(s[i+1] - 2 s[i] + s[i-1]) / 2``, itself a linear function of the score, so the
derivatives are those of the refined coordinates as defined, temperature included. The result is differentiable in the
score, hence in ``R`` through ``music_spectrum``; a good score is the negative null spectrum
``-noise_subspace_power`` (an analytic, locally quadratic function of the angles, unlike the
sharp MUSIC peaks ``1 / ||E_n^H a||^2``). A peak whose window reaches the grid's edge uses the
window shifted inside (biased: extend the grid beyond the expected directions).

Reference: soft-argmax as in S. Honari et al., Improving landmark localization with
semi-supervised learning, CVPR 2018; MUSIC grid search: R. O. Schmidt, IEEE Trans. Antennas
Propag. 34 (1986) 276-280.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .._errors import InputError
from .._utils import as_tensor, check_int, is_wrapped


def _check_spectrum(P, ndim: int) -> Tensor:
    if ndim not in (1, 2):
        raise InputError(f"ndim: expected 1 (a ULA grid) or 2 (an azimuth/elevation grid), got {ndim!r}")
    P = as_tensor(P, "spectrum")
    if P.is_complex() or not P.is_floating_point():
        raise InputError(f"spectrum: expected a real floating tensor, got dtype {P.dtype}")
    if P.ndim < ndim or any(s < 3 for s in P.shape[P.ndim - ndim:]):
        raise InputError(f"spectrum: expected shape (..., {', '.join(['G'] * ndim)}) with every grid size >= 3, "
                         f"got {tuple(P.shape)}")
    return P


def find_peaks(spectrum: Tensor, n_peaks: int, *, ndim: int = 1) -> Tensor:
    """Grid indices of the ``n_peaks`` largest local maxima of a spectrum, batched.

    Args:
        spectrum: (..., G) (``ndim=1``) or (..., T, F) (``ndim=2``, e.g. polar angle x azimuth)
            real floating values on a grid with every grid size >= 3, e.g.
            ``music_spectrum(R, steering, k)`` reshaped to the grid. Read without gradient.
        n_peaks: number of peaks (usually the number of sources), an integer.
        ndim: grid dimensions, 1 or 2.

    Returns:
        (..., n_peaks) int64 indices (``ndim=1``) or (..., n_peaks, 2) index pairs, by decreasing
        peak value. When a spectrum has fewer local maxima, the remaining entries are the next
        largest grid values (check the spectrum when sources may be missing).

    Raises:
        InputError: ``spectrum`` complex or integer, or with a grid size < 3; ``ndim`` not 1 or
            2; ``n_peaks`` not an integer in ``1 .. number of grid points``.

    Example::

        import torch
        from difflinalg import signal

        P = torch.tensor([0.0, 1.0, 0.5, 0.2, 3.0, 0.1])
        assert signal.find_peaks(P, 2).tolist() == [4, 1]          # by decreasing value
        P2 = torch.zeros(4, 5)
        P2[2, 3] = 1.0
        assert signal.find_peaks(P2, 1, ndim=2).tolist() == [[2, 3]]
    """
    P = _check_spectrum(spectrum, ndim)
    grid = P.shape[P.ndim - ndim:]
    n_peaks = check_int(n_peaks, "n_peaks", "a positive integer")
    if not 1 <= n_peaks <= grid.numel():
        raise InputError(f"n_peaks: expected 1 <= n_peaks <= {grid.numel()} (grid points), got {n_peaks}")
    x = P.detach().reshape(-1, 1, *grid)
    pool = F.max_pool1d if ndim == 1 else F.max_pool2d
    pad = (1, 1) if ndim == 1 else (1, 1, 1, 1)
    neighbourhood = pool(F.pad(x, pad, value=float("-inf")), 3, stride=1)
    is_peak = (x >= neighbourhood).reshape(P.shape)
    # local maxima first (by value), then the other grid points
    rank = torch.where(is_peak, P.detach(), P.detach() - torch.inf).flatten(-ndim)
    ties = P.detach().flatten(-ndim)
    order = _lexsort(rank, ties)
    flat = order[..., :n_peaks]
    if ndim == 1:
        return flat
    return torch.stack([flat // grid[1], flat % grid[1]], dim=-1)


def _lexsort(primary: Tensor, secondary: Tensor) -> Tensor:
    """Indices sorting by ``primary`` descending (``-inf`` for non-peaks), then ``secondary``."""
    order = secondary.argsort(dim=-1, descending=True, stable=True)
    is_peak = torch.isfinite(primary).gather(-1, order)
    return order.gather(-1, (~is_peak).to(torch.int8).argsort(dim=-1, stable=True))


def soft_argmax_refine(score: Tensor, grids, peaks: Tensor, *, radius: int = 4,
                       temperature: Tensor | float | None = None) -> Tensor:
    """Sub-grid coordinates of peaks: the softmax-weighted mean of the grid coordinates in a
    window around each peak (differentiable in ``score``).

    Args:
        score: (..., G) or (..., T, F) real floating, smooth and maximal at the peaks, e.g.
            ``-noise_subspace_power(R, steering, k)`` on the grid (see the module docstring).
        grids: the grid coordinates: a 1-D tensor (``ndim=1``) or a pair of 1-D tensors
            ``(theta_grid, phi_grid)``, uniformly spaced, of lengths matching the score's grid.
        peaks: (..., P) or (..., P, 2) int64 grid indices (``find_peaks``), with the score's
            batch shape.
        radius: half-width of the window in grid steps (window ``2 radius + 1`` per axis), an
            integer >= 1.
        temperature: positive softmax temperature (broadcasting to (..., P)); default from the
            score's discrete curvature at each peak (weights ``h / sqrt(2)`` wide); a peak without
            negative curvature then gives NaN (pass a temperature there).

    Returns:
        (..., P) or (..., P, 2) refined coordinates in the grids' units and the score's dtype;
        differentiable with respect to ``score`` (and ``temperature``, ``grids``).

    Raises:
        InputError: ``score`` complex or integer, or with a grid size < 3; ``grids`` not 1-D
            tensors matching the grid; ``peaks`` not int64 or not of the score's batch shape
            followed by (P) or (P, 2); ``radius`` not an integer >= 1 or a window larger than
            the grid; ``temperature`` complex, non-finite or not positive.

    Example::

        import torch
        from difflinalg import signal

        grid = torch.linspace(-1.0, 1.0, 201, dtype=torch.float64)     # step 0.01
        score = -(grid - 0.123) ** 2                                   # maximal off the grid
        x = signal.soft_argmax_refine(score, grid, signal.find_peaks(score, 1))
        assert x.shape == (1,) and abs(float(x) - 0.123) < 1e-5        # far below the grid step
    """
    grids = (grids,) if isinstance(grids, Tensor) else tuple(grids)
    ndim = len(grids)
    S = _check_spectrum(score, ndim)
    shape = S.shape[S.ndim - ndim:]
    for g, size, name in zip(grids, shape, ("grids[0]", "grids[1]")):
        if not isinstance(g, Tensor) or g.ndim != 1 or g.shape[0] != size:
            raise InputError(f"{name}: expected a 1-D tensor of {size} grid coordinates matching the score, got "
                             f"{getattr(g, 'shape', type(g).__name__)}")
    radius = check_int(radius, "radius", "a positive integer")
    if radius < 1 or any(2 * radius + 1 > s for s in shape):
        raise InputError(f"radius: expected 1 <= radius and a window 2 radius + 1 <= grid size {tuple(shape)}, got {radius}")
    peaks = as_tensor(peaks, "peaks")
    if peaks.dtype != torch.int64 or (ndim == 2 and (peaks.ndim < 1 or peaks.shape[-1] != 2)):
        raise InputError(f"peaks: expected int64 grid indices of shape (..., P{', 2' if ndim == 2 else ''}) "
                         f"(find_peaks), got dtype {peaks.dtype}, shape {tuple(peaks.shape)}")
    batch = S.shape[:S.ndim - ndim]
    if ndim == 1:
        peaks = peaks[..., None]
    if peaks.ndim != len(batch) + 2 or peaks.shape[:-2] != batch:
        raise InputError(f"peaks: expected the batch shape {tuple(batch)} of the score followed by (P{', 2' if ndim == 2 else ''}), "
                         f"got shape {tuple(peaks.shape[:-1] if ndim == 1 else peaks.shape)}; use find_peaks on the same score")
    offs = torch.arange(2 * radius + 1, device=S.device)
    # window start per axis, shifted inside the grid
    lo = [(peaks[..., a] - radius).clamp(0, shape[a] - 2 * radius - 1) for a in range(ndim)]
    idx = [lo[a][..., None] + offs for a in range(ndim)]  # (..., P, W) per axis
    flat = S.reshape(*batch, -1)
    if ndim == 1:
        lin = idx[0]
        coords = [grids[0][idx[0]]]
    else:
        lin = (idx[0][..., :, None] * shape[1] + idx[1][..., None, :]).flatten(-2)  # (..., P, W^2)
        coords = [grids[0][idx[0]][..., :, None].expand(*idx[0].shape, idx[1].shape[-1]).flatten(-2),
                  grids[1][idx[1]][..., None, :].expand(*idx[1].shape[:-1], idx[0].shape[-1], idx[1].shape[-1]).flatten(-2)]
    vals = flat.gather(-1, lin.reshape(*batch, -1)).reshape(*lin.shape)
    if temperature is None:
        centre = [peaks[..., a].clamp(1, shape[a] - 2) for a in range(ndim)]
        curv = []
        for a in range(ndim):
            def at(shift, a=a):
                ix = [centre[b] + (shift if b == a else 0) for b in range(ndim)]
                li = ix[0] if ndim == 1 else ix[0] * shape[1] + ix[1]
                return flat.gather(-1, li.reshape(*batch, -1)).reshape(li.shape)
            curv.append(at(1) - 2 * at(0) + at(-1))
        tau = -0.5 * torch.stack(curv).mean(0)
        # no negative curvature (a plateau, or a fallback entry of find_peaks that is not a local
        # maximum): no width to derive, so that peak's result is NaN (value and derivatives)
        tau = torch.where(tau > 0, tau, torch.full_like(tau, float("nan")))
    else:
        tau = as_tensor(temperature, "temperature")
        if tau.is_complex() or not (tau.is_floating_point() or tau.dtype in (torch.int32, torch.int64)):
            raise InputError(f"temperature: expected a positive real number or tensor, got dtype {tau.dtype}")
        if not is_wrapped(tau) and tau.numel() and not bool((tau > 0).all() and torch.isfinite(tau).all()):
            raise InputError(f"temperature: expected positive finite values, got {tau.flatten()[:5].tolist()}")
        tau = tau.to(dtype=S.dtype, device=S.device)
    wts = torch.softmax(vals / tau[..., None], dim=-1)
    out = torch.stack([(wts * c.to(S.dtype)).sum(-1) for c in coords], dim=-1)
    return out[..., 0] if ndim == 1 else out
