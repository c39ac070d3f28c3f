"""``solve_sylvester`` and ``solve_stein``: one-shot solves (factorize, solve, keep the factors for
the derivatives). See ``_rule.py`` for the derivative formulas and ``_operator.py`` for the
methods and where they run."""

from __future__ import annotations

from torch import Tensor

from ._checks import validate_equation
from ._operator import SteinOperator, SylvesterOperator


def solve_sylvester(A: Tensor, B: Tensor, C: Tensor, *, method: str = "auto") -> Tensor:
    """Solve the Sylvester equation ``A X + X B = C`` (SciPy's ``solve_sylvester`` convention).

    Args:
        A: (..., m, m), B: (..., n, n), C: (..., m, n); float32/64 or complex64/128, one dtype and
            one device; batch dimensions broadcast.
        method: ``"auto"`` (Kronecker LU for tiny sizes, else Bartels-Stewart), ``"schur"``,
            ``"schur-torch"``, ``"eig"``, ``"kron"`` (see ``SylvesterOperator``).

    Returns:
        ``X`` (..., m, n), differentiable in ``A``, ``B``, ``C`` (reverse, forward, any order; the
        adjoint solves of the backward pass reuse this call's factors).

    Raises:
        InputError: non-square coefficients, mismatched shapes, batch shapes that do not
            broadcast, mixed dtypes or devices, non-finite values, meta tensors, an unknown
            ``method``; with ``method="eig"``, eigenvector matrices too ill-conditioned for it.
        SingularEquationError: ``A`` and ``-B`` share an eigenvalue (gap ``<= 4 max(m, n) eps
            (||A||_F + ||B||_F)``), or the solution's growth proves the equation numerically
            singular; names the closest pair.
        ConvergenceError: the Schur decomposition (LAPACK ``?gees``) did not converge.

    Warns:
        PrecisionWarning: the condition estimate predicts fewer than two correct digits (mostly
            single precision; ``docs/conventions.md``).
        TransformCheckWarning: inside ``torch.func`` the singularity check cannot raise: singular
            batch elements are NaN instead.

    Example::

        import torch
        from difflinalg import solve_sylvester

        A = torch.tensor([[-2.0, 1.0], [0.0, -3.0]], dtype=torch.float64, requires_grad=True)
        B = torch.tensor([[-1.0]], dtype=torch.float64)
        C = torch.ones(2, 1, dtype=torch.float64)
        X = solve_sylvester(A, B, C)
        assert torch.allclose(A @ X + X @ B, C)
        X.sum().backward()  # A.grad: one adjoint solve with the same factors
    """
    A, B, C = validate_equation(A, B, C)
    return SylvesterOperator(A, B, method=method, _validated=True)._apply(C, False)


def solve_stein(A: Tensor, B: Tensor, C: Tensor, *, method: str = "auto") -> Tensor:
    """Solve the Stein (discrete-time Sylvester) equation ``X - A X B = C``.

    Args:
        A: (..., m, m), B: (..., n, n), C: (..., m, n); float32/64 or complex64/128, one dtype and
            one device; batch dimensions broadcast.
        method: as for ``solve_sylvester`` (``"auto"``, ``"schur"``, ``"schur-torch"``, ``"eig"``,
            ``"kron"``).

    Returns:
        ``X`` (..., m, n), differentiable in ``A``, ``B``, ``C`` (reverse, forward, any order).

    Raises:
        InputError: as for ``solve_sylvester`` (shapes, dtypes, devices, non-finite values, meta
            tensors, ``method``).
        SingularEquationError: a product ``lambda_i(A) mu_j(B)`` of eigenvalues equals 1 (gap
            ``|1 - lambda_i mu_j| <= 4 max(m, n) eps (1 + ||A||_F ||B||_F)``), or the solution's
            growth proves the equation numerically singular; names the closest pair.
        ConvergenceError: the Schur decomposition (LAPACK ``?gees``) did not converge.

    Warns:
        PrecisionWarning, TransformCheckWarning: as for ``solve_sylvester``.

    Example::

        import torch
        from difflinalg import solve_stein

        A = 0.5 * torch.eye(2, dtype=torch.float64)
        B = torch.tensor([[0.2, 0.1], [0.0, 0.3]], dtype=torch.float64)
        C = torch.ones(2, 2, dtype=torch.float64)
        X = solve_stein(A, B, C)
        assert torch.allclose(X - A @ X @ B, C)
    """
    A, B, C = validate_equation(A, B, C)
    return SteinOperator(A, B, method=method, _validated=True)._apply(C, False)
