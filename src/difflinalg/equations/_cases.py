"""Verification cases of the matrix equations (run by ``difflinalg verify``).

Every op is checked through each method (``kron`` is what ``auto`` picks at these tiny sizes, so
the Schur, torch-recurrence and eigenvector paths are registered explicitly), batched with
broadcasting, and at its hard points: a near-singular equation (eigenvalue gap 1e-3, finite
differences kept inside the gap with ``max_step``), non-normal and defective coefficients, a
nilpotent (singular) Stein coefficient as in RARL2's FIR targets, an unstable Lyapunov coefficient.
"""

from __future__ import annotations

import torch

from ..check import randn, register_case
from ._lyapunov import solve_continuous_lyapunov, solve_discrete_lyapunov
from ._operator import SteinOperator, SylvesterOperator
from ._solve import solve_stein, solve_sylvester


def _unitary(dtype, gen, n):
    return torch.linalg.qr(randn(dtype, gen, n, n))[0]


def _with_spectrum(dtype, gen, lam):
    """A normal matrix with the given eigenvalues (real for a real dtype)."""
    Q = _unitary(dtype, gen, len(lam))
    return Q @ torch.diag(torch.tensor(lam, dtype=dtype)) @ Q.mH


def _shifted(dtype, gen, n, shift, batch=()):
    """Random matrix with spectrum around ``shift`` (radius about 1): well separated equations."""
    return randn(dtype, gen, *batch, n, n) / n ** 0.5 + shift * torch.eye(n, dtype=dtype)


def _contractive(dtype, gen, n, rho=0.6, batch=()):
    A = randn(dtype, gen, *batch, n, n)
    return rho * A / torch.linalg.eigvals(A).abs().amax(-1)[..., None, None].to(A.dtype)


def _jordan(dtype, n, lam):
    return lam * torch.eye(n, dtype=dtype) + torch.diag(torch.ones(n - 1, dtype=dtype), 1)


def _sylv(method):
    return lambda A, B, C: solve_sylvester(A, B, C, method=method)


def _stein(method):
    return lambda A, B, C: solve_stein(A, B, C, method=method)


# -- solve_sylvester ---------------------------------------------------------------------------
_S = "solve_sylvester"
register_case(_S, "generic", solve_sylvester,
              lambda dt, g: (randn(dt, g, 4, 4), randn(dt, g, 3, 3), randn(dt, g, 4, 3)))
for _m in ("schur", "schur-torch", "eig"):
    register_case(_S, _m.replace("-", "_"), _sylv(_m),
                  lambda dt, g: (randn(dt, g, 5, 5), randn(dt, g, 3, 3), randn(dt, g, 5, 3)))
register_case(_S, "auto_schur", solve_sylvester,  # m n > KRON_MAX: the LAPACK path
              lambda dt, g: (_shifted(dt, g, 9, 1.0), _shifted(dt, g, 8, 1.0), randn(dt, g, 9, 8)))
register_case(_S, "batched", _sylv("schur"),
              lambda dt, g: (randn(dt, g, 2, 4, 4), randn(dt, g, 3, 3), randn(dt, g, 3, 1, 4, 3)))
register_case(_S, "batched_kron", _sylv("kron"),
              lambda dt, g: (randn(dt, g, 2, 3, 3), randn(dt, g, 2, 2, 2), randn(dt, g, 2, 3, 2)))
register_case(_S, "near_singular", _sylv("schur"),
              lambda dt, g: (_with_spectrum(dt, g, [1.0, 2.0, 3.0]),
                             _with_spectrum(dt, g, [-1.0 + 1e-3, 0.5, 4.0]), randn(dt, g, 3, 3)),
              hard=True, max_step=1e-6)
register_case(_S, "non_normal", _sylv("schur"),
              lambda dt, g: (_jordan(dt, 4, 0.5) * 3 + 0.1 * randn(dt, g, 4, 4),
                             _jordan(dt, 3, 1.0) * 2, randn(dt, g, 4, 3)),
              hard=True)
register_case(_S, "defective", _sylv("schur"),
              lambda dt, g: (_jordan(dt, 4, 0.5), _jordan(dt, 3, 1.0), randn(dt, g, 4, 3)),
              hard=True)

# -- solve_stein -------------------------------------------------------------------------------
_T = "solve_stein"
register_case(_T, "generic", solve_stein,
              lambda dt, g: (_contractive(dt, g, 4), _contractive(dt, g, 3), randn(dt, g, 4, 3)))
for _m in ("schur", "schur-torch", "eig"):
    register_case(_T, _m.replace("-", "_"), _stein(_m),
                  lambda dt, g: (_contractive(dt, g, 5), _contractive(dt, g, 3), randn(dt, g, 5, 3)))
register_case(_T, "wide_schur", _stein("schur"),  # m < n: the recurrence runs on the transpose
              lambda dt, g: (randn(dt, g, 3, 3), _contractive(dt, g, 6, 0.3), randn(dt, g, 3, 6)))
register_case(_T, "batched", _stein("schur"),
              lambda dt, g: (_contractive(dt, g, 4, batch=(2,)), _contractive(dt, g, 3),
                             randn(dt, g, 3, 1, 4, 3)))
