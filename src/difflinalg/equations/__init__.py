"""Matrix equations: Sylvester, Stein, Lyapunov, and reusable factored operators.

Differentiable solves (reverse, forward, any order) of

    solve_sylvester(A, B, C):          A X + X B = C
    solve_stein(A, B, C):              X - A X B = C
    solve_continuous_lyapunov(A, Q):   A X + X A^H = Q        (SciPy's conventions)
    solve_discrete_lyapunov(A, Q):     A X A^H - X + Q = 0

and the factored operators ``SylvesterOperator(A, B)`` / ``SteinOperator(A, B)`` (``.solve``,
``.solve_adjoint``), which factorize once (``SchurForm`` lets a fixed coefficient be shared between
operators). The derivatives solve the adjoint equation with the kept factors (``_rule.py``).

Conditioning (documented behaviour near singularity). With ``sep`` the smallest eigenvalue gap
(``|lambda_i(A) + mu_j(B)|`` or ``|1 - lambda_i mu_j|``): ``sep <= 4 max(m, n) eps scale`` raises
``SingularEquationError`` naming the pair; above it the equation is solved, the solution grows like
``||C|| / sep``, its relative error is about ``eps scale / sep`` for normal coefficients (more for
non-normal ones, the Schur methods being backward stable), and gradients grow like ``1 / sep^2``.
"""

from ._factor import SchurForm
from ._lyapunov import (
    controllability_gramian,
    observability_gramian,
    solve_continuous_lyapunov,
    solve_discrete_lyapunov,
)
from ._operator import SteinOperator, SylvesterOperator
from ._solve import solve_stein, solve_sylvester

__all__ = [
    "SchurForm",
    "SteinOperator",
    "SylvesterOperator",
    "controllability_gramian",
    "observability_gramian",
    "solve_continuous_lyapunov",
    "solve_discrete_lyapunov",
    "solve_stein",
    "solve_sylvester",
]
