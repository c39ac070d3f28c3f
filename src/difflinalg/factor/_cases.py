"""Verification cases of the factorization rules (run by ``difflinalg verify``)."""

from __future__ import annotations

import torch

from .._utils import real_dtype
from ..check import randn, register_case
from ._cholesky import cholesky


def _spd(dtype, gen, n=4, batch=(), cond=None):
    """A random Hermitian positive-definite matrix (optionally with condition number ``cond``)."""
    X = randn(dtype, gen, *batch, n, n)
    if cond is None:
        return X @ X.mH + n * torch.eye(n, dtype=dtype)
    Q, _ = torch.linalg.qr(X)
    w = torch.logspace(0, -torch.log10(torch.tensor(float(cond))).item(), n, dtype=real_dtype(X.dtype)).to(dtype)
    return Q @ torch.diag_embed(w) @ Q.mH


register_case("cholesky", "generic", cholesky, lambda dt, g: (_spd(dt, g),))
register_case("cholesky", "batched", cholesky, lambda dt, g: (_spd(dt, g, n=3, batch=(2, 2)),))
register_case("cholesky", "upper", lambda A: cholesky(A, upper=True), lambda dt, g: (_spd(dt, g),))
register_case("cholesky", "ill_conditioned", cholesky, lambda dt, g: (_spd(dt, g, n=4, cond=1e6),),
              hard=True, max_step=1e-8)


# --- qr / lq -------------------------------------------------------------------------------------

from ._qr import lq, qr  # noqa: E402
from ._regularized_solve import regularized_solve  # noqa: E402
from ._regularized_solver import RegularizedSolver  # noqa: E402


def _ill(dtype, gen, m, n, cond):
    """An m x n matrix with singular values logspaced from 1 to 1 / cond."""
    k = min(m, n)
    U, _ = torch.linalg.qr(randn(dtype, gen, m, k))
    V, _ = torch.linalg.qr(randn(dtype, gen, n, k))
    rdt = real_dtype(dtype)
    s = torch.logspace(0, -torch.log10(torch.tensor(float(cond))).item(), k, dtype=rdt).to(dtype)
    return (U * s) @ V.mH


def qr_complete_invariant(A, probe):
    """Losses invariant under Q2 -> Q2 W of the complete QR: Q2 Q2^H, ||Q2^H probe||, Q1, R."""
    Q, R = qr(A, mode="complete")
    n = A.shape[-1]
    Q2 = Q[..., n:]
    return Q2 @ Q2.mH, torch.linalg.vector_norm(Q2.mH @ probe, dim=-2), Q[..., :n], R


def lq_complete_invariant(A, probe):
    """LQ counterpart: Q2^H Q2, ||Q2 probe||, Q1, L (Q2 = the last n - m rows of Q)."""
    L, Q = lq(A, mode="complete")
    m = A.shape[-2]
    Q2 = Q[..., m:, :]
    return Q2.mH @ Q2, torch.linalg.vector_norm(Q2 @ probe, dim=-2), Q[..., :m, :], L


for _name, _shape in [("tall", (5, 3)), ("square", (4, 4)), ("wide", (3, 5)), ("batched", (2, 2, 4, 3)),
                      ("batched_wide", (2, 3, 5))]:
    register_case("qr", _name, qr, lambda dt, g, s=_shape: (randn(dt, g, *s),))
register_case("qr", "mode_r", lambda A: qr(A, mode="r").R, lambda dt, g: (randn(dt, g, 2, 5, 3),))
register_case("qr", "mode_r_wide", lambda A: qr(A, mode="r").R, lambda dt, g: (randn(dt, g, 3, 5),))
register_case("qr", "complete_invariant", lambda A: qr_complete_invariant(A, torch.ones(5, 1, dtype=A.dtype)),
              lambda dt, g: (randn(dt, g, 2, 5, 2),))
register_case("qr", "complete_wide", lambda A: qr(A, mode="complete"), lambda dt, g: (randn(dt, g, 3, 5),))
register_case("qr", "ill_conditioned", qr, lambda dt, g: (_ill(dt, g, 5, 3, 1e4),), hard=True, max_step=1e-6)
register_case("qr", "near_dependent_columns_wide", qr,
              lambda dt, g: (torch.cat([_ill(dt, g, 3, 3, 1e4), randn(dt, g, 3, 2)], -1),),
              hard=True, max_step=1e-6)

for _name, _shape in [("tall", (5, 3)), ("wide", (3, 5)), ("batched", (2, 3, 4))]:
    register_case("lq", _name, lq, lambda dt, g, s=_shape: (randn(dt, g, *s),))
