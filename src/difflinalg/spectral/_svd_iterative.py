r"""Numerical kernels of the truncated SVD on large matrices (no autograd here).

* ``krylov_svd``: the ``k`` leading singular triplets by block Golub-Kahan-Lanczos
  bidiagonalization with full reorthogonalization, Rayleigh-Ritz and thick restarts (Golub &
  Kahan 1965; Golub, Luk & Overton 1981 for the block version; Baglama & Reichel 2005 for the
  restart; the random start block as in Halko, Martinsson & Tropp 2011), iterated until the
  residuals ``||A^H u_j - s_j v_j||`` of the kept triplets reach rounding level (``A v_j = s_j
  u_j`` holds by construction), so the result agrees with a full SVD to machine precision. One
  product with ``A`` and one with ``A^H`` per step, residuals from the projected matrix (no
  extra products), Rayleigh-Ritz only at steps chosen from the observed convergence rate.
  Measured on 2000 x 2000 float64, k = 16, 16-column blocks: 8 steps for s_i = i^-2, 11 for
  s_i = 1/i, 6 for s_i = 0.9^i, ~50 (restarted at 250 columns) for a Gaussian matrix, where
  the previous randomized block Krylov iteration (three products per step and a QR of the
  whole basis for each Rayleigh-Ritz) needed 10 / 14 / 11 / more than its budget. The Ritz
  pairs after the ``k`` kept ones are returned for the preconditioner below;
  ``svd_truncated(method="auto")`` falls back to a full SVD when the iteration would cost more
  than one (``_svd_truncated._budgets``).
* ``resolvent_spectral`` / ``resolvent_pcg``: ``x_j = K_j^{-1} b_j`` for the shifted operators
  ``K_j = s_j^2 I - A A^H + U_k S_k^2 U_k^H`` of the truncated-SVD rules (``s_j^2 I - A_perp
  A_perp^H`` on the complement of the kept left singular vectors). With the discarded factors
  ``(U_r, s_r)`` known, ``K_j^{-1} = I/s_j^2 + U_r diag(s_r^2 / (s_j^2 (s_j^2 - s_r^2))) U_r^H``
  exactly; otherwise the same expression with the extra Ritz pairs is a Hermitian positive
  definite preconditioner (Ritz values interlace, ``s~_r <= s_{k+r} < s_j``) for conjugate
  gradients on the exact operator, which is positive definite when ``s_k > s_{k+1}``: the
  spectrum left after the deflation lies in ``[s_j^2 - s_{k+p+1}^2, s_j^2]``. The CG runs on
  the complement of ``U_k`` with the projected operator, which keeps the solution as accurate
  as a full SVD's singular vectors when ``s_k << s_1`` (see ``resolvent_pcg``).

Batched over leading dimensions (all matrices iterate together; each convergence test is one host
synchronisation). Device-agnostic torch operations only; products with ``A^H`` are written as
``(X^H A)^H`` (``adjoint_mm``), which MKL runs much faster on CPU.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._errors import ConvergenceError
from .._utils import eps, real_dtype


# Both iterations run to the rounding level of their residual (a few ``eps`` relative, the
# backward error of a full SVD). The Krylov residuals are estimates from the projected matrix
# and keep decreasing; the conjugate-gradient residuals are recurrences that stall at a floor
# near the target (measured 0.3-0.5 of it) and can grow again past it, so a CG residual that has
# stopped decreasing below ``STAGNATION_FACTOR`` times the target counts as converged (and the
# best iterate is returned). A looser target would cost
# accuracy for the triplets with small gaps (vector error = residual / gap).
STAGNATION_FACTOR = 1e4


def _orth(Y: Tensor) -> Tensor:
    """Orthonormal basis of a tall block (thin Q of geqrf + householder_product: the same LAPACK
    algorithm as torch.linalg.qr without its large fixed per-call overhead on busy CPUs)."""
    return torch.linalg.householder_product(*torch.geqrf(Y))


def _orth_r(Y: Tensor) -> tuple[Tensor, Tensor]:
    """Thin QR ``Y = Q R`` of a tall block (as ``_orth``, with the triangular factor)."""
    a, tau = torch.geqrf(Y)
    return torch.linalg.householder_product(a, tau), a[..., : Y.shape[-1], :].triu()


def adjoint_mm(A: Tensor, X: Tensor) -> Tensor:
    """``A^H X`` for a tall-skinny ``X``, computed as ``(X^H A)^H``.

    Same value; on CPU (MKL) the transposed-operand product ``A.mH @ X`` of a large ``A`` with
    a few columns is markedly slower than ``A @ X``, while ``X^H @ A`` runs about as fast
    (measured figures: ``benchmarks/README.md``, "svd_truncated"). Differentiable."""
    return (X.mH @ A).mH


def _new_block(Q: Tensor, Y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Extend the orthonormal ``Q`` by ``Y``: ``Y = Q H + Qn L`` with ``Qn`` orthonormal and
    orthogonal to ``Q``, ``L`` upper triangular.

    Block classical Gram-Schmidt, QR, and a second Gram-Schmidt pass and QR of the normalized
    block (twice is enough: orthogonal to rounding, also when ``Y`` is numerically in
    ``span(Q)``, as for rank-deficient ``A``, where the first QR fills in directions made of
    rounding errors). The coefficients of both passes go into ``H`` and ``L``
    (``Y = Q H1 + Q1 L1``, ``Q1 = Q H2 + Qn L2``: ``H = H1 + H2 L1``, ``L = L2 L1``), so the
    relation holds to rounding."""
    H1 = adjoint_mm(Q, Y)
    Q1, L1 = _orth_r(Y - Q @ H1)
    H2 = adjoint_mm(Q, Q1)
    Qn, L2 = _orth_r(Q1 - Q @ H2)
    return Qn, H1 + H2 @ L1, L2 @ L1


