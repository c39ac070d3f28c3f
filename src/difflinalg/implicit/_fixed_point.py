r"""Implicit differentiation of a fixed point ``x* = T(x*, p)``.

The root of ``F(x, p) = T(x, p) - x`` (see ``_root``), so with ``J_T = dT/dx``::

    forward mode:  dx = (I - J_T)^{-1} (dT/dp . dp)
    reverse mode:  (I - J_T)^H lambda = gx,   gp = (dT/dp)^H lambda

For a contraction (``||J_T|| < 1``) the solve is well posed; the result equals the limit of
differentiating the unrolled iteration ``x_{k+1} = T(x_k, p)``, at the cost of one linear solve.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch.utils._pytree as pytree

from ._args import solve_options
from ._root import _root

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._args import SolveOptions


def fixed_point(T: Callable, x_star, *params, **options: Unpack[SolveOptions]):
    """Attach a fixed point ``x* = T(x*, *params)`` to the graph of ``params``.

    Same arguments, checks and guarantees as ``root`` (applied to ``F(x) = T(x) - x``); ``T``
    must return a pytree shaped like ``x``. The derivatives equal the limit of differentiating the
    unrolled iteration ``x_{k+1} = T(x_k)`` of a contraction, at the cost of one linear solve with
    ``I - dT/dx``.

    Args:
        T: the map ``T(x, *params)``, returning a tensor (pytree) shaped like ``x`` (same
            structure, shapes and dtypes); torch operations, differentiable in forward and reverse
            mode.
        x_star: the fixed point (tensor or pytree of tensors, real or complex) from any solver;
            it receives no gradient itself.
        params: tensors or pytrees of tensors ``T`` depends on (tensors captured by a closure are
            constants).
        options: the keyword options of ``root`` except ``symmetric`` (``solve``, ``tol``,
            ``maxiter``, ``restart``, ``residual_tol``, ``on_failure``, ``batch_dims``).

    Returns:
        ``x_star`` (same structure), differentiable with respect to ``params`` (reverse, forward,
        higher order).

    Raises:
        InputError: as in ``root`` (arguments; ``T``'s output not shaped like ``x``).
        ConvergenceError: ``T(x_star) - x_star`` is not zero to ``residual_tol``, or a linear
            solve with ``I - dT/dx`` fails (``on_failure="raise"``).
        TypeError: an unknown keyword (``symmetric`` included).

    Warns:
        ImplicitDiffWarning: instead of ``ConvergenceError`` with ``on_failure="warn"``.

    Example::

        import torch
        from difflinalg.implicit import fixed_point

        T = lambda x, a: 0.5 * torch.cos(x) + a      # a contraction
        a = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
        x = torch.zeros((), dtype=torch.float64)
        with torch.no_grad():
            for _ in range(100):
                x = T(x, a)
        x = fixed_point(T, x, a)
        x.backward()                                 # dx/da = 1 / (1 + sin(x) / 2)
        assert torch.allclose(a.grad, 1 / (1 + 0.5 * torch.sin(x.detach())))
    """
    opts = solve_options("fixed_point", options, symmetric=False)

    def F(x, *p):
        return pytree.tree_map(lambda t, xi: t - xi, T(x, *p), x)

    return _root(F, x_star, params, opts, name="fixed_point",
                 residual="T(x_star, *params) - x_star")
