"""The steps of ``derivative`` (``_derivative.py``, whose docstring has the step and error model):
the cached samples of ``f`` along the line, the probe of ``f``'s higher derivative and rounding
magnitude, the adaptive step, the estimate at one step with its error model (and the second step
where ``f`` is noisier than modelled), and Richardson extrapolation.

All steps are in ``s``, the distance along the unit direction (``s = t |d|``), so that the probe
step is measured in ``x``'s own units; ``derivative`` converts back.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from .._errors import InputError
from .._utils import real_dtype
from ._fd_error import ErrorModel, fit_residuals, resid_noise
from ._stencil import Stencil, central_fdm

# Ratio of the check step to the step. Not a power of two: the rounding of ``x + t d`` lies on a
# binary lattice, and steps h and h/2 can see the same lattice error (the check would miss it).
CHECK = 2.0 / 3.0


def apply_stencil(st: Stencil, g: Callable[[float], Tensor], h: float) -> Tensor:
    """``sum_i c_i g(o_i h) / h^q`` (``g`` caches its evaluations)."""
    acc = None
    for o, c in zip(st.offsets, st.float_coefs()):
        if c == 0.0:
            continue
        term = c * g(o * h)
        acc = term if acc is None else acc + term
    return acc / h**st.q


class Samples:
    """``f(x + s unit)``, cached by ``s`` and checked: a floating or complex value, finite (else
    the stencil left ``f``'s domain)."""

    def __init__(self, f: Callable, x: Tensor, unit: Tensor, dnorm: float):
        self.f, self.x, self.unit, self.dnorm = f, x, unit, dnorm
        self.cache: dict[float, Tensor] = {}

    def __call__(self, t: float) -> Tensor:
        if t not in self.cache:
            y = torch.as_tensor(self.f(self.x + t * self.unit))
            if not (y.is_floating_point() or y.is_complex()):
                raise InputError(f"f: must return a floating-point or complex value, got {y.dtype}")
            y = y.detach()
            if not bool(torch.isfinite(y).all()):
                raise InputError(
                    f"f: returned non-finite values at x + {t / self.dnorm:.3g} * direction; the point "
                    "left f's domain: lower max_step (or structure the input inside f)"
                )
            self.cache[t] = y
        return self.cache[t]


class Line:
    """One derivative along a line: the stencil ``st`` for the q-th derivative, the samples ``g``,
    and what the probe measured (``M_vec``: signed ``f^(q+k)``; ``fmag``: the rounding magnitude
    per component; ``d1``: ``|f'|``)."""

    def __init__(self, st: Stencil, g: Samples, q: int, factor: float, max_s: float, xnorm: float):
        self.st, self.g, self.q, self.factor, self.max_s = st, g, q, factor, max_s
        f0 = g(0.0)
        self.eps = max(torch.finfo(real_dtype(f0.dtype)).eps, torch.finfo(real_dtype(g.x.dtype)).eps)
        self.k = st.order
        self.C_t = float(st.truncation_coef)
        self.C_r = st.roundoff_coef
        self.reach = max(abs(o) for o in st.offsets)
        self._probe(xnorm)

    def _probe(self, xnorm: float) -> None:
        """Signed estimate of ``f^(q+k)`` from a wider central stencil at a coarse step (rounding
        error of the estimate ~ eps / h_m^(q+k), truncation ~ h_m^2), reaching no farther than the
        main stencil; and the rounding magnitude of each component."""
        g, eps = self.g, self.eps
        m_order = self.q + self.k
        st_m = central_fdm(m_order + 2, m_order)
        reach_m = max(abs(o) for o in st_m.offsets)
        h_m = min(self.max_s * self.reach / reach_m, 2.0 * eps ** (1.0 / (m_order + 2)))
        self.M_vec = apply_stencil(st_m, g, h_m)
        # Rounding error of each component: eps times the largest |f| seen near x (not |f(x)| alone,
        # which may vanish at x) plus |x| |f'| for the rounding of the point x + t d.
        fmag = torch.stack([c.abs() for c in g.cache.values()]).amax(0)
        self.d1 = (g(h_m) - g(-h_m)).abs() / (2 * h_m)  # |f'| along the unit direction
        if xnorm > 0:
            fmag = fmag + xnorm * self.d1
        self.fmag = fmag
        self.M = float(self.M_vec.abs().max()) if self.M_vec.numel() else 0.0
        self.fmax = float(fmag.max()) if fmag.numel() else 0.0

    def adaptive_step(self) -> float:
        """``h* = (q C_r eps_f / (k C_t M))^(1/(k+q))`` (at most ``max_s``); ``max_s`` where f is
        (numerically) a polynomial of degree < q + k along the line (no truncation error)."""
        q, k = self.q, self.k
        if self.M > 0 and self.fmax > 0:
            return min(self.max_s, (q * self.C_r * self.eps * self.factor * self.fmax / (k * self.C_t * self.M))
                       ** (1.0 / (k + q)))
        return self.max_s

    def noise(self, hh: float) -> Tensor:
        return self.C_r * self.eps * self.factor * self.fmag / hh**self.q

    def at_step(self, hh: float, prev: tuple[Tensor, int] | None = None):
        """The estimate at step ``hh``, its error model and the fit residuals (f's units, with
        their degrees of freedom); ``prev``: residuals at an earlier step, pooled with these (f's
        noise level does not depend on the step)."""
        st, g, q, k, C_r = self.st, self.g, self.q, self.k, self.C_r
        value = apply_stencil(st, g, hh)
        check = value - apply_stencil(st, g, CHECK * hh)
        trunc = self.C_t * self.M_vec * hh**k
        # The 2p - 1 samples at both steps (keys built as in ``apply_stencil``, so they hit the
        # cache), fitted by a polynomial of degree q + k + 1 (q + k where that leaves < 2 degrees
        # of freedom).
        ts = sorted({0.0} | {o * hh for o in st.offsets} | {o * (CHECK * hh) for o in st.offsets})
        deg = q + k + 1 if len(ts) - (q + k + 2) >= 2 else q + k
        fit = fit_residuals(ts, [g(t) for t in ts], hh, deg)
        if fit is not None and prev is not None:
            fit = torch.cat([prev[0], fit[0]]), prev[1] + fit[1]
        nz, resid, dof = self.noise(hh), None, 0
        if fit is not None:
            resid, dof = fit[0] * (C_r / hh**q), fit[1]
            sig = resid_noise(resid, dof)
            # Normwise rounding, few samples per component: at least the RMS over components.
            pooled = sig.square().mean().sqrt() if sig.numel() else sig
            nz = torch.maximum(nz, torch.maximum(sig, pooled))
        model = ErrorModel(trunc, nz, check, trunc, 1.0 - CHECK**k,
                           math.sqrt(1.0 + CHECK ** (-2 * q)), resid, dof)
        return value, model, fit

    def plain(self, h: float, adaptive: bool) -> tuple[Tensor, ErrorModel, float]:
        """The estimate at ``h``; where ``f`` is noisier than ``eps |f|`` (ill-conditioned) and the
        step is ``adaptive``, one more estimate at the step that balances truncation against the
        measured noise (2 (p - 1) evaluations; more accurate, and its residuals double the samples
        of the noise level). Returns the value, its model and the step used."""
        value, model, fit = self.at_step(h)
        level = float(resid_noise(*fit).max()) if fit is not None and fit[0].numel() else 0.0
        q, k = self.q, self.k
        if adaptive and self.M > 0 and level > 4.0 * self.eps * self.factor * self.fmax:
            h2 = min(self.max_s, (q * self.C_r * level / (k * self.C_t * self.M)) ** (1.0 / (k + q)))
            if h2 > 1.5 * h:
                h = h2
                value, model, _ = self.at_step(h, fit)
        return value, model, h

    def richardson_coarsest(self, R: int, h: float) -> float:
        """The coarsest step of ``R`` extrapolation levels. Models ``|f^(n)| ~ |f'| n! / rho^(n-1)``
        (f analytic within a distance rho, as a matrix function is up to its nearest singularity);
        rho from ``|f'|`` and ``M``, then the step that balances truncation of the extrapolated
        order ``k'`` against rounding."""
        q, k, C_t, C_r = self.q, self.k, self.C_t, self.C_r
        k_eff = k + self.increment() * R
        fine = h
        D1 = float(self.d1.max()) if self.d1.numel() else 0.0
        if self.M > 0 and D1 > 0 and h < self.max_s:
            n = q + k
            rho = (math.factorial(n) * D1 / self.M) ** (1.0 / (n - 1)) if n > 1 else 1.0
            n_eff = q + k_eff
            M_eff = D1 * math.factorial(n_eff) / rho ** (n_eff - 1)
            fine = (q * C_r * self.eps * self.factor * self.fmax / (k_eff * C_t * M_eff)) ** (1.0 / (k_eff + q))
        return min(self.max_s, fine * 2.0 ** (R + 1))

    def increment(self) -> int:
        """Orders eliminated per Richardson level: 2 for a symmetric stencil (even error terms)."""
        st = self.st
        return 2 if all(o == -oo for o, oo in zip(st.offsets, reversed(st.offsets))) else 1

    def richardson(self, R: int, H: float) -> tuple[Tensor, ErrorModel, float]:
        """Neville tableau over the ``R + 2`` steps ``H .. H / 2^(R+1)``: two extrapolated entries
        of the same order (steps H..H/2^R and H/2..H/2^(R+1)); their difference estimates the error
        of the finer one, the value. Returns the value, its model and the finest step."""
        inc = self.increment()
        steps = [H / 2.0**j for j in range(R + 2)]
        row, nrow = [apply_stencil(self.st, self.g, hj) for hj in steps], [self.noise(hj) for hj in steps]
        order = self.k
        for _ in range(R):
            r = 2.0**order
            row = [(r * row[j + 1] - row[j]) / (r - 1) for j in range(len(row) - 1)]
            nrow = [(r * nrow[j + 1] + nrow[j]) / (r - 1) for j in range(len(nrow) - 1)]
            order += inc
        coarse, value = row
        return value, ErrorModel((coarse - value) / (2.0**order - 1), nrow[1]), steps[-1]
