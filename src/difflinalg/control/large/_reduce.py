r"""Reduction at scale: IRKA with sparse shifted solves, balanced truncation from low-rank factors.

IRKA (Gugercin, Antoulas, Beattie 2008). For shifts ``s_i`` and tangential directions ``b_i``,
``c_i`` (from the previous reduced model's poles ``l_i`` and residue directions) the bases

    V_i = (s_i E - A)^{-1} B b_i,     W_i = (s_i E - A)^{-H} C^H c_i

give the Petrov-Galerkin model ``(W^H A V, W^H B, C V, D; W^H E V)``, which interpolates ``F``
tangentially at the shifts; at a fixed point ``s_i = -conj(l_i)`` (continuous) or ``1 / conj(l_i)``
(discrete) these are the first-order conditions of H2 optimality. One LU per shift serves both
solves (``_solves``); a conjugate pair of a real system needs one (the real basis holds ``Re v``,
``Im v``). Stops when the shifts move by less than ``tol`` (relative).

Balanced truncation (square root, low rank): ``P ~ Z Z^H``, ``Q ~ Y Y^H`` (``_gramians``), the SVD
``Y^H E Z = U S V^H``, ``T = Z V_r S_r^{-1/2}``, ``W = Y U_r S_r^{-1/2}``, reduced model
``(W^H A T, W^H B, C T, D)`` (``W^H E T = I``). The singular values approximate the Hankel singular
values (from below, to the Gramians' accuracy).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg as sla

from ..._errors import ConvergenceError, InputError, PrecisionWarning
from ..system._statespace import StateSpace
from ._gramians import lr_gramian
from ._solves import ShiftedSolver, solver_of, transient_phase
from ._system import SparseSystem, small_model

IRKA_TOL = 1e-6
IRKA_MAX_ITER = 50
#: factors recomputed when the order asked for exceeds the numerical rank of the default ones: ADI
#: residual and column compression. The Hankel singular values near that rank live in the
#: Gramians' small directions, which the default compression (1e-15 ||Z||^2) drops: heat, N = 1e4,
#: r = 20: rank 18 -> 20 and the order-20 truncation 4.7e-13 relative (ADI 1e-15, compression 1e-25:
#: rank 20 but 7.7e-13; IRKA 5.2e-13). The extra ADI steps reuse the shifts' factorizations.
TIGHT_ADI_TOL = 1e-22
TIGHT_COMPRESS = 1e-25


def check_reduced_order(r, sys: SparseSystem, name: str = "r") -> int:
    if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or r < 1:
        raise InputError(f"{name}: expected a positive integer, got {r!r}")
    if r >= sys.order:
        raise InputError(f"{name}: {r} is not below the target's order {sys.order}; choose {name} < {sys.order}")
    return int(r)


def _orth(X: np.ndarray) -> np.ndarray:
    Q, _ = np.linalg.qr(X)
    return Q


def interpolation_data(Ar, Er, Br, Cr, discrete: bool, real: bool):
    """Shifts (mirrored poles) and tangential directions of the reduced model ``(Ar, Br, Cr; Er)``:
    ``(sigma, b, c)`` with ``b[:, i] = Br^H y_i``, ``c[:, i] = Cr x_i`` (left/right eigenvectors).
    For a real model only one of each conjugate pair is kept (``Im sigma >= 0``)."""
    lam, Yl, X = sla.eig(Ar, Er, left=True, right=True)
    if discrete:
        big = np.abs(lam) < 1e-12
        sigma = np.where(big, 1e12, 1.0 / np.where(big, 1.0, lam.conj()))
    else:
        sigma = -lam.conj()
    b = Br.conj().T @ Yl
    c = Cr @ X
    if real:
        keep = sigma.imag >= -1e-14 * np.abs(sigma)
        # real shifts: real directions (eigenvectors of real eigenvalues are real up to a phase)
        sigma = np.where(np.abs(sigma.imag) <= 1e-14 * np.abs(sigma), sigma.real, sigma)
        sigma, b, c = sigma[keep], b[:, keep], c[:, keep]
        for i in np.nonzero(sigma.imag == 0)[0]:
            for M in (b, c):
                j = np.argmax(np.abs(M[:, i]))
                M[:, i] = (M[:, i] * abs(M[j, i]) / M[j, i]).real if M[j, i] != 0 else M[:, i].real
    return sigma, b, c


def _bases(sys: SparseSystem, S: ShiftedSolver, sigma, b, c):
    real = not sys.is_complex
    Vs, Ws = [], []
    for i, s in enumerate(sigma):
        # (s E - A)^{-1} = -(A - s E)^{-1}; the sign does not change the spanned space. The shifts
        # move until IRKA converges: each factorization serves its two solves and is freed
        with transient_phase(S):
            v = S.shifted(s, sys.B @ b[:, i])
            w = S.shifted(s, sys.C.conj().T @ c[:, i], adjoint=True)  # (s E - A)^{-H} = -(A - s E)^{-H}
        if real and np.iscomplexobj(v) and np.abs(s.imag) > 0:
            Vs += [v.real, v.imag]
            Ws += [w.real, w.imag]
        else:
            Vs.append(v.real if real else v)
            Ws.append(w.real if real else w)
    return _orth(np.stack(Vs, 1)), _orth(np.stack(Ws, 1))


def project(sys: SparseSystem, V: np.ndarray, W: np.ndarray):
    """``(Ar, Er, Br, Cr)`` of the Petrov-Galerkin projection ``(W^H A V, W^H E V, W^H B, C V)``."""
    Wh = W.conj().T
    return Wh @ sys.apply_A(V), Wh @ sys.apply_E(V), Wh @ sys.B, sys.C @ V


@dataclass
class IrkaInfo:
    """IRKA run: iterations, convergence (relative shift change per iteration), factorizations."""

    iterations: int = 0
    converged: bool = False
    changes: list = field(default_factory=list)
    factorizations: int = 0
    models: list = field(default_factory=list)


def _ritz_start(sys: SparseSystem, S: ShiftedSolver, r: int):
    """Reduced model from a one-sided rational Krylov space at the low-frequency point (s = 0, or
    z = 1 in discrete time): its Ritz values start IRKA."""
    a, b = (1.0, -1.0) if sys.discrete else (1.0, 0.0)
    cols, X = [], sys.B.copy()
    while sum(c.shape[1] for c in cols) < r:
        X = S.solve(a, b, X)
        X = _orth(X) if X.shape[1] > 1 else X / np.linalg.norm(X)
        cols.append(X)
        X = sys.apply_E(X)
    V = _orth(np.concatenate(cols, 1))[:, :r]
    Ar, Er, Br, Cr = project(sys, V, V)
    lam = sla.eigvals(Ar, Er)
    if (np.abs(lam) >= 1).any() if sys.discrete else (lam.real >= 0).any():
        return None
    return Ar, Er, Br, Cr


def irka_sparse(sys: SparseSystem, r: int, *, start: StateSpace | None = None, tol: float = IRKA_TOL,
                max_iter: int = IRKA_MAX_ITER, memory_limit: int | None = None, return_info: bool = False):
    """IRKA (module docstring) for a sparse (descriptor) system.

    Args:
        sys: a stable ``SparseSystem`` (stability is not checked here: ``check_stable_sparse``).
        r: reduced order, a positive integer below the order of ``sys``.
        start: a dense model of order r whose mirrored poles and residue directions are the initial
            interpolation data (default: Ritz values of a rational Krylov space at low frequency;
            ``lr_balanced_truncation`` if those are unstable).
        tol: stop when the shifts change by less than this (relative).
        max_iter: at most this many iterations (the last model is returned unconverged:
            ``IrkaInfo.converged``).
        memory_limit: bytes for the sparse factorizations (``ShiftedSolver``).
        return_info: also return an ``IrkaInfo``.

    Returns:
        The reduced dense ``StateSpace`` of order ``r`` (torch float64/complex128, same time
        domain; ``D`` of ``sys`` in discrete time, zero in continuous time), and the ``IrkaInfo``
        if ``return_info``. IRKA does not guarantee a stable model.

    Raises:
        InputError: bad order; a ``start`` of another order; a singular shifted matrix.
        FactorizationMemoryError: the solves would not fit in memory.

    Example::

        from difflinalg.control.large import heat_2d, irka_sparse

        H, info = irka_sparse(heat_2d(10), 2, return_info=True)
        assert H.order == 2 and info.converged
    """
    r = check_reduced_order(r, sys)
    S = solver_of(sys, memory_limit)
    f0 = getattr(S, "factorizations", 0)
    real = not sys.is_complex
    if start is not None:
        if start.order != r:
            raise InputError(f"start: expected a model of order {r}, got {start.order}")
        Ar, Br, Cr, _ = (x.detach().numpy() for x in start.matrices())
        Er = np.eye(r)
    else:
        init = _ritz_start(sys, S, r)
        if init is None:  # unstable Ritz values: balanced truncation instead
            Ar, Br, Cr, _ = (x.numpy() for x in lr_balanced_truncation(sys, r).matrices())
            Er = np.eye(r)
        else:
            Ar, Er, Br, Cr = init
    info = IrkaInfo()
    sigma, b, c = interpolation_data(Ar, Er, Br, Cr, sys.discrete, real)
    model = None
    for it in range(max_iter):
        V, W = _bases(sys, S, sigma, b, c)
        Ar, Er, Br, Cr = project(sys, V, W)
        model = (Ar, Er, Br, Cr)
        new, b, c = interpolation_data(Ar, Er, Br, Cr, sys.discrete, real)
        info.iterations = it + 1
        if new.shape != sigma.shape:
            change = math.inf
        else:
            change = float(np.max(np.abs(np.sort_complex(new) - np.sort_complex(sigma)) / np.abs(np.sort_complex(new))))
        info.changes.append(change)
        sigma = new
        if change <= tol:
            info.converged = True
            break
    info.factorizations = getattr(S, "factorizations", 0) - f0
    H = small_model(model[0], model[2], model[3], sys.D.copy() if sys.discrete else np.zeros_like(sys.D), model[1], sys)
    return (H, info) if return_info else H


def bt_svd(sys: SparseSystem, Z: np.ndarray, Y: np.ndarray):
    """``(U, s, Vh, k)``: the SVD ``Y^H E Z = U diag(s) Vh`` (``s``: approximate Hankel singular
    values) and the factors' numerical rank ``k`` (values above ``max(cols) eps s_1``)."""
    U, s, Vh = np.linalg.svd(Y.conj().T @ sys.apply_E(Z), full_matrices=False)
    k = int((s > s[0] * max(Z.shape[1], Y.shape[1]) * np.finfo(float).eps).sum()) if s.size and s[0] > 0 else 0
    return U, s, Vh, k


