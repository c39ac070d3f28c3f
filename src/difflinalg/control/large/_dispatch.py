r"""The sparse path of the public functions: what ``h2_norm``, ``h2_error``,
``hankel_singular_values``, ``frequency_response``, ``is_stable``, ``balanced_truncation``,
``rarl2``, ``reduce_bt`` and ``irka`` do for a ``SparseSystem`` above ``SPARSE_CROSSOVER`` states
(``control.system._route``; registered in its ``BACKEND`` when ``control.large`` is imported).

Each returns what the dense function returns (tensors, ``ReductionResult``), computed without an
N x N dense matrix:

* ``h2_norm``: the low-rank Gramian (``_gramians``). ``h2_error``: the low-rank Gramian of the
  error system itself (``_errsys``: a sum of positive terms; its resolution, measured per target,
  is ~1e-13 relative on small grids and grows with the pencil's conditioning); an
  error below its resolution is reported as the resolution with a ``PrecisionWarning``, never as 0.
  ``method``/``precise`` (the dense yardsticks) make a system of at most ``DENSE_MAX`` states dense.
* ``hankel_singular_values(sys, k)``: the leading ``k`` singular values of ``Y^H E Z`` for the
  low-rank factors ``P ~ Z Z^H``, ``Q ~ Y Y^H`` (square-root method; accurate down to about the ADI
  tolerance times ``sigma_1``).
* ``frequency_response``: ``C (s E - A)^{-1} B + D`` by one sparse LU per frequency (none kept).
* ``is_stable``: ``check_stable_sparse`` (a sparse eigensolver).
* ``rarl2``: ``rarl2_large`` (the two-level route), its result in the reductor contract.
* ``pymor``: a pyMOR model whose operators are not NumPy matrices becomes a ``PymorSystem``
  (``_pymor``).
"""

from __future__ import annotations

import math
import time as _time
import warnings

import numpy as np
import scipy.sparse.linalg as spla
import torch

from ..._errors import InputError, PrecisionWarning, UnstableSystemError
from ..analysis._stability import decay_rate
from ..reduction._results import ReductionResult
from ..system._route import BACKEND
from ..system._sparse import DENSE_MAX, SparseSystem
from ._pymor import PymorSystem
from ._errsys import ErrorNorm
from ._gramians import ADI_TOL, h2_error_norm, h2_norm_sparse, lr_gramian
from ._rarl2 import LargeReductionResult, rarl2_large
from ._reduce import irka_sparse, lr_balanced_truncation
from ._solves import solver_of
from ._stability import check_stable_sparse

#: ``h2_error`` of a sparse target warns when its resolution exceeds this fraction of the error
RESOLUTION_WARN = 1e-3


def _real_tensor(x: float) -> torch.Tensor:
    return torch.tensor(float(x), dtype=torch.float64)


def sparse_h2_norm(sys: SparseSystem) -> torch.Tensor:
    """``h2_norm`` of a large sparse system: ``h2_norm_sparse`` (a float64 0-d tensor)."""
    check_stable_sparse(sys, "system")
    return _real_tensor(h2_norm_sparse(sys))


def _error_norm(F: SparseSystem, H) -> ErrorNorm:
    """``ErrorNorm`` of ``F - H`` (checked pair, stable ``F``; ``_errsys``)."""
    check_stable_sparse(F, "F")
    return h2_error_norm(F, H)


