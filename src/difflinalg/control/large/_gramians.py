r"""Low-rank Gramian factors, H2 norms and H2 inner products of sparse (descriptor) systems.

Gramians (Penzl 2000; Benner, Kuerschner, Saak 2013 for complex shifts of real systems). The
controllability Gramian ``P`` of ``(A, B, E)`` solves

    A P E^H + E P A^H + B B^H = 0                    (continuous)
    A P A^H - E P E^H + B B^H = 0                    (discrete)

The discrete equation is the continuous one of the Cayley pencil ``(A_c, E_c) = (A - E, A + E)``
with ``B_c = sqrt(2) B`` (expand ``(A - E) P (A + E)^H + (A + E) P (A - E)^H = 2 (A P A^H - E P E^H)``),
so one low-rank ADI iteration serves both: with shifts ``p_k`` (Re < 0), ``W_0 = B_c``,

    V_k = (A_c + p_k E_c)^{-1} W_{k-1},   W_k = W_{k-1} - 2 Re(p_k) E_c V_k,   Z += sqrt(-2 Re p_k) V_k

(a conjugate pair of a real system in one real step: ``W += g^2 E_c (Re V + d Im V)``, ``Z +=
[g (Re V + d Im V), g sqrt(d^2 + 1) Im V]``, ``g = 2 sqrt(-Re p)``, ``d = Re p / Im p``) gives
``P ~ Z Z^H`` with residual ``W W^H``; it stops at ``||W^H W|| <= tol ||B_c^H B_c||``. The
observability Gramian is that of the adjoint pencil ``(A^H, E^H, C^H)``. Shifts: Ritz values of
the pencil from a few Arnoldi steps with ``E_c^{-1} A_c`` and ``A_c^{-1} E_c`` (mirrored to the left
half plane), a set of at most ``N_SHIFTS`` chosen by Penzl's heuristic and used cyclically, so the
factorizations are made once (``_solves``).

H2 norm: ``||F||^2 = ||C Z||_F^2`` (+ ``||D||_F^2`` in discrete time). Its error is that of the
truncated Gramian, ``tr(C (P - Z Z^H) C^H)``, about ``tol ||F||^2`` or below.

H2 inner product with a small dense ``H = (A_h, B_h, C_h, D_h)``: ``<F, H> = tr(C_F X C_h^H)``
(+ ``tr(D_F D_h^H)`` in discrete time) with ``X`` (N x n) solving the cross equation

    A X + E X A_h^H + B_F B_h^H = 0          (continuous)
    E X - A X A_h^H = B_F B_h^H              (discrete)

With ``A_h = S L S^{-1}`` diagonalized, ``Y = X S^{-H}`` has independent columns, one shifted solve
each: ``(A + conj(l_j) E) y_j = -g_j`` (continuous), ``(E - conj(l_j) A) y_j = g_j`` (discrete),
``G = B_F (S^{-1} B_h)^H``; a real pair of conjugate poles needs one solve. When ``S`` is
ill-conditioned the complex Schur form ``A_h = U T U^H`` is used instead (a back substitution over
the columns, one solve each). These solves are exact up to the sparse LU's rounding, so differences
``||F - H_1||^2 - ||F - H_2||^2 = ||H_1||^2 - ||H_2||^2 - 2 Re <F, H_1 - H_2>`` compare models
without the Gramian's truncation error.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg as sla

from ..._errors import ConvergenceError, InputError
from ._solves import ShiftedSolver, solver_of
from ._system import SparseSystem

N_SHIFTS = 16
ARNOLDI_STEPS = (16, 12)  # steps with E_c^{-1} A_c (large Ritz values) and A_c^{-1} E_c (small)
ADI_TOL = 1e-15
ADI_MAX_ITER = 600
#: a cycle of shifts that reduces the residual by less than this factor is followed by new shifts
REFRESH_GAIN = 1e-2
#: ... and one that gains less than STALL_GAIN with the residual below STALL_OK ends the iteration
STALL_GAIN = 0.5
STALL_OK = 1e-12
#: eigenvector condition number up to which the small model is diagonalized for the inner product
DIAG_COND = 1e8


def _pencil(sys: SparseSystem) -> tuple[float, float, float, float, float]:
    """``(a1, b1, a2, b2, s)``: ``A_c = a1 A + b1 E``, ``E_c = a2 A + b2 E``, ``B_c = s B``."""
    if sys.discrete:
        return 1.0, -1.0, 1.0, 1.0, math.sqrt(2.0)
    return 1.0, 0.0, 0.0, 1.0, 1.0


def _combo(sys: SparseSystem, a: float, b: float, X: np.ndarray, adjoint: bool) -> np.ndarray:
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


def adi_shifts(sys: SparseSystem, adjoint: bool = False, count: int = N_SHIFTS) -> list[complex]:
    """Cyclic ADI shifts for the (adjoint) pencil (module docstring); for real systems only one of
    each conjugate pair is listed (``Im > 0``)."""
    key = ("shifts", adjoint, count)
    if key in sys.cache:
        return sys.cache[key]
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
    shifts = _penzl(cands, count, not sys.is_complex)
    sys.cache[key] = shifts
    return shifts


def _projection_shifts(sys: SparseSystem, V: np.ndarray, adjoint: bool) -> list[complex]:
    """Ritz values of the pencil ``(A_c, E_c)`` on ``span(V)``, mirrored into the left half plane."""
    a1, b1, a2, b2, _ = _pencil(sys)
    Q, _ = np.linalg.qr(V)
    Ar = Q.conj().T @ _combo(sys, a1, b1, Q, adjoint)
    Er = Q.conj().T @ _combo(sys, a2, b2, Q, adjoint)
    lam = sla.eigvals(Ar, Er)
    lam = lam[np.isfinite(lam) & (np.abs(lam) > 0)]
    if lam.size == 0:
        return []
    lam = -np.abs(lam.real) + 1j * lam.imag
    return _penzl(lam, min(N_SHIFTS, lam.size), not sys.is_complex)


def _compress(Z: np.ndarray, rtol: float = 1e-15) -> np.ndarray:
    """A factor ``Z'`` with ``Z' Z'^H = Z Z^H`` up to ``rtol ||Z||^2`` and orthogonal columns."""
    if Z.shape[1] == 0:
        return Z
    Q, R = np.linalg.qr(Z)
    U, s, _ = np.linalg.svd(R, full_matrices=False)
    k = int((s > math.sqrt(rtol) * s[0]).sum()) if s[0] > 0 else 0
    return Q @ (U[:, :k] * s[:k])


