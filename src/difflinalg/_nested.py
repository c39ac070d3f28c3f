r"""``call(fn, *xs)``: evaluate ``fn`` so that nested forward-mode transforms see its derivatives.

Why this exists: PyTorch runs the ``jvp`` staticmethod of a ``torch.autograd.Function`` with
forward-mode AD switched off, so plain tensor operations there drop the tangents of *outer*
forward-mode levels: ``torch.func.jvp(torch.func.jvp(f))`` (also ``jacfwd(jacfwd(f))`` and the third
derivative ``jvp(hessian(f))``) through such a Function silently returns wrong values, often 0
(pytorch/pytorch#197867, open in torch 2.13). Calls of other autograd.Functions inside the jvp rule
are not affected: functorch re-enables forward AD when it dispatches them.

So every computation in a difflinalg jvp rule goes through ``call``: a Function whose forward is
``fn``, whose jvp is again a ``call`` (of ``fn``'s jvp) and whose backward is ``fn``'s vjp, so
derivatives of every order compose through it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


class _Call(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(fn: Callable, *xs: Tensor):
        out = fn(*xs)
        return tuple(out) if isinstance(out, (tuple, list)) else out

    @staticmethod
    def setup_context(ctx, inputs, output):
        fn, *xs = inputs
        ctx.fn = fn
        ctx.tuple_out = isinstance(output, tuple)
        ctx.save_for_backward(*xs)
        ctx.save_for_forward(*xs)

    @staticmethod
    def backward(ctx, *gs):
        xs = ctx.saved_tensors
        out, vjp_fn = torch.func.vjp(ctx.fn, *xs)
        outs = out if ctx.tuple_out else (out,)
        gs = tuple(torch.zeros_like(o) if g is None else g for o, g in zip(outs, gs))
        return (None, *vjp_fn(gs if ctx.tuple_out else gs[0]))

    @staticmethod
    def jvp(ctx, _dfn, *dxs):
        xs = ctx.saved_tensors
        dxs = tuple(torch.zeros_like(x) if d is None else d for x, d in zip(xs, dxs))
        n, fn = len(xs), ctx.fn

        def tangent(*a):
            return torch.func.jvp(fn, tuple(a[:n]), tuple(a[n:]))[1]

        return call(tangent, *xs, *dxs)


def call(fn: Callable, *xs: Tensor):
    """``fn(*xs)`` (a tensor or a tuple of tensors; ``xs`` floating or complex tensors),
    differentiable in every mode and order, also inside another Function's jvp rule."""
    return _Call.apply(fn, *xs)
