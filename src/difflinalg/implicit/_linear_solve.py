r"""Differentiable solve ``y = A(theta)^{-1} b`` of a matrix-free linear operator, as an implicit op.

The operator is given by its mat-vec ``v -> A(theta) v`` and transposed mat-vec
``w -> A(theta)^T w`` (real vectors, see ``_space``), both plain differentiable functions of the
parameters ``theta``. The value is computed by a dense LU factorization of ``A`` (built from ``N``
mat-vecs) or by CG/GMRES, with no autograd through the iterations. The derivatives are those of the
exact solution (the implicit function theorem applied to ``A(theta) y - b = 0``)::

    forward mode:  dy = A^{-1} (db - dA y),          dA y = d/dtheta [A(theta) y] . dtheta
    reverse mode:  mu = A^{-T} gy,   gb = mu,   gtheta = -d/dtheta <mu, A(theta) y>

and are themselves written as solves with this op (the transposed one for reverse mode), so every
derivative order recurses through the same exact rule: double backward, forward-over-reverse,
forward-over-forward and ``torch.func.hessian`` are exact (the Krylov iterations are never
differentiated). The arithmetic of the jvp rule goes through ``difflinalg._nested.call`` (PyTorch drops outer
forward-mode tangents of plain operations in a jvp rule).

A dense factorization is returned as extra (non-differentiable) outputs and reused by the
derivative solves of the same matrix, so the matrix is built and factorized once per point.

Layout: ``b`` has shape ``(*R, *B, N)``: ``B`` are problem batch dims (``A`` depends on them) and
``R`` right-hand-side dims that share ``A``. Under ``torch.func.vmap`` a batch dim of ``b`` alone
becomes a new ``R`` dim (``jacrev``/``jacfwd`` reuse one factorization for all their columns); a
batch dim of ``theta`` becomes a new ``B`` dim (``A`` itself is batched).

References: the implicit function theorem for linear solves as in Blondel et al., "Efficient and
modular implicit differentiation" (NeurIPS 2022) and lineax (Rader et al. 2023), here with the
realified operator so that complex, non-holomorphic problems are handled (``_space``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from ._args import is_diff, jvp_wrt, substitute, vjp_wrt
from ._diagnostics import Options, relative, report
from ._krylov import cg, gmres
from .._nested import call


@dataclass(frozen=True)
class LinearOp:
    """A linear operator ``A(theta)`` on ``(*B, N)`` real vectors and how to solve with it.

    ``matvec(v, *theta)`` and ``rmatvec(w, *theta)`` act on ``(*B, N)`` vectors; ``transpose``
    selects ``A^T`` as the operator solved with.
    """

    matvec: Callable[..., Tensor]
    rmatvec: Callable[..., Tensor]
    dim: int
    batch_dims: int
    method: str  # "dense" | "gmres" | "cg"
    options: Options
    label: str
    fix: str
    transpose: bool = False
    rhs_dims: int = 0

    @property
    def T(self) -> "LinearOp":
        return replace(self, transpose=not self.transpose)

    def apply(self, v: Tensor, theta: tuple) -> Tensor:
        """The solved-with operator on ``(*R, *B, N)`` vectors (vmapped over the ``R`` dims)."""
        fn = self.rmatvec if self.transpose else self.matvec
        if self.rhs_dims == 0:
            return fn(v, *theta)
        lead = v.shape[: self.rhs_dims]
        flat = v.reshape(-1, *v.shape[self.rhs_dims :])
        out = torch.func.vmap(fn, in_dims=(0,) + (None,) * len(theta))(flat, *theta)
        return out.reshape(*lead, *out.shape[1:])

    def dense(self, theta: tuple, batch_shape: torch.Size, dtype: torch.dtype) -> Tensor:
        """``A`` as a ``(*B, N, N)`` matrix, one column per basis vector (vmapped mat-vecs)."""
        n = self.dim
        basis = torch.eye(n, dtype=dtype, device=_device(theta))
        basis = basis.reshape(n, *([1] * len(batch_shape)), n).expand(n, *batch_shape, n)
        cols = torch.func.vmap(self.matvec, in_dims=(0,) + (None,) * len(theta))(basis, *theta)
        return cols.movedim(0, -1)

    def theta_vjp(self, y: Tensor, theta: tuple, mu: Tensor) -> list:
        """``-d/dtheta <mu, A(theta) y>`` for the differentiable entries of theta (None elsewhere)."""
        g = vjp_wrt(lambda *th: self.apply(y, th), theta, mu)
        return [None if gi is None else -gi for gi in g]

    def theta_jvp(self, y: Tensor, theta: tuple, dtheta: tuple) -> Tensor | None:
        """``d/dtheta [A(theta) y] . dtheta`` (None when no tangent is given)."""
        return jvp_wrt(lambda *th: self.apply(y, th), theta, dtheta)


def _device(theta: tuple) -> torch.device | None:
    for t in theta:
        if isinstance(t, Tensor):
            return t.device
    return None


def _solve_forward(op: LinearOp, b: Tensor, lu, piv, theta: tuple):
    """Value of the solve; returns (y, lu, piv) with the factors when computed here."""
    empty = b.new_zeros(0)
    opts = op.options
    bshape = b.shape[op.rhs_dims : b.ndim - 1]
    computed = None
    if op.method == "dense":
        if lu is None:
            M = op.dense(theta, bshape, b.dtype)
            lu, piv, _ = torch.linalg.lu_factor_ex(M)
            computed = (lu, piv)
        r = math.prod(b.shape[: op.rhs_dims])
        rhs = b.reshape(r, *b.shape[op.rhs_dims :]).movedim(0, -1)
        y = torch.linalg.lu_solve(lu, piv, rhs, adjoint=op.transpose).movedim(-1, 0).reshape(b.shape)
        how = "dense LU"
    else:
        A = lambda v: op.apply(v, theta)  # noqa: E731
        tol = opts.krylov_tol(b.dtype)
        n = op.dim
        maxiter = opts.maxiter or max(10 * n, 100)
        if op.method == "cg":
            y, info = cg(A, b, tol=tol, maxiter=maxiter)
        else:
            restart = opts.restart or min(n, 50)
            y, info = gmres(A, b, tol=tol, restart=restart, maxiter=maxiter)
        how = f"{op.method}, {info.iterations} iterations"
    if opts.on_failure != "ignore":
        res = torch.linalg.vector_norm(op.apply(y, theta) - b, dim=-1)
        rel = relative(res, torch.linalg.vector_norm(b, dim=-1))
        which = "transposed system, as in a backward pass" if op.transpose else "as in a jvp"
        report(rel, opts.linear_check_tol(b.dtype), opts.on_failure,
               f"{op.label} ({which}; {how})", op.fix)
    if computed is None:
        return y, empty, empty.to(torch.int32)
    return y, computed[0], computed[1]


class _LinearSolve(torch.autograd.Function):
    @staticmethod
    def forward(op: LinearOp, b: Tensor, lu, piv, *theta):
        return _solve_forward(op, b, lu, piv, theta)

    @staticmethod
    def setup_context(ctx, inputs, output):
        op, _, lu, piv, *theta = inputs
        y, lu_out, piv_out = output
        ctx.mark_non_differentiable(lu_out, piv_out)
        if lu is None and lu_out.numel() > 0:
            lu, piv = lu_out, piv_out
        ctx.op = op
        ctx.save_for_backward(y, lu, piv, *theta)
        ctx.save_for_forward(y, lu, piv, *theta)

    @staticmethod
    def backward(ctx, gy, _glu, _gpiv):
        y, lu, piv, *theta = ctx.saved_tensors
        op = ctx.op
        mu = _LinearSolve.apply(op.T, gy, lu, piv, *theta)[0]
        return (None, mu, None, None, *op.theta_vjp(y, tuple(theta), mu))

    @staticmethod
    def jvp(ctx, _dop, db, _dlu, _dpiv, *dtheta):
        y, lu, piv, *theta = ctx.saved_tensors
        op = ctx.op
        # Every theta that is a differentiable tensor enters the right-hand side as an argument
        # of ``call`` (see _nested: plain operations here would drop outer tangents).
        diff = [i for i, t in enumerate(theta) if is_diff(t)]
        moving = [i for i in diff if dtheta[i] is not None]
        db = torch.zeros_like(y) if db is None else db
        if moving:
            nd = len(diff)

            def rhs(db_, y_, *a):
                th = substitute(theta, diff, a[:nd])
                dth = substitute((None,) * len(theta), moving, a[nd:])
                return db_ - op.theta_jvp(y_, th, dth)

            db = call(rhs, db, y, *[theta[i] for i in diff], *[dtheta[i] for i in moving])
        return _LinearSolve.apply(op, db, lu, piv, *theta)[0], None, None

    @staticmethod
    def vmap(info, in_dims, op: LinearOp, b, lu, piv, *theta):
        _, b_dim, lu_dim, piv_dim, *th_dims = in_dims
        nv = info.batch_size
        if lu_dim is None and piv_dim is None and all(d is None for d in th_dims):
            # Only the right-hand side is batched: one more R dim, A (and its factor) shared.
            b = b.movedim(b_dim, 0)
            out = _LinearSolve.apply(replace(op, rhs_dims=op.rhs_dims + 1), b, lu, piv, *theta)
            return out, (0, None, None)  # a factor computed here is of the shared A
        # A is batched: the vmap dim becomes the first problem batch dim (position rhs_dims of b).
        k = op.rhs_dims
        if b_dim is None:
            b = b.unsqueeze(k).expand(*b.shape[:k], nv, *b.shape[k:])
        else:
            b = b.movedim(b_dim, k)
        if lu is not None:
            lu = lu.movedim(lu_dim, 0) if lu_dim is not None else lu.expand(nv, *lu.shape)
            piv = piv.movedim(piv_dim, 0) if piv_dim is not None else piv.expand(nv, *piv.shape)
        dims = (0, *th_dims)
        folded = replace(
            op,
            matvec=torch.func.vmap(op.matvec, in_dims=dims),
            rmatvec=torch.func.vmap(op.rmatvec, in_dims=dims),
            batch_dims=op.batch_dims + 1,
        )
        out = _LinearSolve.apply(folded, b, lu, piv, *theta)
        return out, (k, 0 if out[1].numel() else None, 0 if out[2].numel() else None)


def solve(op: LinearOp, b: Tensor, theta: tuple) -> Tensor:
    """``A(theta)^{-1} b`` (or ``A^{-T} b`` for a transposed op), differentiable to any order."""
    return _LinearSolve.apply(op, b, None, None, *theta)[0]