register_case("lq", "mode_r", lambda A: lq(A, mode="r").L, lambda dt, g: (randn(dt, g, 3, 5),))
register_case("lq", "complete_invariant", lambda A: lq_complete_invariant(A, torch.ones(5, 1, dtype=A.dtype)),
              lambda dt, g: (randn(dt, g, 2, 5),))
register_case("lq", "ill_conditioned", lq, lambda dt, g: (_ill(dt, g, 3, 5, 1e4),), hard=True, max_step=1e-6)


# --- regularized_solve ---------------------------------------------------------------------------
# Inputs (D, x, rho): every input is differentiated; max_step keeps rho + t u positive.


def _rs_case(name, dshape, xshape, rshape, *, gram="DhD", method="auto", rho_lo=1.0, hard=False,
             cond=None, max_step=0.05):
    def fn(D, x, rho):
        return regularized_solve(D, x, rho, gram=gram, method=method)

    def make(dt, g):
        D = randn(dt, g, *dshape) if cond is None else _ill(dt, g, *dshape, cond)
        rdt = real_dtype(dt)
        rho = rho_lo * (1.0 + torch.rand(rshape, generator=g, dtype=rdt))
        return D, randn(dt, g, *xshape), rho

    register_case("regularized_solve", name, fn, make, hard=hard, max_step=max_step, names=("D", "x", "rho"))


_rs_case("DhD_direct", (5, 3), (3, 2), (), method="direct")
_rs_case("DhD_woodbury", (5, 3), (3, 2), (), method="woodbury")
_rs_case("DDh_direct", (3, 5), (3, 2), (), gram="DDh", method="direct")
_rs_case("DDh_woodbury", (3, 5), (3, 2), (), gram="DDh", method="woodbury")
_rs_case("wide_auto", (2, 6), (6,), ())
_rs_case("batched_rho_vector", (2, 4, 3), (2, 3), (2,))
_rs_case("batched_broadcast", (4, 3), (2, 3, 2), (2,), gram="DhD", method="woodbury")
_rs_case("small_rho_ill_conditioned", (5, 3), (3, 2), (), method="woodbury", rho_lo=1e-3, cond=1e3,
         hard=True, max_step=1e-5)


# --- RegularizedSolver: several solves through one factor (a chained solve, as in an unrolled loop)


def _solver_case(name, dshape, xshape, *, gram="DhD", method="auto"):
    def fn(D, x, rho):
        solver = RegularizedSolver(D, rho, gram=gram, method=method)
        y = solver.solve(x)
        return y, solver.solve(0.5 * y + x)

    def make(dt, g):
        rdt = real_dtype(dt)
        return randn(dt, g, *dshape), randn(dt, g, *xshape), 1.0 + torch.rand((), generator=g, dtype=rdt)

    register_case("RegularizedSolver", name, fn, make, max_step=0.05, names=("D", "x", "rho"))


_solver_case("DhD_woodbury_chained", (3, 5), (5, 2))
_solver_case("DDh_direct_chained", (3, 5), (3, 2), gram="DDh")
_solver_case("DhD_direct_batched", (2, 5, 3), (2, 3))


# --- ConvolutionalSolver: one system per frequency (F = 3 here), a batch of right-hand sides and a
# chained solve; C = 1 with a constant rho is the Sherman-Morrison closed form, with a differentiated
# rho (and C = 3) the Woodbury factor.

from ._convolutional import ConvolutionalSolver  # noqa: E402


def _csc_case(name, C, M, rho_input=True):
    def solves(D_hat, b, rho):
        solver = ConvolutionalSolver(D_hat, rho)
        x = solver.solve(b)
        return x, solver.solve(0.5 * x + b)

    def make(dt, g):
        rdt = real_dtype(dt)
        rho = (0.5 + torch.rand((), generator=g, dtype=rdt),) if rho_input else ()
        return (randn(dt, g, 3, C, M), randn(dt, g, 2, 3, M)) + rho

    fn = solves if rho_input else (lambda D_hat, b: solves(D_hat, b, 0.7))
    names = ("D_hat", "b_hat", "rho")[:3 if rho_input else 2]
    register_case("ConvolutionalSolver", name, fn, make, max_step=0.05, names=names)


_csc_case("single_channel_sherman_morrison", 1, 4, rho_input=False)
_csc_case("single_channel_rho_differentiated", 1, 4)
_csc_case("three_channels_woodbury", 3, 5)
