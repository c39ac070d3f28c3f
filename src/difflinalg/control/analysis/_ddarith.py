r"""Double-double arithmetic, vectorized in NumPy: a float64 pair ``hi + lo`` (~32 significant
digits) per real, a pair of them per complex number (``_precise``'s sums).

Dekker's error-free products and Knuth's two-sum; the accurate addition and the division of Hida,
Li and Bailey. Sums are pairwise (log2(n) vectorized steps) and can keep a running account of their
rounding bounds (``dd_sum``'s ``run``: Wilkinson's a posteriori analysis).

References: T. J. Dekker, "A floating-point technique for extending the available precision",
Numer. Math. 18 (1971); Y. Hida, X. S. Li, D. H. Bailey, "Library for double-double and quad-double
arithmetic" (2000).
"""

from __future__ import annotations

import numpy as np

_LD = np.longdouble

_SPLIT = 134217729.0  # 2^27 + 1: Dekker's splitting constant for float64


# -- double-double reals: pairs (hi, lo) of float64 arrays, |lo| <= ulp(hi) / 2 -----------------
def _two_sum(a, b):
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _quick_two_sum(a, b):  # |a| >= |b|
    s = a + b
    return s, b - (s - a)


def _two_prod(a, b):
    p = a * b
    t = _SPLIT * a
    ah = t - (t - a)
    t = _SPLIT * b
    bh = t - (t - b)
    al, bl = a - ah, b - bh
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def dd_add(x, y):
    s, e = _two_sum(x[0], y[0])
    t, f = _two_sum(x[1], y[1])
    s, e = _quick_two_sum(s, e + t)
    return _quick_two_sum(s, e + f)


def dd_neg(x):
    return -x[0], -x[1]


def dd_mul(x, y):
    p, e = _two_prod(x[0], y[0])
    return _quick_two_sum(p, e + (x[0] * y[1] + x[1] * y[0]))


def dd_div(x, y):
    q1 = x[0] / y[0]
    r = dd_add(x, dd_neg(dd_mul((q1, np.zeros_like(q1)), y)))
    q2 = r[0] / y[0]
    r = dd_add(r, dd_neg(dd_mul((q2, np.zeros_like(q2)), y)))
    q3 = r[0] / y[0]
    q = _quick_two_sum(q1, q2)
    return dd_add(q, (q3, np.zeros_like(q3)))


def _account(run: list, bounds) -> None:
    """Add rounding bounds (units of ``EPS_DD``) to a running account ``[sum, sum of squares]``."""
    run[0] += float(bounds.sum())
    run[1] += float((bounds * bounds).sum())


def dd_sum(x, axis: int = -1, run: list | None = None, weight=None):
    """Sum along ``axis`` by pairwise double-double additions (log2(n) vectorized steps).
    ``run``: each addition's rounding bound ``2 weight |partial sum|`` (units of ``EPS_DD``; ``weight``,
    broadcast against the other axes, the factor by which later operations multiply it) is added
    to the account ``run`` (``_account``: a running error bound, Wilkinson's a posteriori
    analysis, and its sum of squares for ``dd_bound``)."""
    hi, lo = np.moveaxis(x[0], axis, 0), np.moveaxis(x[1], axis, 0)
    if hi.shape[0] == 0:
        return np.zeros(hi.shape[1:]), np.zeros(hi.shape[1:])
    while hi.shape[0] > 1:
        if hi.shape[0] % 2:
            z = np.zeros((1,) + hi.shape[1:])
            hi, lo = np.concatenate([hi, z]), np.concatenate([lo, z])
        h = hi.shape[0] // 2
        hi, lo = dd_add((hi[:h], lo[:h]), (hi[h:], lo[h:]))
        if run is not None:
            _account(run, 2 * (np.abs(hi) if weight is None else np.abs(hi) * weight))
    return hi[0], lo[0]


# -- double-double complex numbers: (re, im) of double-double reals -----------------------------
def cdd(z) -> tuple:
    """A complex (long) double array as a double-double complex ``((re_hi, re_lo), (im_hi, im_lo))``
    (exact for long double's 64-bit significand)."""
    z = np.asarray(z)
    out = []
    for part in (z.real, z.imag):
        hi = part.astype(np.float64)
        out.append((hi, (part.astype(_LD) - hi).astype(np.float64)))
    return tuple(out)


def cdd_add(x, y):
    return dd_add(x[0], y[0]), dd_add(x[1], y[1])


def cdd_sub(x, y):
    return dd_add(x[0], dd_neg(y[0])), dd_add(x[1], dd_neg(y[1]))


def cdd_mul(x, y):
    re = dd_add(dd_mul(x[0], y[0]), dd_neg(dd_mul(x[1], y[1])))
    im = dd_add(dd_mul(x[0], y[1]), dd_mul(x[1], y[0]))
    return re, im


def cdd_conj(x):
    return x[0], dd_neg(x[1])


def cdd_recip(x):
    d = dd_add(dd_mul(x[0], x[0]), dd_mul(x[1], x[1]))
    return dd_div(x[0], d), dd_neg(dd_div(x[1], d))


def cdd_sum(x, axis: int = -1, run: list | None = None, weight=None):
    return dd_sum(x[0], axis, run, weight), dd_sum(x[1], axis, run, weight)


def _index(x, idx):
    return tuple((part[0][idx], part[1][idx]) for part in x)


def _bcast(x, shape_fn):
    return tuple((shape_fn(part[0]), shape_fn(part[1])) for part in x)
