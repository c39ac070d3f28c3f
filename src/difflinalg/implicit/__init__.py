"""Implicit differentiation of roots, fixed points and argmins.

``root(F, x_star, *params)`` attaches a solution computed by any solver to the graph of the
parameters with the implicit function theorem (reverse, forward and higher-order derivatives, all
``torch.func`` transforms); ``custom_root(F)`` decorates a solver; ``fixed_point`` and ``argmin``
are the root problems ``T(x) - x = 0`` and ``grad f(x) = 0``.
"""

from ._argmin import argmin
from ._diagnostics import ImplicitDiffWarning
from ._fixed_point import fixed_point
from ._root import custom_root, root

__all__ = ["ImplicitDiffWarning", "argmin", "custom_root", "fixed_point", "root"]