def lr_gramian(sys: SparseSystem, kind: str = "c", tol: float = ADI_TOL, max_iter: int = ADI_MAX_ITER,
               solver: ShiftedSolver | None = None) -> tuple[np.ndarray, float]:
    """Low-rank factor ``Z`` (P ~ Z Z^H) of the controllability (``kind="c"``) or observability
    (``"o"``) Gramian by low-rank ADI (module docstring), and the relative residual reached.

    Args:
        sys: a stable ``SparseSystem`` (stability is not checked here: ``check_stable_sparse``).
        kind: ``"c"`` (controllability, ``P ~ Z Z^H``) or ``"o"`` (observability, ``Q ~ Z Z^H``);
            any other value is read as ``"c"``.
        tol: stop when the relative residual norm is below it.
        max_iter: at most this many ADI steps.
        solver: the ``ShiftedSolver`` to use (default: the system's shared one).

    Returns:
        ``(Z, residual)``: ``Z`` an (N, k) numpy array (column-compressed; float64 for real
        systems), ``residual`` the relative residual reached (a float). Cached on ``sys`` per
        ``(kind, tol)``.

    Raises:
        ConvergenceError: the residual is not below ``tol`` after ``max_iter`` steps.
        FactorizationMemoryError: a shifted sparse LU would not fit in memory.

    Example::

        import numpy as np
        from difflinalg.control.large import heat_2d, lr_gramian

        F = heat_2d(10)
        Z, res = lr_gramian(F, "c")
        A, B = F.A.toarray(), F.B
        P = Z @ Z.T  # A P + P A^T + B B^T = 0
        assert res < 1e-10 and np.linalg.norm(A @ P + P @ A.T + B @ B.T) < 1e-8 * np.linalg.norm(B) ** 2
    """
    key = ("gramian", kind, tol)
    if key in sys.cache:
        return sys.cache[key]
    adjoint = kind == "o"
    S = solver or solver_of(sys)
    a1, b1, a2, b2, s = _pencil(sys)
    W = s * (sys.C.conj().T if adjoint else sys.B)
    real = not sys.is_complex
    if real:
        W = W.real
    shifts = adi_shifts(sys, adjoint)
    res0 = np.linalg.norm(W.conj().T @ W, 2)
    blocks, res, k, j, cycle_start, res_cycle = [], 1.0, 0, 0, 0, 1.0
    while res > tol:
        if k >= max_iter:
            raise ConvergenceError(f"sys: low-rank ADI for the {'observability' if adjoint else 'controllability'} "
                                   f"Gramian reached a relative residual of {res:.2e} after {k} steps "
                                   f"(tolerance {tol:.1e}); pass a larger tol (less accurate norms)")
        if j == len(shifts):
            # end of a cycle: if it gained less than REFRESH_GAIN, new shifts from the Ritz values of
            # the pencil on the cycle's iterates (projection shifts: they follow the modes that the
            # residual still holds, e.g. lightly damped oscillations)
            if res > STALL_GAIN * res_cycle and res <= STALL_OK:
                break  # stagnation at the rounding level of the residual: more steps add nothing
            if res > REFRESH_GAIN * res_cycle:
                shifts = _projection_shifts(sys, np.concatenate(blocks[cycle_start:], axis=1), adjoint) or shifts
            j, cycle_start, res_cycle = 0, len(blocks), res
        p = shifts[j]
        j += 1
        # the adjoint pencil's step (A_c^H + p E_c^H) V = W is (A_c + conj(p) E_c)^H V = W
        q = p.conjugate() if adjoint else p
        V = S.solve(a1 + q * a2, b1 + q * b2, W, adjoint)
        if real and p.imag != 0:
            g, d = 2 * math.sqrt(-p.real), p.real / p.imag
            V1 = V.real + d * V.imag
            W = W + g**2 * _combo(sys, a2, b2, V1, adjoint)
            blocks += [g * V1, g * math.sqrt(d * d + 1) * V.imag]
        else:
            V = V.real if real else V
            W = W - 2 * p.real * _combo(sys, a2, b2, V, adjoint)
            blocks.append(math.sqrt(-2 * p.real) * V)
        k += 1
        res = np.linalg.norm(W.conj().T @ W, 2) / res0 if res0 > 0 else 0.0
    Z = _compress(np.concatenate(blocks, axis=1) if blocks else W[:, :0])
    sys.cache[key] = (Z, res)
    return Z, res


