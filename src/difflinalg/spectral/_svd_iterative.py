r"""Numerical kernels of the truncated SVD on large matrices (no autograd here).

* ``krylov_svd``: the ``k`` leading singular triplets by randomized block Krylov iteration
  with Rayleigh-Ritz (Musco & Musco 2015; Halko, Martinsson & Tropp 2011, Alg. 4.4 + 5.1 for
  the randomized start and the Rayleigh-Ritz step), iterated until the residuals
  ``||A v_j - s_j u_j||`` of the kept triplets reach rounding level (``A^H u_j = s_j v_j`` holds
  by construction), so the result agrees with a full SVD to machine precision. The Ritz pairs
  after the ``k`` kept ones are returned for the preconditioner below. Convergence is fast when
  the spectrum decays past ``k`` (Chebyshev rate; measured on 2000 x 2000, k = 16, s_i = i^-2:
  10 steps with 16-column blocks, where subspace iteration needs 12 with 32 columns, and half
  the steps for s_i = 1/i); ``svd_truncated(method="auto")``
  falls back to a full SVD when the budget (about the cost of a full SVD) is exhausted.
* ``resolvent_spectral`` / ``resolvent_pcg``: ``x_j = K_j^{-1} b_j`` for the shifted operators
  ``K_j = s_j^2 I - A A^H + U_k S_k^2 U_k^H`` of the truncated-SVD rules (``s_j^2 I - A_perp
  A_perp^H`` on the complement of the kept left singular vectors). With the discarded factors
  ``(U_r, s_r)`` known, ``K_j^{-1} = I/s_j^2 + U_r diag(s_r^2 / (s_j^2 (s_j^2 - s_r^2))) U_r^H``
  exactly; otherwise the same expression with the extra Ritz pairs is a Hermitian positive
  definite preconditioner (Ritz values interlace, ``s~_r <= s_{k+r} < s_j``) for conjugate
  gradients on the exact operator, which is positive definite when ``s_k > s_{k+1}``: the
  spectrum left after the deflation lies in ``[s_j^2 - s_{k+p+1}^2, s_j^2]``.

Batched over leading dimensions (all matrices iterate together; the convergence test is one host
synchronisation per iteration). Device-agnostic torch operations only.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._errors import ConvergenceError
from .._utils import eps


# Both iterations run to the rounding floor of their residual: the target is ``eps`` (relative),
# which is rarely reached exactly (the floor is a few ``sqrt(n) eps``, varying between matrices),
# so a residual that has stopped decreasing below ``STAGNATION_FACTOR * eps`` counts as converged.
# A fixed looser target would cost accuracy for the triplets with small gaps (vector error =
# residual / gap); stopping at the floor costs one or two iterations more.
STAGNATION_FACTOR = 1e4


def _orth(Y: Tensor) -> Tensor:
    """Orthonormal basis of a tall block (thin Q of geqrf + householder_product: the same LAPACK
    algorithm as torch.linalg.qr without its large fixed per-call overhead on busy CPUs)."""
    return torch.linalg.householder_product(*torch.geqrf(Y))


def stagnated(history: list[float], steps: int = 3) -> bool:
    """Residuals (in units of the target) at their rounding floor: below ``STAGNATION_FACTOR``
    and no new minimum (by 10%) in the last ``steps`` iterations. Slow but steady convergence
    is not stagnation."""
    if len(history) <= steps or history[-1] > STAGNATION_FACTOR:
        return False
    return min(history[-steps:]) > 0.9 * min(history[:-steps])


def hopeless(history: list[float], maxiter: int) -> bool:
    """Whether a geometric extrapolation of the last residuals (in units of the target) says the
    target will not be reached within ``maxiter`` iterations (used to fall back early)."""
    it = len(history)
    if it < 6 or history[-1] <= STAGNATION_FACTOR:
        return False
    rate = (history[-1] / history[-4]) ** (1.0 / 3.0) if history[-4] > 0 else 0.0
    if rate >= 1.0:
        return it >= 12
    needed = math.log(history[-1] / STAGNATION_FACTOR) / -math.log(max(rate, 1e-300))
    return it + needed > maxiter


def default_block(k: int, k0: int) -> int:
    """Block size of the Krylov iteration: ``max(k, 8)`` (blocks wider than a cluster of equal
    singular values resolve it), at most ``min(m, n)``."""
    return min(k0, max(k, 8))


def krylov_svd(
    A: Tensor,
    k: int,
    *,
    block: int | None = None,
    max_dim: int | None = None,
    maxiter: int = 200,
    rtol: float | None = None,
    seed: int = 0,
    give_up_early: bool = False,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, int] | None:
    """Leading ``k`` triplets ``(U_k, S_k, Vh_k)`` and the further Ritz pairs ``(U_e, s_e)`` of
    the final Krylov space, by randomized block Krylov iteration with Rayleigh-Ritz.

    The left Krylov space ``span[Q_0, A A^H Q_0, ...]`` (block size ``b``, started from
    ``orth(A Omega)``) grows by one block per step; Rayleigh-Ritz on it uses ``B = K^H A = Z^H``
    with ``Z = A^H K``, which the expansion needs anyway, and a QR of ``Z``: one product with
    ``A^H`` and one with ``A`` per step, plus ``A V_k`` for the residuals. At ``max_dim``
    columns it restarts from the ``b`` leading Ritz vectors (with ``Z = V S``, exact by
    construction).

    Converged: residuals ``||A v_j - s_j u_j|| <= rtol * s_1`` (default ``rtol = eps``), or
    stagnating at their rounding floor below ``STAGNATION_FACTOR * rtol * s_1``. Returns ``None``
    if that did not happen within ``maxiter`` steps (or, with ``give_up_early``, as soon as the
    observed convergence rate says it will not): the caller decides between a fallback and an
    error. Otherwise the factors and the number of steps. Deterministic: the start block comes
    from a generator seeded with ``seed``.
    """
    m, n = A.shape[-2:]
    k0 = min(m, n)
    b = default_block(k, k0) if block is None else min(max(block, 1), k0)
    max_dim = min(k0, 12 * b if max_dim is None else max(max_dim, k + b))
    p = max(k, 8)
    rtol = eps(A.dtype) if rtol is None else rtol
    gen = torch.Generator(device=A.device).manual_seed(seed)
    omega = torch.randn(A.shape[:-2] + (n, b), generator=gen, dtype=A.dtype, device=A.device)
    Ks, Zs = [_orth(A @ omega)], []
    history: list[float] = []
    for it in range(1, maxiter + 1):
        if len(Zs) < len(Ks):
            Zs.append(A.mH @ Ks[-1])
        K, Z = torch.cat(Ks, dim=-1), torch.cat(Zs, dim=-1)
        d = K.shape[-1]
        # Rayleigh-Ritz: B = Z^H = Rz^H Qz^H with Z = Qz Rz, so only the small d x d factor
        # Rz = Qz^H Z needs an SVD.
        Qz = _orth(Z)
        Ub, S, Wh = torch.linalg.svd(Z.mH @ Qz)
        q = min(d, k + p)
        U = K @ Ub[..., :q]
        Vh = Wh[..., :q, :] @ Qz.mH
        res = torch.linalg.vector_norm(
            A @ Vh[..., :k, :].mH - U[..., :k] * S[..., None, :k].to(A.dtype), dim=-2)
        r = float((res / (rtol * S[..., :1])).amax())  # residual in units of the target
        history.append(r)
        if r <= 1.0 or d >= k0 or stagnated(history):
            # All further Ritz pairs of the space go to the preconditioner of the backward:
            # the trailing ones are rough, but any of them help and none can hurt (interlacing).
            Ue = K @ Ub[..., k:]
            return U[..., :k], S[..., :k], Vh[..., :k, :], Ue, S[..., k:], it
        if give_up_early and hopeless(history, maxiter):
            return None
        width = min(b, k0 - d)
        if d + width > max_dim:  # thick restart from the leading Ritz vectors
            Ks, Zs = [U[..., :b]], [Vh[..., :b, :].mH * S[..., None, :b].to(A.dtype)]
            K = Ks[0]
        Y = A @ Zs[-1]
        for _ in range(2):  # block Gram-Schmidt, twice (orthogonality to rounding)
            Y = Y - K @ (K.mH @ Y)
        Qn = _orth(Y)
        Qn = _orth(Qn - K @ (K.mH @ Qn))[..., :width]
        Ks.append(Qn)
    return None


def resolvent_spectral(B: Tensor, S: Tensor, Ur: Tensor, sr: Tensor) -> Tensor:
    """``B[:, j] / s_j^2 + U_r diag(s_r^2 / (s_j^2 (s_j^2 - s_r^2))) U_r^H B[:, j]`` for all ``j``.

    The exact ``K_j^{-1}`` when ``(U_r, s_r)`` are all the discarded left singular pairs; the
    preconditioner of ``resolvent_pcg`` when they are approximate.
    """
    s2, r2 = S.square(), sr.square()
    out = B / s2[..., None, :].to(B.dtype)
    if Ur.shape[-1] == 0:
        return out
    coef = r2[..., :, None] / (s2[..., None, :] * (s2[..., None, :] - r2[..., :, None]))
    return out + Ur @ (coef.to(B.dtype) * (Ur.mH @ B))


def apply_shifted(A: Tensor, U: Tensor, S: Tensor, X: Tensor) -> Tensor:
    """``K_j x_j = s_j^2 x_j - A A^H x_j + U S^2 U^H x_j`` for every column ``j`` of ``X``."""
    s2 = S.square().to(X.dtype)
    return X * s2[..., None, :] - A @ (A.mH @ X) + U @ (s2[..., :, None] * (U.mH @ X))


def resolvent_pcg(
    A: Tensor,
    U: Tensor,
    S: Tensor,
    B: Tensor,
    Ue: Tensor,
    se: Tensor,
    *,
    maxiter: int = 500,
    rtol: float | None = None,
    give_up_early: bool = False,
) -> Tensor | None:
    """Solve ``K_j x_j = b_j`` by preconditioned conjugate gradients (columns and batch together).

    Stops when ``||r_j|| <= rtol (s_1^2 ||x_j|| + ||b_j||)`` for every column (the attainable
    accuracy of a product with ``A A^H``; default ``rtol = eps``) or when the residuals stagnate
    at their rounding floor below ``STAGNATION_FACTOR`` times that; returns ``None`` if that
    takes more than ``maxiter`` iterations (or, with ``give_up_early``, as soon as the
    convergence rate says so).
    """
    rtol = eps(A.dtype) if rtol is None else rtol
    s12 = S[..., :1].square()
    bnorm = torch.linalg.vector_norm(B, dim=-2)

    def dot(x: Tensor, y: Tensor) -> Tensor:
        return (x.conj() * y).sum(dim=-2).real

    def ratio(num: Tensor, den: Tensor) -> Tensor:
        ok = den > 0
        return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(num))

    X = resolvent_spectral(B, S, Ue, se)
    R = B - apply_shifted(A, U, S, X)
    Z = resolvent_spectral(R, S, Ue, se)
    P, rz = Z, dot(R, Z)
    history: list[float] = []
    for _ in range(maxiter + 1):
        rnorm = torch.linalg.vector_norm(R, dim=-2)
        bound = rtol * (s12 * torch.linalg.vector_norm(X, dim=-2) + bnorm)
        r = float(torch.where(rnorm > 0, rnorm / bound, torch.zeros_like(rnorm)).amax())
        history.append(r)
        if r <= 1.0 or stagnated(history):
            return X
        if give_up_early and hopeless(history, maxiter):
            return None
        KP = apply_shifted(A, U, S, P)
        alpha = ratio(rz, dot(P, KP)).to(X.dtype)[..., None, :]
        X = X + alpha * P
        R = R - alpha * KP
        Z = resolvent_spectral(R, S, Ue, se)
        rz_new = dot(R, Z)
        beta = ratio(rz_new, rz).to(X.dtype)[..., None, :]
        P, rz = Z + beta * P, rz_new
    return None


def no_convergence(what: str, iters: int) -> ConvergenceError:
    return ConvergenceError(
        f"svd_truncated: {what} did not converge in {iters} iterations (the leading singular "
        "values are not separated enough from the rest for an iterative method); use "
        "method='full' (or method='auto', which falls back to a full SVD)"
    )
