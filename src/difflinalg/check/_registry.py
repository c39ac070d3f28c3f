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
from ._gradcheck import MODES

FAMILIES = ("factor", "spectral", "equations", "matfun", "implicit", "checkpoint", "signal", "control")

DEFAULT_DTYPES = (torch.float64, torch.complex128)
DEFAULT_MODES = ("vjp", "jvp", "hvp", "hvp_rev", "jvp2")


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
_LOAD_ERRORS: dict[str, str] = {}
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
    """Register a verification case (re-registering the same (op, name) replaces it).

    ``difflinalg verify`` (and ``cases()``) then runs ``gradcheck(fn, make_inputs(dtype, gen))``
    in every mode of ``modes`` for every dtype of ``dtypes``.

    Args:
        op: public name of the op, a non-empty string (e.g. "cholesky").
        name: the case, a non-empty string (e.g. "batched", "degenerate").
        fn: the function checked, of the inputs (wraps the op with whatever makes the input
            valid, e.g. ``A -> cholesky(A @ A.mH + I)``).
        make_inputs: ``(dtype, generator) -> tuple of inputs``.
        dtypes: dtypes the case runs in (default float64 and complex128).
        modes: ``gradcheck`` modes (default "vjp", "jvp", "hvp", "hvp_rev", "jvp2").
        rtol, atol: tolerances (None: from the dtype, ``default_tolerances``).
        hard: a hard point (degenerate, rank-deficient, ill-conditioned) rather than a generic one.
        gradcheck_kwargs: further keyword arguments for ``gradcheck`` (e.g. ``max_step``).

    Returns:
        The registered ``Case``.

    Raises:
        InputError: empty or non-string ``op`` or ``name``; ``fn`` or ``make_inputs`` not
            callable; an unknown mode.

    Example::

        import torch
        from difflinalg.check import cases, randn, register_case, unregister_case

        case = register_case("my_square", "generic", lambda A: A @ A,
                             lambda dtype, gen: (randn(dtype, gen, 3, 3),), modes=("vjp", "jvp"))
        assert cases(["my_square"]) == [case]
        unregister_case("my_square")
    """
    if not (isinstance(op, str) and op and isinstance(name, str) and name):
        raise InputError(f"op, name: expected non-empty strings, got {op!r}, {name!r}")
    if not callable(fn) or not callable(make_inputs):
        raise InputError(f"fn, make_inputs: expected callables for case {op}/{name}")
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise InputError(f"modes: unknown mode(s) {bad} for case {op}/{name}; choose from {MODES}")
    case = Case(op, name, fn, make_inputs, tuple(dtypes), tuple(modes), rtol, atol, hard,
                tuple(sorted(gradcheck_kwargs.items())))
    _CASES[(op, name)] = case
    return case


def unregister_case(op: str, name: str | None = None) -> None:
    """Remove a case (or, with ``name=None``, every case of ``op``); unknown names are ignored.

    Args:
        op: public name of the op.
        name: the case to remove, or ``None`` for every case of ``op``.

    Returns:
        None.

    Raises:
        Nothing: unknown ``op`` or ``name`` are ignored.

    Example::

        from difflinalg.check import cases, register_case, unregister_case

        register_case("my_op", "a", lambda x: x, lambda dtype, gen: ())
        register_case("my_op", "b", lambda x: x, lambda dtype, gen: ())
        unregister_case("my_op", "a")
        assert [c.name for c in cases(["my_op"])] == ["b"]
        unregister_case("my_op")
        assert "my_op" not in {c.op for c in cases()}
    """
    for key in [k for k in _CASES if k[0] == op and (name is None or k[1] == name)]:
        del _CASES[key]


def _load() -> None:
    """Import every family's ``_cases`` module once; a module that fails to import is remembered
    (``load_errors``) rather than hiding the other families' cases."""
    global _loaded
    if _loaded:
        return
    for fam in FAMILIES:
        mod = f"difflinalg.{fam}._cases"
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                _LOAD_ERRORS[mod] = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # noqa: BLE001 - reported by verify as a failure
            _LOAD_ERRORS[mod] = f"{type(exc).__name__}: {exc}"
    _loaded = True


def load_errors() -> dict[str, str]:
    """Case modules that failed to import: ``{module: error}``.

    Imports every family's ``_cases`` module on first use (as ``cases()`` does); a module that
    fails is remembered here instead of hiding the other families' cases.

    Args:
        None.

    Returns:
        A new dict ``{module name: "ExceptionType: message"}``, empty when every module imported.

    Raises:
        Nothing: import failures are returned, not raised.

    Example::

        from difflinalg.check import load_errors

        for module, error in load_errors().items():  # empty when every family's cases imported
            print(f"{module}: {error}")
    """
    _load()
    return dict(_LOAD_ERRORS)


def cases(ops: Sequence[str] | None = None) -> list[Case]:
    """Registered cases, optionally only those of the named ops (unknown names are an error).

    Args:
        ops: public op names (e.g. ``["cholesky", "eigh"]``), or ``None``/empty for every case.

    Returns:
        A list of ``Case``, in registration order.

    Raises:
        InputError: an unknown op name (the message lists the registered ops and any case module
            that failed to import).

    Example::

        from difflinalg.check import cases

        sqrtm_cases = cases(["sqrtm"])
        assert sqrtm_cases and all(c.op == "sqrtm" for c in sqrtm_cases)
    """
    _load()
    known = sorted({c.op for c in _CASES.values()})
    if ops:
        unknown = [o for o in ops if o not in known]
        if unknown:
            note = ""
            if _LOAD_ERRORS:
                note = "; these case modules failed to import: " + "; ".join(
                    f"{m} ({e})" for m, e in _LOAD_ERRORS.items())
            raise InputError(f"ops: unknown op(s) {unknown}; registered ops are {known}{note}")
        return [c for c in _CASES.values() if c.op in ops]
    return list(_CASES.values())
