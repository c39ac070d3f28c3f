r"""The tensors a ``step`` captures, and how its tapes are cut from the graph that computed them.

Why a cut. ``binomial_loop`` tapes every step again inside its backward and pulls the adjoint back
through it with ``torch.autograd.grad``. A taped step that used a captured tensor ``c`` itself
would reach ``c``'s history: the gradient of a leaf ``W`` that ``c`` was computed from
(``c = 2 W``) would include the path through ``c``, autograd would run (and free) ``c``'s graph at
every reversed step -- "Trying to backward through the graph a second time" at the second -- and
``c``'s gradient, returned by the loop's node as well, would reach ``W`` twice.

The cut. Taped steps run under a ``TorchFunctionMode`` (``Swap``) that replaces every captured
tensor requiring grad, in every torch call, by a stand-in ``c' = c.detach().requires_grad_()``
(same storage and version counter: no copy), so the step's graph ends at ``c'``. The gradients
with respect to the stand-ins are accumulated over the reversed steps and returned once by the
loop's autograd node, whose inputs are the captured tensors themselves; autograd then routes each
through ``c``'s graph exactly once, as for any other input::

    dL/dc = sum_k vjp(step at x_k, wrt c')(g_{k+1}),   then   dL/dW += (dc/dW)^* dL/dc  (once).

The double-backward path (``create_graph=True``) uses aliases ``c.view_as(c)`` instead: they keep
the returned gradients differentiable in ``c``, and autograd captures a gradient at an alias
without running ``c``'s graph.

Discovery. The first tape (the last step, in the forward pass) runs ``Swap`` with a ``Finder``: a
tensor argument of a torch call that requires grad, is not the state and was made before the step
(a leaf, or a ``grad_fn`` whose autograd sequence number is below a marker taken just before) is
captured. This finds a tensor however the step reaches it: closure cells, default arguments,
module parameters and buffers, attributes of arbitrary objects, globals.

What the mode cannot see. ``torch.autograd.Function.apply`` does not dispatch
``__torch_function__``, so a captured tensor passed directly to a custom Function stays in the
tape ("raw"). A walk of the first tape's graph finds these edges (the ``AccumulateGrad`` of a leaf
that is neither the state nor a stand-in, or a node older than the marker). Their gradients are
taken at the edge (a ``GradientEdge``; autograd captures it without running the node), which is
exact as long as no raw node lies upstream of another raw node -- otherwise autograd would run the
first to reach the second -- and that case raises ``InputError``. A raw non-leaf edge is matched to
its tensor among those the mode saw (inside the Function's forward, where grad mode is off) and
``params=``.

Leaves only. When every captured tensor is a leaf (a leaf has no history to cut), the later tapes
run without the mode and use the leaves themselves: no per-operation overhead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.autograd.graph import GradientEdge
from torch.overrides import TorchFunctionMode

from .._errors import InputError


def creation_marker() -> int:
    """Autograd sequence number (of this thread) below every node created from now on."""
    with torch.enable_grad():
        return torch.zeros((), requires_grad=True).view(()).grad_fn._sequence_nr()


def _map(one: Callable[[Tensor], Tensor], a):
    """``a`` with ``one`` applied to its tensors (a tensor, or a list/tuple of them: TensorList)."""
    if isinstance(a, Tensor):
        return one(a)
    if type(a) in (list, tuple) and any(isinstance(v, Tensor) for v in a):
        return type(a)(one(v) if isinstance(v, Tensor) else v for v in a)
    return a


class Swap(TorchFunctionMode):
    """Replaces tensors, by identity, with their stand-ins in every torch call of a step.

    ``table`` maps ``id(captured tensor)`` to its stand-in; with a ``Finder`` the table is built
    while the step runs (discovery).
    """

    def __init__(self, table: dict[int, Tensor], finder: Finder | None = None):
        super().__init__()
        self.one = finder.one if finder is not None else (lambda t: table.get(id(t), t))

    def __torch_function__(self, func, types, args=(), kwargs=None):
        one = self.one
        args = tuple(_map(one, a) for a in args)
        if kwargs:
            kwargs = {k: _map(one, v) for k, v in kwargs.items()}
        return func(*args, **(kwargs or {}))


class Finder:
    """Discovery state of the first tape (see the module docstring)."""

    def __init__(self, marker: int):
        self.marker = marker
        self.skip: set[int] = set()  # ids of the taped state and the stand-ins: never captured
        self.table: dict[int, Tensor] = {}  # id(captured) -> stand-in
        self.captured: list[Tensor] = []  # in discovery order
        self.seen: dict[int, Tensor] = {}  # made before the step, used where grad mode is off

    def made_before(self, t: Tensor) -> bool:
        return t.grad_fn is None or t.grad_fn._sequence_nr() < self.marker

    def one(self, t: Tensor) -> Tensor:
        sub = self.table.get(id(t))
        if sub is not None:
            return sub
        if not t.requires_grad or id(t) in self.skip or not self.made_before(t):
            return t
        if not torch.is_grad_enabled():  # e.g. inside a custom Function's forward: no edge here
            self.seen.setdefault(id(t), t)
            return t
        sub = t.detach().requires_grad_()
        self.table[id(t)] = sub
        self.skip.add(id(sub))
        self.captured.append(t)
        return sub


# (index into Captures.params, what the tape's graph uses for it: a tensor or a GradientEdge)
Stand = list[tuple[int, object]]


@dataclass
class Captures:
    """The captured tensors of a loop and what each kind of tape differentiates with respect to.

    Attributes:
        params: inputs of the loop's autograd node besides the state (the user's ``params=`` if
            given), in a fixed order; the backward returns one gradient per entry.
        table: ``id(param) -> stand-in`` used by ``Swap`` in the later tapes (empty: leaves only).
        first: stand list of the first (discovery) tape.
        later: stand list of the later tapes (stand-ins and raw edges, or the leaves themselves).
        raw: stand list of the raw edges (tensors passed straight to custom Functions).
        used: indices of the params the step uses (the ones the double-backward path aliases).
    """

    params: list[Tensor]
    table: dict[int, Tensor]
    first: Stand
    later: Stand
    raw: Stand
    used: list[int]

    @property
    def mode(self) -> Swap | None:
        return Swap(self.table) if self.table else None


def describe(t: Tensor) -> str:
    return f"shape {tuple(t.shape)}, dtype {str(t.dtype).replace('torch.', '')}"


def _raw_edges(finder: Finder, y: list[Tensor], x_in: tuple) -> tuple[dict, dict]:
    """Edges of the first tape into tensors made before the step that no stand-in replaced.

    Returns ``(leaves, nodes)``: ``id -> (leaf tensor, its AccumulateGrad)`` and
    ``(id(node), output_nr) -> (node, output_nr)``.
    """
    state = {id(t) for t in x_in}
    leaves: dict[int, tuple] = {}
    nodes: dict[tuple, tuple] = {}
    done: set[int] = set()

    def leaf(t: Tensor, acc) -> None:
        if id(t) not in state and id(t) not in finder.skip:
            leaves[id(t)] = (t, acc)

    stack = []
    for t in y:
        if t.grad_fn is None:  # the step returned a leaf as it is
            leaf(t, None)
        else:
            stack.append((t.grad_fn, t.output_nr))
    while stack:
        fn, nr = stack.pop()
        if hasattr(fn, "variable"):  # AccumulateGrad of a leaf
            leaf(fn.variable, fn)
        elif fn._sequence_nr() < finder.marker:  # a non-leaf made before the step
            nodes[(id(fn), nr)] = (fn, nr)
        elif id(fn) not in done:
            done.add(id(fn))
            stack.extend((f, k) for f, k in fn.next_functions if f is not None)
    return leaves, nodes


def check_cut(sources: Iterable, targets: dict[int, Tensor]) -> Tensor | None:
    """The tensor of a raw target node reachable from a source node, or None. Autograd would run
    such a source's graph inside a reversed step: the target's gradient would count it twice."""
    done: set[int] = set()
    for src in sources:
        stack = [f for f, _ in src.next_functions if f is not None]
        while stack:
            fn = stack.pop()
            if id(fn) in targets:
                return targets[id(fn)]
            if id(fn) not in done:
                done.add(id(fn))
                stack.extend(f for f, _ in fn.next_functions if f is not None)
    return None


def finish(finder: Finder, y: list[Tensor], x_in: tuple, declared: list[Tensor] | None) -> Captures:
    """The ``Captures`` of a loop from its discovery tape ``y = step(x_in)`` (see the module doc)."""
    raw_leaves, raw_nodes = _raw_edges(finder, y, x_in)
    raw_tensors: dict[tuple, Tensor] = {}
    if raw_nodes:
        for t in [*finder.seen.values(), *finder.captured, *(declared or ())]:
            if t.grad_fn is not None and (id(t.grad_fn), t.output_nr) in raw_nodes:
                raw_tensors.setdefault((id(t.grad_fn), t.output_nr), t)
        for key, (fn, _) in raw_nodes.items():
            if key not in raw_tensors:
                raise InputError(
                    f"step passes a tensor computed before the loop (produced by {type(fn).__name__}) "
                    "to a torch.autograd.Function, and binomial_loop cannot find that tensor; pass "
                    "it in params=[...]"
                )
    targets = {id(acc): t for t, acc in raw_leaves.values() if acc is not None}
    targets.update({id(fn): raw_tensors[k] for k, (fn, _) in raw_nodes.items()})
    hit = check_cut([fn for fn, _ in raw_nodes.values()], targets)
    if hit is not None:
        raise InputError(
            f"step: a tensor computed before the loop and a tensor it was computed from "
            f"({describe(hit)}) are both passed directly to a torch.autograd.Function, which "
            "binomial_loop cannot intercept (Function.apply does not dispatch __torch_function__); "
            "carry one of them in the loop state, or use it through torch operations"
        )

    found = finder.captured + [t for t, _ in raw_leaves.values()] + list(raw_tensors.values())
    if declared is not None:
        ids = {id(t) for t in declared}
        for t in found:
            if id(t) not in ids:
                kind, made = ("leaf", "") if t.grad_fn is None else (
                    "non-leaf", f", made by {type(t.grad_fn).__name__}")
                raise InputError(
                    f"params: step uses a {kind} tensor that requires grad ({describe(t)}{made}) and is "
                    "not in params; add it to params (or detach it if it needs no gradient)"
                )
        params = list(declared)
    else:
        params = list({id(t): t for t in found}.values())
    index: dict[int, int] = {}
    for i, t in enumerate(params):
        index.setdefault(id(t), i)

    subs = [(index[id(t)], finder.table[id(t)]) for t in finder.captured]
    raw = [(index[id(t)], t) for t, _ in raw_leaves.values()]
    raw += [(index[id(raw_tensors[k])], GradientEdge(fn, nr)) for k, (fn, nr) in raw_nodes.items()]
    used = sorted({index[id(t)] for t in found})
    if all(t.grad_fn is None for t in found):  # leaves only: later tapes use them directly
        return Captures(params, {}, subs + raw, [(i, params[i]) for i in used], raw, used)
    table = {id(params[i]): s for i, s in subs}
    return Captures(params, table, subs + raw, subs + raw, raw, used)
