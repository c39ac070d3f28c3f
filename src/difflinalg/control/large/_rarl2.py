r"""RARL2 for large sparse (descriptor) targets: the two-level route.

1. Low-rank Gramian factors (one factorization per ADI shift serves both, ``_adi``) and balanced
   truncation from them (``"bt"``). Where ``r`` exceeds the factors' numerical rank ``k`` (Hankel
   singular values beyond ``k`` below rounding) the factors are recomputed with a tighter ADI
   residual and compression (``_reduce.balanced_factors``: the small Hankel singular values live in
   the Gramians' small directions, which the default compression drops; heat, N = 1e4, r = 20: rank
   18 -> 20). Where ``r`` still exceeds the rank the order is lowered to it with a
   ``PrecisionWarning`` that gives the resulting error and why: the extra states would be fitted to
   noise.
   Likewise where no stable model of order ``r`` comes out (the truncation unstable by rounding,
   the surrogate's minimal order below ``r``): the largest order with a stable truncation.
2. Surrogate: the balanced truncation of order ``k >= r`` from the same factors, with ``k`` the
   smallest order whose Hankel tail bound ``2 sum_{i>k} sigma_i`` is below ``SURROGATE_RATIO``
   times the error of ``"bt"`` (at most ``max_surrogate`` states); its own error on the full model
   is measured when ``verify_surrogate``.
3. Dense ``difflinalg.control.rarl2`` on the surrogate (``"rarl2"``; its starts include balanced
   truncation and IRKA on the surrogate, so IRKA on the full model from balanced truncation, which
   costs ``r/2`` factorizations per iteration, is not run), then a polish against the full model
   by IRKA fixed-point iterations from its result (``"rarl2-irka"``: the interpolation conditions of
   the FULL model's stationary point).
4. Every candidate is measured on the FULL model by the error system's Gramian (``_errsys``: a sum of
   positive terms reusing the Gramian factorizations; no cancellation, so the ranking is exact to
   the rounding level). The best candidate is returned, so the result is never worse than balanced
   truncation. The factorizations are freed at the end.
"""

from __future__ import annotations

import math
import time as _time
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..._errors import ConvergenceError, InputError, PrecisionWarning
from ..reduction import ReductionResult, rarl2
from ..system._statespace import StateSpace
from ._errsys import ErrorNorm, error_norm
from ._gramians import ADI_TOL, _small, check_h2_finite, h2_norm_sparse
from ._reduce import balanced_factors, bt_model, check_reduced_order, irka_sparse, rank_reason
from ._solves import release, solver_of
from ._stability import check_stable_sparse
from ._system import SparseSystem, as_sparse_system

SURROGATE_RATIO = 1e-3
MAX_SURROGATE = 200
#: larger surrogate orders tried when a truncation is unstable
SURROGATE_TRIES = 4
#: IRKA polish from the surrogate's optimum: it starts near a fixed point, few iterations needed
POLISH_ITER = 2


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
        candidates: relative error on the full model of every candidate (error-system Gramian;
            ``inf`` for an unstable one).
        surrogate_order, surrogate_bound: the surrogate's order and its Hankel tail bound
            ``2 sum sigma_i`` relative to ``||F||`` (an H-infinity bound for exact Gramians);
            surrogate_error: its measured relative H2 error on the full model (NaN if not verified).
        surrogate_result: the dense ``ReductionResult`` of RARL2 on the surrogate.
        seconds: wall time; timings: seconds per stage; factorizations: sparse LUs made.
        requested_order: the ``r`` asked for (the model's order is lower, with a
            ``PrecisionWarning``, where ``r`` exceeded the numerical rank of the Gramian factors,
            tightened first: ``_reduce.balanced_factors``).
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
    requested_order: int = 0

    def summary(self) -> str:
        """A printable report: order, relative error, best candidate, surrogate order and bounds,
        time and sparse LUs, then the relative error of every candidate."""
        lines = [f"rarl2_large order {self.model.order}: relative H2 error {self.relative_error:.8g} "
                 f"(best: {self.best_start}), surrogate order {self.surrogate_order} (tail bound "
                 f"{self.surrogate_bound:.2e}, measured {self.surrogate_error:.2e}), {self.seconds:.2f} s, "
                 f"{self.factorizations} sparse LUs"]
        lines += [f"  {k:<11} {v:.10g}" for k, v in self.candidates.items()]
        return "\n".join(lines)


