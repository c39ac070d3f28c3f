"""Value checks of the Hermitian matrix functions: overflow of ``f(l)`` in the forward pass, and
the existence and precision of the derivative (``ScalarFunction.kappa``) in its first-order rules.

* Overflow: ``expmh`` of a matrix with an eigenvalue of 800 used to return NaN (``inf * 0`` in
  ``V diag(e^l) V^H``). A non-finite ``f(l)`` at a finite eigenvalue raises ``InputError`` naming
  the eigenvalue: the result is not representable in the dtype.
* Derivative: ``sqrtmh``'s gradient at a singular positive semidefinite matrix was Inf, NaN or
  ~5e7 depending on rounding; the derivative does not exist there (``f'(0) = inf``). With the
  function's condition estimate ``kappa`` of its divided differences: ``kappa = inf`` raises
  ``NotPositiveDefiniteError`` (derivative does not exist), ``kappa eps > PRECISION_TOL`` warns
  ``PrecisionWarning`` (the single-precision policy, ``docs/conventions.md``).

Inside ``torch.func`` no value can be read: the derivative of a failing matrix is NaN and
``TransformCheckWarning`` is issued once; the overflow check is skipped (the NaN result is loud).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._errors import InputError, NotPositiveDefiniteError, TransformCheckWarning
from .._nested import call
from .._utils import check_precision, is_wrapped, warn_once
from ._divided import ScalarFunction


def check_overflow(fn: ScalarFunction, w: Tensor, fw: Tensor, name: str, what: str = "eigenvalue") -> None:
    """Raise ``InputError`` if ``f`` overflows (non-finite at a finite ``what``: an eigenvalue,
    or a singular value for ``svd_function``)."""
    if is_wrapped(fw) or fw.numel() == 0 or fw.device.type == "meta":
        return
    bad = ~torch.isfinite(fw) & torch.isfinite(w)
    if not bool(bad.any()):
        return
    pos = tuple(torch.nonzero(bad)[0].tolist())
    where = f" (batch index {pos[:-1]})" if len(pos) > 1 else ""
    dt = str(w.dtype).replace("torch.", "")
    raise InputError(
        f"{name}: {fn.name} of {what} {float(w[pos]):.6g}{where} overflows {dt} "
        f"({float(fw[pos])}): the matrix function is not representable in {dt}; shift or scale the "
        "problem (for exp: expmh(A - c I) = exp(-c) expmh(A)), work with its logarithm, or compute "
        "in double precision if this is single precision"
    )


def _times(x: Tensor, mask: Tensor) -> Tensor:
    return x * mask.to(x.dtype)


def check_derivative(fn: ScalarFunction, w: Tensor, d: Tensor, name: str) -> Tensor:
    """``d`` (a derivative of ``f(A)``) after the derivative check of ``fn`` (module docstring)."""
    if fn.kappa is None or w.numel() == 0 or w.device.type == "meta":
        return d
    kappa = fn.kappa(w.detach())
    if is_wrapped(kappa) or is_wrapped(d):
        warn_once(f"matfun-derivative-{fn.name}", f"{name}: inside torch.func the derivative check of "
                  f"{fn.name} cannot raise (no host synchronisation): the derivative at a matrix where "
                  "it does not exist (a zero eigenvalue) is NaN instead of a NotPositiveDefiniteError",
                  TransformCheckWarning, stacklevel=4)
        nan = torch.full_like(kappa, float("nan"))
        mask = torch.where(torch.isinf(kappa), nan, torch.ones_like(kappa))[..., None, None]
        # through ``call``: inside a jvp rule plain operations would drop an outer level's tangent
        return call(_times, d, mask)
    inf = torch.isinf(kappa)
    if bool(inf.any()):
        pos = tuple(torch.nonzero(inf)[0].tolist()) if inf.ndim else ()
        wmin = float(w[pos].min())
        where = f" (batch index {pos})" if pos else ""
        raise NotPositiveDefiniteError(
            f"{name}: the derivative of {fn.name}mh does not exist at this matrix{where}: its smallest "
            f"eigenvalue {wmin:.3e} is zero within rounding (n eps max|l|), where {fn.name}'(0) is "
            "infinite (the matrix is singular positive semidefinite); differentiate at a shifted matrix "
            f"({fn.name}mh(A + delta I), delta > 0) or reformulate the loss without the {fn.name} "
            "of a singular matrix"
        )
    check_precision(f"{fn.name}mh", kappa, w.dtype,
                    f"the derivative (through 1/{fn.name}' of the smallest eigenvalue)")
    return d
