"""The reduction layer of ``control``: balanced truncation, IRKA and RARL2 behind one contract
(``REDUCTORS``, ``reduce``). Imports the analysis and system layers below it (docs/architecture.md);
``control.large`` is its sparse backend."""

from ._balanced import balanced_truncation
from ._irka import irka
from ._rarl2._api import rarl2
from ._rarl2._criterion import h2_projection
from ._registry import REDUCTORS, Reductor, reduce, reduce_bt
from ._results import ReductionResult, StartResult

__all__ = ["REDUCTORS", "ReductionResult", "Reductor", "StartResult", "balanced_truncation", "h2_projection",
           "irka", "rarl2", "reduce", "reduce_bt"]
