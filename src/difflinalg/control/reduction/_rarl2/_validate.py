"""Argument validation of ``rarl2`` (and of ``difflinalg reduce``), done before any work.

``check_rarl2_args`` checks the scalar arguments (order, starts, seed, max_iter, tol, max_time,
progress) and says, for each, what was expected, what was found and what to pass instead.
``validated_rarl2`` wraps the reduction itself:

* single precision: a float32 (complex64) target is reduced in float64 (complex128), and the model
  is returned in the target's dtype. Rounding the model's coefficients to single precision moves
  its transfer function by about ``eps32 ||F||``; where that matters (relative errors below
  ``ROUNDING_CHECK_BELOW``) the rounded model's error is measured and, if larger than the
  double-precision one, reported instead, with a ``PrecisionWarning``;
* unstable targets: an unstable target has no H2 norm, and any failure of the reduction (a zero or
  NaN norm, a singular Lyapunov equation) is reported as ``UnstableSystemError`` naming an unstable
  pole. A cheap necessary condition is tested first, before any factorization: the poles sum to
  ``tr A``, so ``Re tr A >= 0`` (continuous) or ``|tr A| >= n`` (discrete) means some pole is
  unstable (the cases "all poles unstable" and "all poles at 0", whose modal norms are 0 or NaN).
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable, Sequence

import torch

from ...._errors import InputError, PrecisionWarning
from ...._utils import eps, is_wrapped
from ...analysis._stability import check_stable
from ...system._statespace import StateSpace

#: single-precision targets: below this relative error the model rounded to the target's dtype
#: is re-measured (``1e3 eps32``: the rounding of the coefficients, ``~eps32 ||F||`` times a modest
#: sensitivity, is then within a factor of ~10 of the error)
ROUNDING_CHECK_BELOW = 1e3 * eps(torch.float32)
#: working dtype of each single-precision dtype
_WIDEN = {torch.float32: torch.float64, torch.complex64: torch.complex128}


def _is_int(x) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _is_real(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def check_rarl2_args(*, order=1, starts=None, seed=None, max_iter=2000, tol=1e-9, max_time=None,
                     progress=False) -> None:
    """Validate ``rarl2``'s scalar arguments (see ``rarl2`` for their meaning).

    Raises:
        InputError: naming the argument, what was expected, what was found and the fix.
    """
    if not _is_int(order) or order < 1:
        raise InputError(f"order: expected a positive integer (the reduced order), got {order!r}")
    if starts is not None:
        if isinstance(starts, (str, bytes)) or not (_is_int(starts) or isinstance(starts, Sequence)):
            raise InputError(f"starts: expected a number of starts or a list of start kinds "
                             f"(e.g. ['bt', 'irka']), got {starts!r}; or leave it None for the default starts")
        if _is_int(starts) and starts < 1:
            raise InputError(f"starts: expected at least 1 start, got {starts}; "
                             "leave it None for the default starts")
        if not _is_int(starts) and len(starts) == 0:
            raise InputError("starts: expected at least one start kind, got an empty list; name some "
                             "(e.g. ['bt', 'irka']) or leave starts=None for the default starts")
    if seed is not None and not _is_int(seed):
        raise InputError(f"seed: expected an integer (or None), got {type(seed).__name__} {seed!r}; "
                         "pass e.g. seed=0")
    if not _is_int(max_iter) or max_iter < 1:
        raise InputError(f"max_iter: expected a positive integer (BFGS iterations per start), got "
                         f"{max_iter!r}; the default is 2000")
    if not _is_real(tol) or not math.isfinite(tol) or tol < 0:
        raise InputError(f"tol: expected a finite number >= 0 (the relative gradient at which a start "
                         f"stops), got {tol!r}; the default is 1e-9")
    if max_time is not None and (not _is_real(max_time) or math.isnan(max_time) or max_time <= 0):
        raise InputError(f"max_time: expected a positive number of seconds (or None for no limit), "
                         f"got {max_time!r}")
    if not isinstance(progress, bool):
        raise InputError(f"progress: expected True or False, got {progress!r}")


def _widen(target):
    """``(target, dtype)``: a single-precision target (StateSpace or Markov parameters) converted
    to double precision and its original dtype (None if it is already double or not a tensor)."""
    if isinstance(target, StateSpace):
        if target.dtype in _WIDEN:
            return target.to(_WIDEN[target.dtype]), target.dtype
        return target, None
    try:
        t = torch.as_tensor(target)
    except Exception:  # noqa: BLE001 - not an array: rarl2 reports it
        return target, None
    if t.dtype in _WIDEN:
        return t.to(_WIDEN[t.dtype]), t.dtype
    return target, None


def _quick_unstable(F: StateSpace) -> bool:
    """A necessary condition for instability from ``tr A`` (the sum of the poles), O(n)."""
    if F.order == 0 or is_wrapped(F.A):
        return False
    tr = torch.diagonal(F.A.detach(), dim1=-2, dim2=-1).sum(-1)
    if F.discrete:
        return bool((tr.abs() >= F.order).any())
    return bool((tr.real >= 0).any())


def validated_rarl2(fn: Callable, target, order, starts, seed, max_iter, tol, progress, method, max_time):
    """``fn(target, order, ...)`` (``_rarl2._rarl2``) with validated arguments, in double precision
    for a single-precision target, and an unstable target reported as such (module docstring)."""
    check_rarl2_args(order=order, starts=starts, seed=seed, max_iter=max_iter, tol=tol, max_time=max_time,
                     progress=progress)
    target, dtype = _widen(target)
    if isinstance(target, StateSpace) and _quick_unstable(target):
        check_stable(target, "target")
    try:
        res = fn(target, order, starts, seed, max_iter, tol, progress, method, max_time)
    except Exception:
        # an unstable target explains any failure (its norm is infinite): name the pole
        if isinstance(target, StateSpace) and target.batch_shape == ():
            check_stable(target, "target")
        raise
    return res if dtype is None else _narrow(res, target, dtype)


def _narrow(res, F: StateSpace, dtype: torch.dtype):
    """The result with its model in ``dtype``; its error re-measured where the rounding matters."""
    from ...analysis._norms import h2_error

    model = res.model.to(dtype)
    if res.relative_error < ROUNDING_CHECK_BELOW:
        H = model.to(F.dtype)
        try:  # at such errors the Gramian sums lose their digits (h2_error's docstring)
            err = float(h2_error(F, H, precise=True))
        except InputError:  # not diagonalizable: the Gramian value is the best there is
            err = float(h2_error(F, H, method="gramian"))
        if err > res.error:
            name = str(dtype).replace("torch.", "")
            warnings.warn(
                f"rarl2: the reduced model (computed in double precision, relative error "
                f"{res.relative_error:.3e}) rounded to the target's {name} has relative error "
                f"{err / res.target_norm:.3e}, which is reported; pass the target in double "
                f"precision (target.to(torch.float64)) to keep a double-precision model",
                PrecisionWarning, stacklevel=4)
            res.error, res.relative_error = err, err / res.target_norm
    res.model = model
    return res
