"""Shared checks of the matrix-function tests."""

from __future__ import annotations

import torch

from difflinalg.check import derivative, gradcheck


def assert_hessian_matches_fd(f, X: torch.Tensor, seed: int = 0) -> None:
    """Values, not just shape and finiteness: ``torch.func.hessian(f)(X)`` contracted with random
    directions equals the finite-difference derivative of ``grad f`` along them (within the
    estimate's own error bound plus rounding of the Hessian), and the Hessian-vector products
    (forward-over-reverse and double backward) pass ``difflinalg.check.gradcheck``."""
    H = torch.func.hessian(f)(X)
    n = X.numel()
    Hm = H.reshape(n, n)
    torch.testing.assert_close(Hm, Hm.mT, rtol=1e-10, atol=1e-12 * float(Hm.abs().max()))  # symmetric
    g = torch.Generator().manual_seed(seed)
    grad = torch.func.grad(f)
    for _ in range(2):
        D = torch.randn(X.shape, dtype=X.dtype, generator=g)
        fd = derivative(grad, X, direction=D)
        hd = (Hm @ D.reshape(-1)).reshape(X.shape)
        err = (hd - fd.value).abs()
        bound = 10 * fd.error + 1e3 * torch.finfo(X.dtype).eps * float(Hm.abs().max()) * float(D.abs().max())
        assert float(Hm.abs().max()) > 1e-3  # a Hessian that could be wrong
    assert bool((err <= bound).all()), (float(err.max()), float(bound.max()))
    assert gradcheck(f, X, modes=("hvp", "hvp_rev"), seed=seed).passed
