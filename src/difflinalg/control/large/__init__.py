"""Large sparse and descriptor systems: shifted sparse solves, low-rank Gramians, sparse IRKA,
low-rank balanced truncation and the two-level RARL2 route (issue 18). Importing it registers the
sparse path of the public functions (``_dispatch``; ``difflinalg.control`` imports it on first use:
``system._route.LOADER``)."""

from . import _dispatch
from ._gramians import h2_error_sparse, h2_inner, h2_norm_sparse, lr_gramian
from ._pymor import PymorSolver, PymorSystem
from ._models import convection_diffusion_2d, heat_2d, msd_descriptor
from ._rarl2 import LargeReductionResult, rarl2_large
from ._reduce import IrkaInfo, irka_sparse, lr_balanced_truncation
from ._solves import FactorizationMemoryError, ShiftedSolver, lu_memory_estimate
from ._stability import check_stable_sparse, leading_poles
from ._system import SparseSystem

_dispatch.register()  # the sparse path of the public functions (control.system._route)

__all__ = [
    "FactorizationMemoryError",
    "IrkaInfo",
    "LargeReductionResult",
    "PymorSolver",
    "PymorSystem",
    "ShiftedSolver",
    "SparseSystem",
    "check_stable_sparse",
    "convection_diffusion_2d",
    "h2_error_sparse",
    "h2_inner",
    "h2_norm_sparse",
    "heat_2d",
    "irka_sparse",
    "leading_poles",
    "lr_balanced_truncation",
    "lr_gramian",
    "lu_memory_estimate",
    "msd_descriptor",
    "rarl2_large",
]