def balanced_factors(sys: SparseSystem, r: int, tol: float):
    """Low-rank Gramian factors ``(Z, Y)``, their ``bt_svd`` and whether they were tightened.

    The factors of ADI tolerance ``tol`` (default compression) first; where ``r`` exceeds their
    numerical rank, factors of ADI tolerance ``min(tol, TIGHT_ADI_TOL)`` compressed to
    ``TIGHT_COMPRESS`` instead (more of the small Hankel singular values above rounding; kept
    unless ADI does not converge to that tolerance, then the default ones are returned).

    Returns:
        ``(Z, Y, svd, tight)``: the factors, ``bt_svd(sys, Z, Y)`` and a bool.

    Raises:
        ConvergenceError, FactorizationMemoryError: as ``lr_gramian`` (default factors).
    """
    Z, _ = lr_gramian(sys, "c", tol)
    Y, _ = lr_gramian(sys, "o", tol)
    svd = bt_svd(sys, Z, Y)
    if not 0 < svd[3] < r:
        return Z, Y, svd, False
    try:
        Zt, _ = lr_gramian(sys, "c", min(tol, TIGHT_ADI_TOL), compress=TIGHT_COMPRESS)
        Yt, _ = lr_gramian(sys, "o", min(tol, TIGHT_ADI_TOL), compress=TIGHT_COMPRESS)
    except ConvergenceError:
        return Z, Y, svd, False  # ADI stalls above the tight tolerance: the default factors stand
    return Zt, Yt, bt_svd(sys, Zt, Yt), True


