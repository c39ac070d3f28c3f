r"""Number of sources from the eigenvalues of a sample covariance: AIC and MDL (Wax-Kailath).

For ``p`` sensors, ``N`` snapshots and the sample covariance eigenvalues
``lambda_1 >= ... >= lambda_p``, the hypothesis of ``k`` sources leaves the ``p - k`` smallest
eigenvalues as the noise floor, whose sphericity is measured by the log ratio of their arithmetic
and geometric means::

    L(k)   = N (p - k) log( a_k / g_k ),   a_k = mean_{i > k} lambda_i,   g_k = (prod_{i > k} lambda_i)^(1/(p-k))
    AIC(k) = 2 L(k) + 2 k (2p - k)
    MDL(k) = L(k) + k (2p - k) log(N) / 2

``k (2p - k)`` is the number of free real parameters of a complex covariance with ``k`` signal
eigenvectors; the estimate is ``argmin_k`` over ``k = 0 .. p - 1``. MDL is consistent (the
probability of the right k tends to 1 with N and with the SNR); AIC tends to overestimate.
All candidates of every sample are formed at once from cumulative sums of the sorted eigenvalues
and their logarithms (no loop over k or over the batch).

Reference: M. Wax and T. Kailath, Detection of signals by information theoretic criteria, IEEE
Trans. Acoust. Speech Signal Process. 33 (1985) 387-392.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._errors import InputError
from .._utils import as_tensor, check_int, is_wrapped
from ._decomposition import SpectralDecomposition, as_decomposition

_CRITERIA = ("mdl", "aic")


def _eigenvalues(eigenvalues) -> Tensor:
    if isinstance(eigenvalues, SpectralDecomposition):
        w = eigenvalues.eigenvalues.detach()
    else:
        w = as_tensor(eigenvalues, "eigenvalues")
        if w.is_complex() or not w.is_floating_point():
            raise InputError(f"eigenvalues: expected real floating eigenvalues (..., p), got dtype {w.dtype}; "
                             "pass decompose(R) or torch.linalg.eigvalsh(R)")
        if w.ndim < 1 or w.shape[-1] < 2:
            raise InputError(f"eigenvalues: expected shape (..., p) with p >= 2, got {tuple(w.shape)}")
    if not is_wrapped(w) and w.numel() and not bool((w > 0).all()):
        raise InputError(
            f"eigenvalues: expected positive eigenvalues (a full-rank sample covariance), found minimum "
            f"{float(w.min()):.3g}; with fewer snapshots than sensors the floor has zeros: use N >= p "
            "snapshots, forward-backward averaging or spatial smoothing, or diagonal loading"
        )
    return w


def information_criteria(eigenvalues, n_snapshots: int, criterion: str = "mdl") -> Tensor:
    """AIC or MDL of every candidate number of sources k, from 0 to p - 1 (Wax-Kailath).

    Args:
        eigenvalues: (..., p) positive eigenvalues of sample covariances (any order), real
            floating (float32/float64), p >= 2; or a ``SpectralDecomposition`` (``decompose(R)``),
            whose eigenvalues are read detached.
        n_snapshots: number of snapshots N the covariances were averaged over, an integer >= 1.
        criterion: "mdl" (default, consistent) or "aic".

    Returns:
        (..., p) in the eigenvalues' dtype: entry ``k`` is the criterion for ``k`` sources (see
        the module docstring); ``argmin(-1)`` is the estimate. Differentiable with respect to a
        tensor ``eigenvalues`` (not through a ``SpectralDecomposition``).

    Raises:
        InputError: ``eigenvalues`` complex, integer, of shape other than (..., p) with p >= 2,
            or not all positive (checked outside ``torch.func``); ``n_snapshots`` not an integer
            >= 1; an unknown ``criterion``.

    Example::

        import torch
        from difflinalg import signal

        w = torch.tensor([0.09, 0.1, 0.1, 0.11, 5.0, 8.0], dtype=torch.float64)   # 2 sources, a floor
        mdl = signal.information_criteria(w, n_snapshots=100)
        assert mdl.shape == (6,) and int(mdl.argmin()) == 2
    """
    if criterion not in _CRITERIA:
        raise InputError(f"criterion: expected one of {_CRITERIA}, got {criterion!r}")
    N = check_int(n_snapshots, "n_snapshots", "a positive integer (number of snapshots)")
    if N < 1:
        raise InputError(f"n_snapshots: expected a positive integer (number of snapshots), got {N}")
    w = _eigenvalues(eigenvalues)
    p = w.shape[-1]
    asc = w.sort(dim=-1).values  # the noise floor of k sources: the m = p - k smallest
    m = torch.arange(1, p + 1, dtype=w.dtype, device=w.device)
    log_arith = torch.log(asc.cumsum(-1) / m)
    log_geo = torch.log(asc).cumsum(-1) / m
    L = (N * m * (log_arith - log_geo)).flip(-1)  # index k = p - m
    k = torch.arange(p, dtype=w.dtype, device=w.device)
    free = k * (2 * p - k)
    if criterion == "aic":
        return 2 * L + 2 * free
    return L + 0.5 * free * math.log(N)


def estimate_source_count(R, n_snapshots: int, *, criterion: str = "mdl") -> Tensor:
    """Number of sources of each sample covariance: ``argmin_k`` of MDL (default) or AIC.

    Args:
        R: (..., p, p) sample covariances (Hermitian part used), float32/float64/complex64/
            complex128, finite, full rank (positive eigenvalues); or a ``SpectralDecomposition``
            of them (reused, no second decomposition). From eigenvalues alone use
            ``information_criteria(w, N).argmin(-1)``.
        n_snapshots: snapshots per covariance (N), an integer >= 1.
        criterion: "mdl" or "aic".

    Returns:
        (...) int64, the estimated k in ``0 .. p - 1`` (not differentiable): use it as the ``k``
        of ``noise_subspace_power`` / ``music_spectrum`` once it is >= 1.

    Raises:
        InputError: ``R`` not a (batched) square floating matrix or not finite; otherwise as
            ``information_criteria`` (e.g. a rank-deficient ``R``: a non-positive eigenvalue).

    Example::

        import torch
        from difflinalg import signal

        A = signal.ula_steering(8, torch.tensor([-0.3, 0.4], dtype=torch.float64))
        R = torch.stack([A @ A.mH, A[:, :1] @ A[:, :1].mH]) + 0.1 * torch.eye(8, dtype=torch.complex128)
        assert signal.estimate_source_count(R, 100).tolist() == [2, 1]   # one k per covariance
    """
    if isinstance(R, SpectralDecomposition):
        w = R
    else:
        with torch.no_grad():  # an integer result: no graph to keep
            w = as_decomposition(R).eigenvalues
    return information_criteria(w, n_snapshots, criterion).argmin(dim=-1)