def _full_error(F: SparseSystem, H: StateSpace, tol: float) -> ErrorNorm | None:
    """``||F - H||_2`` on the full model (``_errsys``: the error system's Gramian, no cancellation);
    None for an unstable candidate (a Petrov-Galerkin projection can return one; the error-system
    Gramian would not exist)."""
    ev = np.linalg.eigvals(H.A.numpy())
    if not ((np.abs(ev).max() < 1) if F.discrete else (ev.real.max() < 0)):
        return None
    return error_norm(F, *_small(H), tol)


def rarl2_large(sys, r: int, *, max_surrogate: int = MAX_SURROGATE, verify_surrogate: bool = False,
                memory_limit: int | None = None, tol: float = ADI_TOL, rarl2_options: dict | None = None,
                cache_bytes: int | None = None) -> LargeReductionResult:
    """H2-optimal reduction of a large sparse (descriptor) system by the two-level RARL2 route
    (module docstring).

    Args:
        sys: a stable ``SparseSystem`` (or a dense ``StateSpace``, converted). r: reduced order.
        max_surrogate: largest surrogate order. verify_surrogate: measure the surrogate's H2 error
            on the full model (``k`` extra shifted solves). memory_limit: bytes for the sparse
            factorizations. tol: low-rank ADI tolerance. rarl2_options: keyword arguments of the
            dense ``rarl2`` on the surrogate (e.g. ``max_time``). cache_bytes: memory budget of the
            factorization cache (default: a quarter of the memory available at the start, at least
            512 MB). The ADI cycle holds as many shifts as the cache holds factorizations
            (``_adi.shift_budget``), so where that binds (N ~ 1e6) the factors, and the kept
            model's last digits, follow the memory available at the start (heat N = 1e6, r = 10:
            6.238e-7 with 49 factorizations, 6.245e-7 with 36 in another run); fixing it makes a
            run repeatable on any machine that has the memory.

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
    S = solver_of(F, memory_limit, cache_bytes)
    if hasattr(S, "check_memory"):
        S.check_memory(True)
    f0 = getattr(S, "factorizations", 0)
    tm = {}
    check_stable_sparse(F, "sys")
    tm["stability"] = _time.perf_counter() - t0

    t = _time.perf_counter()
    Z, Y, svd, tight = balanced_factors(F, r, tol)
    hsv, rank_all = svd[1], svd[3]
    if rank_all == 0:
        raise InputError("sys: the low-rank Gramian factors are zero (B or C is zero): nothing to reduce")
    requested, r = r, min(r, rank_all)
    bt = bt_model(F, Z, Y, svd, r)
    tm["gramians+bt"] = _time.perf_counter() - t

    t = _time.perf_counter()
    models, errs = {"bt": bt}, {"bt": _full_error(F, bt, tol)}
    nF = errs["bt"].target_norm if errs["bt"] is not None else h2_norm_sparse(F, tol)
    best_err = errs["bt"].reported if errs["bt"] is not None else nF
    tail = 2 * np.cumsum(hsv[::-1])[::-1]  # tail[k] = 2 sum_{i >= k} sigma_i
    # every Hankel singular value above rounding counts (a floor such as 1e-10 sigma_1 left heat at
    # N = 3025, r = 10 without a surrogate: sigma_11 < 1e-10 sigma_1 while the error is 5e-7 ||F||)
    rank = rank_all
    k = next((j for j in range(r, min(rank, max_surrogate) + 1)
              if (tail[j] if j < rank else 0.0) <= SURROGATE_RATIO * best_err), min(rank, max_surrogate))
    k = max(k, r + 1) if rank > r else r
    Fs = None
    # rounding can make one truncation unstable (heat, N = 3025: order 13 of 18): the next larger
    # orders first (a more accurate surrogate), then smaller ones
    top = min(rank, max_surrogate)
    for j in [*range(k, min(k + SURROGATE_TRIES, top) + 1), *range(k - 1, r, -1)] if k > r else []:
        Fs = bt_model(F, Z, Y, svd, j)
        ev = np.linalg.eigvals(Fs.A.numpy())
        if (np.abs(ev).max() < 1) if F.discrete else (ev.real.max() < 0):
            k = j
            break
        Fs = None
    if Fs is None:
        k = r
    bound = (tail[k] if k < len(tail) else 0.0) / nF
    tm["surrogate"] = _time.perf_counter() - t
    surrogate_error = math.nan
    if verify_surrogate and Fs is not None:
        en = _full_error(F, Fs, tol)
        surrogate_error = en.reported / nF if en is not None else math.inf

    t = _time.perf_counter()
    res = None
    if Fs is not None:
        try:
            res = rarl2(Fs, r, **(rarl2_options or {}))
        except InputError as exc:
            if "minimal order" not in str(exc):
                raise
            # the surrogate's own Hankel singular values beyond some order <= r are below rounding
            # (convdiff, N = 3025, r = 20): balanced truncation is exact to rounding already
            res = None
    if res is not None:
        models["rarl2"] = res.model
        errs["rarl2"] = _full_error(F, res.model, tol)
    tm["rarl2"] = _time.perf_counter() - t
    t = _time.perf_counter()
    if res is not None:
        try:
            pol = irka_sparse(F, r, start=res.model, max_iter=POLISH_ITER)
            models["rarl2-irka"] = pol
            errs["rarl2-irka"] = _full_error(F, pol, tol)
        except (InputError, np.linalg.LinAlgError):
            pass  # a polish that fails (e.g. a singular shifted matrix) leaves the other candidates
    tm["polish"] = _time.perf_counter() - t

    stable = {n: e for n, e in errs.items() if e is not None}
    low, lower_wins = None, False
    if not stable:
        # no stable model of order r: near the rounding level of the Hankel singular values (the
        # truncation unstable by rounding, the surrogate's rarl2 refusing the order) the largest
        # order with a stable truncation is the answer, with the warning below
        low = _largest_stable_truncation(F, Z, Y, svd, r, tol)
    elif res is not None and res.details.get("error_is_bound"):
        # at the rounding edge, where the surrogate's own yardstick could not order its candidates,
        # an order-r model can be worse than a lower-order truncation (convdiff N = 3025, r = 20, one
        # thread: order 20 3.2e-12, order 19 1.6e-12): measured on the full model, the better one
        low = _largest_stable_truncation(F, Z, Y, svd, r, tol)
        top = min(stable.values(), key=lambda e: e.reported)
        lower_wins = low is not None and low[2].reported + low[2].resolution < top.reported - top.resolution
        low = low if lower_wins else None
    if low is not None:
        r, models, errs, stable = low[0], {"bt": low[1]}, {"bt": low[2]}, {"bt": low[2]}
    if not stable:
        raise ConvergenceError("sys: every candidate model (balanced truncation, RARL2 on the surrogate, its IRKA "
                               "polish) is unstable; try another order r")
    best = min(stable, key=lambda n: stable[n].reported)
    rel = {n: (e.reported / nF if e is not None else math.inf) for n, e in errs.items()}
    factorizations = getattr(S, "factorizations", 0) - f0
    release(S)  # the factorizations' last use: free them
    if requested > r:
        if lower_wins:
            why = (f"the order ({r}) whose truncation, measured on the full model, is better than every "
                   f"order-{requested} model (Hankel singular values near rounding)")
        elif r == rank_all:
            why = f"the numerical rank {rank_all} of the low-rank Gramian factors ({rank_reason(Z, Y, rank_all, tight)})"
        else:
            why = f"the largest order with a stable truncation ({r}; Hankel singular values near rounding)"
        warnings.warn(f"r: {requested} exceeds {why}: further states would be fitted to rounding noise; "
                      f"returned an order-{r} model, relative H2 error {rel[best]:.2e} (resolution "
                      f"{stable[best].resolution / nF:.1e}). Pass r <= {r} to silence this warning.",
                      PrecisionWarning, stacklevel=2)
    return LargeReductionResult(
        model=models[best], error=stable[best].reported, relative_error=rel[best], target_norm=nF,
        best_start=best, candidates=rel, surrogate_order=k, surrogate_bound=bound, surrogate_error=surrogate_error,
        surrogate_result=res, seconds=_time.perf_counter() - t0, timings=tm, factorizations=factorizations,
        error_resolution=stable[best].resolution, requested_order=requested)


def _largest_stable_truncation(F, Z, Y, svd, r: int, tol: float):
    """``(j, model, error)``: the balanced truncation of the largest order ``j < r`` that is stable
    (measured on the full model); None if there is none."""
    for j in range(r - 1, 0, -1):
        cand = bt_model(F, Z, Y, svd, j)
        e = _full_error(F, cand, tol)
        if e is not None:
            return j, cand, e
    return None
