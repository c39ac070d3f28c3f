"""Options of the implicit solves and the residual diagnostics (raise, warn or ignore)."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from .._errors import ConvergenceError, InputError
from .._utils import eps

SOLVERS = ("auto", "dense", "gmres", "cg")
ON_FAILURE = ("raise", "warn", "ignore")
# Largest realified system size (per problem) that "auto" solves densely.
DENSE_MAX = 400


class ImplicitDiffWarning(UserWarning):
    """Warning form of a failed residual check (``on_failure="warn"``)."""


@dataclass(frozen=True)
class Options:
    """Settings shared by ``root``, ``fixed_point``, ``argmin`` (see ``root`` for their meaning)."""

    solve: str = "auto"
    tol: float | None = None
    maxiter: int | None = None
    restart: int | None = None
    residual_tol: float | None = None
    on_failure: str = "raise"
    symmetric: bool = False
    batch_dims: int = 0

    def validate(self) -> "Options":
        if self.solve not in SOLVERS:
            raise InputError(f"solve: expected one of {SOLVERS}, got {self.solve!r}")
        if self.on_failure not in ON_FAILURE:
            raise InputError(f"on_failure: expected one of {ON_FAILURE}, got {self.on_failure!r}")
        for name in ("tol", "residual_tol"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, (int, float)) and v > 0):
                raise InputError(f"{name}: expected a positive number, got {v!r}")
        for name in ("maxiter", "restart"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, int) and v >= 1):
                raise InputError(f"{name}: expected a positive integer, got {v!r}")
        if not (isinstance(self.batch_dims, int) and self.batch_dims >= 0):
            raise InputError(f"batch_dims: expected a non-negative integer, got {self.batch_dims!r}")
        return self

    def replace(self, **kw) -> "Options":
        return replace(self, **kw)

    def krylov_tol(self, dtype: torch.dtype) -> float:
        """Relative residual the Krylov solvers aim for (default ``10 eps^(3/4)``)."""
        return self.tol if self.tol is not None else 10.0 * eps(dtype) ** 0.75

    def check_tol(self, dtype: torch.dtype) -> float:
        """Relative residual above which a check fails (default ``sqrt(eps)``)."""
        return self.residual_tol if self.residual_tol is not None else eps(dtype) ** 0.5

    def linear_check_tol(self, dtype: torch.dtype) -> float:
        return max(self.check_tol(dtype), 10.0 * self.krylov_tol(dtype))

    def method(self, n: int) -> str:
        if self.solve != "auto":
            return self.solve
        if n <= DENSE_MAX:
            return "dense"
        return "cg" if self.symmetric else "gmres"


def relative(num: Tensor, den: Tensor) -> Tensor:
    """num / den per problem; 0 where num == 0, inf where only den == 0; NaN stays NaN."""
    zero = num == 0
    out = num / torch.where(den > 0, den, torch.ones_like(den))
    out = torch.where(den > 0, out, torch.full_like(out, float("inf")))
    return torch.where(zero, torch.zeros_like(out), out)


def worst(rel: Tensor) -> tuple[float, tuple[int, ...] | None]:
    """Largest entry of a per-problem tensor (NaN counts as the worst) and its index."""
    if rel.ndim == 0:
        return float(rel), None
    flat = torch.where(torch.isnan(rel), torch.full_like(rel, float("inf")), rel).reshape(-1)
    k = int(flat.argmax())
    idx = tuple(int(i) for i in torch.unravel_index(torch.tensor(k), rel.shape))
    return float(rel.reshape(-1)[k]), idx


def report(rel: Tensor, tol: float, on_failure: str, what: str, fix: str) -> None:
    """Raise or warn when a per-problem relative residual exceeds ``tol`` (NaN fails)."""
    if on_failure == "ignore":
        return
    value, idx = worst(rel.detach())
    if value <= tol:
        return
    where = f" (largest at batch index {idx})" if idx is not None and rel.numel() > 1 else ""
    shown = f"{value:.3e}" if math.isfinite(value) else "not finite (NaN/inf: a singular system?)"
    msg = f"{what}: relative residual {shown}{where} exceeds the tolerance {tol:.1e}; {fix}"
    if on_failure == "raise":
        raise ConvergenceError(msg)
    warnings.warn(msg, ImplicitDiffWarning, stacklevel=4)
