r"""Finite-difference stencils from the Taylor (Vandermonde) system, with exact rational weights.

A stencil with integer offsets ``o_0 .. o_{p-1}`` and weights ``c_i`` approximates the q-th
derivative as ``f^{(q)}(x) ~ sum_i c_i f(x + o_i h) / h^q``. The weights solve
``sum_i c_i o_i^k = q! [k == q]`` for ``k = 0 .. p-1`` (exactly, in ``fractions.Fraction``), so the
truncation error is ``O(h^{p-q})``, one order more when the odd moment vanishes by symmetry
(``Stencil.order``); its leading coefficient is ``Stencil.truncation_coef``.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from math import factorial

from .._errors import InputError
from .._utils import check_int


@dataclass(frozen=True)
class Stencil:
    """A finite-difference stencil: ``f^{(q)}(x) ~ sum(coefs[i] * f(x + offsets[i] * h)) / h**q``."""

    offsets: tuple[int, ...]
    coefs: tuple[Fraction, ...]
    q: int

    @property
    def p(self) -> int:
        """Number of points."""
        return len(self.offsets)

    def float_coefs(self) -> tuple[float, ...]:
        """The weights ``coefs`` rounded to Python floats (for evaluating the stencil)."""
        return tuple(float(c) for c in self.coefs)

    @property
    def order(self) -> int:
        """Order of accuracy: the power of h in the leading truncation error."""
        k = self.p
        while sum(c * o**k for c, o in zip(self.coefs, self.offsets)) == 0:
            k += 1
        return k - self.q

    @property
    def truncation_coef(self) -> Fraction:
        """C with truncation error ~ C * f^{(q + order)}(x) * h^order."""
        k = self.q + self.order
        return abs(sum(c * Fraction(o) ** k for c, o in zip(self.coefs, self.offsets))) / factorial(k)

    @property
    def roundoff_coef(self) -> float:
        """``sum |c_i|``: the amplification of rounding errors in f (divided by h^q)."""
        return float(sum(abs(c) for c in self.coefs))

    def __repr__(self) -> str:
        cs = ", ".join(str(c) for c in self.coefs)
        return f"Stencil(q={self.q}, offsets={self.offsets}, coefs=({cs}))"


def _solve_exact(offsets: tuple[int, ...], q: int) -> tuple[Fraction, ...]:
    """Solve sum_i c_i o_i^k = q! delta_{kq}, k < p, by Gaussian elimination over the rationals."""
    p = len(offsets)
    M = [[Fraction(o) ** k for o in offsets] + [Fraction(factorial(q) if k == q else 0)] for k in range(p)]
    for col in range(p):
        piv = next(r for r in range(col, p) if M[r][col] != 0)
        M[col], M[piv] = M[piv], M[col]
        for r in range(p):
            if r != col and M[r][col] != 0:
                f = M[r][col] / M[col][col]
                M[r] = [a - f * b for a, b in zip(M[r], M[col])]
    return tuple(M[i][p] / M[i][i] for i in range(p))


def stencil(offsets, q: int = 1) -> Stencil:
    """Stencil for the q-th derivative on arbitrary distinct integer ``offsets``.

    The weights solve the Taylor (Vandermonde) system ``sum_i c_i o_i^k = q! [k == q]``,
    ``k = 0 .. p-1``, exactly over the rationals (Fornberg 1988), so the truncation error is
    ``O(h^(p-q))`` (one order more when symmetry cancels the next moment: ``Stencil.order``).

    Args:
        offsets: the ``p`` distinct integer offsets ``o_i`` (any iterable of ints or
            integer-like objects such as NumPy integers; not floats, not bools), in units of the
            step ``h``.
        q: the derivative order, an ``int >= 1``.

    Returns:
        ``Stencil(offsets, coefs, q)`` with exact ``fractions.Fraction`` weights:
        ``f^(q)(x) ~ sum(coefs[i] * f(x + offsets[i] * h)) / h**q``.

    Raises:
        InputError: an offset that is not an integer (e.g. ``0.5``, or ``1.0``: a float is not
            rounded silently); ``q`` not an integer ``>= 1``; repeated offsets; ``p <= q`` offsets.

    Example::

        from fractions import Fraction
        from difflinalg.check import stencil

        st = stencil([-1, 0, 1], q=2)              # the second difference
        assert st.coefs == (1, -2, 1) and st.order == 2
        assert stencil([0, 1, 3]).coefs == (Fraction(-4, 3), Fraction(3, 2), Fraction(-1, 6))
    """
    offsets = tuple(check_int(
        o, "offsets", "integer offsets in units of the step h (for points at fractions of h, scale the offsets up and h down)") for o in offsets)
    if not isinstance(q, int) or q < 1:
        raise InputError(f"q: the derivative order must be an integer >= 1, got {q!r}")
    if len(set(offsets)) != len(offsets):
        raise InputError(f"offsets: must be distinct, got {offsets}")
    if len(offsets) <= q:
        raise InputError(
            f"p: a stencil for the q={q} derivative needs more than q points, got {len(offsets)}; "
            f"use p >= {q + 1}"
        )
    return Stencil(offsets, _solve_exact(offsets, q), q)


def _check_pq(p: int, q: int) -> None:
    if not isinstance(p, int) or not isinstance(q, int):
        raise InputError(f"p and q must be integers, got p={p!r}, q={q!r}")
    if q < 1:
        raise InputError(f"q: the derivative order must be >= 1, got {q}")
    if p <= q:
        raise InputError(f"p: need more points than the derivative order (p > q), got p={p}, q={q}")


def central_fdm(p: int, q: int = 1) -> Stencil:
    """The p-point central stencil for the q-th derivative (p > q).

    Odd p uses offsets ``-(p-1)/2 .. (p-1)/2``; even p skips 0 (``-p/2 .. -1, 1 .. p/2``).
    ``central_fdm(5, 1)`` has offsets -2..2 and weights 1/12, -2/3, 0, 2/3, -1/12.

    Args:
        p: number of points, an ``int > q``.
        q: the derivative order, an ``int >= 1``.

    Returns:
        The ``Stencil`` (exact rational weights; ``order`` ``p - q``, or ``p - q + 1`` when
        symmetry cancels the next moment, as for odd ``p`` and odd ``q``).

    Raises:
        InputError: ``p`` or ``q`` not an integer, ``q < 1`` or ``p <= q``.

    Example::

        import math
        from difflinalg.check import central_fdm

        st = central_fdm(5, 1)
        assert [str(c) for c in st.coefs] == ["1/12", "-2/3", "0", "2/3", "-1/12"]
        assert st.order == 4
        h = 1e-2
        d = sum(c * math.sin(1.0 + o * h) for o, c in zip(st.offsets, st.float_coefs())) / h
        assert abs(d - math.cos(1.0)) < 1e-9    # truncation (1/30) h^4 |sin^(5)(1)|
    """
    _check_pq(p, q)
    half = p // 2
    offsets = tuple(range(-half, half + 1)) if p % 2 else tuple(o for o in range(-half, half + 1) if o != 0)
    return stencil(offsets, q)


def forward_fdm(p: int, q: int = 1) -> Stencil:
    """The p-point one-sided stencil on offsets 0 .. p-1 (for points at a left boundary).

    Args:
        p: number of points, an ``int > q``.
        q: the derivative order, an ``int >= 1``.

    Returns:
        The ``Stencil`` (exact rational weights, ``order`` ``p - q``).

    Raises:
        InputError: ``p`` or ``q`` not an integer, ``q < 1`` or ``p <= q``.

    Example::

        from difflinalg.check import forward_fdm

        assert [str(c) for c in forward_fdm(3, 1).coefs] == ["-3/2", "2", "-1/2"]
    """
    _check_pq(p, q)
    return stencil(range(p), q)


def backward_fdm(p: int, q: int = 1) -> Stencil:
    """The p-point one-sided stencil on offsets -(p-1) .. 0 (for points at a right boundary).

    Args:
        p: number of points, an ``int > q``.
        q: the derivative order, an ``int >= 1``.

    Returns:
        The ``Stencil`` (exact rational weights, ``order`` ``p - q``).

    Raises:
        InputError: ``p`` or ``q`` not an integer, ``q < 1`` or ``p <= q``.

    Example::

        from difflinalg.check import backward_fdm

        assert backward_fdm(3, 1).offsets == (-2, -1, 0)
        assert [str(c) for c in backward_fdm(3, 1).coefs] == ["1/2", "-2", "3/2"]
    """
    _check_pq(p, q)
    return stencil(range(-(p - 1), 1), q)