def sparse_h2_error(F: SparseSystem, H, *, relative: bool = False, method: str = "auto",
                    precise: bool = False) -> torch.Tensor:
    """``h2_error`` of a large sparse ``F`` and a small dense ``H`` (the error system's low-rank
    Gramian); ``method``/``precise`` ask for the dense yardsticks: ``F`` made dense up to
    ``DENSE_MAX`` states, refused above."""
    if method != "auto" or precise:
        if F.order > DENSE_MAX:
            raise InputError(f"method, precise: the dense H2 error methods need F dense; F has {F.order} > "
                             f"DENSE_MAX = {DENSE_MAX} states. Leave method='auto' and precise=False (the "
                             "sparse error system's low-rank Gramian; a PrecisionWarning says where its "
                             "resolution matters)")
        from ..analysis._norms import h2_error

        return h2_error(F.to_dense(), H, relative=relative, method=method, precise=precise)
    r = _error_norm(F, H)
    if r.error < r.resolution:
        warnings.warn(f"h2_error: the H2 error of this sparse target is below the sparse path's resolution "
                      f"({r.resolution / r.target_norm:.1e} relative: rounding of the solves and the low-rank "
                      "Gramian's tail); the resolution is reported, an upper bound", PrecisionWarning,
                      stacklevel=3)
    elif r.resolution > RESOLUTION_WARN * r.error:
        # non-normal targets: the ADI tail of the error system can hold a visible share of the error
        warnings.warn(f"h2_error: the H2 error of this sparse target is resolved only to "
                      f"{r.resolution / r.error:.1e} of itself (the low-rank Gramian's tail: the true error "
                      "lies between the value and value + resolution); for N <= DENSE_MAX pass precise=True "
                      "(the dense extended-precision yardstick)", PrecisionWarning, stacklevel=3)
    return _real_tensor(r.reported / r.target_norm if relative else r.reported)


def sparse_hsv(sys: SparseSystem, k: int | None = None) -> torch.Tensor:
    """The leading ``k`` Hankel singular values (all the low-rank factors resolve when ``k`` is
    None), descending, a float64 tensor."""
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise InputError(f"k: expected a positive integer (how many leading Hankel singular values), got {k!r}")
    check_stable_sparse(sys, "system")
    Z, _ = lr_gramian(sys, "c", ADI_TOL)
    Y, _ = lr_gramian(sys, "o", ADI_TOL)
    s = np.linalg.svd(Y.conj().T @ sys.apply_E(Z), compute_uv=False)
    return torch.as_tensor(s if k is None else s[:k], dtype=torch.float64)


def sparse_frequency_response(sys: SparseSystem, w) -> torch.Tensor:
    """``C (s E - A)^{-1} B + D`` at ``s = i w`` (continuous) or ``e^{i w}`` (discrete), one sparse
    LU per frequency; (K, p, m) complex128 tensor."""
    w = np.asarray(w.detach().cpu() if hasattr(w, "detach") else w, dtype=float).reshape(-1)
    if not np.isfinite(w).all():
        raise InputError("w: expected finite real frequencies, got NaN or inf")
    S = solver_of(sys)
    S.check_memory(True)  # one complex factorization at a time: refuse before any work
    out = np.empty((w.size, sys.n_outputs, sys.n_inputs), dtype=np.complex128)
    for i, wi in enumerate(w):
        s = np.exp(1j * wi) if sys.discrete else 1j * wi
        if isinstance(sys, PymorSystem):  # through pyMOR's operators
            out[i] = sys.C @ S.solve(-1.0, s, sys.B.astype(np.complex128)) + sys.D
            continue
        E = sys.E_or_identity
        try:
            lu = spla.splu((s * E - sys.A).tocsc().astype(np.complex128))
        except RuntimeError:
            raise InputError(f"w: s = {s:.6g} is a pole of the system (s E - A is singular)") from None
        out[i] = sys.C @ lu.solve(np.ascontiguousarray(sys.B, dtype=np.complex128)) + sys.D
    return torch.as_tensor(out)


def sparse_is_stable(sys: SparseSystem) -> bool:
    """``check_stable_sparse`` as a bool."""
    try:
        check_stable_sparse(sys, "system")
    except UnstableSystemError:
        return False
    return True


