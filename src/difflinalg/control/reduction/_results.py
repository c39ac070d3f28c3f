"""The result records of every reductor: ``ReductionResult`` (the contract's result type) and
RARL2's per-start ``StartResult``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..._utils import warn_once
from ..system._statespace import StateSpace


@dataclass
class StartResult:
    """One start of a RARL2 run. ``start_relative_error`` and ``relative_error`` (floats) are the
    errors at the start and at its end relative to ``||F||`` (the deprecated names ``start_error`` and
    ``error`` read the same values: ``ReductionResult.error`` is absolute). ``status``: "converged"
    (relative gradient below ``tol``), "stationary" (no progress above the criterion's noise is left),
    "exact", "stalled", "max_iter", "joined" (reached a minimum already found), "abandoned" (fell
    behind the best result), "skipped" (started far above it: not optimized), "noise" (not
    optimized: a result at the criterion's noise level was already found), "interrupted"."""

    name: str
    start_relative_error: float
    relative_error: float
    grad_norm: float
    rel_grad: float
    iterations: int
    evaluations: int
    chart_switches: int
    status: str
    seconds: float

    @property
    def error(self) -> float:
        """Deprecated: ``relative_error`` (relative, unlike ``ReductionResult.error``)."""
        _deprecated("StartResult.error", "relative_error")
        return self.relative_error

    @property
    def start_error(self) -> float:
        """Deprecated: ``start_relative_error``."""
        _deprecated("StartResult.start_error", "start_relative_error")
        return self.start_relative_error


def _deprecated(old: str, new: str) -> None:
    warn_once(old, f"{old} is deprecated: use {new} (the same value, relative to ||F||)", DeprecationWarning, stacklevel=4)


@dataclass
class ReductionResult:
    """Result of every reductor (``REDUCTORS``: ``rarl2``, ``reduce_bt``, ``irka``): the model, its
    errors, the time, and the method's details. The fields after ``rel_grad`` are RARL2's (they keep
    their defaults for the other reductors, whose own data is in ``details``).

    Attributes:
        model: the reduced ``StateSpace`` (RARL2: output-normal ``(C, A)``, optimal ``B`` and ``D``).
        error, relative_error: ``||F - model||_2`` (absolute, a float) and the same divided by
            ``||F||`` (RARL2: from the concentrated criterion; ``h2_error(F, model)``, which returns
            a differentiable Tensor, recomputes it from the error system).
        grad_norm, rel_grad: gradient norm at exit in the (normalized) chart coordinates, and the
            relative gradient ``||grad|| / (2 sqrt(psi))`` used as stopping criterion.
        starts: a ``StartResult`` per start; ``best_start`` names the one kept.
        history: (iteration, relative error, gradient norm, seconds) of the kept start.
        output_normal_residual: ``||A^H A + C^H C - I||_F`` or ``||A + A^H + C^H C||_F`` of the
            normalized pair (NaN where the model is balanced truncation itself, in its balanced
            realization: chosen in the tiny-error regime when it is better by the extended-precision
            yardstick than every model of the search, ``_selection``); stability_margin:
            ``-max Re(poles)`` or ``1 - max |poles|``.
        target_norm: ``||F||_2``; seconds: wall time; interrupted: stopped by Ctrl-C (the best model
            so far is returned); method: the target's factorization ("modal" or "schur").
        resolution: the relative-error resolution of the criterion, ``eps_f / (2 psi)`` with
            ``eps_f`` its rounding noise and ``psi`` the reported squared relative error: models whose relative errors differ by less than this
            factor cannot be ordered in double precision (relevant for errors of ~1e-5 ||F|| and
            below; ties within it are settled beyond double precision where affordable).
        polished: the model is the best result moved by IRKA iterations (``best_start`` names the
            start it came from; ``grad_norm`` and ``rel_grad`` are those of the model): done where
            the criterion does not resolve the error to 1e-6 and kept only if better by the
            extended-precision yardstick (module docstring, "Precision").
        error_resolution: uncertainty of ``error`` (absolute, same units): ``|error - ||F - model||_2|``
            is at most about this (``_selection``). Where the criterion cannot resolve the error,
            ``error`` is the extended-precision yardstick's value (``precise`` True) and this its
            accuracy; where even that is unavailable and the criterion is at its noise level,
            ``error`` is this bound, not 0. Where the yardstick's value is below its own accuracy,
            ``error`` is the upper bound (value plus accuracy) and ``details["error_is_bound"]`` is
            True (``_selection.reported_error``; the summary prints "<=").
        precise: ``error`` was measured by the yardstick of ``h2_error(..., precise=True)``.
        reductor: the registry name of the reductor that made it (``REDUCTORS``).
        details: the reductor's own data (balanced truncation: ``hsv``; IRKA: ``iterations``,
            ``converged``, ``shifts``; RARL2: ``realization`` when the target was re-realized from
            its Markov parameters because its own realization is too far from normal for
            Gramians: the H2 distance ``delta`` of the re-realization, its order, the Markov terms
            used, ``||A||`` and the spectral radius).
    """

    model: StateSpace
    error: float
    relative_error: float
    grad_norm: float
    rel_grad: float
    starts: list[StartResult] = field(default_factory=list)
    best_start: str = ""
    history: list = field(default_factory=list)
    output_normal_residual: float = 0.0
    stability_margin: float = 0.0
    target_norm: float = 0.0
    seconds: float = 0.0
    interrupted: bool = False
    method: str = ""
    resolution: float = 0.0
    polished: bool = False
    error_resolution: float = 0.0
    precise: bool = False
    reductor: str = "rarl2"
    details: dict = field(default_factory=dict)

    def summary(self) -> str:
        """A printable report: the model's order, relative and absolute errors (with their
        resolution where it matters), gradient, best start and time, then a table of the starts."""
        res = f" +- {self.error_resolution / max(self.target_norm, 1e-300):.1e}" if self.precise or \
            self.error_resolution > 1e-8 * self.error else ""
        err = f"{self.relative_error:.10g}{res}"
        if self.details.get("error_is_bound"):
            err = f"<= {self.relative_error:.2g} (below the yardstick's resolution)"
        lines = [f"RARL2 order {self.model.order}: relative H2 error {err} "
                 f"(absolute {self.error:.10g}{', extended precision' if self.precise else ''}), "
                 f"gradient {_fmt(self.grad_norm, '.2e')} (relative {_fmt(self.rel_grad, '.2e')}), "
                 f"best start {self.best_start!r}{' (polished by IRKA)' if self.polished else ''}"
                 f"{' (balanced truncation itself)' if math.isnan(self.output_normal_residual) else ''}, "
                 f"{self.seconds:.2f} s"
                 + (" [interrupted]" if self.interrupted else "")]
        lines.append(f"{'start':<12} {'start error':>14} {'error':>14} {'rel grad':>9} {'iters':>6} {'status':>11} {'time':>7}")
        for s in self.starts:
            lines.append(f"{s.name:<12} {_fmt(s.start_relative_error, '14.8g')} {_fmt(s.relative_error, '14.8g')} {_fmt(s.rel_grad, '9.1e')} "
                         f"{s.iterations:6d} {s.status:>11} {s.seconds:6.2f}s")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"ReductionResult(order={self.model.order}, relative_error={self.relative_error:.6g}, "
                f"error={self.error:.6g}, grad_norm={self.grad_norm:.2e}, best_start={self.best_start!r}, "
                f"starts={len(self.starts)}, seconds={self.seconds:.2f})")


def _fmt(v: float, spec: str) -> str:
    """``v`` formatted, or ``-`` (right-aligned to the width of ``spec``) if it is not finite (not
    computed: a start that was not optimized has no gradient)."""
    if math.isfinite(v):
        return format(v, spec)
    width = "".join(ch for ch in spec.split(".")[0] if ch.isdigit())
    return "-".rjust(int(width)) if width else "-"
