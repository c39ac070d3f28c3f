r"""``||F - H||_2`` for a large sparse ``F`` and a small dense ``H`` without cancellation.

The formula ``||F||^2 + ||H||^2 - 2 Re <F, H>`` subtracts numbers of size ``||F||^2`` to get
``||F - H||^2``: its absolute error (the low-rank Gramian's truncation of ``||F||^2``, measured from
``1e-13`` to ``1e-9`` of it on the benchmark models) hides relative errors below ``3e-7 .. 3e-5``.
Here the error system itself is measured instead,

    A_e = diag(A_F, A_H),  E_e = diag(E_F, I),  B_e = [B_F; B_H],  C_e = [C_F, -C_H],  D_e = D_F - D_H,

by low-rank ADI on its controllability Gramian ``P_e ~ Z Z^H`` (``_adi``): ``||F - H||^2 =
||C_e Z||_F^2 (+ ||D_e||_F^2 in discrete time)``, a sum of positive terms, one per ADI block. The
F-block solves are those of ``F``'s Gramian (same shifts, ``solver_of(F)``: the factorizations are
shared), the H-block ones are small dense solves. The top block of ``Z`` is ``F``'s own Gramian
factor, so ``||F||`` comes out of the same run.

Error model (``ErrorNorm.resolution``). (1) Truncation: ``P_e - Z Z^H`` is the Gramian of the
residual ``W``, positive semidefinite, so the sum is a lower bound. ``F`` and ``H`` agree on the slow
modes that the first shift cycles resolve, so the terms of the error come late: the iteration runs
until the relative residual is below ``ERROR_TOL`` (far below the Gramian's tolerance; or until it
stalls at rounding) and the last cycle of shifts adds at most ``CYCLE_RTOL`` of the sum. The rest is
modelled as ``res (||F||^2 + ||H||^2)`` (the residual's share of the squares). (2) Rounding: each
block's ``C_F v_F - C_H v_H`` is a difference of computed vectors; with solves accurate to
``ROUND_EPS`` relative (sparse LU, a few hundred ``eps``) the sum's error is about ``ROUND_EPS
sqrt(||F||^2 + ||H||^2)`` in the norm. A value below the resolution is reported as the resolution:
never 0, never noise below it. Checked against the dense extended-precision ``h2_error`` and a
frequency-domain quadrature with refined solves (``tests/control/large/test_large_errsys.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._adi import ADI_MAX_ITER, N_SHIFTS, adi_run, adi_shifts
from ._solves import solver_of
from ._system import SparseSystem

#: the iteration stops once a full cycle of shifts adds at most this fraction of ||F - H||^2 ...
CYCLE_RTOL = 1e-8
#: ... and the relative residual is below this (or stalls at rounding): F and H agree on the slow
#: modes the first cycles resolve, so the error's own terms come late (heat, N = 1024, order 18:
#: stopping at the Gramian's 1e-15 gave 1.4e-14 for a true 6.49e-13)
ERROR_TOL = 1e-26
#: relative accuracy of the computed ADI blocks (sparse LU solves), in units of the norms: 512 eps
ROUND_EPS = 512 * np.finfo(float).eps
#: the error ADI runs until the extra test holds; more steps than the Gramian's are allowed for it
ERROR_MAX_ITER = 2 * ADI_MAX_ITER


class _BlockSolver:
    """``solve(a, b, X, adjoint)`` for ``diag(a A_F + b E_F, a A_H + b I)``: the F block by ``F``'s
    shared ``ShiftedSolver``, the H block densely."""

    def __init__(self, F: SparseSystem, Ah: np.ndarray):
        self.F, self.Ah, self.N = F, Ah, F.order
        self.inner = solver_of(F)

    def solve(self, a: complex, b: complex, X: np.ndarray, adjoint: bool = False) -> np.ndarray:
        top = self.inner.solve(a, b, X[: self.N], adjoint)
        M = a * self.Ah + b * np.eye(self.Ah.shape[0])
        bot = np.linalg.solve(M.conj().T if adjoint else M, X[self.N:])
        dt = np.result_type(top, bot)
        return np.concatenate([top.astype(dt, copy=False), bot.astype(dt, copy=False)], axis=0)


class _ErrorSystem:
    """The error system ``F - H`` (module docstring) with the interface ``adi_run`` needs."""

    def __init__(self, F: SparseSystem, Ah, Bh, Ch):
        self.F, self.Ah, self.N = F, Ah, F.order
        self.discrete = F.discrete
        self.is_complex = F.is_complex or any(np.iscomplexobj(x) for x in (Ah, Bh, Ch))
        self.dtype = np.dtype(np.complex128 if self.is_complex else np.float64)
        self.B = np.concatenate([F.B, Bh], axis=0).astype(self.dtype)
        self.C = np.concatenate([F.C, -Ch], axis=1).astype(self.dtype)
        self.Ch = Ch
        self.order = self.N + Ah.shape[0]
        self.cache = {"solver": _BlockSolver(F, Ah)}

    def apply_A(self, X: np.ndarray, adjoint: bool = False) -> np.ndarray:
        Ah = self.Ah.conj().T if adjoint else self.Ah
        return np.concatenate([self.F.apply_A(X[: self.N], adjoint), Ah @ X[self.N:]], axis=0)

    def apply_E(self, X: np.ndarray, adjoint: bool = False) -> np.ndarray:
        return np.concatenate([self.F.apply_E(X[: self.N], adjoint), X[self.N:]], axis=0)


@dataclass
class ErrorNorm:
    """``||F - H||_2`` from the error system's Gramian (module docstring).

    Attributes:
        error: the computed norm (a lower bound up to rounding; see ``resolution``).
        resolution: its absolute uncertainty (truncation tail plus rounding, module docstring).
        target_norm, model_norm: ``||F||_2`` and ``||H||_2`` from the same factor's blocks.
        steps: ADI steps taken.
    """

    error: float
    resolution: float
    target_norm: float
    model_norm: float
    steps: int

    @property
    def reported(self) -> float:
        """The error, or the resolution when the error is below it."""
        return max(self.error, self.resolution)


def error_norm(F: SparseSystem, Ah: np.ndarray, Bh: np.ndarray, Ch: np.ndarray, Dh: np.ndarray,
               tol: float) -> ErrorNorm:
    """``ErrorNorm`` of ``F - H`` for a stable ``H = (Ah, Bh, Ch, Dh)`` (checked by the caller).

    Args:
        F: a stable ``SparseSystem``. Ah, Bh, Ch, Dh: the small model's numpy matrices.
        tol: the ADI residual tolerance (relative, as ``lr_gramian``).

    Returns:
        ``ErrorNorm``.

    Raises:
        ConvergenceError: ADI did not converge in ``ERROR_MAX_ITER`` steps.
        FactorizationMemoryError: a shifted sparse LU would not fit in memory.
    """
    Es = _ErrorSystem(F, Ah, Bh, Ch)
    shifts = adi_shifts(F, False)
    if Es.is_complex and not F.is_complex:
        # F's list holds one shift of each conjugate pair (real steps); a complex block system needs both
        shifts = [q for p in shifts for q in ((p, p.conjugate()) if p.imag != 0 else (p,))]
    N = F.order
    parts = {"e": 0.0, "f": 0.0, "h": 0.0, "steps": 0}
    recent: list[tuple[float, float]] = []  # (error part, rounding scale) of the last blocks

    def on_block(blk: np.ndarray) -> None:
        cf, ch = F.C @ blk[:N], Es.Ch @ blk[N:]
        e, f, h = (float(np.linalg.norm(x) ** 2) for x in (cf - ch, cf, ch))
        parts["e"] += e
        parts["f"] += f
        parts["h"] += h
        parts["steps"] += 1
        recent.append((e, f + h))
        del recent[: -cycle_len]

    cycle_len = 2 * max(len(shifts), N_SHIFTS)  # blocks per cycle (a real step of a pair adds two)

    def done() -> bool:
        last = sum(e for e, _ in recent)
        noise = ROUND_EPS**2 * sum(s for _, s in recent)
        return len(recent) >= cycle_len // 2 and last <= max(CYCLE_RTOL * parts["e"], noise)

    res = adi_run(Es, False, min(tol, ERROR_TOL), ERROR_MAX_ITER, on_block, shifts=shifts, done=done)
    e2, f2, h2 = parts["e"], parts["f"], parts["h"]
    if F.discrete:
        dd = float(np.linalg.norm(F.D - Dh) ** 2)
        e2, f2, h2 = e2 + dd, f2 + float(np.linalg.norm(F.D) ** 2), h2 + float(np.linalg.norm(Dh) ** 2)
    # the rest of the sum, tr(C_e P_W C_e^H) for the residual W: modelled as the relative residual
    # times the scale of the squares (a bound-like model; the last cycle's part where that is larger)
    tail = max(sum(e for e, _ in recent), res * (f2 + h2))
    resolution = (math.sqrt(e2 + tail) - math.sqrt(e2)) + ROUND_EPS * math.sqrt(f2 + h2)
    return ErrorNorm(error=math.sqrt(e2), resolution=resolution, target_norm=math.sqrt(f2),
                     model_norm=math.sqrt(h2), steps=parts["steps"])
