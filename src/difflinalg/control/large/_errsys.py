r"""``||F - H||_2`` for a large sparse ``F`` and a small dense ``H`` without cancellation.

The formula ``||F||^2 + ||H||^2 - 2 Re <F, H>`` subtracts numbers of size ``||F||^2`` to get
``||F - H||^2``: its absolute error (the low-rank Gramian's truncation of ``||F||^2``, measured from
``1e-13`` to ``1e-9`` of it on the benchmark models) hides relative errors below ``3e-7 .. 3e-5``.
Here the error system itself is measured instead,

    A_e = diag(A_F, A_H),  E_e = diag(E_F, I),  B_e = [B_F; B_H],  C_e = [C_F, -C_H],  D_e = D_F - D_H,

by low-rank ADI on its controllability Gramian ``P_e ~ Z Z^H`` (``_adi``): ``||F - H||^2 =
||C_e Z||_F^2 (+ ||D_e||_F^2 in discrete time)``, a sum of positive terms, one per ADI block. The
pencil is block diagonal, so the ADI iterate's F block is ``F``'s own controllability ADI with the
same shifts, whatever ``H`` is: it runs once per target (``_adi_run.RecordedRun``, cached on ``F``),
recording per step its shift, the outputs ``C_F V_k`` of its blocks and ``W_F^H W_F``, and is
extended on demand; every model measured against ``F`` replays the shifts on its own small block
(dense solves) and combines. Measuring k candidates costs one sparse ADI run instead of k, and when
``F``'s controllability Gramian was computed first, that run's first steps were the Gramian's.
``||F||`` comes out of the same run.

Error model (``ErrorNorm.resolution``). (1) Truncation: ``P_e - Z Z^H`` is the Gramian of the
residual ``W``, positive semidefinite, so the sum is a lower bound. ``F`` and ``H`` agree on the slow
modes that the first shift cycles resolve, so the terms of the error come late: the iteration runs
until the relative residual is below ``ERROR_TOL`` (far below the Gramian's tolerance; or until it
stalls at rounding) and the last cycle of shifts adds at most ``CYCLE_RTOL`` of the sum. The rest is
modelled as ``res (||F||^2 + ||H||^2)`` (the residual's share of the squares). A model whose poles the
target's shifts cover slowly (another reductor's: pyMOR's IRKA on convection-diffusion, whose error
this model inflated 800x) stalls or reaches the step limit with the target's block done and its own
not: the rest of its block, ``||H_W||^2``, is then a small Lyapunov equation, and the target's
residual, modelled as above, bounds what is left (cross term included). (2) Rounding of the target's
side: each block's ``C_F v_F - C_H v_H`` is a difference of computed vectors. The recorded ``C_F
v_F`` are those of a nearby target ``F~``, so the value is ``||F~ - H||``, within ``||F~ - F||`` of
``||F - H||`` (triangle inequality). A floor of ``ROUND_EPS sqrt(||F||^2 + ||H||^2)`` (solves
accurate to a few hundred ``eps``) holds for well-conditioned pencils; at scale the solves' forward
error in the slow modes is far larger (``_adi_run``: 5.6e-11 relative on the 2-D heat model at ``N =
10^6``), so it is measured: ``||F~ - F||`` is estimated by ``RecordedRun.noise`` (a twin run with
refined solves, once per target: about one more solve per recorded step until the estimate settles),
doubled (one sample of the rounding, the recorded run's own deviation being another). (3) Where the
value rests on the model's Lyapunov tail, the model's norm from the replayed blocks plus that tail is
compared with a dense Lyapunov solve for the whole norm; a relative error ``d`` of its outputs moves
``||H||^2`` by about ``2 d ||H||^2``, so the difference over ``2 ||H||`` is added (a non-normal model,
eigenvector condition 4e9: 1.5e-7 of ``||F||``). Elsewhere that gap measures the dense solve's own
rounding, not the replay's (rarl2's convection-diffusion models: a gap of 1e-9 of ``||F||`` where the
dense extended-precision yardstick and this one agree to 1e-16), so it is not counted. A value below the resolution is reported as the resolution: never 0, never noise below
it. Checked against the dense extended-precision ``h2_error``, a frequency-domain quadrature with
refined solves, and solves with a known injected error (``tests/control/large/test_large_errsys.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla

from ..._errors import ConvergenceError
from ._adi import ADI_MAX_ITER, N_SHIFTS, adi_rhs, adi_step, stagnated
from ._adi_run import recorded_run
from ._system import SparseSystem

#: the iteration stops once a full cycle of shifts adds at most this fraction of ||F - H||^2 ...
CYCLE_RTOL = 1e-8
#: ... and the relative residual is below this (or stalls at rounding): F and H agree on the slow
#: modes the first cycles resolve, so the error's own terms come late (heat, N = 1024, order 18:
#: stopping at the Gramian's 1e-15 gave 1.4e-14 for a true 6.49e-13)
ERROR_TOL = 1e-26
#: relative accuracy of the computed ADI blocks (sparse LU solves), in units of the norms: 512 eps
ROUND_EPS = 512 * float(np.finfo(float).eps)
#: the error ADI runs until the extra test holds; more steps than the Gramian's are allowed for it
ERROR_MAX_ITER = 2 * ADI_MAX_ITER
#: the measured rounding counts twice (module docstring)
NOISE_SAFETY = 2.0


class _Small:
    """The small model's block ``(A_h, I)`` with the interface ``_adi.adi_step`` needs (its own
    dense solver)."""

    def __init__(self, Ah: np.ndarray, discrete: bool):
        self.Ah, self.discrete, self.eye = Ah, discrete, np.eye(Ah.shape[0])

    def apply_A(self, X: np.ndarray, adjoint: bool = False) -> np.ndarray:
        return (self.Ah.conj().T if adjoint else self.Ah) @ X

    def apply_E(self, X: np.ndarray, adjoint: bool = False) -> np.ndarray:
        return X

    def solve(self, a: complex, b: complex, X: np.ndarray, adjoint: bool = False) -> np.ndarray:
        M = a * self.Ah + b * self.eye
        return np.linalg.solve(M.conj().T if adjoint else M, X)


def _block_h2(H: _Small, W: np.ndarray, C: np.ndarray) -> float:
    """``||C L||_F^2`` for ``L L^H`` the Gramian of the model block with input ``W`` (its residual:
    the tail; its first factor ``B_c``: its whole squared norm) in the ADI's pencil (``_adi``), by a
    dense Lyapunov solve: ``A X + X A^H + W W^H = 0``, or in discrete time
    ``A X A^H - X + W W^H / 2 = 0`` (the Cayley pencil's equation with ``W = sqrt(2) B``-scaled
    residuals, ``_adi``'s module docstring)."""
    if not np.any(W):
        return 0.0
    Q = W @ W.conj().T
    X = sla.solve_discrete_lyapunov(H.Ah, Q / 2) if H.discrete else sla.solve_continuous_lyapunov(H.Ah, -Q)
    return max(float(np.real(np.trace(C @ X @ C.conj().T))), 0.0)


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
    run = recorded_run(F, any(np.iscomplexobj(x) for x in (Ah, Bh, Ch)))
    H = _Small(Ah, F.discrete)
    Wh = adi_rhs(F, Bh, run.real)
    n0 = np.linalg.norm(run.gram0 + Wh.conj().T @ Wh, 2)
    parts = {"e": 0.0, "f": 0.0, "h": 0.0, "steps": 0}
    recent: list[tuple[float, float, float]] = []  # per block of the last cycle: error, target's part, scale
    cycle_len = 2 * max(len(run.shifts), N_SHIFTS)  # blocks per cycle (a real step of a pair adds two)

    def done(k: int) -> bool:
        # the last cycle added at most CYCLE_RTOL of the error (k = 0), or the target's blocks did
        # (k = 1: what the model's block still holds is the Lyapunov tail below)
        last = sum(x[k] for x in recent)
        noise = ROUND_EPS**2 * sum(x[2] for x in recent)
        return len(recent) >= cycle_len // 2 and last <= max(CYCLE_RTOL * parts["e"], noise)

    # the loop of ``adi_run`` on the error system, with the F block read from (or added to) the run
    tol_e = min(tol, ERROR_TOL)
    res, res_f, res_cycle, i = (1.0 if n0 > 0 else 0.0), 1.0, 1.0, 0
    model_tail = False
    while res > tol_e or not done(0):
        if i >= ERROR_MAX_ITER:
            if res_f <= tol_e and done(1):
                model_tail = True  # the target is done; the model's block is not (poles its shifts miss)
                break
            raise ConvergenceError(f"sys: low-rank ADI on the error system reached a relative residual of "
                                   f"{res:.2e} after {i} steps (tolerance {tol_e:.1e}); pass a larger tol")
        if i == len(run.record):
            run.extend(tol_e)
        step = run.record[i]
        if step.cycle_start and i > 0:
            if stagnated(res, res_cycle, len(run.shifts)):
                model_tail = res_f <= tol_e and done(1)
                break  # (as ``AdiRun.step``)
            res_cycle = res
        Wh, blocks = adi_step(H, H, Wh, step.shift, False, run.real)
        for cf, blk in zip(step.outputs, blocks):
            ch = Ch @ blk
            e, f, h = (float(np.linalg.norm(x) ** 2) for x in (cf - ch, cf, ch))
            parts["e"] += e
            parts["f"] += f
            parts["h"] += h
            parts["steps"] += 1
            recent.append((e, f, f + h))
            del recent[: -cycle_len]
        i += 1
        if n0 > 0:
            res_f = float(np.linalg.norm(step.gram, 2) / n0)
            res = float(np.linalg.norm(step.gram + Wh.conj().T @ Wh, 2) / n0)
        else:
            res = res_f = 0.0
    e2, f2, h2 = parts["e"], parts["f"], parts["h"]
    if F.discrete:
        dd = float(np.linalg.norm(F.D - Dh) ** 2)
        e2, f2, h2 = e2 + dd, f2 + float(np.linalg.norm(F.D) ** 2), h2 + float(np.linalg.norm(Dh) ** 2)
    # the rest of the sum, tr(C_e P_W C_e^H) for the residual W = [W_F; W_H], is ||F_W - H_W||^2 for
    # the systems (A_F, W_F, C_F) and (A_H, W_H, C_H). Where both blocks are done it is modelled as the
    # relative residual times the scale of the squares (the last cycle's part where that is larger).
    # Where only the target's is, at a stall or the step limit (``model_tail``: a model whose poles
    # the target's shifts cover slowly, another reductor's), ||H_W||^2 is a small Lyapunov equation,
    # added to the value, and the target's part, modelled the same way from its own residual, bounds
    # the rest (cross term included).
    rounding = ROUND_EPS * math.sqrt(f2 + h2)
    if run.probes:
        rounding = max(rounding, NOISE_SAFETY * math.sqrt(run.noise(i)))
    if model_tail:
        # the value now rests on a dense Lyapunov solve: the model's norm from the replay plus that
        # tail against a dense solve for the whole norm says how far the two computations agree (a
        # non-normal model, another reductor's, eigenvector condition 4e9: 1.6e-7 in the squares);
        # in norm units, a relative error d of the model's outputs moves ||H||^2 by ~2 d ||H||^2
        hw2 = _block_h2(H, Wh, Ch)
        exact_h2 = _block_h2(H, adi_rhs(F, Bh, run.real), Ch)
        dh = abs(parts["h"] + hw2 - exact_h2) / (2 * math.sqrt(exact_h2)) if exact_h2 > 0 else 0.0
        rounding += dh
        phi2 = max(sum(x[1] for x in recent), res_f * (f2 + h2))
        known, e2, h2 = e2, e2 + hw2, h2 + hw2
        hw, phi = math.sqrt(hw2), math.sqrt(phi2)
        spread = max(math.sqrt(known + (hw + phi + dh) ** 2) - math.sqrt(e2),
                     math.sqrt(e2) - math.sqrt(known + max(hw - phi - dh, 0.0) ** 2))
    else:
        tail = max(sum(x[0] for x in recent), res * (f2 + h2))
        spread = math.sqrt(e2 + tail) - math.sqrt(e2)
    resolution = spread + rounding
    return ErrorNorm(error=math.sqrt(e2), resolution=resolution, target_norm=math.sqrt(f2),
                     model_norm=math.sqrt(h2), steps=parts["steps"])
