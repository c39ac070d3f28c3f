r"""One eigendecomposition of a covariance shared by every signal loss, and the input checks the
signal functions have in common.

A training step that combines an eigengap hinge, a MUSIC loss and a source-number estimate needs
the eigenpairs of ``R`` once; decomposing ``R`` again per loss costs a full ``O(n^3)`` eigensolver
and its backward each time. ``decompose(R)`` runs ``difflinalg.eigh`` once and every signal
function (``eigengap_loss``, ``cluster_mean_gap_loss``, ``noise_subspace_power``,
``music_spectrum``, ``estimate_source_count``) accepts its result in place of ``R``::

    d = decompose(R)
    loss = eigengap_loss(d, k, 1.0) + noise_subspace_power(d, steering, k).sum()

The derivatives are those of ``difflinalg.eigh`` (``dw_i = v_i^H dR v_i`` and the eigenvector
terms ``1 / (w_j - w_i)``). The signal losses give cotangents only to the signal eigenvectors and
to eigenvalues (never to the noise eigenvectors), so the noise floor's internal gaps never enter
the first derivative and a flat floor gives exact, finite gradients.

Rounding-level ties. A flat floor computed in floating point is split at rounding level
(``~ n eps ||R||``). The second derivatives of the signal losses (projectors onto the signal
subspace, sums of eigenvalues over a cluster) are exact only when such a split is treated as a
tie, so ``decompose`` groups eigenvalues closer than ``n * eps * max|w|`` (``degeneracy_tol`` of
``difflinalg.eigh``; the bound on the rounding spread of the eigenvalues of a Hermitian matrix,
the same scale ``eigh_subspace`` uses to refuse a zero split gap). Larger gaps keep their exact
``1 / gap`` terms. The MUSIC losses refuse a signal/noise split below that scale
(``DegenerateSpectrumError``; inside ``torch.func`` the affected samples are NaN with one
``TransformCheckWarning``).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .._errors import DegenerateSpectrumError, InputError, TransformCheckWarning
from .._utils import as_tensor, check_finite_sum, check_matrix, eps, is_wrapped, warn_once
from ..spectral import eigh


class SpectralDecomposition(NamedTuple):
    """Eigenpairs of a Hermitian covariance, as ``difflinalg.eigh`` returns them.

    ``eigenvalues`` (..., n) ascending (real dtype); ``eigenvectors`` (..., n, n) orthonormal
    columns, ``herm(R) = V diag(w) V^H``. Build it with ``decompose(R)`` (or
    ``SpectralDecomposition(*difflinalg.eigh(R))``) and pass it in place of ``R`` to the signal
    functions (``eigengap_loss``, ``cluster_mean_gap_loss``, ``noise_subspace_power``,
    ``music_spectrum``, ``estimate_source_count``, ``information_criteria``, ``root_music``),
    which check its shapes (``InputError`` if they do not fit) instead of decomposing again.
    """

    eigenvalues: Tensor
    eigenvectors: Tensor


SpectralDecomposition.eigenvalues.__doc__ = (
    "(..., n) real eigenvalues in ascending order (``float32``/``float64``, the real dtype of ``R``).")
SpectralDecomposition.eigenvectors.__doc__ = (
    "(..., n, n) eigenvectors as orthonormal columns, in ``R``'s dtype; column ``i`` belongs to "
    "``eigenvalues[..., i]``.")


def resolve_views(x: Tensor) -> Tensor:
    """``x`` with conjugate and negative-bit views materialized (``R.conj()``, ``Z.mH``).

    The eigensolver's rules view complex tensors as real pairs, which a lazily conjugated view
    does not allow; the copy is one pass over ``R``, negligible beside the decomposition.
    """
    if x.is_conj():
        x = x.resolve_conj()
    if x.is_neg():
        x = x.resolve_neg()
    return x


def covariance(R, name: str = "R") -> Tensor:
    """A validated square (..., n, n) covariance argument, views resolved."""
    R = check_matrix(R, name, square=True, finite=False)
    # one reduction instead of an elementwise isfinite pass (2% of a 144 x 144 training step)
    check_finite_sum(R, name)
    return resolve_views(R)


def rounding_tol(n: int, dtype: torch.dtype) -> float:
    """Relative gap ``n * eps`` (times ``max|w|``) under which two eigenvalues are equal up to rounding."""
    return max(n, 1) * eps(dtype)


def decompose(R: Tensor, *, degeneracy_tol: float | None = None) -> SpectralDecomposition:
    """Eigendecomposition of the covariance ``R``, to be shared by several signal losses.

    Args:
        R: (..., n, n) Hermitian (its Hermitian part is used), real or complex, finite; conjugate
            views (``R.conj()``, ``Z.mH``) are accepted.
        degeneracy_tol: relative gap (times ``max|w|``) under which eigenvalues form a cluster for
            the derivatives (``difflinalg.eigh``); default ``n * eps``, rounding level (see the
            module docstring). Exact for the losses of this package, which are invariant inside
            the clusters (projectors, cluster sums); ``0`` groups exact ties only.

    Returns:
        ``SpectralDecomposition(eigenvalues, eigenvectors)`` from ``difflinalg.eigh``:
        differentiable (reverse, forward, second order, under ``torch.func``), exact on a flat noise
        floor for the signal losses of this package.

    Raises:
        InputError: ``R`` not a (batched) square matrix, not float32/float64/complex64/complex128,
            or not finite; ``degeneracy_tol`` invalid (as in ``difflinalg.eigh``).

    Example::

        import torch
        from difflinalg import signal

        R = torch.diag(torch.tensor([1.0, 1.0, 3.0, 5.0], dtype=torch.float64)).requires_grad_()
        d = signal.decompose(R)                      # one eigendecomposition, ascending eigenvalues
        assert torch.allclose(d.eigenvalues, torch.tensor([1.0, 1.0, 3.0, 5.0], dtype=torch.float64))
        loss = signal.eigengap_loss(d, 2, 3.0) + signal.cluster_mean_gap_loss(d, 2, 3.0)
        loss.backward()                              # finite at the flat (repeated) noise floor
        assert torch.isfinite(R.grad).all()
    """
    R = covariance(R)
    tol = rounding_tol(R.shape[-1], R.dtype) if degeneracy_tol is None else degeneracy_tol
    w, V = eigh(R, degeneracy_tol=tol)
    return SpectralDecomposition(w, V)


def as_decomposition(R, name: str = "R") -> SpectralDecomposition:
    """``R`` itself when it is a ``SpectralDecomposition`` (shapes checked), else ``decompose(R)``."""
    if not isinstance(R, SpectralDecomposition):
        return decompose(R)
    w, V = R
    if not isinstance(w, Tensor) or not isinstance(V, Tensor) or V.ndim < 2 or w.shape != V.shape[:-1] \
            or V.shape[-1] != V.shape[-2]:
        raise InputError(
            f"{name}: a SpectralDecomposition needs eigenvalues (..., n) and eigenvectors (..., n, n), got "
            f"{getattr(w, 'shape', type(w).__name__)} and {getattr(V, 'shape', type(V).__name__)}; build it with "
            "signal.decompose(R)"
        )
    return R


def check_sources(k, batch: tuple[int, ...], n: int, device) -> Tensor | int:
    """Validate a number of sources ``k``: an int with ``1 <= k <= n - 1``, or an integer tensor
    broadcasting to ``batch`` (one k per sample; the range is checked outside ``torch.func``)."""
    if isinstance(k, bool):
        raise InputError(f"k: expected an integer or an integer tensor, got {k!r}")
    if not isinstance(k, Tensor):
        try:
            k = int(k.__index__())
        except (AttributeError, TypeError):
            raise InputError(
                f"k: expected an integer or an integer tensor (number of sources), got {type(k).__name__}"
            ) from None
    if isinstance(k, int):
        if not 1 <= k <= n - 1:
            raise InputError(f"k: expected 1 <= k <= n - 1 = {n - 1} (signal subspace dimension), got {k}")
        return k
    k = as_tensor(k, "k")
    if k.is_floating_point() or k.is_complex() or k.dtype == torch.bool:
        raise InputError(f"k: expected an integer tensor, got dtype {k.dtype}; use k.long()")
    try:
        shape = torch.broadcast_shapes(k.shape, batch)
    except RuntimeError:
        raise InputError(f"k: shape {tuple(k.shape)} does not broadcast with the batch shape {batch} of R") from None
    if shape != tuple(batch):
        raise InputError(f"k: shape {tuple(k.shape)} must broadcast to the batch shape {batch} of R")
    if not is_wrapped(k) and k.numel() and not bool(((k >= 1) & (k <= n - 1)).all()):
        bad = k[(k < 1) | (k > n - 1)]
        raise InputError(f"k: every entry must satisfy 1 <= k <= n - 1 = {n - 1}, got {bad.tolist()[:5]}")
    return k.to(device)


def signal_columns(V: Tensor, k: Tensor | int) -> Tensor:
    """The signal eigenvectors (those of the k largest eigenvalues) of an ascending ``V``: the last
    k columns for an int; for a per-sample tensor k the last ``max(k)`` columns (all n under
    ``torch.func``, where ``max(k)`` cannot be read) with the noise columns of each sample zeroed.

    Zeroed columns are exact zeros, so the noise eigenvectors get no cotangent and the floor's
    internal gaps never enter the derivative (the same as slicing, sample by sample).
    """
    n = V.shape[-1]
    if isinstance(k, int):
        return V[..., n - k:]
    kb = k.expand(V.shape[:-2])
    lo = 0 if is_wrapped(kb) or kb.numel() == 0 else n - int(kb.max())
    cols = torch.arange(lo, n, device=V.device)
    keep = cols >= (n - kb)[..., None]  # (..., n - lo): column index n - k and above is signal
    return V[..., lo:] * keep[..., None, :].to(V.dtype)


def check_split(w: Tensor, k: Tensor | int, out: Tensor) -> Tensor:
    """``out`` (..., G), after checking that ``lambda_k > lambda_{k+1}`` beyond rounding in every
    sample (the signal subspace exists): raise ``DegenerateSpectrumError``, or inside
    ``torch.func`` set the affected samples to NaN and warn once."""
    n = w.shape[-1]
    hi = n - k if isinstance(k, int) else (n - k).expand(w.shape[:-1])[..., None]
    if isinstance(k, int):
        gap = w[..., hi] - w[..., hi - 1]
    else:
        gap = (w.gather(-1, hi) - w.gather(-1, hi - 1))[..., 0]
    thr = rounding_tol(n, w.dtype) * w.detach().abs().amax(-1) if w.numel() else gap
    bad = gap.detach() <= thr
    if is_wrapped(bad) or is_wrapped(w):
        warn_once("signal.split_gap", "signal: the check that lambda_k > lambda_{k+1} (the signal subspace "
                  "exists) cannot raise inside torch.func; samples where it fails are NaN",
                  TransformCheckWarning)
        # a NaN factor (not torch.where, whose gradient would be a silent zero) poisons the value
        # and the derivatives of the failing samples
        poison = torch.where(bad, float("nan"), 1.0).to(out.dtype)
        return out * poison[..., None]
    if bad.numel() and bool(bad.any()):
        idx = tuple(bad.nonzero()[0].tolist())
        kk = k if isinstance(k, int) else int(k.expand(w.shape[:-1])[idx])
        raise DegenerateSpectrumError(
            f"R: lambda_{kk} = lambda_{kk + 1} up to rounding (descending order; batch index {idx}, gap "
            f"{float(gap[idx]):.3g}): the data support fewer than k = {kk} sources, so the signal subspace "
            "is not defined; choose k at a gap (e.g. signal.estimate_source_count)"
        )
    return out
