"""The a posteriori singularity check of every solve, and the precision policy of the equations.

The eigenvalue test of ``_checks.check_nonsingular`` measures the *gap* between the spectra; for
non-normal coefficients the separation ``sep = sigma_min(L)`` of the operator can be far smaller,
and a Kronecker LU or a Schur solve then returns an ``X`` of size ``~||C|| / (eps ||L||)`` (issue
16: up to 1e17) with no error. The solution itself bounds the condition number from below::

    ||L^{-1}|| >= ||X|| / ||C||   so   kappa(L) >= growth = scale ||X||_F / ||C||_F

with ``scale`` the estimate of ``||L||`` of ``_checks.separation`` (``||A||_F + ||B||_F``, or
``1 + ||A||_F ||B||_F``). With ``kappa = max(scale / min gap, growth)``:

* ``kappa >= 1 / (4 max(m, n) eps)`` (``singular_limit``, the threshold of the eigenvalue test):
  ``SingularEquationError`` naming the closest eigenvalue pair;
* ``kappa eps > PRECISION_TOL``: ``PrecisionWarning`` (``_utils.check_precision``; the solution
  and its gradient, both solves with ``L`` or ``L^H``, keep fewer than two correct digits). This is
  the single-precision policy of ``docs/conventions.md``: in float32 at a separation of 1e-10 the
  Kronecker path returned an O(1)-wrong gradient; now it raises (the gap is below float32's
  tolerance) or, for gaps up to ``~100 eps scale``, warns.

Cost: two norms and one host synchronisation per solve (the equation's forward only; the adjoint
solves of the derivatives reuse the operator's factors without checks). Inside ``torch.func`` no
value can be read: singular batch elements become NaN (value and, through the product with the
NaN mask, gradient) and ``TransformCheckWarning`` is issued once (``docs/conventions.md``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._errors import TransformCheckWarning
from .._utils import check_precision, is_wrapped, warn_once
from ._checks import equation_scale, equation_text, singular_error, singular_limit, worst


def check_solution(op, X: Tensor, C: Tensor) -> Tensor:
    """``X`` after the a posteriori singularity check and the precision policy (module docstring);
    ``op`` is the ``SylvesterOperator``/``SteinOperator`` that solved ``L(X) = C``. Raises
    ``SingularEquationError``; returns ``X`` with NaN for singular batch elements inside
    ``torch.func``."""
    if X.numel() == 0 or X.device.type == "meta":
        return X
    eig_a, eig_b = op._eig
    m, n = op.shape
    scale = op._scale if op._scale is not None else equation_scale(op.kind, op.A, op.B)
    xn = torch.linalg.matrix_norm(X.detach()).to(torch.float64)
    cn = torch.linalg.matrix_norm(C.detach()).to(torch.float64)
    # C = 0 gives X = 0 exactly (a linear solve): no information, no growth.
    growth = torch.where(cn > 0, scale * xn / cn, torch.zeros_like(xn))
    kappa = torch.maximum(growth, op._kappa)  # NaN (overflowed X) propagates: singular
    limit = singular_limit(m, n, op.A.dtype)
    text = equation_text(op.kind, *op.names)
    if any(is_wrapped(t) for t in (X, C, kappa)):
        warn_once(f"equations-singular-{op.kind}", f"{text}: inside torch.func the singularity check "
                  "cannot raise (no host synchronisation): a numerically singular equation gives NaN "
                  "(solution and gradient) instead of a SingularEquationError", TransformCheckWarning,
                  stacklevel=5)
        bad = ~(kappa < limit)
        mask = torch.where(bad, torch.full_like(kappa, float("nan")), torch.ones_like(kappa))
        return X * mask[..., None, None].to(X.dtype)
    kmax = worst(kappa)  # the one host synchronisation of the usual case
    if kmax >= limit:
        err = singular_error(op.kind, eig_a, eig_b, op.A, op.B, kappa, op.names, op._hint, growth=growth)
        if err is not None:
            raise err
    check_precision(text, kmax, op.A.dtype, "the solution and its gradient (condition estimate: "
                    "inverse relative separation of the spectra, or the solution's growth)")
    return X
