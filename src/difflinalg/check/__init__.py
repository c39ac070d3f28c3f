"""Gradient verification: finite-difference stencils, adaptive derivatives, ``gradcheck``, and
the registry of rules and their verification cases behind ``difflinalg verify``."""

from ._derivative import Derivative, derivative
from ._gradcheck import default_tolerances, gradcheck
from ._inputs import randn
from ._registry import Case, cases, load_errors, register_case, unregister_case
from ._report import CheckRecord, GradcheckError, GradcheckReport
from ._stencil import Stencil, backward_fdm, central_fdm, forward_fdm, stencil

__all__ = [
    "Case",
    "CheckRecord",
    "Derivative",
    "GradcheckError",
    "GradcheckReport",
    "Stencil",
    "backward_fdm",
    "cases",
    "central_fdm",
    "default_tolerances",
    "derivative",
    "forward_fdm",
    "gradcheck",
    "load_errors",
    "randn",
    "register_case",
    "stencil",
    "unregister_case",
]
