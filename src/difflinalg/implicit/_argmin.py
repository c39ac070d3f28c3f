r"""Implicit differentiation of a minimizer ``x*(p) = argmin_x f(x, p)`` of a smooth objective.

The stationarity condition ``F(x, p) = grad_x f(x, p) = 0`` (PyTorch's gradient, so for complex
``x`` and real ``f`` it is ``df/dRe x + i df/dIm x``) is handed to ``root``. Its Jacobian is the
(realified) Hessian ``H = d^2 f / dx^2``, symmetric, and positive definite at a strict minimum::

    forward mode:  dx = -H^{-1} (d/dp grad_x f . dp)
    reverse mode:  H lambda = gx,   gp = -(d/dp grad_x f)^T lambda

so "auto" uses CG for large problems. Hessian-vector products are ``torch.func`` forward-over-
reverse (``jvp`` of ``grad``); the dense path builds ``H`` from ``N`` of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from .._errors import InputError
from ._args import solve_options
from ._root import _root

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._args import SolveOptions


def argmin(f: Callable, x_star, *params, **options: Unpack[SolveOptions]):
    """Attach a minimizer ``x*`` of ``f(x, *params)`` to the graph of ``params``.

    The root problem ``grad_x f(x, *params) = 0`` (PyTorch's gradient convention for complex
    ``x``) is handed to ``root`` with ``symmetric=True``: its Jacobian is the Hessian, so "auto"
    uses CG for large problems; Hessian-vector products are ``torch.func`` forward-over-reverse.

    Args:
        f: real objective ``f(x, *params)``; a scalar, or with ``batch_dims=k`` a tensor of shape
            ``B`` (one objective per problem, summed for the gradient since they are independent).
            Twice differentiable in torch operations.
        x_star: the minimizer (tensor or pytree of tensors, real or complex) from any solver; it
            receives no gradient itself.
        params: tensors or pytrees of tensors ``f`` depends on (tensors captured by a closure are
            constants).
        options: the keyword options of ``root`` except ``symmetric`` (``solve``, ``tol``,
            ``maxiter``, ``restart``, ``residual_tol``, ``on_failure``, ``batch_dims``).

    Returns:
        ``x_star`` (same structure), differentiable with respect to ``params`` (reverse, forward,
        higher order).

    Raises:
        InputError: as in ``root``; ``f`` returning a complex value or not a tensor.
        ConvergenceError: ``grad_x f(x_star)`` is not zero to ``residual_tol``, or a linear solve
            with the Hessian fails, e.g. at a singular Hessian (``on_failure="raise"``).
        TypeError: an unknown keyword (``symmetric`` included).

    Warns:
        ImplicitDiffWarning: instead of ``ConvergenceError`` with ``on_failure="warn"``.

    Example (the ridge regression path)::

        import torch
        from difflinalg.implicit import argmin

        A = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=torch.float64)
        b = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)
        lam = torch.tensor(0.1, dtype=torch.float64, requires_grad=True)
        f = lambda x, lam: ((A @ x - b) ** 2).sum() + lam * (x**2).sum()
        H = A.mT @ A + lam.detach() * torch.eye(2, dtype=torch.float64)
        x_star = torch.linalg.solve(H, A.mT @ b)    # the minimizer, from any solver
        x = argmin(f, x_star, lam)
        x.sum().backward()                           # dx/dlam = -H^{-1} x_star
        assert torch.allclose(lam.grad, -torch.linalg.solve(H, x_star).sum())
    """
    opts = solve_options("argmin", options, symmetric=True)

    def objective(x, *p):
        val = f(x, *p)
        if not isinstance(val, torch.Tensor) or val.is_complex():
            raise InputError("argmin: f must return a real tensor (the objective), got "
                             f"{getattr(val, 'dtype', type(val).__name__)}")
        return val.sum()

    def F(x, *p):
        return torch.func.grad(objective)(x, *p)

    return _root(F, x_star, params, opts, name="argmin", residual="grad_x f(x_star, *params)")
