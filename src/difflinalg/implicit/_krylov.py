r"""Batched matrix-free Krylov solvers (CG, restarted GMRES) on real vectors.

Vectors have shape ``(*L, N)``: every leading index is an independent system sharing the mat-vec
``A(v)`` (which acts on the whole batch at once, so one call does all the systems' products).
Inner products and norms reduce over the last dimension only. Systems that converge early are
frozen (masked) while the others go on, so no Python loop runs over batch elements.

References: Hestenes & Stiefel (1952) for CG; Saad & Schultz (1986), "GMRES", with Givens
rotations on the Hessenberg matrix (Saad, *Iterative Methods for Sparse Linear Systems*, 2nd ed.,
Alg. 6.9). The solvers report the residual norms they reach; the caller checks them (the
difflinalg implicit solves recompute the true residual ``||A y - b||`` afterwards).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

Matvec = Callable[[Tensor], Tensor]


@dataclass
class KrylovInfo:
    iterations: int
    residual: Tensor  # (*L,) final residual norms (solver's own estimate)


def _dot(a: Tensor, b: Tensor) -> Tensor:
    return (a * b).sum(-1)


def _safe_div(a: Tensor, b: Tensor) -> Tensor:
    """a / b with 0 where b == 0 (a frozen or broken-down system must not produce NaN)."""
    nz = b != 0
    return torch.where(nz, a, torch.zeros_like(a)) / torch.where(nz, b, torch.ones_like(b))


def cg(A: Matvec, b: Tensor, *, tol: float, maxiter: int) -> tuple[Tensor, KrylovInfo]:
    """Conjugate gradients for symmetric positive-definite ``A`` (batched)."""
    x = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rs = _dot(r, r)
    target = (tol * torch.linalg.vector_norm(b, dim=-1)) ** 2
    it = 0
    for it in range(1, maxiter + 1):
        if bool((rs <= target).all()):
            it -= 1
            break
        active = rs > target
        Ap = A(p)
        alpha = _safe_div(rs, _dot(p, Ap))
        alpha = torch.where(active, alpha, torch.zeros_like(alpha))[..., None]
        x = x + alpha * p
        r = r - alpha * Ap
        rs_new = _dot(r, r)
        beta = _safe_div(rs_new, rs)[..., None]
        p = r + beta * p
        rs = torch.where(active, rs_new, rs)
    return x, KrylovInfo(it, rs.sqrt())


def gmres(
    A: Matvec, b: Tensor, *, tol: float, restart: int, maxiter: int
) -> tuple[Tensor, KrylovInfo]:
    """Restarted GMRES(``restart``) for general ``A`` (batched), at most ``maxiter`` mat-vecs."""
    lead, n = b.shape[:-1], b.shape[-1]
    restart = max(1, min(restart, n))
    x = torch.zeros_like(b)
    bnorm = torch.linalg.vector_norm(b, dim=-1)
    target = tol * bnorm
    total = 0
    res = bnorm
    while total < maxiter:
        r = b - A(x) if total > 0 else b
        beta = torch.linalg.vector_norm(r, dim=-1)
        res = beta
        if bool((beta <= target).all()):
            break
        active0 = beta > target
        V = [_safe_div(r, beta[..., None])]
        g = [beta]  # rotated right-hand side beta * e_1
        R_cols: list[list[Tensor]] = []
        cs: list[Tensor] = []
        sn: list[Tensor] = []
        steps = torch.zeros(lead, dtype=torch.long, device=b.device)  # Krylov size per system
        active = active0
        for j in range(restart):
            w = A(V[j])
            h = []
            for i in range(j + 1):  # modified Gram-Schmidt
                hij = _dot(w, V[i])
                w = w - hij[..., None] * V[i]
                h.append(hij)
            for i in range(j + 1):  # one re-orthogonalization pass (loss of orthogonality)
                c = _dot(w, V[i])
                w = w - c[..., None] * V[i]
                h[i] = h[i] + c
            hn = torch.linalg.vector_norm(w, dim=-1)
            V.append(_safe_div(w, hn[..., None]))
            for i in range(j):  # previous rotations
                t = cs[i] * h[i] + sn[i] * h[i + 1]
                h[i + 1] = -sn[i] * h[i] + cs[i] * h[i + 1]
                h[i] = t
            den = torch.sqrt(h[j] ** 2 + hn**2)
            c = torch.where(den > 0, _safe_div(h[j], den), torch.ones_like(den))
            s = _safe_div(hn, den)
            cs.append(c)
            sn.append(s)
            h[j] = den
            g.append(-s * g[j])
            g[j] = c * g[j]
            R_cols.append(h)
            # den == 0: the Krylov space is invariant and A is singular on it; that column cannot
            # be used (it would divide by 0) and the system stops with its current residual.
            ok = den > 0
            steps = steps + (active & ok).long()
            total += 1
            res = torch.where(active, torch.where(ok, g[j + 1].abs(), g[j].abs()), res)
            active = active & ok & (res > target)
            if not bool(active.any()) or total >= maxiter:
                break
        k = len(R_cols)
        R = torch.zeros(*lead, k, k, dtype=b.dtype, device=b.device)
        for jj, col in enumerate(R_cols):
            R[..., : jj + 1, jj] = torch.stack(col, dim=-1)
        rhs = torch.stack(g[:k], dim=-1)
        # Systems that stopped after steps < k iterations (or never started) solve their own
        # leading block: the rest of R is replaced by the identity and the rest of rhs by 0.
        idx = torch.arange(k, device=b.device)
        keep = idx < (steps * active0.long())[..., None]
        eye = torch.eye(k, dtype=b.dtype, device=b.device)
        mask2 = keep[..., :, None] & keep[..., None, :]
        R = torch.where(mask2, R, eye.expand_as(R))
        rhs = torch.where(keep, rhs, torch.zeros_like(rhs))
        y = torch.linalg.solve_triangular(R, rhs[..., None], upper=True)[..., 0]
        x = x + torch.einsum("...k,k...n->...n", y, torch.stack(V[:k], dim=0))
        if not bool(active.any()):
            break
    return x, KrylovInfo(total, res)
