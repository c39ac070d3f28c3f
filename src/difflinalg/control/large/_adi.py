r"""Low-rank ADI for Lyapunov equations of sparse (descriptor) pencils: shifts and the iteration.

The controllability Gramian ``P`` of ``(A, B, E)`` solves (Penzl 2000; Benner, Kuerschner, Saak
2013 for complex shifts of real systems)

    A P E^H + E P A^H + B B^H = 0                    (continuous)
    A P A^H - E P E^H + B B^H = 0                    (discrete)

The discrete equation is the continuous one of the Cayley pencil ``(A_c, E_c) = (A - E, A + E)``
with ``B_c = sqrt(2) B`` (expand ``(A - E) P (A + E)^H + (A + E) P (A - E)^H = 2 (A P A^H - E P E^H)``),
so one low-rank ADI iteration serves both: with shifts ``p_k`` (Re < 0), ``W_0 = B_c``,

    V_k = (A_c + p_k E_c)^{-1} W_{k-1},   W_k = W_{k-1} - 2 Re(p_k) E_c V_k,   Z += sqrt(-2 Re p_k) V_k

(a conjugate pair of a real system in one real step: ``W += g^2 E_c (Re V + d Im V)``, ``Z +=
[g (Re V + d Im V), g sqrt(d^2 + 1) Im V]``, ``g = 2 sqrt(-Re p)``, ``d = Re p / Im p``) gives
``P ~ Z Z^H`` with residual ``W W^H``: ``P - Z Z^H`` is the Gramian of ``(A, W, E)``, positive
semidefinite, so every partial factor is a lower bound and each block adds a positive term. The
observability Gramian is that of the adjoint pencil ``(A^H, E^H, C^H)``. Shifts: Ritz values of the
pencil from a few Arnoldi steps with ``E_c^{-1} A_c`` and ``A_c^{-1} E_c`` (mirrored to the left half
plane), a set of at most ``N_SHIFTS`` chosen by Penzl's heuristic and used cyclically, so the
factorizations are made once (``_solves``); a cycle that gains less than ``REFRESH_GAIN`` is followed
by projection shifts (Ritz values on the cycle's iterates).

Number of shifts (``shift_budget``): at most as many as the solver's factorization cache holds. A
cycle longer than the cache refactors at every step (least recently used goes first, and a cycle
always asks for the oldest): at N = 1e6 on a 2-D grid one real LU takes 5 s and 1 GB while a solve
with it takes 0.1 s, so five shifts cycled three times as often cost far less than sixteen
refactorized ones. The ADI residual after a set of steps depends only on the multiset of shifts
(the factors ``(A - conj(p) E)(A + p E)^{-1}`` commute), so fewer distinct shifts cost steps, not
accuracy; below the budget nothing changes.

The iteration only needs ``sys.apply_A``, ``sys.apply_E``, ``sys.B``, ``sys.C`` and a solver with
``solve(a, b, X, adjoint)`` (``solver_of(sys)``), so block systems (the error system of
``_errsys``) run through it as well.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg as sla

from ._solves import solver_of
from ._system import SparseSystem

N_SHIFTS = 16
#: fewest shifts per cycle, even where the cache holds fewer factorizations (then ADI refactors)
MIN_SHIFTS = 2
ARNOLDI_STEPS = (16, 12)  # steps with E_c^{-1} A_c (large Ritz values) and A_c^{-1} E_c (small)
ADI_TOL = 1e-15
ADI_MAX_ITER = 600
#: a cycle of N_SHIFTS shifts that reduces the residual by less than this factor is followed by new
#: shifts (a shorter cycle: the same factor per step, ``cycle_gain``)
REFRESH_GAIN = 1e-2
#: ... and one that gains less than STALL_GAIN with the residual below STALL_OK ends the iteration
STALL_GAIN = 0.5
STALL_OK = 1e-12
#: default compression of a factor: ``Z Z^H`` kept to this fraction of ``||Z||^2`` (the Gramian's own
#: accuracy); the Hankel singular values near the factors' rank need more (``_reduce.TIGHT_COMPRESS``)
COMPRESS_RTOL = 1e-15


def _pencil(sys) -> tuple[float, float, float, float, float]:
    """``(a1, b1, a2, b2, s)``: ``A_c = a1 A + b1 E``, ``E_c = a2 A + b2 E``, ``B_c = s B``."""
    if sys.discrete:
        return 1.0, -1.0, 1.0, 1.0, math.sqrt(2.0)
    return 1.0, 0.0, 0.0, 1.0, 1.0


def _combo(sys, a: float, b: float, X: np.ndarray, adjoint: bool) -> np.ndarray:
    out = 0
    if a:
        out = out + a * sys.apply_A(X, adjoint)
    if b:
        out = out + b * sys.apply_E(X, adjoint)
    return out


def _arnoldi_ritz(op, v0: np.ndarray, k: int) -> np.ndarray:
    """Ritz values of ``op`` after ``k`` Arnoldi steps from ``v0`` (fewer on breakdown)."""
    n = v0.shape[0]
    k = min(k, n)
    Q = np.zeros((n, k + 1), dtype=complex if np.iscomplexobj(v0) else float)
    H = np.zeros((k + 1, k), dtype=Q.dtype)
    Q[:, 0] = v0 / np.linalg.norm(v0)
    for j in range(k):
        w = op(Q[:, j])
        for _ in range(2):  # re-orthogonalize once
            h = Q[:, : j + 1].conj().T @ w
            w = w - Q[:, : j + 1] @ h
            H[: j + 1, j] += h
        H[j + 1, j] = np.linalg.norm(w)
        if H[j + 1, j] <= 1e-12 * np.abs(H[: j + 1, j]).max():
            return np.linalg.eigvals(H[: j + 1, : j + 1])
        Q[:, j + 1] = w / H[j + 1, j]
    return np.linalg.eigvals(H[:k, :k])


def _penzl(cands: np.ndarray, count: int, real: bool) -> list[complex]:
    """Penzl's heuristic: shifts from the candidates (Re < 0) that make the ADI rational function
    ``prod |(t - p) / (t + p)|`` small over the candidate set; conjugate pairs kept together."""
    cands = np.unique(np.round(cands, 12))
    if real:
        cands = cands[cands.imag >= 0]

    def rho(t: np.ndarray, P: list[complex]) -> np.ndarray:
        out = np.ones(t.shape)
        for p in P:
            out *= np.abs((t - p) / (t + p))
            if real and p.imag != 0:
                out *= np.abs((t - np.conj(p)) / (t + np.conj(p)))
        return out

    pts = np.r_[cands, cands.conj()] if real else cands
    first = min(cands, key=lambda p: rho(pts, [p]).max())
    P = [complex(first)]
    used = 1 if first.imag == 0 or not real else 2
    while used < count and len(P) < len(cands):
        vals = rho(cands, P)
        j = int(np.argmax(vals))
        if vals[j] <= 0:
            break
        P.append(complex(cands[j]))
        used += 1 if cands[j].imag == 0 or not real else 2
    return P


def shift_budget(sys, solver=None) -> int:
    """How many shifts one ADI cycle may use: ``N_SHIFTS``, or fewer where the solver's cache holds
    fewer factorizations of the pencil (module docstring; at least ``MIN_SHIFTS``). A solver without
    a cache budget (an operator adapter) gets ``N_SHIFTS``."""
    slots = getattr(solver or solver_of(sys), "slots", None)
    if slots is None:
        return N_SHIFTS
    # counted in factorizations of the system's own dtype: a real system's conjugate pair needs one
    # complex factorization (20/12 of a real one's bytes) and Penzl's heuristic counts it as two
    # shifts, so real slots are a safe count for pairs too
    return max(MIN_SHIFTS, min(N_SHIFTS, slots(bool(sys.is_complex))))


def adi_shifts(sys: SparseSystem, adjoint: bool = False, count: int | None = None) -> list[complex]:
    """Cyclic ADI shifts for the (adjoint) pencil (module docstring); for real systems only one of
    each conjugate pair is listed (``Im > 0``). The adjoint's are the conjugates of the primal ones,
    so both Gramians use the same factorizations. ``count``: at most this many (a conjugate pair
    counts two; default ``shift_budget``, decided after the Arnoldi steps' factorization, whose size
    the budget uses)."""
    key = ("shifts", adjoint, count)
    if key in sys.cache:
        return sys.cache[key]
    if adjoint:
        # the adjoint pencil's spectrum is the conjugate one: conjugate shifts key the same
        # factorizations as the primal ones in ``adi_run`` (one LU per shift for both Gramians; a real
        # system's list is closed under conjugation already)
        primal = adi_shifts(sys, False, count)
        shifts = list(primal) if not sys.is_complex else [p.conjugate() for p in primal]
        sys.cache[key] = shifts
        return shifts
    a1, b1, a2, b2, _ = _pencil(sys)
    S = solver_of(sys)
    B = sys.C.conj().T if adjoint else sys.B
    rng = np.random.default_rng(0)
    v0 = (B @ np.ones(B.shape[1])).astype(sys.dtype) + 1e-3 * np.linalg.norm(B) / math.sqrt(sys.order) * rng.standard_normal(sys.order)
    big = _arnoldi_ritz(lambda x: S.solve(a2, b2, _combo(sys, a1, b1, x, adjoint), adjoint), v0, ARNOLDI_STEPS[0])
    small = _arnoldi_ritz(lambda x: S.solve(a1, b1, _combo(sys, a2, b2, x, adjoint), adjoint), v0, ARNOLDI_STEPS[1])
    small = 1.0 / small[np.abs(small) > 0]
    cands = np.r_[big, small]
    cands = cands[np.isfinite(cands) & (np.abs(cands) > 0)]
    cands = -np.abs(cands.real) + 1j * cands.imag  # mirror into the left half plane
    shifts = _penzl(cands, count if count is not None else shift_budget(sys, S), not sys.is_complex)
    sys.cache[key] = shifts
    return shifts


def projection_shifts(sys, V: np.ndarray, adjoint: bool, count: int = N_SHIFTS) -> list[complex]:
    """At most ``count`` Ritz values of the pencil ``(A_c, E_c)`` on ``span(V)``, mirrored into the
    left half plane (Penzl's heuristic picks them)."""
    a1, b1, a2, b2, _ = _pencil(sys)
    Q, _ = np.linalg.qr(V)
    Ar = Q.conj().T @ _combo(sys, a1, b1, Q, adjoint)
    Er = Q.conj().T @ _combo(sys, a2, b2, Q, adjoint)
    lam = sla.eigvals(Ar, Er)
    lam = lam[np.isfinite(lam) & (np.abs(lam) > 0)]
    if lam.size == 0:
        return []
    lam = -np.abs(lam.real) + 1j * lam.imag
    return _penzl(lam, min(count, lam.size), not sys.is_complex)


def _compress(Z: np.ndarray, rtol: float = COMPRESS_RTOL, overwrite: bool = False) -> np.ndarray:
    """A factor ``Z'`` with ``Z' Z'^H = Z Z^H`` up to ``rtol ||Z||^2`` and orthogonal columns.
    ``overwrite``: ``Z`` may be destroyed (a Fortran-ordered ``Z`` is then factorized in place: at
    N = 1e6 with a few hundred columns each copy is gigabytes)."""
    if Z.shape[1] == 0:
        return Z
    Q, R = sla.qr(Z, mode="economic", overwrite_a=overwrite, check_finite=False)
    U, s, _ = np.linalg.svd(R, full_matrices=False)
    k = int((s > math.sqrt(rtol) * s[0]).sum()) if s[0] > 0 else 0
    return Q @ (U[:, :k] * s[:k])


def cycle_gain(gain: float, count: int) -> float:
    """The threshold ``gain`` (``REFRESH_GAIN``, ``STALL_GAIN``: per cycle of ``N_SHIFTS`` shifts)
    for a cycle of ``count`` shifts: the same gain per step (a shorter cycle gains less)."""
    return gain ** (count / N_SHIFTS)


def stagnated(res: float, res_cycle: float, count: int) -> bool:
    """At the end of a cycle of ``count`` shifts that took the relative residual from ``res_cycle``
    to ``res``: it gained less than ``STALL_GAIN`` (per ``N_SHIFTS`` steps) at the rounding level
    (``res <= STALL_OK``), so more steps add nothing."""
    return res > cycle_gain(STALL_GAIN, count) * res_cycle and res <= STALL_OK


def adi_rhs(sys, B: np.ndarray, real: bool) -> np.ndarray:
    """The first residual factor ``W_0 = B_c`` (``s B``, module docstring) of the iteration for
    right-hand side ``B``: float64 for a real iteration, else complex128."""
    W = _pencil(sys)[4] * B
    return W.real.astype(float) if real else W.astype(complex)


def adi_step(sys, solver, W: np.ndarray, p: complex, adjoint: bool, real: bool) -> tuple[np.ndarray, list[np.ndarray]]:
    """One low-rank ADI step (module docstring) with shift ``p``: the new residual factor ``W`` and
    the new blocks of ``Z`` (two for a conjugate pair of a real system in one real step).

    Args:
        sys: the system (``apply_A``, ``apply_E``, ``discrete``). solver: ``solve(a, b, X, adjoint)``.
        W: the current residual factor. p: the shift (Re < 0). adjoint: the observability Gramian's
            pencil. real: a real system's real iteration (``W`` real; a complex ``p`` stands for its pair).

    Returns:
        ``(W, blocks)``.
    """
    a1, b1, a2, b2, _ = _pencil(sys)
    # the adjoint pencil's step (A_c^H + p E_c^H) V = W is (A_c + conj(p) E_c)^H V = W
    q = p.conjugate() if adjoint else p
    V = solver.solve(a1 + q * a2, b1 + q * b2, W, adjoint)
    if real and p.imag != 0:
        g, d = 2 * math.sqrt(-p.real), p.real / p.imag
        V1 = V.real + d * V.imag
        return W + g**2 * _combo(sys, a2, b2, V1, adjoint), [g * V1, g * math.sqrt(d * d + 1) * V.imag]
    V = V.real if real else V
    return W - 2 * p.real * _combo(sys, a2, b2, V, adjoint), [math.sqrt(-2 * p.real) * V]
