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
at ties), ``gradients`` and ``tangents`` that apply two further Functions with their own rules.

Why hooks (not ``backward``/``jvp``, nor a hook named ``vjp``, which torch reserves as an alias of
``backward``): torch calls ``backward(ctx, *grads)`` and
``jvp(ctx, *tangents)`` with one argument per output and input; the scaffold's classmethods unpack
the saved tensors once, call the rule and pad its result, and a rule never writes the arity twice.
"""

from __future__ import annotations

import torch
from torch import Tensor


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
