r"""RARL2 for large sparse (descriptor) targets: the two-level route.

1. Starts on the full model: balanced truncation from low-rank Gramian factors (``"bt"``) and
   IRKA with sparse shifted solves started from it (``"irka-bt"``) (``_reduce``).
2. Surrogate: the balanced truncation of order ``k >= r`` from the same factors, with ``k`` the
   smallest order whose Hankel tail bound ``2 sum_{i>k} sigma_i`` is below ``SURROGATE_RATIO``
   times the best start's error (at most ``max_surrogate`` states). ``||F - F_s||_2`` is then
   measured on the full model (``_gramians.h2_error_sparse``; ``k`` shifted solves, so only when
   ``verify_surrogate``) and reported.
3. Dense ``difflinalg.control.rarl2`` on the surrogate (its modal/Schur factorization is O(k^3),
   small), then a polish against the full model by IRKA fixed-point iterations started from its
   result (``"rarl2-irka"``).
4. Every candidate is measured on the FULL model: ``||F - H||^2 = ||F||^2 + ||H||^2 - 2 Re <F, H>``,
   the inner product by ``n`` shifted solves (exact up to the sparse LU's rounding), ``||F||^2`` from
   the low-rank Gramian (common to all candidates: the ranking does not depend on its truncation
   error). The best candidate is returned, so the result is never worse than the best start.
"""

from __future__ import annotations

import math
import time as _time
from dataclasses import dataclass, field

import numpy as np

from ..._errors import ConvergenceError, InputError
from ..reduction import ReductionResult, rarl2
from ..system._statespace import StateSpace
from ._errsys import error_norm
from ._gramians import ADI_TOL, _small, check_h2_finite, h2_inner, h2_norm_sparse, lr_gramian, small_h2_norm2
from ._reduce import check_reduced_order, irka_sparse, lr_balanced_truncation
from ._solves import solver_of
from ._stability import check_stable_sparse
from ._system import SparseSystem, as_sparse_system

SURROGATE_RATIO = 1e-3
MAX_SURROGATE = 200
HSV_FLOOR = 1e-10
#: IRKA polish from the surrogate's optimum: it starts near a fixed point, few iterations needed
POLISH_ITER = 10


@dataclass
class LargeReductionResult:
    """Result of ``rarl2_large``.

    Attributes:
        model: the reduced dense ``StateSpace``.
        error, relative_error: ``||F - model||_2`` on the FULL model, absolute and relative to ``||F||``,
            from the error system's Gramian (``_errsys``: no cancellation; never below
            ``error_resolution``, the absolute uncertainty of ``error``).
        target_norm: ``||F||_2`` (low-rank Gramian).
        best_start: the candidate kept: ``"bt"``, ``"irka-bt"``, ``"rarl2"`` (dense RARL2 on the
            surrogate) or ``"rarl2-irka"`` (polished against the full model).
        candidates: relative error on the full model of every candidate (the winner's, plus the
            exact differences of the inner-product scores).
        surrogate_order, surrogate_bound: the surrogate's order and its Hankel tail bound
            ``2 sum sigma_i`` relative to ``||F||`` (an H-infinity bound for exact Gramians);
            surrogate_error: its measured relative H2 error on the full model (NaN if not verified).
        surrogate_result: the dense ``ReductionResult`` of RARL2 on the surrogate.
        seconds: wall time; timings: seconds per stage; factorizations: sparse LUs made.
    """

    model: StateSpace
    error: float
    relative_error: float
    target_norm: float
    best_start: str
    candidates: dict = field(default_factory=dict)
    surrogate_order: int = 0
    surrogate_bound: float = math.nan
    surrogate_error: float = math.nan
    surrogate_result: ReductionResult | None = None
    seconds: float = 0.0
    timings: dict = field(default_factory=dict)
    factorizations: int = 0
    error_resolution: float = 0.0

    def summary(self) -> str:
        """A printable report: order, relative error, best candidate, surrogate order and bounds,
        time and sparse LUs, then the relative error of every candidate."""
        lines = [f"rarl2_large order {self.model.order}: relative H2 error {self.relative_error:.8g} "
                 f"(best: {self.best_start}), surrogate order {self.surrogate_order} (tail bound "
                 f"{self.surrogate_bound:.2e}, measured {self.surrogate_error:.2e}), {self.seconds:.2f} s, "
                 f"{self.factorizations} sparse LUs"]
        lines += [f"  {k:<11} {v:.10g}" for k, v in self.candidates.items()]
        return "\n".join(lines)


def _full_score(F: SparseSystem, H: StateSpace) -> float:
    """``||H||^2 - 2 Re <F, H>`` = ``||F - H||^2 - ||F||^2`` (exact up to the solves' rounding);
    ``inf`` for an unstable candidate (IRKA and Petrov-Galerkin projections can return one)."""
    ev = np.linalg.eigvals(H.A.numpy())
    if not ((np.abs(ev).max() < 1) if F.discrete else (ev.real.max() < 0)):
        return math.inf
    return small_h2_norm2(H) - 2 * h2_inner(F, H).real


