r"""Which tensors that need a gradient a ``step`` function closes over (autograd graph inspection).

A checkpointed loop replays ``step`` inside its backward, so the gradients of the tensors ``step``
uses besides its state (weights, biases) must be returned by that backward: they have to be inputs
of the loop's autograd node. They are found from the graph of one taped step ``y = step(x)``
(``x`` detached leaves): walking ``y.grad_fn`` backwards,

* an ``AccumulateGrad`` node other than ``x``'s is a leaf parameter: its ``.variable`` is the
  tensor itself;
* a node created *before* the step was called (autograd sequence numbers increase in creation
  order) is the ``grad_fn`` of a non-leaf tensor computed outside the loop, e.g. ``W = f(theta)``.
  The graph does not give the tensor back, so it is matched against the tensors reachable from
  ``step`` (closure cells, defaults, referenced globals, ``functools.partial`` arguments, bound
  ``self``, ``nn.Module`` parameters, buffers and attributes) or against ``params=``; if no match
  is found the caller must pass it in ``params=`` (an error says so, never a silent zero gradient).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

import torch
from torch import Tensor

from .._errors import InputError


def creation_marker() -> int:
    """Autograd sequence number below every node created from now on."""
    with torch.enable_grad():
        return torch.zeros((), requires_grad=True).view(()).grad_fn._sequence_nr()


def _candidates(obj, depth: int = 3, seen: set | None = None) -> Iterable[Tensor]:
    """Tensors reachable from a callable or container (a few levels deep)."""
    seen = set() if seen is None else seen
    if depth < 0 or id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, Tensor):
        yield obj
        return
    if isinstance(obj, torch.nn.Module):
        yield from obj.parameters()
        yield from obj.buffers()
        for v in vars(obj).values():
            yield from _candidates(v, depth - 1, seen)
        return
    if isinstance(obj, (list, tuple, set, frozenset)):
        for v in obj:
            yield from _candidates(v, depth - 1, seen)
        return
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _candidates(v, depth - 1, seen)
        return
    if isinstance(obj, functools.partial):
        yield from _candidates(obj.func, depth - 1, seen)
        yield from _candidates(obj.args, depth - 1, seen)
        yield from _candidates(obj.keywords, depth - 1, seen)
        return
    if hasattr(obj, "__self__") and hasattr(obj, "__func__"):  # bound method
        yield from _candidates(obj.__self__, depth - 1, seen)
        yield from _candidates(obj.__func__, depth - 1, seen)
        return
    code = getattr(obj, "__code__", None)
    if code is not None:  # plain function or lambda
        for cell in getattr(obj, "__closure__", None) or ():
            try:
                yield from _candidates(cell.cell_contents, depth - 1, seen)
            except ValueError:  # empty cell
                pass
        yield from _candidates(getattr(obj, "__defaults__", None) or (), depth - 1, seen)
        yield from _candidates(getattr(obj, "__kwdefaults__", None) or {}, depth - 1, seen)
        g = getattr(obj, "__globals__", {})
        for name in code.co_names:
            if name in g:
                yield from _candidates(g[name], depth - 1, seen)
        return
    if callable(obj) and hasattr(obj, "__dict__"):  # callable object
        yield from _candidates(vars(obj), depth - 1, seen)
        yield from _candidates(type(obj).__call__, depth - 1, seen)


def _describe(t: Tensor) -> str:
    return f"shape {tuple(t.shape)}, dtype {str(t.dtype).replace('torch.', '')}"


def find_params(
    outputs: list[Tensor],
    inputs: list[Tensor],
    marker: int,
    step: Callable,
    declared: list[Tensor] | None,
) -> list[Tensor]:
    """The tensors requiring grad that ``outputs = step(inputs)`` depends on besides ``inputs``.

    With ``declared`` (the user's ``params=``), checks that they cover every such tensor and
    returns them; without, returns the discovered ones. Raises ``InputError`` when a dependency
    cannot be identified or is missing from ``declared``.
    """
    input_ids = {id(t) for t in inputs}
    leaves: dict[int, Tensor] = {}
    boundary: dict[int, object] = {}
    seen: set[int] = set()
    stack = [t.grad_fn for t in outputs if t.grad_fn is not None]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if hasattr(node, "variable"):  # AccumulateGrad: a leaf tensor
            var = node.variable
            if id(var) not in input_ids:
                leaves[id(var)] = var
            continue
        if node._sequence_nr() < marker:  # made before the step ran: a non-leaf closure tensor
            boundary[id(node)] = node
            continue
        stack.extend(fn for fn, _ in node.next_functions if fn is not None)

    if declared is not None:
        declared_ids = {id(t) for t in declared}
        for t in leaves.values():
            if id(t) not in declared_ids:
                raise InputError(
                    f"params: step uses a leaf tensor that requires grad ({_describe(t)}) and is not "
                    "in params; add it to params (or detach it if it needs no gradient)"
                )
        by_fn = {id(t.grad_fn): t for t in declared if t.grad_fn is not None}
        for nid, node in boundary.items():
            if nid not in by_fn:
                raise InputError(
                    f"params: step uses a non-leaf tensor that requires grad (produced by "
                    f"{type(node).__name__}) and is not in params; add that tensor to params"
                )
        return list(declared)

    found = list(leaves.values())
    if boundary:
        by_fn = {}
        for t in _candidates(step):
            if t.requires_grad and t.grad_fn is not None:
                by_fn.setdefault(id(t.grad_fn), t)
        for nid, node in boundary.items():
            if nid not in by_fn:
                raise InputError(
                    f"step closes over a tensor that requires grad and was computed before the loop "
                    f"(produced by {type(node).__name__}), which binomial_loop cannot find from "
                    "step; pass the tensors step depends on explicitly with params=[...]"
                )
            found.append(by_fn[nid])
    return found