def rank_reason(Z: np.ndarray, Y: np.ndarray, k: int, tight: bool) -> str:
    """Why the factors' numerical rank is ``k``: the threshold, and the tightened factors if tried."""
    thr = max(Z.shape[1], Y.shape[1]) * np.finfo(float).eps
    how = (f"factors tightened to ADI residual {TIGHT_ADI_TOL:.0e} and compression {TIGHT_COMPRESS:.0e}"
           if tight else "default factors")
    return f"Hankel singular values beyond {k} below {thr:.1e} sigma_1, the rounding of the {how}"


def bt_model(sys: SparseSystem, Z: np.ndarray, Y: np.ndarray, svd, r: int) -> StateSpace:
    """The order-``r`` square-root balanced truncation from the factors and their ``bt_svd``."""
    U, s, Vh, _ = svd
    d = 1 / np.sqrt(s[:r])
    T = (Z @ Vh[:r].conj().T) * d
    Wb = (Y @ U[:, :r]) * d
    Ar, Er, Br, Cr = project(sys, T, Wb)
    return small_model(Ar, Br, Cr, sys.D.copy() if sys.discrete else np.zeros_like(sys.D), Er, sys)


def rank_warning(r: int, k: int, what: str) -> None:
    """``PrecisionWarning``: order ``r`` requested above the numerical rank ``k`` of the Gramian
    factors; an order-``k`` model is returned (``what`` says how good it is)."""
    warnings.warn(f"r: {r} exceeds the numerical rank {k} of the low-rank Gramian factors (Hankel singular "
                  f"values beyond {k} are below rounding, so further states would be fitted to rounding "
                  f"noise): returned an order-{k} model; {what}. Pass r <= {k} to silence this warning.",
                  PrecisionWarning, stacklevel=3)


