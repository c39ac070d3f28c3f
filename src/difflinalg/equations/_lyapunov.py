"""Lyapunov equations (SciPy's conventions) and Gramians, as Sylvester/Stein equations whose right
coefficient is ``A^H``: one factorization of ``A`` serves both sides (``SchurForm.mH``) and the
adjoint solves of the derivatives.

    continuous:  A X + X A^H = Q          (scipy.linalg.solve_continuous_lyapunov)
    discrete:    A X A^H - X + Q = 0      (scipy.linalg.solve_discrete_lyapunov), i.e.
                 X - A X A^H = Q

``Q`` need not be Hermitian (the equation is linear in ``Q``); a Hermitian ``Q`` gives a Hermitian
``X`` up to rounding. Gradients with respect to ``A`` collect both occurrences (``A`` and ``A^H``).

Stability. The equations are uniquely solvable unless ``lambda_i + conj(lambda_j) = 0``
(continuous) or ``lambda_i conj(lambda_j) = 1`` (discrete), whatever the stability of ``A``; the
solution is a Gramian (positive semidefinite for ``Q >= 0``, the integral/sum of the system's
impulse response) only if ``A`` is stable. ``require_stable=True`` (and the Gramian helpers) raise
``UnstableSystemError`` naming the offending eigenvalue instead of returning the indefinite
solution of an unstable system.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._utils import check_matrix, herm, reject_meta
from ._checks import batch_shape, check_stable, validate_equation
from ._factor import EigForm, SchurForm
from ._operator import SteinOperator, SylvesterOperator, resolve_method


_HINT = {
    SylvesterOperator: " (for this Lyapunov equation: two eigenvalues of A with lambda_i + conj(lambda_j) = 0, "
                       "e.g. one on the imaginary axis)",
    SteinOperator: " (for this Lyapunov equation: two eigenvalues of A with lambda_i conj(lambda_j) = 1, "
                   "e.g. one on the unit circle)",
}


def _operator(cls, A: Tensor, method: str, check: bool = True):
    n = A.shape[-1]
    m = resolve_method(method, n, n, A.device, False, math.prod(A.shape[:-2]))
    kw = dict(check=check, names=("A", "A^H"), _hint=_HINT[cls], _validated=True)
    if m in ("lapack", "torch"):
        f = SchurForm(A, complex_form=(m == "torch") or A.is_complex())
        return cls(f, f.mH, method="schur-torch" if m == "torch" else "schur", **kw)
    if m == "eig":
        f = EigForm(A)
        return cls(f, f.mH, method="eig", **kw)
    if check:  # eigenvalues of A^H are those of A, conjugated: one eigvals call
        ea = torch.linalg.eigvals(A.detach())
        kw["_eigvals"] = (ea, ea.conj())
    return cls(A, A.mH, method="kron", **kw)


def solve_continuous_lyapunov(A: Tensor, Q: Tensor, *, method: str = "auto",
                              require_stable: bool = False) -> Tensor:
    """Solve ``A X + X A^H = Q`` (SciPy's convention), differentiable in ``A`` and ``Q``.

    Args:
        A: (..., n, n); Q: (..., n, n); one dtype (float32/64 or complex64/128) and device; batch
            dimensions broadcast. ``Q`` need not be Hermitian.
        method: as for ``solve_sylvester`` (``"auto"``, ``"schur"``, ``"schur-torch"``, ``"eig"``,
            ``"kron"``); one factorization of ``A`` serves both sides.
        require_stable: raise ``UnstableSystemError`` unless ``A`` is Hurwitz (all eigenvalues
            with negative real part), i.e. when ``-X`` is needed as a Gramian.

    Returns:
        ``X`` (..., n, n), differentiable in ``A`` (both occurrences, ``A`` and ``A^H``) and ``Q``
        (reverse, forward, any order); Hermitian up to rounding for a Hermitian ``Q``.

    Raises:
        InputError: shapes, dtypes, devices, non-finite values, meta tensors or ``method`` as for
            ``solve_sylvester``.
        SingularEquationError: ``A`` has eigenvalues with ``lambda_i + conj(lambda_j) = 0`` (e.g.
            one on the imaginary axis), to rounding; names the pair.
        UnstableSystemError: ``require_stable=True`` and an eigenvalue of ``A`` has real part
            ``>= 0`` (names it).
        ConvergenceError: the Schur decomposition (LAPACK ``?gees``) did not converge.

    Warns:
        PrecisionWarning, TransformCheckWarning: as for ``solve_sylvester``.

    Example::

        import torch
        from difflinalg import solve_continuous_lyapunov

        A = torch.tensor([[-1.0, 2.0], [0.0, -3.0]], dtype=torch.float64, requires_grad=True)
        Q = -torch.eye(2, dtype=torch.float64)
        X = solve_continuous_lyapunov(A, Q, require_stable=True)
        assert torch.allclose(A @ X + X @ A.mH, Q)
        torch.linalg.matrix_norm(X).backward()  # d||X||_F / dA in A.grad
    """
    A, _, Q = validate_equation(A, A, Q, names=("A", "A", "Q"))
    op = _operator(SylvesterOperator, A, method)
    if require_stable:
        check_stable(op.eigvals[0], discrete=False)
    return op._apply(Q, False)


def solve_discrete_lyapunov(A: Tensor, Q: Tensor, *, method: str = "auto",
                            require_stable: bool = False) -> Tensor:
    """Solve ``A X A^H - X + Q = 0`` (SciPy's convention), differentiable in ``A`` and ``Q``.

    Args:
        A: (..., n, n); Q: (..., n, n); one dtype (float32/64 or complex64/128) and device; batch
            dimensions broadcast. ``Q`` need not be Hermitian.
        method: as for ``solve_sylvester``.
        require_stable: raise ``UnstableSystemError`` unless ``A`` is Schur-stable (spectral
            radius < 1), i.e. when ``X`` is needed as a Gramian.

    Returns:
        ``X`` (..., n, n), differentiable in ``A`` and ``Q`` (reverse, forward, any order);
        Hermitian up to rounding for a Hermitian ``Q``.

    Raises:
        InputError: shapes, dtypes, devices, non-finite values, meta tensors or ``method`` as for
            ``solve_sylvester``.
        SingularEquationError: ``A`` has eigenvalues with ``lambda_i conj(lambda_j) = 1`` (e.g.
            one on the unit circle), to rounding; names the pair.
        UnstableSystemError: ``require_stable=True`` and an eigenvalue of ``A`` has modulus
            ``>= 1`` (names it).
        ConvergenceError: the Schur decomposition (LAPACK ``?gees``) did not converge.

    Warns:
        PrecisionWarning, TransformCheckWarning: as for ``solve_sylvester``.

    Example::

        import torch
        from difflinalg import solve_discrete_lyapunov

        A = torch.tensor([[0.5, 0.3], [0.0, -0.2]], dtype=torch.float64)
        Q = torch.eye(2, dtype=torch.float64)
        X = solve_discrete_lyapunov(A, Q)
        assert torch.allclose(A @ X @ A.mH - X + Q, torch.zeros(2, 2, dtype=torch.float64))
    """
    A, _, Q = validate_equation(A, A, Q, names=("A", "A", "Q"))
    op = _operator(SteinOperator, A, method)
    if require_stable:
        check_stable(op.eigvals[0], discrete=True)
    return op._apply(Q, False)


def controllability_gramian(A: Tensor, B: Tensor, *, discrete: bool = False, method: str = "auto") -> Tensor:
    """Controllability Gramian ``P`` of ``(A, B)`` (Hermitian; requires a stable ``A``).

    continuous: ``A P + P A^H + B B^H = 0``; discrete: ``P = A P A^H + B B^H``.

    Args:
        A: (..., n, n) state matrix; float32/64 or complex64/128.
        B: (..., n, m) input matrix, ``A``'s dtype and device; batch dimensions broadcast.
        discrete: discrete-time system (``x_{k+1} = A x_k + B u_k``) instead of continuous-time.
        method: as for ``solve_sylvester``.

    Returns:
        ``P`` (..., n, n), Hermitian positive semidefinite, differentiable in ``A`` and ``B``
        (reverse, forward, any order).

    Raises:
        InputError: shapes (``A`` square, ``B`` with ``n`` rows), dtypes, devices, non-finite
            values, meta tensors or ``method`` as for ``solve_sylvester``.
        UnstableSystemError: ``A`` has an eigenvalue with real part ``> 0`` (continuous) or
            modulus ``> 1`` (discrete): the Gramian does not exist; names the eigenvalue.
        SingularEquationError: an eigenvalue on the stability boundary (imaginary axis or unit
            circle, to rounding) makes the Lyapunov equation singular; reported before the
            stability check.

    Example::

        import torch
        from difflinalg import controllability_gramian

        A = torch.tensor([[-1.0, 0.0], [1.0, -2.0]], dtype=torch.float64)
        B = torch.tensor([[1.0], [0.0]], dtype=torch.float64)
        P = controllability_gramian(A, B)
        assert torch.allclose(A @ P + P @ A.mH + B @ B.mH, torch.zeros(2, 2, dtype=torch.float64))
        assert bool((torch.linalg.eigvalsh(P) > 0).all())  # (A, B) is controllable
    """
    reject_meta("A", A)
    reject_meta("B", B)
    A = check_matrix(A, "A", square=True)
    B = check_matrix(B, "B")
    batch_shape(A=A, B=B)  # name B (not the internal B B^H) when the batches do not broadcast
    Q = B @ B.mH
    if discrete:
        return herm(solve_discrete_lyapunov(A, Q, method=method, require_stable=True))
    return herm(solve_continuous_lyapunov(A, -Q, method=method, require_stable=True))


def observability_gramian(A: Tensor, C: Tensor, *, discrete: bool = False, method: str = "auto") -> Tensor:
    """Observability Gramian ``Q`` of ``(C, A)`` (Hermitian; requires a stable ``A``).

    continuous: ``A^H Q + Q A + C^H C = 0``; discrete: ``Q = A^H Q A + C^H C``.

    Args:
        A: (..., n, n) state matrix; float32/64 or complex64/128.
        C: (..., p, n) output matrix, ``A``'s dtype and device; batch dimensions broadcast.
        discrete: discrete-time system instead of continuous-time.
        method: as for ``solve_sylvester``.

    Returns:
        ``Q`` (..., n, n), Hermitian positive semidefinite, differentiable in ``A`` and ``C``.

    Raises:
        InputError: shapes (``A`` square, ``C`` with ``n`` columns), dtypes, devices, non-finite
            values, meta tensors or ``method`` as for ``solve_sylvester``.
        UnstableSystemError: ``A`` is not stable (real part ``> 0``, or modulus ``> 1`` when
            ``discrete``); names the eigenvalue.
        SingularEquationError: an eigenvalue on the stability boundary, to rounding.

    Example::

        import torch
        from difflinalg import observability_gramian

        A = torch.tensor([[0.5, 0.0], [0.2, 0.1]], dtype=torch.float64)
        C = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
        Q = observability_gramian(A, C, discrete=True)
        assert torch.allclose(Q, A.mH @ Q @ A + C.mH @ C)
    """
    reject_meta("A", A)
    reject_meta("C", C)
    A = check_matrix(A, "A", square=True)
    C = check_matrix(C, "C")
    batch_shape(A=A, C=C)
    R = C.mH @ C
    if discrete:
        return herm(solve_discrete_lyapunov(A.mH, R, method=method, require_stable=True))
    return herm(solve_continuous_lyapunov(A.mH, -R, method=method, require_stable=True))
