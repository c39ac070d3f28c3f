"""The reduction layer of ``control``: balanced truncation and RARL2. Imports the analysis and
system layers below it (docs/architecture.md)."""

from ._balanced import balanced_truncation
from ._rarl2._api import ReductionResult, StartResult, rarl2
from ._rarl2._criterion import h2_projection

__all__ = ["ReductionResult", "StartResult", "balanced_truncation", "h2_projection", "rarl2"]
