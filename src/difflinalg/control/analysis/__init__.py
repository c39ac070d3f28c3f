"""The analysis layer of ``control``: stability, Gramians, H2 norms and errors, Hankel singular
values, frequency responses, modal forms and the extended-precision yardstick. Imports only the
system layer below it, never ``reduction`` (docs/architecture.md). Importing it registers the
functions that ``StateSpace``'s analysis methods call (``system._statespace.ANALYSES``)."""

from ..system._statespace import ANALYSES
from ._frequency import frequency_response
from ._hankel import hankel_singular_values
from ._norms import h2_error, h2_norm
from ._stability import decay_rate, is_stable, stability_margin

ANALYSES.update(is_stable=is_stable, decay_rate=decay_rate, h2_norm=h2_norm,
                hankel_singular_values=hankel_singular_values, frequency_response=frequency_response)

__all__ = ["decay_rate", "frequency_response", "h2_error", "h2_norm", "hankel_singular_values", "is_stable",
           "stability_margin"]