def stagnated(history: list[float], steps: int = 3) -> bool:
    """Residuals (in units of the target) at their rounding floor: below ``STAGNATION_FACTOR``
    and no new minimum (by 10%) in the last ``steps`` iterations. Slow but steady convergence
    is not stagnation."""
    if len(history) <= steps or history[-1] > STAGNATION_FACTOR:
        return False
    return min(history[-steps:]) > 0.9 * min(history[:-steps])


def hopeless(history: list[tuple[int, float]], maxiter: int, target: float = 1.0) -> bool:
    """Whether a geometric extrapolation of the residuals says that ``target`` will not be
    reached within ``maxiter`` iterations (used to fall back early).

    ``history``: ``(iteration, residual)`` at the iterations where the residual was measured.
    The rate comes from the last measurement at least 3 iterations back; Krylov methods
    converge superlinearly, so the extrapolation is pessimistic (it errs towards falling back).
    """
    it, r = history[-1]
    earlier = [h for h in history if h[0] <= it - 3]
    if it < 6 or r <= target or not earlier:
        return False
    it0, r0 = earlier[-1]
    rate = (r / r0) ** (1.0 / (it - it0)) if r0 > 0 else 0.0
    if rate >= 1.0:
        return it >= 12
    needed = math.log(r / target) / -math.log(max(rate, 1e-300))
    return it + needed > maxiter


def default_block(k: int, k0: int) -> int:
    """Block size of the Krylov iteration: ``max(k, 8)`` (blocks wider than a cluster of equal
    singular values resolve it), at most ``min(m, n)``."""
    return min(k0, max(k, 8))


