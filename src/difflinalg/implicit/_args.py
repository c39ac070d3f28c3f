"""Arguments of the implicit ops: the solver keywords of ``root``, ``fixed_point`` and ``argmin``,
and derivatives of a function with respect to its differentiable positional arguments only.

The public ops share one set of keywords (documented in ``root``); they are declared once here
(``SolveOptions``) and turned into a validated ``Options``. An op may fix some of them itself
(``argmin`` is symmetric, ``fixed_point`` is not), and then does not accept them as keywords.

The rules differentiate ``F(x, *params)`` and the mat-vecs ``A(theta) v`` with respect to the
parameters that are floating-point tensors; other arguments (integer tensors, ``None`` and other
constants) are passed through unchanged and get ``None`` gradients.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypedDict

import torch
from torch import Tensor

from ._diagnostics import Options


class SolveOptions(TypedDict, total=False):
    """Keywords of ``fixed_point`` and ``argmin`` (their meaning and defaults: see ``root``)."""

    solve: str
    tol: float | None
    maxiter: int | None
    restart: int | None
    residual_tol: float | None
    on_failure: str
    batch_dims: int


class RootOptions(SolveOptions, total=False):
    """Keywords of ``root`` and ``custom_root``."""

    symmetric: bool


def solve_options(fn: str, keywords: dict, **fixed) -> Options:
    """``Options`` from the keywords passed to the public function ``fn``, with the options the op
    sets itself (``fixed``); a keyword that is unknown or fixed is a ``TypeError``, as for any
    Python function. Values are validated by ``_root`` (``Options.validate``)."""
    for name in keywords:
        if name not in RootOptions.__optional_keys__ or name in fixed:
            raise TypeError(f"{fn}() got an unexpected keyword argument '{name}'")
    return Options(**keywords, **fixed)


def is_diff(t) -> bool:
    """Whether ``t`` is a tensor that can carry a derivative (floating point or complex)."""
    return isinstance(t, Tensor) and (t.is_floating_point() or t.is_complex())


def substitute(seq: Sequence, idx: Sequence[int], values: Sequence) -> tuple:
    """``seq`` with the entries at the positions ``idx`` replaced by ``values``."""
    out = list(seq)
    for i, v in zip(idx, values):
        out[i] = v
    return tuple(out)


def vjp_wrt(f: Callable[..., object], args: Sequence, cotangent) -> list:
    """``<cotangent, d f(*args) / d args[i]>`` for every differentiable ``args[i]``, ``None`` for
    the others (``torch.func.vjp`` with the other arguments held fixed)."""
    idx = [i for i, a in enumerate(args) if is_diff(a)]
    out: list = [None] * len(args)
    if not idx:
        return out
    _, vjp_fn = torch.func.vjp(lambda *moving: f(*substitute(args, idx, moving)),
                               *[args[i] for i in idx])
    for i, g in zip(idx, vjp_fn(cotangent)):
        out[i] = g
    return out


def jvp_wrt(f: Callable[..., object], args: Sequence, tangents: Sequence):
    """Directional derivative of ``f(*args)`` along ``tangents`` (one per argument; ``None`` or a
    non-differentiable argument: held fixed). ``None`` when no argument moves."""
    idx = [i for i, (a, d) in enumerate(zip(args, tangents)) if d is not None and is_diff(a)]
    if not idx:
        return None
    _, out = torch.func.jvp(lambda *moving: f(*substitute(args, idx, moving)),
                            tuple(args[i] for i in idx), tuple(tangents[i] for i in idx))
    return out
