"""Verification cases of the factorization rules (run by ``difflinalg verify``)."""

from __future__ import annotations

import torch

from ..check import register_case
from ._cholesky import cholesky


def _spd(dtype, gen, n=4, batch=(), cond=None):
    """A random Hermitian positive-definite matrix (optionally with condition number ``cond``)."""
    rdt = torch.empty((), dtype=dtype).real.dtype
    X = torch.randn(*batch, n, n, generator=gen, dtype=rdt)
    if dtype.is_complex:
        X = torch.complex(X, torch.randn(*batch, n, n, generator=gen, dtype=rdt))
    if cond is None:
        return X @ X.mH + n * torch.eye(n, dtype=dtype)
    Q, _ = torch.linalg.qr(X)
    w = torch.logspace(0, -torch.log10(torch.tensor(float(cond))).item(), n, dtype=rdt).to(dtype)
    return Q @ torch.diag_embed(w) @ Q.mH


register_case("cholesky", "generic", cholesky, lambda dt, g: (_spd(dt, g),))
register_case("cholesky", "batched", cholesky, lambda dt, g: (_spd(dt, g, n=3, batch=(2, 2)),))
register_case("cholesky", "upper", lambda A: cholesky(A, upper=True), lambda dt, g: (_spd(dt, g),))
register_case("cholesky", "ill_conditioned", cholesky, lambda dt, g: (_spd(dt, g, n=4, cond=1e6),),
              hard=True, max_step=1e-8)
