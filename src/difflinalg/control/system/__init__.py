"""The system layer of ``control`` (bottom): ``StateSpace`` and ``SparseSystem`` (``LTISystem``), error and Markov systems, model files,
built-in models and conversions to and from python-control, scipy.signal and pyMOR. Imports nothing
else of ``control`` (docs/architecture.md)."""

from ._io import load_model, save_model
from ._markov import markov_system
from ._models import BUILTIN, builtin_model
from ._base import LTISystem
from ._route import SPARSE_CROSSOVER
from ._sparse import SparseSystem
from ._error_system import error_system
from ._statespace import StateSpace, as_system, fmt_complex

__all__ = ["BUILTIN", "SPARSE_CROSSOVER", "LTISystem", "SparseSystem", "StateSpace", "as_system", "builtin_model",
           "error_system", "fmt_complex", "load_model", "markov_system", "save_model"]