def lr_balanced_truncation(sys: SparseSystem, r: int, *, tol: float = 1e-13, memory_limit: int | None = None,
                           cache_bytes: int | None = None, return_hsv: bool = False):
    """Balanced truncation from low-rank Gramian factors (module docstring).

    Args:
        sys: a stable ``SparseSystem`` (stability is not checked here: ``check_stable_sparse``).
        r: reduced order, a positive integer below the order of ``sys``.
        tol: low-rank ADI tolerance of the Gramian factors (``lr_gramian``).
        memory_limit: bytes for the sparse factorizations (``ShiftedSolver``).
        cache_bytes: memory budget of the factorization cache, which sets the ADI cycle's length
            (``rarl2_large``: fixing it makes a run independent of the memory available at the start).
        return_hsv: also return the approximate Hankel singular values.

    Returns:
        The reduced dense ``StateSpace`` of order ``r`` (torch float64/complex128, same time
        domain; ``D`` of ``sys`` in discrete time, zero in continuous time), and if
        ``return_hsv`` the approximate Hankel singular values (numpy, descending, as many as the
        factors' rank). Where ``r`` exceeds the numerical rank ``k`` of the factors (Hankel
        singular values beyond ``k`` below rounding) they are recomputed tighter
        (``balanced_factors``); where ``r`` still exceeds it the model has order ``k``, with a
        ``PrecisionWarning`` that says why.

    Raises:
        InputError: bad order; zero Gramian factors.
        ConvergenceError, FactorizationMemoryError: as ``lr_gramian``.

    Example::

        from difflinalg.control.large import heat_2d, lr_balanced_truncation

        H, hsv = lr_balanced_truncation(heat_2d(10), 4, return_hsv=True)
        assert H.order == 4 and hsv[0] >= hsv[3] > 0
    """
    r = check_reduced_order(r, sys)
    solver_of(sys, memory_limit, cache_bytes)
    Z, Y, svd, tight = balanced_factors(sys, r, tol)
    s, k = svd[1], svd[3]
    if k == 0:
        raise InputError("sys: the low-rank Gramian factors are zero (B or C is zero): nothing to reduce")
    if r > k:
        rank_warning(r, k, f"its error is at the rounding level of the factors ({rank_reason(Z, Y, k, tight)})")
        r = k
    H = bt_model(sys, Z, Y, svd, r)
    return (H, s) if return_hsv else H