def check_h2_finite(sys: SparseSystem, name: str = "sys") -> None:
    if not sys.discrete and np.any(sys.D != 0):
        raise InputError(f"{name}: a continuous-time system with non-zero D has an infinite H2 norm; "
                         "set D = 0 (model the feedthrough separately)")


def h2_norm_sparse(sys: SparseSystem, tol: float = ADI_TOL) -> float:
    """H2 norm of a stable sparse system from the low-rank controllability Gramian (module
    docstring; relative accuracy about ``tol``): ``||C Z||_F`` (discrete: with ``||D||_F``).

    Args:
        sys: a stable ``SparseSystem`` (stability is not checked here: ``check_stable_sparse``).
        tol: low-rank ADI tolerance (``lr_gramian``).

    Returns:
        The norm, a float.

    Raises:
        InputError: a continuous-time system with non-zero D (infinite norm).
        ConvergenceError, FactorizationMemoryError: as ``lr_gramian``.

    Example::

        import math
        from difflinalg.control import h2_norm
        from difflinalg.control.large import heat_2d, h2_norm_sparse

        F = heat_2d(10)
        assert math.isclose(h2_norm_sparse(F), float(h2_norm(F.to_dense())), rel_tol=1e-8)
    """
    check_h2_finite(sys)
    Z, _ = lr_gramian(sys, "c", tol)
    val = np.linalg.norm(sys.C @ Z) ** 2
    if sys.discrete:
        val += np.linalg.norm(sys.D) ** 2
    return math.sqrt(max(val, 0.0))


