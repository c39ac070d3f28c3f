"""difflinalg: correct, stable derivative rules for scientific linear algebra on PyTorch.

The linear-algebra rules are exported here (``difflinalg.cholesky``, ``difflinalg.eigh``, ...);
the tools and applications live in their namespaces: ``difflinalg.check``, ``difflinalg.implicit``,
``difflinalg.checkpoint``, ``difflinalg.control``, ``difflinalg.signal``.
"""

from . import check, checkpoint, control, implicit, signal
from ._errors import (
    ConvergenceError,
    DegenerateSpectrumError,
    DifflinalgError,
    GaugeError,
    GaugeWarning,
    InputError,
    NotPositiveDefiniteError,
    PrecisionWarning,
    SingularEquationError,
    TransformCheckWarning,
    UnstableSystemError,
)
from .equations import *  # noqa: F403
from .factor import *  # noqa: F403
from .matfun import *  # noqa: F403
from .spectral import *  # noqa: F403

from ._version import __version__
