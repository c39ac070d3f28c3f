"""Smooth test functions with known derivatives, shared by the tests and ``benchmarks/fd_accuracy``.

``bessel_j_series`` is the Bessel function written as its power series (the "poor man's Bessel"
of autodiff tutorials; ``examples/01_bessel_derivatives.py``): a smooth function whose
derivative is known in closed form, ``J_nu'(z) = (J_{nu-1}(z) - J_{nu+1}(z)) / 2``, evaluated
with plain torch arithmetic in the input's dtype (so that float32 rounding is float32's).
"""

from __future__ import annotations

import math

from torch import Tensor


def bessel_j_series(nu: int, z: Tensor, terms: int = 40) -> Tensor:
    """``J_nu(z) = sum_k (-1)^k (z/2)^(2k+nu) / (k! (k+nu)!)`` for an integer ``nu >= 0``.

    Args:
        nu: the order, an integer ``>= 0``.
        z: the argument, a floating or complex tensor (any shape); the series is summed in its
            dtype.
        terms: number of terms of the series (40 is accurate to rounding for ``|z| <~ 10``).

    Returns:
        ``J_nu(z)``, shaped like ``z``, differentiable in ``z`` (plain torch arithmetic).
    """
    half = z / 2
    sq = half * half
    term = half**nu / math.factorial(nu)  # k = 0
    total = term
    for k in range(1, terms):
        term = -term * sq / (k * (k + nu))
        total = total + term
    return total