def _small(H) -> tuple[np.ndarray, ...]:
    """``(A, B, C, D)`` numpy arrays of a dense single ``StateSpace``."""
    return tuple(x.detach().cpu().resolve_conj().numpy() for x in H.matrices())


def h2_inner(F: SparseSystem, H, solver: ShiftedSolver | None = None) -> complex:
    """``<F, H>`` of a sparse ``F`` and a small dense ``StateSpace`` ``H`` (module docstring): n
    shifted solves (n/2 for a real pair of conjugate poles), at the mirrored poles of ``H``.

    Args:
        F: a stable ``SparseSystem``.
        H: a stable, unbatched dense ``StateSpace`` of the same size and time domain (not checked
            here: ``h2_error_sparse`` checks them).
        solver: the ``ShiftedSolver`` to use (default: ``F``'s shared one).

    Returns:
        The H2 inner product ``<F, H>``, a Python complex (real for real systems up to
        rounding; ``||F - H||^2 = ||F||^2 - 2 Re <F, H> + ||H||^2``).

    Raises:
        FactorizationMemoryError: a shifted sparse LU would not fit in memory.
        InputError: a shifted matrix is singular (a pole of ``H`` mirrors a pole of ``F``).

    Example::

        import math
        from difflinalg.control import h2_error, h2_norm
        from difflinalg.control.large import heat_2d, h2_inner, lr_balanced_truncation

        F = heat_2d(10)
        H = lr_balanced_truncation(F, 2)
        Fd = F.to_dense()
        err2 = float(h2_norm(Fd)) ** 2 - 2 * h2_inner(F, H).real + float(h2_norm(H)) ** 2
        assert math.isclose(err2, float(h2_error(Fd, H)) ** 2, rel_tol=1e-6)
    """
    S = solver or solver_of(F)
    Ah, Bh, Ch, Dh = _small(H)
    n = Ah.shape[0]
    real = not F.is_complex and not np.iscomplexobj(Ah)
    lam, Sv = np.linalg.eig(Ah)
    total = complex(np.sum(F.D * Dh.conj())) if F.discrete else 0j
    if n == 0:
        return total
    if np.linalg.cond(Sv) <= DIAG_COND:
        G = F.B @ np.linalg.solve(Sv, Bh).conj().T  # N x n
        CS = Ch @ Sv
        for j in range(n):
            if real and lam[j].imag < 0 and np.any(np.isclose(lam, lam[j].conj(), rtol=1e-12, atol=0)):
                continue  # its conjugate's term counts twice
            if F.discrete:
                y = S.solve(-lam[j].conj(), 1.0, G[:, j])
            else:
                y = -S.solve(1.0, lam[j].conj(), G[:, j])
            term = np.sum((F.C @ y) * CS[:, j].conj())
            total += 2 * term.real if (real and lam[j].imag > 0) else term
        return total
    T, U = sla.schur(Ah.astype(complex), output="complex")
    G = F.B @ (Bh.conj().T @ U)
    Y = np.zeros((F.order, n), dtype=complex)
    for j in range(n - 1, -1, -1):
        acc = Y[:, j + 1:] @ T[j, j + 1:].conj()
        if F.discrete:
            Y[:, j] = S.solve(-T[j, j].conj(), 1.0, G[:, j] + F.apply_A(acc))
        else:
            Y[:, j] = -S.solve(1.0, T[j, j].conj(), G[:, j] + F.apply_E(acc))
    return total + np.sum((F.C @ Y) * (Ch @ U).conj())


