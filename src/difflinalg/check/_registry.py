"""Registry of rules and the cases each must pass under ``gradcheck`` (run by ``difflinalg verify``).

Each family registers its cases in its own ``_cases.py`` module (for example
``difflinalg/factor/_cases.py``) by calling ``register_case``; ``cases()`` imports those modules
on first use. A case is a function of some inputs plus a factory for the inputs at a given dtype.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .._errors import InputError

FAMILIES = ("factor", "spectral", "equations", "matfun", "implicit", "checkpoint", "signal", "control")

DEFAULT_DTYPES = (torch.float64, torch.complex128)
DEFAULT_MODES = ("vjp", "jvp", "hvp", "hvp_rev")


@dataclass(frozen=True)
class Case:
    """One verification case of one op.

    Attributes:
        op: public name of the op (e.g. "cholesky").
        name: the case (e.g. "batched", "ill_conditioned", "degenerate").
        fn: the function checked, of the inputs (wraps the op with whatever makes the input valid,
            e.g. ``A -> cholesky(A @ A.mH + I)``).
        make_inputs: ``(dtype, generator) -> tuple of inputs``.
        dtypes: dtypes the case runs in.
        modes: ``gradcheck`` modes.
        rtol, atol: tolerances (None: from the dtype).
        hard: a hard point (degenerate, rank-deficient, ill-conditioned) rather than a generic one.
        gradcheck_kwargs: extra keyword arguments for ``gradcheck`` (e.g. ``max_step``).
    """

    op: str
    name: str
    fn: Callable
    make_inputs: Callable[[torch.dtype, torch.Generator], tuple]
    dtypes: tuple[torch.dtype, ...] = DEFAULT_DTYPES
    modes: tuple[str, ...] = DEFAULT_MODES
    rtol: float | None = None
    atol: float | None = None
    hard: bool = False
    gradcheck_kwargs: tuple[tuple[str, object], ...] = ()


_CASES: dict[tuple[str, str], Case] = {}
_loaded = False


def register_case(
    op: str,
    name: str,
    fn: Callable,
    make_inputs: Callable[[torch.dtype, torch.Generator], tuple],
    *,
    dtypes: Sequence[torch.dtype] = DEFAULT_DTYPES,
    modes: Sequence[str] = DEFAULT_MODES,
    rtol: float | None = None,
    atol: float | None = None,
    hard: bool = False,
    **gradcheck_kwargs,
) -> Case:
    """Register a verification case (re-registering the same (op, name) replaces it)."""
    case = Case(op, name, fn, make_inputs, tuple(dtypes), tuple(modes), rtol, atol, hard,
                tuple(sorted(gradcheck_kwargs.items())))
    _CASES[(op, name)] = case
    return case


def _load() -> None:
    global _loaded
    if _loaded:
        return
    for fam in FAMILIES:
        mod = f"difflinalg.{fam}._cases"
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise
    _loaded = True


def cases(ops: Sequence[str] | None = None) -> list[Case]:
    """Registered cases, optionally only those of the named ops (unknown names are an error)."""
    _load()
    known = sorted({c.op for c in _CASES.values()})
    if ops:
        unknown = [o for o in ops if o not in known]
        if unknown:
            raise InputError(f"ops: unknown op(s) {unknown}; registered ops are {known}")
        return [c for c in _CASES.values() if c.op in ops]
    return list(_CASES.values())
