"""Verification cases of the control family (run by ``difflinalg verify``).

Each case builds a small stable system inside ``fn`` from unconstrained inputs (a shift or a
scaling keeps the finite-difference perturbations inside the stable set) and checks the
derivatives of: ``h2_norm``, ``h2_error`` (Gramian method), ``frequency_response``,
``hankel_singular_values``, ``h2_projection`` (RARL2's concentrated criterion through the
Sylvester/Stein solvers) and ``output_normal_pair`` (the exact parametrization of output-normal
pairs, continuous and discrete time).
"""

from __future__ import annotations

import torch

from ..check import randn, register_case
from .analysis._frequency import frequency_response
from .analysis._hankel import hankel_singular_values
from .analysis._norms import h2_error, h2_norm
from .reduction._rarl2._charts import OutputNormalSpace
from .reduction._rarl2._criterion import h2_projection
from .system._solve import lu_solve
from .system._statespace import StateSpace


def _stable_c(M: torch.Tensor) -> torch.Tensor:
    """Continuous-time stable matrix from any M: M - (||M||_F + 1) I (a smooth map)."""
    n = M.shape[-1]
    nrm = torch.linalg.matrix_norm(M)[..., None, None]
    return M - (nrm + 1.0) * torch.eye(n, dtype=M.dtype)


def _stable_d(M: torch.Tensor) -> torch.Tensor:
    """Discrete-time stable matrix from any M: 0.8 M / (||M||_F + 0.1)."""
    nrm = torch.linalg.matrix_norm(M)[..., None, None]
    return 0.8 * M / (nrm + 0.1)


def _sys_inputs(n, p, m, batch=()):
    return lambda dt, g: (randn(dt, g, *batch, n, n), randn(dt, g, *batch, n, m), randn(dt, g, *batch, p, n))


# -- h2_norm -------------------------------------------------------------------------------------
register_case("h2_norm", "continuous", lambda A, B, C: h2_norm(StateSpace(_stable_c(A), B, C)), _sys_inputs(4, 2, 2))
register_case("h2_norm", "discrete", lambda A, B, C: h2_norm(StateSpace(_stable_d(A), B, C, time="discrete")),
              _sys_inputs(4, 2, 3))
register_case("h2_norm", "batched", lambda A, B, C: h2_norm(StateSpace(_stable_c(A), B, C)), _sys_inputs(3, 1, 2, (2,)))
register_case("h2_norm", "lightly_damped",
              lambda w, B, C: h2_norm(StateSpace(torch.tensor([[-1e-3, 1.0], [-1.0, -1e-3]], dtype=w.dtype) * w[0, 0], B, C)),
              lambda dt, g: (torch.ones(1, 1, dtype=dt) + 0.1 * randn(dt, g, 1, 1), randn(dt, g, 2, 1), randn(dt, g, 1, 2)),
              dtypes=(torch.float64,), hard=True, max_step=1e-5)

# -- h2_error (Gramian method: differentiable) -----------------------------------------------------
def _h2err(A, B, C, Ah, Bh, Ch):
    return h2_error(StateSpace(_stable_c(A), B, C), StateSpace(_stable_c(Ah), Bh, Ch), method="gramian")


def _h2err_d(A, B, C, Ah, Bh, Ch):
    return h2_error(StateSpace(_stable_d(A), B, C, time="discrete"),
                    StateSpace(_stable_d(Ah), Bh, Ch, time="discrete"), method="gramian")


def _pair_inputs(n, r, p, m):
    return lambda dt, g: (*_sys_inputs(n, p, m)(dt, g), *_sys_inputs(r, p, m)(dt, g))


register_case("h2_error", "continuous", _h2err, _pair_inputs(5, 2, 2, 1))
register_case("h2_error", "discrete", _h2err_d, _pair_inputs(5, 2, 1, 2))

# -- frequency_response --------------------------------------------------------------------------
_W = (0.0, 0.5, 3.0)
register_case("frequency_response", "continuous",
              lambda A, B, C: frequency_response(StateSpace(_stable_c(A), B, C), torch.tensor(_W, dtype=torch.float64)),
              _sys_inputs(4, 2, 2))
register_case("frequency_response", "discrete_batched",
              lambda A, B, C: frequency_response(StateSpace(_stable_d(A), B, C, time="discrete"),
                                                 torch.tensor(_W, dtype=torch.float64)),
              _sys_inputs(3, 1, 2, (2,)))

# -- Hankel singular values (distinct) -------------------------------------------------------------
register_case("hankel_singular_values", "generic",
              lambda A, B, C: hankel_singular_values(StateSpace(_stable_c(A), B, C)), _sys_inputs(4, 2, 2),
              max_step=1e-3)

# -- RARL2's concentrated criterion ----------------------------------------------------------------
def _crit(AF, BF, CF, Cc, K):
    # (C, A) output normal: A = S - C^H C / 2, S the skew part of K
    A = 0.5 * (K - K.mH) - Cc.mH @ Cc / 2
    return h2_projection(StateSpace(_stable_c(AF), BF, CF), Cc, A)


def _crit_d(AF, BF, CF, Cc, K):
    # (C, A) output normal: the Cayley image of the continuous pair built as in _crit
    I = torch.eye(K.shape[-1], dtype=K.dtype)
    Ac = 0.5 * (K - K.mH) - Cc.mH @ Cc / 2
    X = lu_solve(I - Ac, torch.cat([I + Ac, 2**0.5 * Cc], -2), left=False)
    return h2_projection(StateSpace(_stable_d(AF), BF, CF, time="discrete"), X[..., K.shape[-1]:, :], X[..., : K.shape[-1], :])


def _crit_inputs(N, n, p, m):
    return lambda dt, g: (*_sys_inputs(N, p, m)(dt, g), randn(dt, g, p, n), randn(dt, g, n, n))


register_case("h2_projection", "continuous", _crit, _crit_inputs(6, 2, 2, 2), max_step=1e-3)
register_case("h2_projection", "discrete", _crit_d, _crit_inputs(6, 2, 1, 2), max_step=1e-3)

# -- the output-normal parametrization -------------------------------------------------------------
def _pair_fn(discrete):
    def fn(x):
        complex_ = x.is_complex()
        sp = OutputNormalSpace(3, 2, complex_, discrete)
        xr = torch.cat([x.real, x.imag]) if complex_ else x
        return sp.pair(xr[: sp.dim_ambient])
    return fn


register_case("output_normal_pair", "continuous", _pair_fn(False), lambda dt, g: (randn(dt, g, 12),))
register_case("output_normal_pair", "discrete", _pair_fn(True), lambda dt, g: (randn(dt, g, 12),))
