r"""Which path a sparse or descriptor system takes: the dense algorithms or ``control.large``.

Every public function of ``control`` that takes a system (``h2_norm``, ``h2_error``,
``hankel_singular_values``, ``frequency_response``, ``is_stable``, ``balanced_truncation``,
``rarl2``, ``reduce``) accepts a ``SparseSystem``. At or below ``SPARSE_CROSSOVER`` states it is made
dense (``SparseSystem.to_dense``: ``E^{-1} A`` by one sparse LU) and the dense algorithm runs: exact
to rounding, and faster there. Above it the sparse algorithm registered by ``control.large`` in
``BACKEND`` runs (shifted sparse solves, low-rank Gramians; never an N x N dense matrix).

The crossover was measured on 2-D heat and convection-diffusion models, whose low-rank ADI
iterations converge in tens of steps. Lightly damped structural models can defeat them (SLICOT's
ISS12A, N = 1412: the controllability ADI stalls at a residual of 5e-4 after 600 steps, ~1 s).
When the sparse path raises ``ConvergenceError`` for a system the dense path can take (at most
``DENSE_MAX`` states), the dense algorithm runs instead: exact, and at such orders seconds (ISS12A:
``rarl2`` 1.1 s). Above ``DENSE_MAX`` the error reaches the user.

Layering: ``control.large`` sits above the analysis and reduction layers, which must not import it;
it fills ``BACKEND`` when imported, as ``control.analysis`` fills ``StateSpace``'s ``ANALYSES``.
``difflinalg.control`` sets ``LOADER``, which imports it the first time a sparse system needs it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from ..._errors import ConvergenceError
from . import _interop
from ._sparse import DENSE_MAX, SparseSystem
from ._statespace import StateSpace

#: Order above which a ``SparseSystem`` takes the sparse path (module docstring). Measured by
#: ``benchmarks/sparse_crossover.py`` (order 10, one thread; benchmarks/README.md, "Dense or sparse
#: path"): the sparse ``rarl2`` (two-level ``rarl2_large``) is faster than the dense one from about
#: N = 200 on 2-D heat and convection-diffusion (1.7x to 11x at N = 324, 53x at N = 729 on the
#: non-normal convection-diffusion), with one exception (heat, N = 729: 0.8x); low-rank balanced
#: truncation breaks even with the dense one at N = 100 and wins from there on. The dense path is
#: kept up to 400 states because it is also the more accurate one there: exact to rounding,
#: differentiable, and its precise yardstick resolves relative H2 errors below the sparse error
#: system's ~1e-13; below 400 states it costs a few seconds at most.
SPARSE_CROSSOVER = 400

#: name -> the sparse implementation (filled by ``control.large`` at import; module docstring)
BACKEND: dict[str, Callable] = {}


#: loads ``control.large`` (which fills ``BACKEND``); set by ``difflinalg.control`` so that
#: ``import difflinalg`` does not import SciPy's sparse solvers (and scipy.linalg) until a sparse
#: system first needs them, and this layer never imports the one above it
LOADER: Callable[[], None] | None = None


def backend(name: str) -> Callable:
    """The sparse implementation registered under ``name`` (``control.large`` loaded on first use)."""
    if name not in BACKEND and LOADER is not None:
        LOADER()
    try:
        return BACKEND[name]
    except KeyError:  # only reachable by importing the lower layers without ``difflinalg.control``
        raise RuntimeError(f"{name}: the sparse backend is not loaded; import difflinalg.control") from None


def uses_sparse_path(sys) -> bool:
    """True when ``sys`` is a ``SparseSystem`` above ``SPARSE_CROSSOVER`` states."""
    return isinstance(sys, SparseSystem) and sys.order > SPARSE_CROSSOVER


def dense_or_self(sys):
    """A ``SparseSystem`` made dense (``to_dense``; refused above ``DENSE_MAX`` states), anything
    else unchanged."""
    return sys.to_dense() if isinstance(sys, SparseSystem) else sys


def sparse_route(name: str) -> Callable[[Callable], Callable]:
    """Decorator of a public function ``fn(sys, *args, **options)``: a ``SparseSystem`` first argument
    above the crossover goes to ``BACKEND[name]`` with the same arguments; below it is made dense.
    Other ``SparseSystem`` positional arguments (e.g. ``h2_error``'s model ``H``) are made dense."""

    def deco(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(sys, *args, **options):
            if _interop.library_of(sys) == "pymor":  # sparse or operator-based models stay so
                sys = StateSpace.from_pymor(sys)
            if uses_sparse_path(sys):
                try:
                    return backend(name)(sys, *args, **options)
                except ConvergenceError:
                    if sys.order > DENSE_MAX:
                        raise
                    # low-rank iterations that stall (module docstring): the exact dense path
            return fn(dense_or_self(sys), *(dense_or_self(a) for a in args), **options)

        return wrapper

    return deco
