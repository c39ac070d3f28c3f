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
        A: (..., n, n); Q: (..., n, n); one dtype (real or complex); batch dimensions broadcast.
        method: as for ``solve_sylvester``.
        require_stable: raise ``UnstableSystemError`` unless ``A`` is Hurwitz (all eigenvalues
            with negative real part), i.e. when ``-X`` is needed as a Gramian.

    Raises:
        SingularEquationError: ``A`` has eigenvalues with ``lambda_i + conj(lambda_j) = 0``.
    """
    A, _, Q = validate_equation(A, A, Q, names=("A", "A", "Q"))
    op = _operator(SylvesterOperator, A, method)
    if require_stable:
        check_stable(op.eigvals[0], discrete=False)
    return op._apply(Q, False)


def solve_discrete_lyapunov(A: Tensor, Q: Tensor, *, method: str = "auto",
                            require_stable: bool = False) -> Tensor:
    """Solve ``A X A^H - X + Q = 0`` (SciPy's convention), differentiable in ``A`` and ``Q``.

    Args as for ``solve_continuous_lyapunov``; ``require_stable`` requires spectral radius < 1.

    Raises:
        SingularEquationError: ``A`` has eigenvalues with ``lambda_i conj(lambda_j) = 1``.
    """
    A, _, Q = validate_equation(A, A, Q, names=("A", "A", "Q"))
    op = _operator(SteinOperator, A, method)
    if require_stable:
        check_stable(op.eigvals[0], discrete=True)
    return op._apply(Q, False)


def controllability_gramian(A: Tensor, B: Tensor, *, discrete: bool = False, method: str = "auto") -> Tensor:
    """Controllability Gramian ``P`` of ``(A, B)`` (Hermitian; requires a stable ``A``).

    continuous: ``A P + P A^H + B B^H = 0``; discrete: ``P = A P A^H + B B^H``.
    Raises ``UnstableSystemError`` naming the eigenvalue if ``A`` is not stable.
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
    Raises ``UnstableSystemError`` naming the eigenvalue if ``A`` is not stable.
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
