r"""Line search for ``_bfgs.minimize``: a step satisfying the strong Wolfe conditions (Nocedal and
Wright, "Numerical Optimization", 2nd ed., algorithms 3.5 and 3.6), or, where function differences
are below the criterion's noise ``eps_f``, the approximate Wolfe conditions of Hager and Zhang
(2005), decided on directional derivatives only (``_bfgs`` module docstring, "Noise"). Trial steps
inside a bracket come from cubic / quadratic interpolation of the values when they are above the
noise, from the secant of the derivatives otherwise; safeguarded, bisection last."""

from __future__ import annotations

import math


def _cubic_min(a, fa, ga, b, fb, gb):
    """Minimizer of the cubic interpolating (f, f') at a and b (None if it does not exist)."""
    d1 = ga + gb - 3 * (fa - fb) / (a - b)
    rad = d1 * d1 - ga * gb
    if rad < 0:
        return None
    d2 = math.copysign(math.sqrt(rad), b - a)
    den = gb - ga + 2 * d2
    if den == 0:
        return None
    return b - (b - a) * (gb + d2 - d1) / den


def _quad_min(a, fa, ga, b, fb):
    """Minimizer of the parabola through (a, fa) with slope ga and through (b, fb)."""
    den = 2 * (fb - fa - ga * (b - a))
    if den <= 0:
        return None
    return a - ga * (b - a) ** 2 / den


def _interpolate(lo, flo, glo, hi, fhi, ghi, eps_f):
    """A trial step inside the bracket: cubic (or quadratic) interpolation of the values when they
    are above the noise, the secant of the derivatives otherwise; safeguarded, bisection last."""
    w = abs(hi - lo)
    left, right = min(lo, hi), max(lo, hi)
    cands = []
    if math.isfinite(fhi) and abs(fhi - flo) > eps_f:
        cands += [_cubic_min(lo, flo, glo, hi, fhi, ghi), _quad_min(lo, flo, glo, hi, fhi)]
    if math.isfinite(ghi) and ghi != glo:
        cands.append(lo - glo * (hi - lo) / (ghi - glo))
    for t in cands:
        if t is not None and math.isfinite(t):
            return min(max(t, left + 1e-3 * w), right - 0.1 * w) if hi > lo else \
                min(max(t, left + 0.1 * w), right - 1e-3 * w)
    return 0.5 * (lo + hi)


def line_search(phi, f0: float, g0: float, a1: float, eps_f: float, c1: float = 1e-4, c2: float = 0.9,
                max_eval: int = 30):
    """Step ``a > 0`` satisfying the strong Wolfe conditions (Nocedal and Wright, algorithms 3.5 and
    3.6), or the approximate Wolfe conditions when ``|f(a) - f(0)| <= eps_f`` (decided on the
    derivatives). ``phi(a) -> (f, g, payload)``; returns ``(a, f, g, payload, n_eval)``, with
    ``a = None`` when no acceptable step was found (then the best decrease, if any, is returned)."""
    lo, flo, glo = 0.0, f0, g0
    hi = fhi = ghi = None
    a = a1
    best = None

    def beyond(a, f, g, flo):
        """True if a minimizer lies between the lower end and a."""
        if abs(f - f0) <= eps_f:  # values are noise: decide on the slope
            return g > 0
        return f > f0 + c1 * a * g0 or f >= flo

    for k in range(1, max_eval + 1):
        f, g, pay = phi(a)
        if not (math.isfinite(f) and math.isfinite(g)):
            hi, fhi, ghi = a, math.inf, math.inf
        else:
            if (f <= f0 + c1 * a * g0 and abs(g) <= c2 * abs(g0)) or \
                    (abs(f - f0) <= eps_f and (2 * c1 - 1) * g0 >= g >= c2 * g0):
                return a, f, g, pay, k
            if f < f0 - eps_f and (best is None or f < best[1]):
                best = (a, f, g, pay)
            if beyond(a, f, g, flo):
                hi, fhi, ghi = a, f, g
            elif hi is None and g >= 0:  # overshot a minimizer with a decrease: [a, lo] brackets
                hi, fhi, ghi = lo, flo, glo
                lo, flo, glo = a, f, g
            else:
                if hi is not None and g * (hi - lo) >= 0:
                    hi, fhi, ghi = lo, flo, glo
                lo, flo, glo = a, f, g
        if hi is None:
            a = 4.0 * a  # still descending: extrapolate
            continue
        if abs(hi - lo) <= 1e-15 * max(abs(lo), abs(hi)):
            break
        a = _interpolate(lo, flo, glo, hi, fhi, ghi, eps_f)
    if best is not None:
        return (*best, k)
    return None, None, None, None, k
