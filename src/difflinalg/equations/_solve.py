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
        A: (..., m, m), B: (..., n, n), C: (..., m, n); float32/64 or complex64/128, one dtype;
            batch dimensions broadcast.
        method: ``"auto"`` (Kronecker LU for tiny sizes, else Bartels-Stewart), ``"schur"``,
            ``"schur-torch"``, ``"eig"``, ``"kron"`` (see ``SylvesterOperator``).

    Returns:
        ``X`` (..., m, n), differentiable in ``A``, ``B``, ``C`` (reverse, forward, any order; the
        adjoint solves of the backward pass reuse this call's factors).

    Raises:
        InputError: non-square coefficients, mismatched shapes, mixed dtypes, non-finite values.
        SingularEquationError: ``A`` and ``-B`` share an eigenvalue (names the closest pair).
    """
    A, B, C = validate_equation(A, B, C)
    return SylvesterOperator(A, B, method=method, _validated=True)._apply(C, False)


def solve_stein(A: Tensor, B: Tensor, C: Tensor, *, method: str = "auto") -> Tensor:
    """Solve the Stein (discrete-time Sylvester) equation ``X - A X B = C``.

    Arguments, gradients and errors as for ``solve_sylvester``; the equation is singular when a
    product ``lambda_i(A) mu_j(B)`` of eigenvalues equals 1.
    """
    A, B, C = validate_equation(A, B, C)
    return SteinOperator(A, B, method=method, _validated=True)._apply(C, False)