def small_h2_norm2(H) -> float:
    Ah, Bh, Ch, Dh = _small(H)
    if H.discrete:
        Q = sla.solve_discrete_lyapunov(Ah.conj().T, Ch.conj().T @ Ch)
        return float(np.real(np.trace(Bh.conj().T @ Q @ Bh))) + float(np.linalg.norm(Dh) ** 2)
    Q = sla.solve_continuous_lyapunov(Ah.conj().T, -Ch.conj().T @ Ch)
    return float(np.real(np.trace(Bh.conj().T @ Q @ Bh)))


def h2_error_sparse(F: SparseSystem, H, *, relative: bool = False, tol: float = ADI_TOL) -> float:
    """``||F - H||_2`` for a sparse ``F`` and a small dense ``StateSpace`` ``H`` (``relative``:
    divided by ``||F||``): ``||F||^2`` from the low-rank Gramian, ``||H||^2`` dense, ``<F, H>`` by n
    shifted solves (module docstring). Resolution: the square carries the truncation error of
    ``||F||^2`` from the low-rank Gramian, measured from ``1e-13`` to ``1e-9`` of ``||F||^2`` on the
    benchmark models, so relative errors below ~``3e-5`` to ``3e-7`` are not resolved (they come out
    as 0 or as noise of that size); differences between two models (``h2_inner``) are exact.

    Args:
        F: a stable ``SparseSystem`` (stability is not checked here: ``check_stable_sparse``).
        H: a stable, unbatched dense ``StateSpace`` of ``F``'s size and time domain.
        relative: divide by ``||F||_2``.
        tol: low-rank ADI tolerance for ``||F||`` (``lr_gramian``).

    Returns:
        The error, a float (not differentiable: numpy).

    Raises:
        InputError: ``F`` not a ``SparseSystem``, ``H`` not one dense ``StateSpace``; mismatched
            sizes or time domains; continuous time with ``D_F != 0`` or ``D_H != 0``.
        UnstableSystemError: ``H`` is unstable (names the pole).
        ConvergenceError, FactorizationMemoryError: as ``lr_gramian``.

    Example::

        import math
        from difflinalg.control import h2_error
        from difflinalg.control.large import heat_2d, h2_error_sparse, lr_balanced_truncation

        F = heat_2d(10)
        H = lr_balanced_truncation(F, 2)
        err = h2_error_sparse(F, H, relative=True)
        assert math.isclose(err, float(h2_error(F.to_dense(), H, relative=True)), rel_tol=1e-4)
    """
    _check_pair(F, H)
    nF2 = h2_norm_sparse(F, tol) ** 2
    val = nF2 + small_h2_norm2(H) - 2 * h2_inner(F, H).real
    err = math.sqrt(max(val, 0.0))
    return err / math.sqrt(nF2) if relative else err


def check_small_stable(H, name: str = "H") -> None:
    """The inner-product formulas hold for a stable ``H`` only (an unstable one gives finite, wrong
    numbers): raise ``UnstableSystemError`` naming the pole."""
    from ..analysis._stability import check_stable_poles
    import torch

    check_stable_poles(torch.linalg.eigvals(H.A), H.discrete, name)


def _check_pair(F: SparseSystem, H) -> None:
    if not isinstance(F, SparseSystem):
        raise InputError(f"F: expected a SparseSystem, got {type(F).__name__}")
    if getattr(H, "batch_shape", None) != ():
        raise InputError(f"H: expected one dense StateSpace, got {type(H).__name__}")
    if (H.n_outputs, H.n_inputs) != (F.n_outputs, F.n_inputs):
        raise InputError(f"H: expected {F.n_outputs} outputs and {F.n_inputs} inputs like F, got "
                         f"{H.n_outputs} and {H.n_inputs}")
    if H.discrete != F.discrete:
        raise InputError(f"H: F is {F.time} time but H is {H.time} time")
    check_h2_finite(F, "F")
    check_small_stable(H, "H")
    if not F.discrete and bool((H.D != 0).any()):
        raise InputError("H: a continuous-time H with non-zero D has an infinite H2 error; set H's D to 0")
