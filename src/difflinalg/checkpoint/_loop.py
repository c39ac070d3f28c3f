r"""``binomial_loop``: ``x_n = step^n(x_0)`` whose backward follows the optimal Revolve schedule.

Memory of plain autograd through ``n`` steps grows like ``n`` taped steps. Here the forward pass
keeps only the schedule's snapshots (at most ``snapshots`` states, ``x_0`` included) and the tape
of the last step; the backward replays the schedule (``_revolve``): it restores snapshots,
re-advances without taping, and tapes one step at a time to pull the adjoint back through it::

    g_n = dL/dx_n;   for k = n-1, ..., 0:   (g_k, gp_k) = vjp(step at x_k)(g_{k+1}),  gp += gp_k

so the gradients are those of the unrolled loop, the extra forward steps are exactly
``revolve_cost(n, snapshots)`` (the optimum) and at most ``snapshots`` states plus the step being
differentiated are held.

Captured tensors (``_capture``). The tensors requiring grad that ``step`` uses besides its state
-- leaves (weights) and non-leaves computed before the loop (``c = f(W)``), however ``step``
reaches them -- are found while the first step is taped, and are inputs of the loop's autograd
node. Each tape replaces them by detached stand-ins, so no tape reaches their history; ``gp`` above
accumulates the gradients of the stand-ins, and the node returns them once, so autograd runs each
captured tensor's history once, after the loop, as plain autograd does. With
``create_graph=True`` (double backward) the backward instead re-runs the loop with a full graph on
aliases of the captured tensors (exact second derivatives, plain-autograd memory).

References: Griewank & Walther (2000), "Algorithm 799: revolve"; Griewank & Walther, *Evaluating
Derivatives* (2nd ed., SIAM 2008), chapter 12.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.utils._pytree as pytree
from torch import Tensor
from torch.autograd.graph import GradientEdge, get_gradient_edge

from .._errors import InputError
from .._utils import is_wrapped
from ._capture import Captures, Finder, Stand, Swap, check_cut, creation_marker, describe, finish
from ._revolve import Action, _check, revolve_cost, revolve_schedule


@dataclass
class LoopStats:
    """Work and memory of one ``binomial_loop`` call (updated by its backward).

    Attributes:
        n_steps, snapshots: the loop's arguments.
        forward_steps: untaped step evaluations (advances) executed so far; after one backward it
            equals ``optimal_forward_steps``.
        taped_steps: taped step evaluations (one per reversed step: ``n_steps`` per backward).
        peak_snapshots: most snapshot slots holding a state at the same time (<= ``snapshots``).
        optimal_forward_steps: ``revolve_cost(n_steps, snapshots)``.
        backward_passes: number of completed backward passes.
    """

    n_steps: int
    snapshots: int
    optimal_forward_steps: int
    forward_steps: int = 0
    taped_steps: int = 0
    peak_snapshots: int = 0
    backward_passes: int = 0


def _is_diff(t: Tensor) -> bool:
    return t.is_floating_point() or t.is_complex()


@dataclass
class _Run:
    """State of a checkpointed loop between its forward and backward passes."""

    step: Callable
    treedef: object
    schedule: list[Action]
    turn_at: int  # index of the firsturn action
    stats: LoopStats
    caps: Captures | None = None  # set by the discovery tape
    slots: list = field(default_factory=list)
    tape: tuple | None = None  # (x_in leaves, y leaves, stand) of the last, taped step
    checked: bool = False

    def __post_init__(self) -> None:
        self.single = self.treedef == pytree.tree_structure(torch.empty(0))

    def call(self, leaves: tuple) -> tuple:
        if self.checked and self.single:  # fast path: one tensor state, already validated
            return (self.step(leaves[0]),)
        out = self.step(pytree.tree_unflatten(list(leaves), self.treedef))
        o_leaves, o_def = pytree.tree_flatten(out)
        if not self.checked:
            _check_output(o_leaves, o_def, leaves, self.treedef)
            self.checked = True
        return tuple(o_leaves)

    def take(self, slot: int, state: tuple) -> None:
        self.slots[slot] = state
        held = sum(s is not None for s in self.slots)
        self.stats.peak_snapshots = max(self.stats.peak_snapshots, held)

    def advance(self, state: tuple, a: Action) -> tuple:
        with torch.no_grad():
            for _ in range(a.index, a.stop):
                state = self.call(state)
        self.stats.forward_steps += a.stop - a.index
        return state

    def taped(self, state: tuple, finder: Finder | None = None) -> tuple:
        """Tape one step from ``state``: (x_in leaves, y leaves, stand of the captured tensors).

        With ``finder`` this is the discovery tape (``self.caps`` is set from it by the caller).
        """
        x_in = tuple(t.detach().requires_grad_(_is_diff(t)) for t in state)
        if finder is not None:
            finder.skip.update(id(t) for t in x_in)
            mode = Swap(finder.table, finder)
        else:
            mode = self.caps.mode
        with torch.enable_grad(), mode if mode is not None else contextlib.nullcontext():
            y = self.call(x_in)
        self.stats.taped_steps += 1
        return x_in, y, (self.caps.later if finder is None else None)

    def sweep(self, x0: tuple, finder: Finder | None = None) -> tuple:
        """The forward part of the schedule, up to and including the taped last step."""
        self.slots = [None] * self.stats.snapshots
        state = tuple(t.detach() for t in x0)
        for a in self.schedule[: self.turn_at]:
            if a.kind == "takeshot":
                self.take(a.slot, state)
            elif a.kind == "advance":
                state = self.advance(state, a)
            else:  # pragma: no cover - the forward part has no other actions
                raise AssertionError(a)
        self.tape = self.taped(state, finder)
        return self.tape[1]


def _check_output(o_leaves, o_def, leaves, treedef) -> None:
    if o_def != treedef:
        raise InputError(f"step: returned the structure {o_def}, expected that of x0 ({treedef})")
    for k, (o, x) in enumerate(zip(o_leaves, leaves)):
        where = "" if len(leaves) == 1 else f" (leaf {k})"
        if not isinstance(o, Tensor) or o.shape != x.shape or o.dtype != x.dtype:
            got = (f"shape {tuple(o.shape)}, dtype {str(o.dtype).replace('torch.', '')}"
                   if isinstance(o, Tensor) else type(o).__name__)
            raise InputError(
                f"step: returned {got}{where} for a state of shape {tuple(x.shape)}, dtype "
                f"{str(x.dtype).replace('torch.', '')}; step must map a state to a state of the "
                "same shape and dtype"
            )


def _grad(ys: tuple, wrt_x: tuple, stand: Stand, g: tuple, create_graph: bool = False):
    """Pull ``g`` back from ``ys`` to the state inputs ``wrt_x`` and the stand-ins of the
    captured tensors: (grads of wrt_x, [(param index, grad)])."""
    outs = [t for t, gi in zip(ys, g) if gi is not None and t.requires_grad]
    gs = [gi for t, gi in zip(ys, g) if gi is not None and t.requires_grad]
    xs = [t for t in wrt_x if t.requires_grad]
    wrt = xs + [s for _, s in stand]
    if not outs or not wrt:
        return tuple(None for _ in wrt_x), []
    grads = torch.autograd.grad(outs, wrt, gs, allow_unused=True, create_graph=create_graph)
    it = iter(grads[: len(xs)])
    gx = tuple(next(it) if t.requires_grad else None for t in wrt_x)
    return gx, [(i, q) for (i, _), q in zip(stand, grads[len(xs):])]


def _accumulate(gp: list, pairs: list) -> None:
    """gp[i] += q, in place after the first step (one gradient buffer per captured tensor)."""
    for i, q in pairs:
        if q is None:
            continue
        if gp[i] is None:
            gp[i] = q.clone()  # q may alias a tensor autograd hands out again (identity paths)
        else:
            gp[i].add_(q)


class _BinomialLoop(torch.autograd.Function):
    @staticmethod
    def forward(run: _Run, n_x: int, *inputs):
        return tuple(t.detach() for t in run.tape[1])

    @staticmethod
    def setup_context(ctx, inputs, output):
        run, n_x, *tensors = inputs
        ctx.run, ctx.n_x = run, n_x
        ctx.mark_non_differentiable(*[t for t in output if not _is_diff(t)])
        ctx.save_for_backward(*tensors)

    @staticmethod
    def backward(ctx, *g_out):
        run, n_x = ctx.run, ctx.n_x
        x0 = ctx.saved_tensors[:n_x]  # also checks that nothing saved was modified in place
        if torch.is_grad_enabled():  # create_graph=True: exact double backward, full graph
            return (None, None, *_unrolled_backward(run, x0, g_out))
        if run.tape is None:  # a second backward (retain_graph=True): redo the forward part
            run.sweep(x0)
        gp = [None] * len(run.caps.params)
        x_in, y, stand = run.tape
        run.tape = None  # the last step's tape is consumed now
        gx, pairs = _grad(y, x_in, stand, g_out)
        _accumulate(gp, pairs)
        del x_in, y, pairs
        state = None
        for a in run.schedule[run.turn_at + 1 :]:
            if a.kind == "restore":
                state = run.slots[a.slot]
            elif a.kind == "advance":
                state = run.advance(state, a)
            elif a.kind == "takeshot":
                run.take(a.slot, state)
            else:  # youturn: tape step a.index from x_{a.index} and pull the adjoint through it
                x_in, y, stand = run.taped(state)
                gx, pairs = _grad(y, x_in, stand, gx)
                _accumulate(gp, pairs)
                del x_in, y, pairs
        run.slots = []  # release the snapshots
        run.stats.backward_passes += 1
        gx = tuple(gi if x.requires_grad else None for gi, x in zip(gx, x0))
        return (None, None, *gx, *gp)

    @staticmethod
    def jvp(ctx, *tangents):
        raise InputError(
            "binomial_loop: forward-mode AD is not supported (it needs no checkpointing: run the "
            "loop directly under torch.func.jvp or forward_ad)"
        )


def _unrolled_backward(run: _Run, x0: tuple, g_out: tuple) -> list:
    """Gradients with a graph (double backward): the loop unrolled on aliases of the state and of
    the captured tensors, so that autograd captures their gradients without running their
    history, and the results stay differentiable in them."""
    caps = run.caps
    params = caps.params
    raw_ids = {i for i, _ in caps.raw}
    aliased = [i for i in caps.used if i not in raw_ids]  # a raw one is reached as itself
    targets = {id(s.node if isinstance(s, GradientEdge) else get_gradient_edge(s).node): params[i]
               for i, s in caps.raw}
    sources = [x.grad_fn for x in x0 if x.grad_fn is not None]
    sources += [params[i].grad_fn for i in aliased if params[i].grad_fn is not None]
    hit = check_cut(sources, targets)
    if hit is not None:
        raise InputError(
            f"binomial_loop: double backward (create_graph=True) needs x0 and the captured tensors "
            f"not to be computed from a tensor passed directly to a torch.autograd.Function in "
            f"step ({describe(hit)}); carry that tensor in the loop state instead"
        )
    stand = [(i, params[i].view_as(params[i])) for i in aliased]
    xa = tuple(x.view_as(x) if x.requires_grad else x for x in x0)
    leaves = xa
    with Swap({id(params[i]): s for i, s in stand}):
        for _ in range(run.stats.n_steps):
            leaves = run.call(leaves)
    run.stats.taped_steps += run.stats.n_steps
    gx, pairs = _grad(leaves, xa, stand + caps.raw, g_out, create_graph=True)
    gp = [None] * len(params)
    for i, q in pairs:  # out of place: these gradients carry a graph
        if q is not None:
            gp[i] = q if gp[i] is None else gp[i] + q
    return [*gx, *gp]


def binomial_loop(
    step: Callable,
    x0,
    n_steps: int,
    *,
    snapshots: int,
    params: list[Tensor] | tuple[Tensor, ...] | None = None,
    return_stats: bool = False,
):
    """``x_n`` of the loop ``x_{k+1} = step(x_k)``, differentiable with Revolve checkpointing.

    Args:
        step: maps a state to a state of the same structure, shapes and dtypes. It must be a
            function of its state and of fixed tensors (it is re-run during the backward: no
            randomness, no in-place change of its input or of the tensors it uses, no side effects
            that matter, the same tensors at every step).
        x0: the initial state: a tensor or a pytree (tuple, list, dict) of tensors.
        n_steps: number of steps, ``>= 0``.
        snapshots: number of states the schedule may store (``>= 1``, ``x0`` included).
        params: optional. The tensors that ``step`` uses and that need gradients are found
            automatically (leaves and tensors computed before the loop, however ``step`` reaches
            them); given, they are checked to cover every such tensor, and ``params`` that
            ``step`` does not use get no gradient. Also names a tensor passed straight to a
            ``torch.autograd.Function`` that cannot be found otherwise.
        return_stats: also return a ``LoopStats`` (updated when the backward runs).

    Returns:
        ``x_n`` with the structure of ``x0`` (and the ``LoopStats`` if ``return_stats``).

    Raises:
        InputError: bad arguments; a ``step`` output of another structure, shape or dtype; a
            captured tensor missing from ``params``; ``torch.func`` transforms or forward mode;
            captured tensors computed from one another and both passed straight to a
            ``torch.autograd.Function`` (carry one in the state).

    Backward (``torch.autograd.backward``/``grad``) gives the gradients of plain autograd through
    the unrolled loop -- for the state and for every captured tensor, whose history (e.g. the
    ``D^H X`` computed from ``D`` before an ADMM loop) is backpropagated once -- with
    ``revolve_cost(n_steps, snapshots)`` extra steps and at most ``snapshots`` stored states.
    ``create_graph=True`` falls back to a full unrolled graph. Under ``torch.no_grad`` the loop
    just runs. ``torch.func`` transforms are not supported.

    Example::

        import torch
        from difflinalg.checkpoint import binomial_loop, revolve_cost

        W = torch.tensor([[0.9, 0.2], [-0.2, 0.9]], dtype=torch.float64, requires_grad=True)
        x0 = torch.ones(2, dtype=torch.float64)
        step = lambda x: torch.tanh(W @ x)          # W is found as a captured tensor
        xn, stats = binomial_loop(step, x0, 100, snapshots=5, return_stats=True)
        xn.sum().backward()
        assert stats.forward_steps == revolve_cost(100, 5) and stats.peak_snapshots <= 5

        x = x0                                      # the same gradient as plain autograd
        for _ in range(100):
            x = step(x)
        assert torch.allclose(W.grad, torch.autograd.grad(x.sum(), W)[0])
    """
    if not callable(step):
        raise InputError(f"step: expected a callable, got {type(step).__name__}")
    _check(n_steps, snapshots)
    leaves, treedef = pytree.tree_flatten(x0)
    if not leaves or not all(isinstance(t, Tensor) for t in leaves):
        raise InputError("x0: expected a tensor or a pytree (tuple, list, dict) of tensors")
    if params is not None:
        params = list(params)
        if not all(isinstance(p, Tensor) and p.requires_grad for p in params):
            raise InputError("params: expected tensors that require grad")
    if torch._C._are_functorch_transforms_active() or any(is_wrapped(t) for t in leaves + (params or [])):
        raise InputError(
            "binomial_loop: torch.func transforms (grad, vmap, jvp) are not supported; use "
            "torch.autograd.grad / .backward() (or run the plain loop inside the transform)"
        )
    stats = LoopStats(n_steps, snapshots, revolve_cost(n_steps, snapshots))

    def done(out):
        return (out, stats) if return_stats else out

    if n_steps == 0:
        return done(x0)
    run = _Run(step, treedef, [], 0, stats)
    if not torch.is_grad_enabled():  # nothing will be differentiated: the plain loop
        state = tuple(leaves)
        for _ in range(n_steps):
            state = run.call(state)
        stats.forward_steps += n_steps
        return done(pytree.tree_unflatten(list(state), treedef))

    run.schedule = revolve_schedule(n_steps, snapshots)
    run.turn_at = next(i for i, a in enumerate(run.schedule) if a.kind == "firsturn")
    finder = Finder(creation_marker())
    y = run.sweep(tuple(leaves), finder)
    x_in = run.tape[0]
    run.caps = finish(finder, [t for t in y if t.requires_grad], x_in, params)
    run.tape = (x_in, y, run.caps.first)
    if not run.caps.params and not any(t.requires_grad for t in leaves):
        run.tape = None
        run.slots = []
        return done(pytree.tree_unflatten([t.detach() for t in y], treedef))
    out = _BinomialLoop.apply(run, len(leaves), *leaves, *run.caps.params)
    return done(pytree.tree_unflatten(list(out), treedef))

