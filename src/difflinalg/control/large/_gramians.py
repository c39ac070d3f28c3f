r"""Low-rank Gramian factors, H2 norms and H2 inner products of sparse (descriptor) systems.

Gramians: low-rank ADI (``_adi``), ``P ~ Z Z^H`` with ``P - Z Z^H`` positive semidefinite.

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
without the Gramian's truncation error. ``||F - H||`` itself is measured on the error system
(``_errsys``), without the cancellation of ``||F||^2 + ||H||^2 - 2 Re <F, H>``.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg as sla

from ..._errors import InputError
from ._adi import ADI_MAX_ITER, ADI_TOL, COMPRESS_RTOL, _compress, adi_shifts  # noqa: F401 (adi_shifts: re-export)
from ._adi_run import adi_run, recorded_run
from ._solves import ShiftedSolver, solver_of
from ._system import SparseSystem

#: eigenvector condition number up to which the small model is diagonalized for the inner product
DIAG_COND = 1e8


def lr_gramian(sys: SparseSystem, kind: str = "c", tol: float = ADI_TOL, max_iter: int = ADI_MAX_ITER,
               solver: ShiftedSolver | None = None, compress: float = COMPRESS_RTOL) -> tuple[np.ndarray, float]:
    """Low-rank factor ``Z`` (P ~ Z Z^H) of the controllability (``kind="c"``) or observability
    (``"o"``) Gramian by low-rank ADI (module docstring), and the relative residual reached.

    Args:
        sys: a stable ``SparseSystem`` (stability is not checked here: ``check_stable_sparse``).
        kind: ``"c"`` (controllability, ``P ~ Z Z^H``) or ``"o"`` (observability, ``Q ~ Z Z^H``);
            any other value is read as ``"c"``.
        tol: stop when the relative residual norm is below it.
        max_iter: at most this many ADI steps.
        solver: the ``ShiftedSolver`` to use (default: the system's shared one).
        compress: the column compression keeps ``Z Z^H`` to this fraction of ``||Z||^2`` (singular
            values of ``Z`` above ``sqrt(compress)`` of the largest). The default, the Gramian's own
            accuracy, suits norms and leading Hankel singular values; those near the factors'
            numerical rank need the small directions too (``1e-25``: ``_reduce.balanced_factors``).

    Returns:
        ``(Z, residual)``: ``Z`` an (N, k) numpy array (column-compressed; float64 for real
        systems), ``residual`` the relative residual reached (a float). Cached on ``sys`` per
        ``(kind, tol, compress)``.

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
    key = ("gramian", kind, tol, compress)
    if key in sys.cache:
        return sys.cache[key]
    blocks: list = []
    run = None
    if kind != "o" and solver is None:
        rec = recorded_run(sys, False)
        # the target's recorded run (``_adi_run``), while still fresh, goes on as this Gramian's
        # iteration: the error measurements of later models continue it instead of starting over
        run = rec if rec.steps == 0 else None
    res = adi_run(sys, kind == "o", tol, max_iter, blocks.append, solver=solver, run=run)
    # one Fortran-ordered copy of the blocks, freed as it fills, factorized in place by the compression
    Z = np.empty((sys.order, sum(b.shape[1] for b in blocks)), np.result_type(sys.dtype, *blocks), order="F")
    j = 0
    while blocks:
        b = blocks.pop(0)
        Z[:, j: j + b.shape[1]] = b
        j += b.shape[1]
    Z = _compress(Z, compress, overwrite=True)
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
    divided by ``||F||``), from low-rank ADI on the error system's Gramian: a sum of positive terms,
    no cancellation (``_errsys``; the F-block solves share ``F``'s factorizations).

    Resolution: the value is accurate to the rounding of ``F``'s solves plus the ADI truncation tail
    (at most ``1e-8`` of the square). The rounding is at least ``ROUND_EPS sqrt(||F||^2 + ||H||^2)``
    (``512 eps``) and, for sparse matrices, measured by a twin run with refined solves (``_errsys``:
    it grows with the pencil's conditioning, e.g. 1e-12 relative on the benchmark's heat model at
    N = 10^5 and 1.1e-10 at 10^6). An error below that resolution is reported as the resolution
    (never 0). On strongly non-normal targets the ADI
    tail can hold a visible share of a tiny error (upwind convection-diffusion, N = 196, relative
    error 5e-5: resolution 2% of it); ``control.h2_error`` warns when the resolution exceeds 1e-3 of
    the error, and ``rarl2``'s ``error_resolution`` carries it.

    Args:
        F: a stable ``SparseSystem`` (stability is not checked here: ``check_stable_sparse``).
        H: a stable, unbatched dense ``StateSpace`` of ``F``'s size and time domain.
        relative: divide by ``||F||_2`` (from the same ADI run).
        tol: low-rank ADI residual tolerance (``lr_gramian``).

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
        assert math.isclose(err, float(h2_error(F.to_dense(), H, relative=True)), rel_tol=1e-8)
    """
    r = h2_error_norm(F, H, tol)
    return r.reported / r.target_norm if relative else r.reported


def h2_error_norm(F: SparseSystem, H, tol: float = ADI_TOL):
    """``h2_error_sparse``'s measurement as an ``_errsys.ErrorNorm`` (value, resolution, ``||F||``,
    ``||H||``) after the same argument checks: for callers that report the resolution too."""
    from ._errsys import error_norm  # _errsys builds on this module

    _check_pair(F, H)
    return error_norm(F, *_small(H), tol)


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
