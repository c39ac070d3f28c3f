"""Linear systems and H2-optimal model reduction (RARL2)."""

from ._analysis import (
    frequency_response,
    h2_error,
    h2_norm,
    hankel_singular_values,
    is_stable,
    stability_margin,
)
from ._balanced import balanced_truncation
from ._criterion import h2_projection
from ._io import load_model, save_model
from ._models import BUILTIN as BUILTIN_MODELS
from ._models import builtin_model
from ._rarl2 import ReductionResult, StartResult, markov_system, rarl2
from ._statespace import StateSpace, as_system, error_system

__all__ = [
    "BUILTIN_MODELS",
    "ReductionResult",
    "StartResult",
    "StateSpace",
    "as_system",
    "balanced_truncation",
    "builtin_model",
    "error_system",
    "frequency_response",
    "h2_error",
    "h2_norm",
    "h2_projection",
    "hankel_singular_values",
    "is_stable",
    "load_model",
    "markov_system",
    "rarl2",
    "save_model",
    "stability_margin",
]
