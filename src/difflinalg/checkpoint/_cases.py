"""Verification cases of ``binomial_loop`` (run by ``difflinalg verify``), and the unrolled ADMM
loop that the tests and ``benchmarks/checkpoint.py`` use.

Reverse mode only ("vjp" and double backward "hvp_rev"): the loop has no forward-mode rule (forward
mode needs no checkpointing).
"""

from __future__ import annotations

import torch

from ..check import randn, register_case
from ._loop import binomial_loop

MODES = ("vjp", "hvp_rev")


def _map(W, b):
    """A contracting nonlinear map (real or complex state)."""
    if W.is_complex():
        return lambda x: 0.5 * W @ x + 0.3 * torch.tanh(x.real).to(x.dtype) + b
    return lambda x: torch.tanh(W @ x + b)


def _inputs(dtype, gen, n=5):
    W = randn(dtype, gen, n, n)
    return randn(dtype, gen, n), W / torch.linalg.matrix_norm(W, 2), randn(dtype, gen, n)


register_case("binomial_loop", "generic", lambda x0, W, b: binomial_loop(_map(W, b), x0, 12, snapshots=3),
              _inputs, modes=MODES)
register_case("binomial_loop", "one_snapshot", lambda x0, W, b: binomial_loop(_map(W, b), x0, 9, snapshots=1),
              _inputs, modes=MODES, hard=True)


def _captured(x0, W, b):
    """The step captures W (a leaf) and c, a non-leaf computed from W before the loop."""
    c = torch.tanh(W.sum(-1)) * b
    return binomial_loop(_map(W, c), x0, 10, snapshots=3)


register_case("binomial_loop", "captured_non_leaf", _captured, _inputs, modes=MODES)


def _tuple_loop(q0, p0, K):
    def step(s):
        q, p = s
        p = p - 0.1 * torch.sin((K @ q).real).to(p.dtype)
        return q + 0.1 * p, p
    return binomial_loop(step, (q0, p0), 10, snapshots=2)


register_case("binomial_loop", "tuple_state", _tuple_loop,
              lambda dtype, gen: (randn(dtype, gen, 4), randn(dtype, gen, 4), randn(dtype, gen, 4, 4)),
              modes=MODES)


def admm_lasso(D, X, rho: float, lam: float, carry: bool = False):
    """Unrolled ADMM for the (complex) lasso ``min_z ||x - D z||^2 / 2 + lam ||z||_1``, one ``z``
    per row ``x`` of ``X`` (Boyd et al. 2011, section 6.4), in the factor-once form of issue 19:
    ``L = chol(rho I + D D^H)`` and ``D^H X`` are computed before the loop, and the z-update applies
    the Woodbury identity ``(rho I + D^H D)^{-1} r = (r - D^H (rho I + D D^H)^{-1} D r) / rho``.

    Returns ``(step, state0)``: ``step((z, u))`` captures the leaf ``D`` and the non-leaves ``L``
    and ``D^H X``; ``state0 = (0, 0)``. With ``carry`` the state is ``(z, u, L, D^H X)`` and the
    step returns ``L`` and ``D^H X`` unchanged (carrying non-leaves by hand).
    """
    eye = torch.eye(D.shape[-2], dtype=D.dtype)
    L = torch.linalg.cholesky(rho * eye + D @ D.mH)
    DhX = X @ D.conj()  # rows: D^H x

    def update(z, u, L, DhX):
        r = DhX + rho * (z - u)
        w = torch.cholesky_solve((r @ D.mT).mT, L).mT @ D.conj()  # all rows in one solve
        v = (r - w) / rho + u  # the x-update, plus u
        mag = v.abs()
        z = v * (torch.clamp(mag - lam / rho, min=0) / mag.clamp_min(torch.finfo(mag.dtype).tiny))
        return z, v - z  # u + x - z

    z0 = torch.zeros(X.shape[0], D.shape[-1], dtype=D.dtype)
    if carry:
        return (lambda s: (*update(*s), s[2], s[3])), (z0, z0.clone(), L, DhX)
    return (lambda s: update(*s, L, DhX)), (z0, z0.clone())