register_case(_T, "nilpotent_A", _stein("schur"),  # FIR shift matrix (RARL2): A singular
              lambda dt, g: (torch.diag(torch.ones(4, dtype=dt), -1), _contractive(dt, g, 3, 0.9),
                             randn(dt, g, 5, 3)), hard=True)
register_case(_T, "near_singular", _stein("schur"),
              lambda dt, g: (_with_spectrum(dt, g, [0.5, 2.0, 0.1]),
                             _with_spectrum(dt, g, [2.0 * (1 - 1e-3), 0.3, -1.0]), randn(dt, g, 3, 3)),
              hard=True, max_step=1e-6)

# -- Lyapunov ----------------------------------------------------------------------------------
_C = "solve_continuous_lyapunov"
register_case(_C, "generic", solve_continuous_lyapunov, lambda dt, g: (randn(dt, g, 4, 4), randn(dt, g, 4, 4)))
register_case(_C, "schur", lambda A, Q: solve_continuous_lyapunov(A, Q, method="schur"),
              lambda dt, g: (_shifted(dt, g, 5, -1.0), randn(dt, g, 5, 5)))
register_case(_C, "schur_torch", lambda A, Q: solve_continuous_lyapunov(A, Q, method="schur-torch"),
              lambda dt, g: (_shifted(dt, g, 5, -1.0), randn(dt, g, 5, 5)))
register_case(_C, "batched", lambda A, Q: solve_continuous_lyapunov(A, Q, method="schur"),
              lambda dt, g: (_shifted(dt, g, 3, -1.0, batch=(2,)), randn(dt, g, 3, 1, 3, 3)))
register_case(_C, "hermitian_gramian", lambda A, B: solve_continuous_lyapunov(A, -B @ B.mH, require_stable=True),
              lambda dt, g: (_shifted(dt, g, 4, -1.5), randn(dt, g, 4, 2)))
register_case(_C, "unstable_A", lambda A, Q: solve_continuous_lyapunov(A, Q, method="schur"),
              lambda dt, g: (_shifted(dt, g, 4, 1.5), randn(dt, g, 4, 4)), hard=True)

_D = "solve_discrete_lyapunov"
register_case(_D, "generic", solve_discrete_lyapunov, lambda dt, g: (_contractive(dt, g, 4), randn(dt, g, 4, 4)))
register_case(_D, "schur", lambda A, Q: solve_discrete_lyapunov(A, Q, method="schur"),
              lambda dt, g: (_contractive(dt, g, 5), randn(dt, g, 5, 5)))
register_case(_D, "schur_torch", lambda A, Q: solve_discrete_lyapunov(A, Q, method="schur-torch"),
              lambda dt, g: (_contractive(dt, g, 5), randn(dt, g, 5, 5)))
register_case(_D, "batched", lambda A, Q: solve_discrete_lyapunov(A, Q, method="schur"),
              lambda dt, g: (_contractive(dt, g, 3, batch=(2,)), randn(dt, g, 3, 1, 3, 3)))
register_case(_D, "near_unit_circle", lambda A, Q: solve_discrete_lyapunov(A, Q, method="schur"),
              lambda dt, g: (_contractive(dt, g, 4, 0.99), randn(dt, g, 4, 4)), hard=True, max_step=1e-4)

# -- operators (factor once; solve and adjoint solve) --------------------------------------------
register_case("SylvesterOperator", "solve", lambda A, B, C: SylvesterOperator(A, B, method="schur").solve(C),
              lambda dt, g: (randn(dt, g, 5, 5), randn(dt, g, 3, 3), randn(dt, g, 2, 5, 3)))
register_case("SylvesterOperator", "solve_adjoint",
              lambda A, B, C: SylvesterOperator(A, B, method="schur").solve_adjoint(C),
              lambda dt, g: (randn(dt, g, 5, 5), randn(dt, g, 3, 3), randn(dt, g, 5, 3)))
register_case("SylvesterOperator", "solve_adjoint_kron",
              lambda A, B, C: SylvesterOperator(A, B, method="kron").solve_adjoint(C),
              lambda dt, g: (randn(dt, g, 3, 3), randn(dt, g, 2, 2), randn(dt, g, 3, 2)))
register_case("SteinOperator", "solve", lambda A, B, C: SteinOperator(A, B, method="schur").solve(C),
              lambda dt, g: (_contractive(dt, g, 5), _contractive(dt, g, 3), randn(dt, g, 2, 5, 3)))
register_case("SteinOperator", "solve_adjoint",
              lambda A, B, C: SteinOperator(A, B, method="schur").solve_adjoint(C),
              lambda dt, g: (_contractive(dt, g, 5), _contractive(dt, g, 3), randn(dt, g, 5, 3)))
register_case("SteinOperator", "solve_adjoint_torch",
              lambda A, B, C: SteinOperator(A, B, method="schur-torch").solve_adjoint(C),
              lambda dt, g: (_contractive(dt, g, 3), _contractive(dt, g, 5), randn(dt, g, 3, 5)))