def default_max_dim(k: int, b: int, k0: int) -> int:
    """Basis size at which the Krylov iteration restarts: about ``min(m, n) / 8`` (where the
    reorthogonalization of a step costs as much as its two products with ``A``), at least
    ``max(8 b, 2 (k + b))``, at most ``64 b`` and ``min(m, n)``. Restarts cost little
    convergence (measured on a 2000 x 2000 Gaussian matrix, k = 16: 54 steps at 192 columns,
    48 at 512, and 40% less time)."""
    return min(k0, max(2 * (k + b), 8 * b, min(k0 // 8, 64 * b)))


def _next_check(it: int, history: list[tuple[int, float]], rows: int, cols: int, b: int,
                d: int) -> int:
    """Iteration of the next Rayleigh-Ritz check (an SVD of the ``d x d`` projected matrix).

    Skipped ahead by half the number of iterations that the observed geometric rate says are
    still needed (convergence is superlinear: the estimate is long, half of it is safe; at most
    ``it / 2``, as the early rates are the slowest), and far enough that the dense SVDs (about
    ``20 d^3`` flops) cost at most half of the iterations between them (about
    ``4 m n b + 16 (m + n) d b`` flops each: the two products and the reorthogonalization)."""
    step = 4.0 * rows * cols * b + 16.0 * (rows + cols) * d * b
    gap = max(1, math.ceil(2.0 * 20.0 * d ** 3 / step))
    if len(history) >= 2:
        (it0, r0), (it1, r1) = history[-2], history[-1]
        if 0.0 < r1 < r0 and r1 > 1.0:
            rate = (r1 / r0) ** (1.0 / (it1 - it0))
            gap = max(gap, min(int(0.5 * math.log(r1) / -math.log(rate)), max(1, it // 2)))
    return it + gap


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
    the final Krylov space, by block Golub-Kahan-Lanczos bidiagonalization with full
    reorthogonalization and Rayleigh-Ritz.

    Orthonormal bases ``V`` (started from a random block) and ``U`` grow by one block of ``b``
    columns each per step, with ``A V = U B`` (``B = U^H A V``, ``d x d`` upper triangular,
    assembled from the Gram-Schmidt coefficients) and ``A^H U = V B^H + V_+ R E^H`` (``V_+``: the
    next right block, ``E``: the last block of columns): one product with ``A^H`` and one with
    ``A`` per step. With the SVD ``B = P diag(s) Q^H`` the Ritz triplets ``(U p_j, s_j, V q_j)``
    satisfy ``A v_j = s_j u_j`` and ``||A^H u_j - s_j v_j|| = ||R E^H p_j||``: the residuals come
    without products with ``A``. At ``max_dim`` columns it restarts from the leading Ritz
    vectors (thick restart: ``B`` becomes ``diag(s)``, up to rounding, plus the coupling column
    of ``V_+``).
    A wide ``A`` is handled as ``A^H`` (the bases live in the smaller space).

    Converged: estimated residuals ``<= rtol * s_1`` for the ``k`` kept triplets; default
    ``rtol = 4 eps``, just below the rounding floor of the true residuals (measured 4-30
    ``eps s_1`` for these triplets and 6-40 for a full SVD's, n = 300 to 2000), so that the
    singular vectors (error ``~ residual / gap``) are as accurate as a full SVD's. The estimates
    keep decreasing below that floor: no stagnation test is needed. (``sqrt(max(m, n)) eps``
    saves a step for s_i = 1/i but gave 8x the gradient error for s_i = 0.5^i, 600 x 600.)
    Rayleigh-Ritz checks are spaced by the observed convergence rate and their cost
    (``_next_check``). Returns ``None`` if that did not happen within ``maxiter`` steps (or, with
    ``give_up_early``, as soon as the convergence rate says it will not): the caller decides
    between a fallback and an error. Otherwise the factors and the number of steps.
    Deterministic: the start block comes from a generator seeded with ``seed``.
    """
    swap = A.shape[-2] < A.shape[-1]
    if swap:  # a view: products with A^H become products with A and vice versa
        A = A.mH
    m, n = A.shape[-2:]  # m >= n: V (n x d) can span everything, U (m x d) can always grow
    b = default_block(k, n) if block is None else min(max(block, 1), n)
    max_dim = default_max_dim(k, b, n) if max_dim is None else min(n, max(max_dim, k + b))
    rtol = 4.0 * eps(A.dtype) if rtol is None else rtol
    tiny = torch.finfo(real_dtype(A.dtype)).tiny
    gen = torch.Generator(device=A.device).manual_seed(seed)
    omega = torch.randn(A.shape[:-2] + (n, b), generator=gen, dtype=A.dtype, device=A.device)
    # The bases and B live in buffers of max_dim columns (no copies as they grow).
    Ub = A.new_empty(A.shape[:-2] + (m, max_dim))
    Vb = A.new_empty(A.shape[:-2] + (n, max_dim))
    Bb = A.new_zeros(A.shape[:-2] + (max_dim, max_dim))
    Vb[..., :b] = _orth(omega)
    Ub[..., :b], Bb[..., :b, :b] = _orth_r(A @ Vb[..., :b])
    d = last = b  # last: width of the last block of U (A^H of the earlier ones lies in span(V))
    history: list[tuple[int, float]] = []
    check = 1
    for it in range(1, maxiter + 1):
        Us, Vs, Bm = Ub[..., :d], Vb[..., :d], Bb[..., :d, :d]
        # Right expansion: A^H U_last = V (B^H)_last + V_+ R.
        if d < n:
            Vn, _, R = _new_block(Vs, adjoint_mm(A, Us[..., -last:]))
            Vn, R = Vn[..., : n - d], R[..., : n - d, :]  # rank <= n - d left: the rest is 0
        restart = d < n and d + Vn.shape[-1] > max_dim
        if (it >= check and d >= k) or d >= n or restart or it == maxiter:
            P, S, Qh = torch.linalg.svd(Bm)
            if d >= n:  # V spans everything: the Ritz triplets are exact
                r = 0.0
            else:
                res = torch.linalg.vector_norm(R @ P[..., -last:, :k], dim=-2)
                r = float((res / (rtol * S[..., :1]).clamp_min(tiny)).amax())
            history.append((it, r))
            if r <= 1.0:
                if swap:  # A = (A^H)^H: left and right exchange
                    Us, Vs, P, Qh = Vs, Us, Qh.mH, P.mH
                Uk, Vhk = Us @ P[..., :k], Qh[..., :k, :] @ Vs.mH
                return Uk, S[..., :k], Vhk, Us @ P[..., k:], S[..., k:], it
            if give_up_early and hopeless(history, maxiter):
                return None
            check = _next_check(it, history, m, n, b, d)
            if restart:  # thick restart from the leading Ritz vectors
                keep = min(d, max(k + b, max_dim // 2), max_dim - b)  # room for a block
                Ub[..., :keep] = Us @ P[..., :keep]
                Vb[..., :keep] = Vs @ Qh[..., :keep, :].mH
                # B of the kept vectors: diag(s) up to the SVD's rounding, which stays in B
                # (with diag(s) it would go into the relation A V = U B at every restart: up to
                # 40 eps s_1 measured)
                B_keep = P[..., :keep].mH @ Bm @ Qh[..., :keep, :].mH
                Bb.zero_()
                Bb[..., :keep, :keep] = B_keep
                d = keep
                Us = Ub[..., :d]
        if it == maxiter:
            break
        # Left expansion: A V_+ = U H + U_+ L, so B grows by the column [H; L].
        Un, H, L = _new_block(Us, A @ Vn)
        last = Un.shape[-1]
        Ub[..., d : d + last], Vb[..., d : d + last] = Un, Vn
        Bb[..., :d, d : d + last], Bb[..., d : d + last, :d] = H, 0.0
        Bb[..., d : d + last, d : d + last] = L
        d += last
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
    return out + Ur @ (coef.to(B.dtype) * adjoint_mm(Ur, B))


def _project_out_u(U: Tensor, Y: Tensor) -> Tensor:
    """``(I - U U^H) Y``."""
    return Y - U @ adjoint_mm(U, Y)


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

    ``U`` holds singular vectors, so ``K_j = s_j^2 U U^H + P (s_j^2 I - A A^H) P`` with
    ``P = I - U U^H``: the ``U`` part is solved in closed form, CG runs on the complement with the
    projected operator. The projection is what makes the result accurate: the rounding error of
    ``A (A^H x)`` is ``~ eps s_1^2 ||x||``, but its part in the complement (after the projection)
    only ``~ eps s_1 s_(k+1) ||x||``, which ``K_j^{-1}`` amplifies to ``eps s_1 / (s_j - s_(k+1))``
    relative, the accuracy of a full SVD's singular vectors (without it: ``eps s_1^2 / (s_j^2 -
    s_(k+1)^2)``, measured 6e-10 on the gradient for s_i = i^-3, 600 x 600, k = 16).

    Stops when ``||r_j|| <= rtol (s_1 s_k ||x_j|| + ||b_j||)`` for every column (that attainable
    accuracy, with ``s_k >= s_(k+1)``; default ``rtol = eps``) or when the residuals stagnate at
    their rounding floor below ``STAGNATION_FACTOR`` times that; returns ``None`` if that takes
    more than ``maxiter`` iterations (or, with ``give_up_early``, as soon as the convergence rate
    says so).
    """
    rtol = eps(A.dtype) if rtol is None else rtol
    s2 = S.square().to(B.dtype)
    scale = S[..., :1] * S[..., -1:]
    Bu = U @ adjoint_mm(U, B)
    B = B - Bu
    bnorm = torch.linalg.vector_norm(B, dim=-2)

    def op(X: Tensor) -> Tensor:
        return _project_out_u(U, X * s2[..., None, :] - A @ adjoint_mm(A, X))

    def prec(R: Tensor) -> Tensor:
        return _project_out_u(U, resolvent_spectral(R, S, Ue, se))

    def dot(x: Tensor, y: Tensor) -> Tensor:
        return (x.conj() * y).sum(dim=-2).real

    def ratio(num: Tensor, den: Tensor) -> Tensor:
        ok = den > 0
        safe = torch.where(ok, den, torch.ones_like(den))
        return torch.where(ok, num / safe, torch.zeros_like(num))

    X = prec(B)
    R = B - op(X)
    Z = prec(R)
    P, rz = Z, dot(R, Z)
    history: list[float] = []
    best = (math.inf, X)
    for _ in range(maxiter + 1):
        rnorm = torch.linalg.vector_norm(R, dim=-2)
        bound = rtol * (scale * torch.linalg.vector_norm(X, dim=-2) + bnorm)
        r = float(torch.where(rnorm > 0, rnorm / bound, torch.zeros_like(rnorm)).amax())
        history.append(r)
        if r < best[0]:
            best = (r, X)
        if r <= 1.0 or stagnated(history):
            # At the rounding floor further iterations can make the iterate worse again
            # (measured): the best one is returned.
            return best[1] + Bu / s2[..., None, :]
        if give_up_early and hopeless(list(enumerate(history)), maxiter, STAGNATION_FACTOR):
            return None
        KP = op(P)
        alpha = ratio(rz, dot(P, KP)).to(X.dtype)[..., None, :]
        X = X + alpha * P
        R = R - alpha * KP
        Z = prec(R)
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
