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

    Args:
        f: real objective ``f(x, *params)``; a scalar, or with ``batch_dims=k`` a tensor of shape
            ``B`` (one objective per problem, summed for the gradient since they are independent).
        x_star, params, ...: as in ``root`` (applied to ``grad_x f = 0`` with ``symmetric=True``).
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
