"""Deliberately wrong derivative rules, shared by the ``gradcheck``, ``verify`` and ``difflinalg
verify`` (CLI) tests: each is ``torch.autograd.Function.apply`` of a simple map, correct or with one
named bug."""

from collections.abc import Callable

import torch

SQUARE_BUGS = {
    None: "correct",
    "imag_sign": "backward returns the conjugate of the right gradient (Im part negated)",
    "no_conj": "backward returns g * f'(z) instead of g * conj(f'(z)) (wrong for complex z only)",
    "jvp": "jvp conjugates the tangent (right in the real direction only)",
}


def square(bug: str | None = None) -> Callable:
    """``z -> z^2`` with the bug ``bug`` (a key of ``SQUARE_BUGS``)."""
    assert bug in SQUARE_BUGS, bug

    class Square(torch.autograd.Function):
        @staticmethod
        def forward(z):
            return z * z

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(inputs[0])
            ctx.save_for_forward(inputs[0])

        @staticmethod
        def backward(ctx, g):
            (z,) = ctx.saved_tensors
            if bug == "imag_sign":
                return (g * (2 * z).conj()).conj()
            if bug == "no_conj":
                return g * 2 * z
            return g * (2 * z).conj()

        @staticmethod
        def jvp(ctx, dz):
            (z,) = ctx.saved_tensors
            if bug == "jvp":
                return 2 * z * dz.conj()
            return 2 * z * dz

    return Square.apply


MATMUL_GRADS = {
    "g B": lambda g, B: g @ B,  # a wrong transpose: wrong for every B
    "g B^T": lambda g, B: g @ B.mT,  # the conjugate missing: right for real B only
}


def matmul(grad: str) -> Callable:
    """``(A, B) -> A @ B`` whose gradient for ``A`` is ``grad`` (a key of ``MATMUL_GRADS``)
    instead of ``g B^H``; ``B`` gets no gradient."""

    class MatMul(torch.autograd.Function):
        @staticmethod
        def forward(A, B):
            return A @ B

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(inputs[1])

        @staticmethod
        def backward(ctx, g):
            (B,) = ctx.saved_tensors
            return MATMUL_GRADS[grad](g, B), None

    return MatMul.apply
