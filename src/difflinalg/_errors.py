"""Exception types. Every error names the offending argument and says what to do instead."""

from __future__ import annotations

from torch.linalg import LinAlgError

# The numerical failures (a factorization or an equation that cannot be solved, a derivative that
# does not exist at a degenerate spectrum, an iteration that does not converge) are also
# ``torch.linalg.LinAlgError``, so that code written for torch.linalg (``except LinAlgError``)
# catches them when it switches to difflinalg.


class DifflinalgError(Exception):
    """Base class of difflinalg's own errors."""


class InputError(DifflinalgError, ValueError):
    """An argument has the wrong shape, dtype or values (non-finite entries, out of range)."""


class NotPositiveDefiniteError(InputError, LinAlgError):
    """A matrix that must be Hermitian positive definite is not."""


class SingularEquationError(InputError, LinAlgError):
    """A linear matrix equation has no unique solution (e.g. A and -B share an eigenvalue)."""


class DegenerateSpectrumError(InputError, LinAlgError):
    """A rule's derivative is undefined because of a zero gap the rule cannot avoid."""


class UnstableSystemError(InputError):
    """A dynamical system that must be stable is not."""


class ConvergenceError(DifflinalgError, LinAlgError):
    """An iterative method or a residual check failed."""


class GaugeError(DifflinalgError, RuntimeError):
    """A loss depends on a quantity a rule defines only up to a gauge (a unitary factor or a phase,
    e.g. the complement columns of a complete QR): its gradient would depend on an arbitrary choice."""


class GaugeWarning(UserWarning):
    """Warning form of ``GaugeError`` (e.g. ``svd(..., gauge="warn")``)."""


class PrecisionWarning(UserWarning):
    """A result or derivative computed in the input's precision may have lost most of its digits.

    Emitted when a rule's own condition estimate ``kappa`` (from quantities it already holds: gaps,
    pivots, separations) predicts a relative error ``kappa * eps(dtype)`` above
    ``difflinalg._utils.PRECISION_TOL`` (single precision mostly: float32 resolves ~7 digits).
    The fix is named in the message (usually: compute in float64). Make it an error with
    ``warnings.simplefilter("error", difflinalg.PrecisionWarning)``."""


class TransformCheckWarning(UserWarning):
    """A value check (degeneracy, gauge, precision) could not run inside a ``torch.func``
    transform, where data-dependent control flow is not allowed; the rule marks the affected
    entries as NaN instead of raising, and warns once per check."""
