"""Linear systems and H2-optimal model reduction (RARL2), in layers whose imports point down
(docs/architecture.md): ``system`` <- ``analysis`` <- ``reduction`` <- ``large`` <- ``cli``."""

from .analysis import (
    decay_rate,
    frequency_response,
    h2_error,
    h2_norm,
    hankel_singular_values,
    is_stable,
    stability_margin,
)
from .reduction import (
    REDUCTORS,
    ReductionResult,
    Reductor,
    StartResult,
    balanced_truncation,
    h2_projection,
    irka,
    rarl2,
    reduce,
    reduce_bt,
)
from .system import BUILTIN as BUILTIN_MODELS
from .system import (
    SPARSE_CROSSOVER,
    LTISystem,
    SparseSystem,
    StateSpace,
    as_system,
    builtin_model,
    error_system,
    load_model,
    markov_system,
    save_model,
)
from .system import _route


def _load_large() -> None:
    """Import ``control.large``, which registers the sparse path (``system._route.BACKEND``); done on
    first use so that ``import difflinalg`` stays light (no SciPy sparse solvers)."""
    from . import large  # noqa: F401


_route.LOADER = _load_large

__all__ = [
    "BUILTIN_MODELS",
    "LTISystem",
    "REDUCTORS",
    "SPARSE_CROSSOVER",
    "SparseSystem",
    "ReductionResult",
    "Reductor",
    "StartResult",
    "StateSpace",
    "as_system",
    "balanced_truncation",
    "builtin_model",
    "decay_rate",
    "error_system",
    "frequency_response",
    "h2_error",
    "h2_norm",
    "h2_projection",
    "hankel_singular_values",
    "irka",
    "is_stable",
    "load_model",
    "markov_system",
    "rarl2",
    "reduce",
    "reduce_bt",
    "save_model",
    "stability_margin",
]
