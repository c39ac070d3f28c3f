"""Verification cases of the implicit-differentiation ops (run by ``difflinalg verify``).

Each case solves its problem in closed form or by a plain (non-differentiated) iteration inside
``fn``, so finite differences see the true solution map, and attaches it with the implicit op.
"""

from __future__ import annotations

import torch

from .._utils import real_dtype
from ..check import randn, register_case
from ._argmin import argmin
from ._fixed_point import fixed_point
from ._root import root


# ------------------------------------------------------------------ root: ridge regression

def _ridge_F(w, X, y, lam):
    return (X.mH @ (X @ w[..., None] - y[..., None]))[..., 0] + lam[..., None] * w


def _ridge(X, y, lam, solve="auto", batch_dims=0):
    n = X.shape[-1]
    with torch.no_grad():
        A = X.mH @ X + lam[..., None, None] * torch.eye(n, dtype=X.dtype)
        w = torch.linalg.solve(A, (X.mH @ y[..., None])[..., 0])
    return root(_ridge_F, w, X, y, lam, solve=solve, batch_dims=batch_dims)


def _ridge_inputs(batch=(), m=6, n=3, cond=None):
    def make(dtype, gen):
        X = randn(dtype, gen, *batch, m, n)
        if cond is not None:  # singular values from 1 down to 1/cond
            U, _, Vh = torch.linalg.svd(X, full_matrices=False)
            rdt = real_dtype(dtype)
            s = torch.logspace(0, -torch.log10(torch.tensor(float(cond))).item(), n, dtype=rdt)
            X = U @ torch.diag_embed(s.to(dtype)) @ Vh
        lam_val = 1e-3 if cond is not None else 0.7
        lam = torch.full(batch, lam_val, dtype=real_dtype(dtype))
        return X, randn(dtype, gen, *batch, m), lam
    return make


register_case("root", "ridge_dense", lambda X, y, lam: _ridge(X, y, lam, "dense"), _ridge_inputs())
register_case("root", "ridge_gmres", lambda X, y, lam: _ridge(X, y, lam, "gmres"), _ridge_inputs())
register_case("root", "ridge_cg", lambda X, y, lam: _ridge(X, y, lam, "cg"), _ridge_inputs())
register_case("root", "batched", lambda X, y, lam: _ridge(X, y, lam, "auto", batch_dims=2),
              _ridge_inputs(batch=(2, 2), m=4, n=2))
register_case("root", "ill_conditioned", lambda X, y, lam: _ridge(X, y, lam, "dense"),
              _ridge_inputs(cond=1e3), hard=True, max_step=1e-4)


def _nonholo(a, c):
    """x + a conj(x) = c: dF/dx is real-linear only (x = (c - a conj(c)) / (1 - |a|^2))."""
    with torch.no_grad():
        x = (c - a * c.conj()) / (1 - (a * a.conj()).real)
    return root(lambda x, a, c: x + a * x.conj() - c, x, a, c)


register_case("root", "non_holomorphic", _nonholo,
              lambda dtype, gen: (0.3 * randn(dtype, gen, 4), randn(dtype, gen, 4)),
              dtypes=(torch.complex128,), hard=True)


# ------------------------------------------------------------------ fixed_point: contraction

def _T(x, W, b):
    return torch.tanh(W @ x + b) if not x.is_complex() else 0.5 * W @ x + 0.2 * torch.tanh(x.abs()).to(x.dtype) * b + b


def _fixed(W, b, solve="auto"):
    with torch.no_grad():
        x = torch.zeros_like(b)
        for _ in range(100):
            x = _T(x, W, b)
    return fixed_point(_T, x, W, b, solve=solve)


def _contraction(dtype, gen, n=4):
    W = randn(dtype, gen, n, n)
    return 0.5 * W / torch.linalg.matrix_norm(W, 2), randn(dtype, gen, n)


register_case("fixed_point", "contraction", _fixed, _contraction)
register_case("fixed_point", "contraction_gmres", lambda W, b: _fixed(W, b, "gmres"), _contraction)


# ------------------------------------------------------------------ argmin

def _cosh(th, solve="auto"):
    f = lambda x, th: torch.cosh(x).sum() - (th * x).sum()  # noqa: E731
    return argmin(f, torch.asinh(th).detach(), th, solve=solve)


def _ls(M, c, mu):
    """min ||M z - c||^2 + mu ||z||^2 (complex z too)."""
    f = lambda z, M, c, mu: ((M @ z - c).abs() ** 2).sum() + mu * (z.abs() ** 2).sum()  # noqa: E731
    with torch.no_grad():
        z = torch.linalg.solve(M.mH @ M + mu * torch.eye(M.shape[-1], dtype=M.dtype), M.mH @ c)
    return argmin(f, z, M, c, mu)


register_case("argmin", "separable_cosh", _cosh,
              lambda dtype, gen: (torch.randn(5, generator=gen, dtype=dtype),), dtypes=(torch.float64,))
register_case("argmin", "separable_cosh_cg", lambda th: _cosh(th, "cg"),
              lambda dtype, gen: (torch.randn(5, generator=gen, dtype=dtype),), dtypes=(torch.float64,))
register_case("argmin", "regularized_least_squares", _ls,
              lambda dtype, gen: (randn(dtype, gen, 5, 3), randn(dtype, gen, 5),
                                  torch.tensor(0.4, dtype=real_dtype(dtype))))
