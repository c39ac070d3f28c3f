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
    must return a pytree shaped like ``x``.
    """
    opts = solve_options("fixed_point", options, symmetric=False)

    def F(x, *p):
        return pytree.tree_map(lambda t, xi: t - xi, T(x, *p), x)

    return _root(F, x_star, params, opts, name="fixed_point",
                 residual="T(x_star, *params) - x_star")