def rarl2_large(sys, r: int, *, max_surrogate: int = MAX_SURROGATE, verify_surrogate: bool = False,
                memory_limit: int | None = None, tol: float = ADI_TOL, rarl2_options: dict | None = None
                ) -> LargeReductionResult:
    """H2-optimal reduction of a large sparse (descriptor) system by the two-level RARL2 route
    (module docstring).

    Args:
        sys: a stable ``SparseSystem`` (or a dense ``StateSpace``, converted). r: reduced order.
        max_surrogate: largest surrogate order. verify_surrogate: measure the surrogate's H2 error
            on the full model (``k`` extra shifted solves). memory_limit: bytes for the sparse
            factorizations. tol: low-rank ADI tolerance. rarl2_options: keyword arguments of the
            dense ``rarl2`` on the surrogate (e.g. ``max_time``).

    Returns:
        ``LargeReductionResult``; its error is measured on the full model.

    Raises:
        UnstableSystemError: the target has an unstable pole (named; sparse eigensolver).
        InputError: bad order, continuous-time D != 0, malformed system.
        FactorizationMemoryError: a sparse factorization would not fit in memory (estimated first).

    Example::

        from difflinalg.control.large import heat_2d, rarl2_large

        res = rarl2_large(heat_2d(10), 2)
        assert res.model.order == 2 and res.best_start in res.candidates and res.relative_error < 1
    """
    t0 = _time.perf_counter()
    F = as_sparse_system(sys, "sys")
    r = check_reduced_order(r, F)
    check_h2_finite(F, "sys")
    if not isinstance(max_surrogate, int) or max_surrogate < r:
        raise InputError(f"max_surrogate: expected an integer >= r = {r}, got {max_surrogate!r}")
    S = solver_of(F, memory_limit)
    S.check_memory(True)
    f0 = S.factorizations
    tm = {}
    check_stable_sparse(F, "sys")
    tm["stability"] = _time.perf_counter() - t0

    t = _time.perf_counter()
    Z, _ = lr_gramian(F, "c", tol)
    Y, _ = lr_gramian(F, "o", tol)
    nF = h2_norm_sparse(F, tol)
    bt, hsv = lr_balanced_truncation(F, r, tol=tol, return_hsv=True)
    tm["gramians+bt"] = _time.perf_counter() - t
    t = _time.perf_counter()
    irk = irka_sparse(F, r, start=bt)
    tm["irka"] = _time.perf_counter() - t

    t = _time.perf_counter()
    models = {"bt": bt, "irka-bt": irk}
    scores = {k: _full_score(F, H) for k, H in models.items()}
    best_err = math.sqrt(max(nF**2 + min(scores.values()), 0.0)) if math.isfinite(min(scores.values())) else nF
    tail = 2 * np.cumsum(hsv[::-1])[::-1]  # tail[k] = 2 sum_{i >= k} sigma_i
    # Hankel singular values below HSV_FLOOR sigma_1 carry the Gramians' truncation error, not the target
    rank = int((hsv > HSV_FLOOR * hsv[0]).sum())
    k = next((j for j in range(r, min(rank, max_surrogate) + 1)
              if (tail[j] if j < rank else 0.0) <= SURROGATE_RATIO * best_err), min(rank, max_surrogate))
    k = max(k, r + 1) if rank > r else r
    Fs = None
    while k > r:
        Fs = lr_balanced_truncation(F, k, tol=tol)
        ev = np.linalg.eigvals(Fs.A.numpy())
        if (np.abs(ev).max() < 1) if F.discrete else (ev.real.max() < 0):
            break
        k, Fs = max(r, (4 * k) // 5), None  # rounding made the truncation unstable: fewer states
    bound = (tail[k] if k < rank else 0.0) / nF
    tm["surrogate"] = _time.perf_counter() - t
    surrogate_error = math.nan
    if verify_surrogate and Fs is not None:
        surrogate_error = math.sqrt(max(nF**2 + _full_score(F, Fs), 0.0)) / nF

    t = _time.perf_counter()
    res = None
    if Fs is not None:
        res = rarl2(Fs, r, **(rarl2_options or {}))
        models["rarl2"] = res.model
        scores["rarl2"] = _full_score(F, res.model)
    tm["rarl2"] = _time.perf_counter() - t
    t = _time.perf_counter()
    if res is not None:
        try:
            pol = irka_sparse(F, r, start=res.model, max_iter=POLISH_ITER)
            models["rarl2-irka"] = pol
            scores["rarl2-irka"] = _full_score(F, pol)
        except (InputError, np.linalg.LinAlgError):
            pass  # a polish that fails (e.g. a singular shifted matrix) leaves the other candidates
    tm["polish"] = _time.perf_counter() - t

    best = min(scores, key=lambda n: scores[n])
    if not math.isfinite(scores[best]):
        raise ConvergenceError("sys: every candidate model (balanced truncation, IRKA, RARL2 on the surrogate) "
                               "is unstable; try another order r")
    # the winner's error on the error system (no cancellation, ``_errsys``); the others relative to it
    # by the exact score differences
    t = _time.perf_counter()
    en = error_norm(F, *_small(models[best]), tol)
    err = en.reported
    tm["final error"] = _time.perf_counter() - t
    rel = {n: math.sqrt(max(err**2 + v - scores[best], 0.0)) / nF for n, v in scores.items()}
    rel[best] = err / nF
    return LargeReductionResult(
        model=models[best], error=err, relative_error=rel[best], target_norm=nF, best_start=best,
        error_resolution=en.resolution,
        candidates=rel, surrogate_order=k, surrogate_bound=bound, surrogate_error=surrogate_error,
        surrogate_result=res, seconds=_time.perf_counter() - t0, timings=tm, factorizations=S.factorizations - f0)
