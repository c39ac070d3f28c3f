r"""The low-rank ADI iteration as a resumable state, and the recorded run of a target.

``AdiRun`` holds what the iteration of ``_adi`` carries from step to step (the residual factor ``W``,
the cyclic shifts and where the cycle stands, the blocks of the current cycle for projection shifts)
so that an iteration can stop and later go on. ``adi_run`` drives one to a tolerance.

``RecordedRun`` is the controllability iteration of a target ``F`` that remembers, per step, its
shift, the outputs ``C V`` of its blocks and ``W^H W`` (small matrices), but not the blocks: the
error system ``F - H`` of every small model ``H`` is block diagonal, so its ADI iterate's ``F``
block is this run whatever ``H`` is (``_errsys``). One run per target (``recorded_run``, cached on
``F``) serves every model measured against it, and ``lr_gramian``'s controllability factor, when
it is computed first, is this run's first steps (its blocks handed out as they are made): the error
measurement then goes on from the Gramian's last shifts, whose factorizations are still cached.

``RecordedRun.noise`` measures the rounding in the recorded outputs. A shifted sparse solve's forward
error lies in the slow modes (those of small ``|lambda - p|``), which are the ones ``C`` sees, and grows
with the pencil's conditioning (``||A|| / |p|``: about ``N`` on a 2-D grid). So the outputs carry errors
far above ``eps`` at scale: on the 2-D heat model at ``N = 10^6`` (6-shift cycles), balanced truncations
of orders 18 and 20, whose pointwise errors are 20x apart (checked with refined solves), both measured
5.6e-11 relative. The probe is a twin of the run whose every solve is refined once with its residual
in extended precision (``np.longdouble``: the correction is the solve's forward error). It replays the
recorded shifts, and the squared differences of the twin's outputs from the recorded ones are summed
until a cycle of steps adds less than ``NOISE_RTOL`` of the sum. On that model it measured 5.58e-11.
Sparse matrices only (an operator's entries are not at hand). Where ``np.longdouble`` is double
(Windows, Apple silicon) the residual is summed in double-double instead (``DoubleDoubleCSR``: exact
products, pairwise double-double row sums, ``analysis._ddarith``), slower but as accurate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import scipy.sparse as sps

from ..._errors import ConvergenceError
from ..analysis._ddarith import cdd, cdd_mul, cdd_sub, dd_add, dd_mul, dd_neg, dd_sum
from ._adi import REFRESH_GAIN, adi_rhs, adi_shifts, adi_step, cycle_gain, projection_shifts, stagnated
from ._solves import solver_of


class AdiRun:
    """Low-rank ADI (``_adi``) for the (adjoint) Gramian of ``sys``, one ``step`` at a time.

    Args:
        sys: a ``SparseSystem`` or a duck-typed block system (``_adi``).
        adjoint: the observability Gramian (``C^H`` as right-hand side).
        solver: the shifted solver (default ``solver_of(sys)``).
        shifts: the cyclic shifts (default ``adi_shifts(sys, adjoint)``).
        complex_steps: complex steps even for a real system (a complex companion block: both shifts
            of each pair are listed then).

    Attributes:
        W: the residual factor; res: the relative residual ``||W^H W|| / ||W_0^H W_0||``;
        steps: steps taken; shifts: the current cyclic shifts.
    """

    def __init__(self, sys, adjoint: bool = False, solver=None, shifts: list[complex] | None = None,
                 complex_steps: bool = False):
        self.sys, self.adjoint = sys, adjoint
        self.solver = solver or solver_of(sys)
        self.real = not (sys.is_complex or complex_steps)
        self.W = adi_rhs(sys, sys.C.conj().T if adjoint else sys.B, self.real)
        self.gram0 = self.W.conj().T @ self.W
        self.res0 = float(np.linalg.norm(self.gram0, 2))
        self.res = 1.0 if self.res0 > 0 else 0.0
        self.shifts = self._expand(list(shifts) if shifts is not None else adi_shifts(sys, adjoint))
        self.steps, self.j, self.cycle, self.res_cycle = 0, 0, [], 1.0

    def _expand(self, shifts: list[complex]) -> list[complex]:
        if self.real or self.sys.is_complex:
            return shifts
        # a real system's list holds one shift of each conjugate pair (real steps); complex steps need both
        return [q for p in shifts for q in ((p, p.conjugate()) if p.imag != 0 else (p,))]

    def step(self, tol: float, stall: bool = True) -> tuple[complex, list[np.ndarray], bool] | None:
        """One step: ``(shift, blocks, cycle_start)``, or None (no step) where ``stall`` and the
        residual stagnates at the rounding level at the end of a cycle (more steps add nothing).

        At the end of a cycle that gained less than ``REFRESH_GAIN`` (per ``N_SHIFTS`` steps,
        ``cycle_gain``) while the residual is above ``tol``, the next cycle uses projection shifts
        (Ritz values of the pencil on the cycle's iterates: they follow the modes that the residual
        still holds, e.g. lightly damped oscillations).
        """
        start = self.j == len(self.shifts) or self.steps == 0
        if self.j == len(self.shifts):
            if stall and stagnated(self.res, self.res_cycle, len(self.shifts)):
                return None
            if self.res > tol and self.res > cycle_gain(REFRESH_GAIN, len(self.shifts)) * self.res_cycle and self.cycle:
                new = projection_shifts(self.sys, np.concatenate(self.cycle, axis=1), self.adjoint,
                                        len(adi_shifts(self.sys, self.adjoint)))
                self.shifts = self._expand(new) if new else self.shifts
            self.j, self.cycle, self.res_cycle = 0, [], self.res
        p = self.shifts[self.j]
        self.j += 1
        self.W, blocks = adi_step(self.sys, self.solver, self.W, p, self.adjoint, self.real)
        self.cycle += blocks
        self.steps += 1
        self.res = float(np.linalg.norm(self.W.conj().T @ self.W, 2) / self.res0) if self.res0 > 0 else 0.0
        return p, blocks, start


def adi_run(sys, adjoint: bool, tol: float, max_iter: int, on_block: Callable[[np.ndarray], None],
            solver=None, shifts: list[complex] | None = None, done: Callable[[], bool] | None = None,
            run: AdiRun | None = None) -> float:
    """Run low-rank ADI (``_adi``) for the (adjoint) Gramian of ``sys``, handing each new factor
    block to ``on_block``; returns the relative residual reached.

    Args:
        sys: a ``SparseSystem`` or a duck-typed block system (``_adi``).
        adjoint: the observability Gramian (``C^H`` as right-hand side) instead of controllability.
        tol: stop when ``||W^H W|| <= tol ||B_c^H B_c||`` and ``done()`` (if given) is true.
        max_iter: at most this many steps. on_block: receives each (N, k) block of ``Z``.
        solver: the shifted solver (default ``solver_of(sys)``). shifts: the cyclic shifts (default
            ``adi_shifts(sys, adjoint)``).
        done: an extra stopping test evaluated once the residual is below ``tol``.
        run: go on with this (fresh) run instead of a new one (``RecordedRun``).

    Returns:
        The relative residual ``||W^H W|| / ||B_c^H B_c||`` reached (a float).

    Raises:
        ConvergenceError: not converged after ``max_iter`` steps.
    """
    run = run if run is not None else AdiRun(sys, adjoint, solver, shifts)
    while run.res > tol or (done is not None and not done()):
        if run.steps >= max_iter:
            raise ConvergenceError(f"sys: low-rank ADI for the {'observability' if adjoint else 'controllability'} "
                                   f"Gramian reached a relative residual of {run.res:.2e} after {run.steps} steps "
                                   f"(tolerance {tol:.1e}); pass a larger tol (less accurate norms)")
        out = run.step(tol)
        if out is None:
            break
        for blk in out[1]:
            on_block(blk)
    return run.res


@dataclass
class RecordedStep:
    """One step of a ``RecordedRun``: its shift, ``C V`` for each of its blocks, ``W^H W`` after
    it, and whether it starts a cycle."""

    shift: complex
    outputs: list
    gram: np.ndarray
    cycle_start: bool


#: whether ``np.longdouble`` carries more digits than double (the residuals of ``_Refined``)
EXTENDED = bool(np.finfo(np.longdouble).eps < np.finfo(np.float64).eps)
#: the twin of ``RecordedRun.noise`` stops once a cycle of steps adds less than this fraction of its sum
NOISE_RTOL = 1e-2


class ExtendedCSR:
    """A sparse matrix whose products ``M @ X`` are summed in ``np.longdouble`` (real and imaginary
    parts apart for a real ``M``); its entries are converted once, for every product of a run."""

    def __init__(self, M):
        M = sps.csr_matrix(M)
        self.shape, self.indices = M.shape, M.indices
        self.real = not np.iscomplexobj(M.data)
        self.data = M.data.astype(np.longdouble if self.real else np.clongdouble)
        self.starts, self.empty = M.indptr[:-1], M.indptr[:-1] == M.indptr[1:]

    def _rowsum(self, v: np.ndarray) -> np.ndarray:
        # reduceat gives an empty row the next entry: a zero appended, and masked
        r = np.add.reduceat(np.append(v, v.dtype.type(0)), self.starts)
        r[self.empty] = 0
        return r

    def __matmul__(self, X: np.ndarray) -> np.ndarray:
        X2 = X.reshape(X.shape[0], -1)
        out = np.empty((self.shape[0], X2.shape[1]),
                       np.clongdouble if np.iscomplexobj(X2) or not self.real else np.longdouble)
        for k in range(X2.shape[1]):
            x = X2[self.indices, k]
            if self.real and np.iscomplexobj(x):
                out[:, k] = (self._rowsum(self.data * x.real.astype(np.longdouble))
                             + 1j * self._rowsum(self.data * x.imag.astype(np.longdouble)))
            else:
                out[:, k] = self._rowsum(self.data * x.astype(self.data.dtype))
        return out.reshape((self.shape[0],) + X.shape[1:])


class DoubleDoubleCSR:
    """A sparse matrix whose products with a vector are exact products summed pairwise in
    double-double per row (``_ddarith``), for platforms whose ``np.longdouble`` is double. The rows
    are laid out padded to the longest one (a stencil's or an element's few entries)."""

    def __init__(self, M):
        M = sps.csr_matrix(M)
        n, lens = M.shape[0], np.diff(M.indptr)
        w = int(lens.max(initial=0))
        rows = np.repeat(np.arange(n), lens)
        pos = np.arange(M.nnz) - np.repeat(M.indptr[:-1], lens)
        self.idx = np.zeros((n, w), dtype=np.int64)
        self.idx[rows, pos] = M.indices
        self.parts = []  # (real part, imaginary part or None), padded with zeros
        for part in (M.data.real, M.data.imag if np.iscomplexobj(M.data) else None):
            if part is not None:
                P = np.zeros((n, w))
                P[rows, pos] = part
                self.parts.append(P)
        if len(self.parts) == 1:
            self.parts.append(None)

    def _real_matvec(self, P: np.ndarray, y: np.ndarray) -> tuple:
        return dd_sum(dd_mul((P, np.zeros_like(P)), (y[self.idx], np.zeros(self.idx.shape))), axis=1)

    def matvec(self, y: np.ndarray) -> tuple:
        """``M y`` for one (real or complex) vector as a double-double complex ``(re, im)``."""
        Mr, Mi = self.parts
        yr, yi = np.asarray(y.real, float), np.asarray(y.imag, float) if np.iscomplexobj(y) else None
        zero = (np.zeros(self.idx.shape[0]), np.zeros(self.idx.shape[0]))
        re = self._real_matvec(Mr, yr)
        im = self._real_matvec(Mr, yi) if yi is not None else zero
        if Mi is not None:
            re = dd_add(re, dd_neg(self._real_matvec(Mi, yi))) if yi is not None else re
            im = dd_add(im, self._real_matvec(Mi, yr))
        return re, im


class _Refined:
    """The shifted solves of ``solver`` refined once with the residual ``X - (a A + b E) Y`` summed in
    extended precision (module docstring; forward solves only: the recorded run's): in
    ``np.longdouble`` where it is wider than double, else in double-double (``double_double``)."""

    def __init__(self, sys, solver, double_double: bool = not EXTENDED):
        self.solver, self.dd = solver, double_double
        make = DoubleDoubleCSR if double_double else ExtendedCSR
        self.A = make(sys.A)
        self.E = None if sys.E is None else make(sys.E)

    def solve(self, a: complex, b: complex, X: np.ndarray, adjoint: bool = False) -> np.ndarray:
        if adjoint:
            raise NotImplementedError("the recorded run's solves are forward solves")
        Y = self.solver.solve(a, b, X, adjoint)
        R = self._residual_dd(a, b, X, Y) if self.dd else self._residual_ld(a, b, X, Y)
        return Y + self.solver.solve(a, b, R, adjoint)

    def _residual_ld(self, a, b, X, Y) -> np.ndarray:
        # a real Y comes from real coefficients; complex coefficients give a complex Y
        ext = np.clongdouble if np.iscomplexobj(Y) else np.longdouble
        a_, b_ = (ext(a), ext(b)) if ext is np.clongdouble else (ext(complex(a).real), ext(complex(b).real))
        EY = Y.astype(ext) if self.E is None else self.E @ Y
        return (np.asarray(X).astype(ext) - a_ * (self.A @ Y) - b_ * EY).astype(Y.dtype)

    def _residual_dd(self, a, b, X, Y) -> np.ndarray:
        X2, Y2 = np.asarray(X).reshape(X.shape[0], -1), Y.reshape(Y.shape[0], -1)
        a_, b_ = cdd(complex(a)), cdd(complex(b))
        R = np.empty(Y2.shape, dtype=np.result_type(X2, Y2))
        for k in range(Y2.shape[1]):
            EY = cdd(Y2[:, k]) if self.E is None else self.E.matvec(Y2[:, k])
            r = cdd_sub(cdd_sub(cdd(X2[:, k]), cdd_mul(a_, self.A.matvec(Y2[:, k]))), cdd_mul(b_, EY))
            re = r[0][0] + r[0][1]
            R[:, k] = re + 1j * (r[1][0] + r[1][1]) if np.iscomplexobj(R) else re
        return R.reshape(Y.shape)


class RecordedRun(AdiRun):
    """The controllability ADI of a target, recorded step by step (module docstring)."""

    def __init__(self, sys, complex_steps: bool):
        super().__init__(sys, False, complex_steps=complex_steps)
        self.record: list[RecordedStep] = []
        self._twin: tuple | None = None  # (refined solver, twin's W, squared output differences per step)
        self._twin_done = False

    @property
    def probes(self) -> bool:
        """Whether ``noise`` can measure: a target with sparse matrices (the residuals in
        ``np.longdouble`` where it is wider than double, else in double-double)."""
        return sps.issparse(getattr(self.sys, "A", None))

    @property
    def probe_steps(self) -> int:
        """Steps the twin of ``noise`` has taken (two solves each: the solve and its refinement)."""
        return len(self._twin[2]) if self._twin is not None else 0

    def noise(self, steps: int) -> float:
        """``sum_k ||C (V_k' - V_k)||_F^2`` over the first ``steps`` recorded steps, ``V'`` the blocks of
        the twin with refined solves (module docstring): the squared H2 size of the rounding in the
        recorded outputs. The twin goes on from where an earlier call stopped, and stops for good once
        a cycle of steps adds less than ``NOISE_RTOL`` of the sum."""
        if self._twin is None:
            self._twin = (_Refined(self.sys, self.solver), adi_rhs(self.sys, self.sys.B, self.real), [])
        solver, W, sq = self._twin
        cycle = max(len(self.shifts), 1)
        while not self._twin_done and len(sq) < min(steps, len(self.record)):
            rec = self.record[len(sq)]
            W, blocks = adi_step(self.sys, solver, W, rec.shift, False, self.real)
            sq.append(sum(float(np.linalg.norm(self.sys.C @ b - y) ** 2) for b, y in zip(blocks, rec.outputs)))
            last = sum(sq[-cycle:])
            self._twin_done = len(sq) >= 2 * cycle and last <= NOISE_RTOL * sum(sq)
        self._twin = (solver, W, sq)
        return float(sum(sq[:steps]))

    def step(self, tol: float, stall: bool = True):
        out = super().step(tol, stall)
        if out is not None:
            p, blocks, start = out
            self.record.append(RecordedStep(p, [self.sys.C @ b for b in blocks], self.W.conj().T @ self.W, start))
        return out

    def extend(self, tol: float) -> None:
        """One more recorded step (never stopped by stagnation: a model's block may need it)."""
        self.step(tol, stall=False)


def recorded_run(sys, complex_steps: bool) -> RecordedRun:
    """The target's ``RecordedRun`` (real or complex steps), created on first use and cached on ``sys``."""
    complex_steps = bool(complex_steps) and not sys.is_complex  # a complex system's steps are complex anyway
    key = ("adi-record", complex_steps)
    if key not in sys.cache:
        sys.cache[key] = RecordedRun(sys, complex_steps)
    return sys.cache[key]
