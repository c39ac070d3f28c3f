"""Verification cases of ``binomial_loop`` (run by ``difflinalg verify``).

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


def _tuple_loop(q0, p0, K):
    def step(s):
        q, p = s
        p = p - 0.1 * torch.sin((K @ q).real).to(p.dtype)
        return q + 0.1 * p, p
    return binomial_loop(step, (q0, p0), 10, snapshots=2)


register_case("binomial_loop", "tuple_state", _tuple_loop,
              lambda dtype, gen: (randn(dtype, gen, 4), randn(dtype, gen, 4), randn(dtype, gen, 4, 4)),
              modes=MODES)