def sparse_balanced_truncation(F: SparseSystem, order: int, *, return_hsv: bool = False):
    """``lr_balanced_truncation`` after the stability check; the Hankel values as a tensor."""
    check_stable_sparse(F, "F")
    H, hsv = lr_balanced_truncation(F, order, return_hsv=True)
    return (H, torch.as_tensor(hsv, dtype=torch.float64)) if return_hsv else H


def as_reduction_result(res: LargeReductionResult, reductor: str = "rarl2") -> ReductionResult:
    """A ``LargeReductionResult`` in the reductor contract (``ReductionResult``): model, absolute
    and relative error on the full model, time; the two-level route's data in ``details``. An error
    below the sparse path's resolution is reported as that resolution (``error_resolution``), never
    as 0."""
    nF = res.target_norm
    resolution = res.error_resolution / nF
    rel = max(res.relative_error, resolution)
    details = {"route": "two-level", "candidates": res.candidates, "surrogate_order": res.surrogate_order,
               "surrogate_bound": res.surrogate_bound, "surrogate_error": res.surrogate_error,
               "surrogate_result": res.surrogate_result, "timings": res.timings,
               "factorizations": res.factorizations}
    return ReductionResult(model=res.model, error=rel * nF, relative_error=rel, grad_norm=math.nan,
                           rel_grad=math.nan, best_start=res.best_start, target_norm=nF, seconds=res.seconds,
                           method="sparse", reductor=reductor, stability_margin=decay_rate(res.model),
                           error_resolution=resolution * nF, details=details)


def sparse_rarl2(F: SparseSystem, order: int, **options) -> ReductionResult:
    """``rarl2`` of a large sparse target: ``rarl2_large`` with ``options`` for the dense RARL2 on
    its surrogate; the ``ReductionResult`` of the contract."""
    return as_reduction_result(rarl2_large(F, order, rarl2_options=options or None))


def _contract(F: SparseSystem, H, t0: float, reductor: str, method: str, details: dict) -> ReductionResult:
    seconds = _time.perf_counter() - t0
    r = _error_norm(F, H)
    nF = r.target_norm
    rel, resolution = r.reported / nF, r.resolution / nF
    return ReductionResult(model=H, error=rel * nF, relative_error=rel, grad_norm=math.nan, rel_grad=math.nan,
                           target_norm=nF, seconds=seconds, method=method, reductor=reductor,
                           stability_margin=decay_rate(H), error_resolution=resolution * nF, details=details)


def sparse_reduce_bt(F: SparseSystem, r: int) -> ReductionResult:
    """``reduce_bt`` of a large sparse target (low-rank square-root balanced truncation)."""
    t0 = _time.perf_counter()
    H, hsv = sparse_balanced_truncation(F, r, return_hsv=True)
    return _contract(F, H, t0, "bt", "low-rank square-root", {"hsv": hsv})


def sparse_irka(F: SparseSystem, r: int, *, max_iter: int = 100, tol: float = 1e-6, method: str = "auto") -> ReductionResult:
    """``irka`` of a large sparse target (``irka_sparse`` from low-rank balanced truncation)."""
    t0 = _time.perf_counter()
    check_stable_sparse(F, "F")
    start = lr_balanced_truncation(F, r)
    H, info = irka_sparse(F, r, start=start, tol=tol, max_iter=max_iter, return_info=True)
    return _contract(F, H, t0, "irka", "sparse", {"iterations": info.iterations, "converged": info.converged,
                                                    "factorizations": info.factorizations})


def register() -> None:
    """Fill ``system._route.BACKEND`` (module docstring)."""
    BACKEND.update(h2_norm=sparse_h2_norm, h2_error=sparse_h2_error, hankel_singular_values=sparse_hsv,
                   frequency_response=sparse_frequency_response, is_stable=sparse_is_stable,
                   balanced_truncation=sparse_balanced_truncation, rarl2=sparse_rarl2, reduce_bt=sparse_reduce_bt,
                   irka=sparse_irka, pymor=PymorSystem)
