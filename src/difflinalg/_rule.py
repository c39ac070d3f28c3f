r"""The ``torch.autograd.Function`` scaffold every rule shares: a rule is its formulas plus a few lines.

A difflinalg rule is a new-style Function (``forward`` without ``ctx``, ``setup_context``) so that
``torch.func`` transforms can run it. Around its formulas each rule repeated the same lines; this
module writes them once:

* ``generate_vmap_rule = True`` (a rule with its own ``vmap`` staticmethod sets it to False);
* the tensors the rules need, saved for both modes (``save_for_backward`` and
  ``save_for_forward``) from one hook, ``Rule.save``;
* trailing ``None`` s: the hook ``gradients`` returns the gradients of the leading inputs only,
  ``tangents`` the tangents of the leading outputs only, and the scaffold pads both to the
  Function's arity (the non-tensor arguments and the non-differentiable outputs);
* ``or_zeros``: ``None`` (a cotangent of an unused output, a tangent of an input that carries none)
  as zeros, for formulas that need a tensor.

Usage (``factor/_cholesky.py``)::

    class _Cholesky(Rule):
        @staticmethod
        def forward(A):
            return cholesky_factor(A)

        @staticmethod
        def save(ctx, inputs, L):
            return (L,)                      # saved for backward and forward mode

        @staticmethod
        def gradients(ctx, L, gL):           # the saved tensors, then the output cotangents
            return cholesky_vjp(L, gL)

        @staticmethod
        def tangents(ctx, L, dA):            # the saved tensors, then the input tangents
            return call(cholesky_jvp, L, dA)

Second order comes from the formulas themselves, in one of two patterns (``docs/conventions.md``,
"How to add a rule"): ``gradients`` written in differentiable torch operations and ``tangents``
through ``_nested.call``; or, where differentiating the first-order formulas would be inexact (eigh
at ties), ``gradients`` and ``tangents`` that apply two further Functions with their own rules:
``DerivativeRule`` (the "three Functions" pattern)::

    class _EighJVP(DerivativeRule):          # (A, dA) -> (dw, dV), the forward-mode rule of eigh
        differentiable = 2                   # A, dA; then (w, V) given, and tol

        @staticmethod
        def forward(A, dA, w, V, tol):
            return eigh_jvp(w, V, dA, tol)

        @staticmethod
        def save(ctx, inputs, output):
            A, dA, w, V, ctx.tol = inputs
            return w, V, dA

        @staticmethod
        def gradients(ctx, w, V, dA, hw, hV):    # cotangents never None
            return eigh_jvp_vjp(w, V, dA, hw, hV, ctx.tol)

        @staticmethod
        def tangents(ctx, w, V, dA, a, b):       # tangents of A and dA, never None
            return eigh_jvp_jvp(w, V, dA, a, b, ctx.tol)

and the op's own hooks apply it: ``tangents`` returns ``_EighJVP.apply(A, dA, w, V, tol)``.

Why hooks (not ``backward``/``jvp``, nor a hook named ``vjp``, which torch reserves as an alias of
``backward``): torch calls ``backward(ctx, *grads)`` and
``jvp(ctx, *tangents)`` with one argument per output and input; the scaffold's classmethods unpack
the saved tensors once, call the rule and pad its result, and a rule never writes the arity twice.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable


def or_zeros(t: Tensor | None, like: Tensor) -> Tensor:
    """``t``, or zeros like ``like`` when ``t`` is ``None`` (a missing tangent or cotangent)."""
    return torch.zeros_like(like) if t is None else t


def _padded(result, n: int) -> tuple:
    """``result`` (one value or a tuple) followed by ``None`` s up to length ``n``."""
    result = result if isinstance(result, tuple) else (result,)
    if len(result) > n:
        raise TypeError(f"a rule returned {len(result)} values for {n} slots")
    return result + (None,) * (n - len(result))


class Rule(torch.autograd.Function):
    """Base of difflinalg's rules; a subclass defines ``forward`` and the hooks below.

    Hooks (staticmethods of the subclass):

    * ``save(ctx, inputs, output) -> tuple[Tensor, ...]``: the tensors both modes need; set
      non-tensor state on ``ctx`` here (and ``ctx.mark_non_differentiable``). Default: none.
    * ``gradients(ctx, *saved, *grads)``: the gradients of the leading inputs (one value or a tuple);
      the scaffold appends ``None`` for the remaining inputs.
    * ``tangents(ctx, *saved, *tangents)``: the tangents of the leading outputs; ``None`` for the
      remaining (non-differentiable) outputs is appended.
    """

    generate_vmap_rule = True

    @staticmethod
    def save(ctx, inputs: tuple, output) -> tuple[Tensor, ...]:
        return ()

    @classmethod
    def setup_context(cls, ctx, inputs, output):
        saved = tuple(cls.save(ctx, inputs, output))
        ctx.save_for_backward(*saved)
        ctx.save_for_forward(*saved)
        ctx.rule_arity = (len(inputs), len(output) if isinstance(output, tuple) else 1)

    @classmethod
    def backward(cls, ctx, *grads):
        return _padded(cls.gradients(ctx, *ctx.saved_tensors, *grads), ctx.rule_arity[0])

    @classmethod
    def jvp(cls, ctx, *tangents):
        out = cls.tangents(ctx, *ctx.saved_tensors, *tangents)
        n_out = ctx.rule_arity[1]
        return out if n_out == 1 and not isinstance(out, tuple) else _padded(out, n_out)


def _like(x):
    """What zeros standing in for a missing tangent or cotangent of ``x`` need (``None``: not a tensor)."""
    return (x.shape, x.dtype, x.device) if isinstance(x, Tensor) else None


def _filled(ts: tuple, likes: tuple) -> tuple:
    return tuple(torch.zeros(m[0], dtype=m[1], device=m[2]) if t is None and m is not None else t
                 for t, m in zip(ts, likes))


class DerivativeRule(Rule):
    """A first-order rule of an op (its reverse or its forward-mode rule) as a Function with its
    own derivatives: the "three Functions" pattern (``docs/conventions.md``), which makes second
    derivatives exact where differentiating the first-order formulas would not be (``eigh`` at
    ties: the rotation inside a cluster is not differentiated).

    Its inputs are the op's input ``A`` (so that the derivative with respect to it is
    connected), the other differentiable inputs (a tangent ``dA``, or cotangents), then tensors
    the formulas take as given (the decomposition of ``A``) and non-tensor arguments. On top of
    ``Rule``:

    * ``differentiable`` (class attribute): the number of leading inputs that are differentiated;
      ``tangents`` receives their tangents only, ``gradients`` returns their gradients (the
      decomposition is a function of ``A``, whose derivative the rules contain);
    * missing cotangents and tangents arrive as zeros of the right shape (no ``or_zeros``);
    * the backward is once differentiable: third derivatives are not provided (differentiating it
      again raises), as the formulas stop at second order.
    """

    differentiable = 1

    @classmethod
    def setup_context(cls, ctx, inputs, output):
        super().setup_context(ctx, inputs, output)
        outs = output if isinstance(output, tuple) else (output,)
        ctx.rule_like = (tuple(_like(x) for x in inputs[:cls.differentiable]), tuple(_like(o) for o in outs))

    @classmethod
    def backward(cls, ctx, *grads):
        return once_differentiable(super().backward)(ctx, *_filled(grads, ctx.rule_like[1]))

    @classmethod
    def jvp(cls, ctx, *tangents):
        return super().jvp(ctx, *_filled(tangents[:cls.differentiable], ctx.rule_like[0]))
