r"""Truncated SVD: the ``k`` leading singular triplets, with the derivative of the full SVD.

``svd_truncated(A, k)`` returns ``(U_k, S_k, Vh_k)``. Its derivatives equal those obtained through
a full SVD for every loss of the kept triplets (Francuz, Schuch & Vanhecke 2023,
arXiv:2311.11894): the discarded part of the spectrum enters through the complement
projectors ``P_U = I - U_k U_k^H``, ``P_V = I - V_k V_k^H`` and the discarded block
``A_perp = A - U_k S_k V_k^H = P_U A P_V``, never through discarded singular vectors.

Kept block (``k x k``): the rules of ``difflinalg.svd`` (``_svd.py``) restricted to the kept
triplets, with the same ``degeneracy_tol`` masks and gauge check.

Complement (forward mode). Differentiating ``A V_k = U_k S_k`` and ``A^H U_k = V_k S_k`` and
projecting gives, for ``Z = P_U dU_k`` and ``W = P_V dV_k``, the coupled Sylvester equations::

    Z S_k - A_perp W   = P_U dA V_k   =: R
    W S_k - A_perp^H Z = P_V dA^H U_k =: Q

(column ``j`` is the dilation ``[[0, A_perp], [A_perp^H, 0]]`` shifted by ``s_j``). Eliminating
``W``::

    z_j = K_j^{-1} (s_j r_j + A_perp q_j),   w_j = (q_j + A_perp^H z_j) / s_j,
    K_j = s_j^2 I - A_perp A_perp^H = s_j^2 I - A A^H + U_k S_k^2 U_k^H,

and ``dU_k = U_k C + Z``, ``dV_k = V_k D + W`` with the kept-block ``C``, ``D``.

Complement (reverse mode). The operator ``(Z, W) -> (Z S - A_perp W, W S - A_perp^H Z)`` is
self-adjoint for ``<X, Y> = Re tr(X^H Y)``, so with ``G = P_U gU_k`` and ``H = P_V gV_k``::

    gamma_j = K_j^{-1} (s_j g_j + A_perp h_j),   theta_j = (h_j + A_perp^H gamma_j) / s_j,
    gA = U_k M V_k^H + Gamma V_k^H + U_k Theta^H

with the kept-block core ``M``. Expanding ``K_j^{-1}`` in the discarded singular vectors gives
back the cross terms ``1/(s_j^2 - s_i^2)`` and the ``(I - U U^H) / s`` terms of the full SVD;
the discarded-discarded pairs never appear, so degeneracies and zero singular values among the
discarded ones are harmless. ``K_j`` is positive definite exactly when ``s_k > s_{k+1}`` (and
``s_k > 0`` for rectangular input): a zero gap across the split raises
``DegenerateSpectrumError`` (outside ``torch.func`` transforms; inside them it gives inf/NaN).

``K_j^{-1}`` is one autograd Function (``_Resolvent``) whose own derivatives (with
``dK_j = 2 s_j ds_j - dA A^H - A dA^H + dU S^2 U^H + U S^2 dU^H + 2 U S dS U^H``)::

    forward:  dX = K^{-1}(dB - dK X)
    reverse:  W = K^{-1} gX,  gB = W,  gA = (W X^H + X W^H) A,  gU = -(W X^H + X W^H) U S^2,
              gS_l = -2 s_l Re(w_l^H x_l) - 2 s_l Re(U^H X W^H U)_ll

call ``K^{-1}`` again, so double backward and forward-over-reverse work to any order.

Methods. ``"full"``: a full (thin) SVD; the discarded pairs it computes give ``K_j^{-1}``
in closed form (``_svd_iterative.resolvent_spectral``). ``"iterative"``: block Golub-Kahan-Lanczos
bidiagonalization with Rayleigh-Ritz to machine precision for the forward and conjugate
gradients for ``K_j^{-1}``, deflated by the forward's further Ritz pairs (``_svd_iterative``);
costs ``O(m n k)`` per step and converges fast when the spectrum decays past ``k``.
``"auto"``: ``"iterative"`` for large matrices (``min(m, n) >= 256`` and ``k`` small), falling
back to a full SVD when an iteration exhausts a budget of about the cost of a full SVD with its
backward (or its convergence rate says it will; ``_budgets``), and ``"full"`` otherwise and
inside ``torch.func`` transforms. On large matrices the iteration is much cheaper than a full
``torch.linalg.svd`` with its backward, also for a flat top (restarted); on small matrices the
per-step overhead makes the budget small and ``"auto"`` falls back (measured figures:
``benchmarks/README.md``, "svd_truncated").
``"iterative"`` works under ``torch.func.grad``/``jvp`` (their custom-Function forward sees
plain tensors) but not under ``vmap``, which does not allow data-dependent iteration counts.

Second order: exact whenever the kept singular values are distinct (degenerate or zero
discarded values do not matter), and at masked kept clusters for the losses of ``_svd.py``
(invariant, linear in each cluster's values): the block tangent ``D`` enters the kept core as in
``_svd.py`` and the complement solve to first order (``_complement``).
"""

from __future__ import annotations


import torch
from torch import Tensor

from .._errors import InputError
from .._nested import call
from .._rule import Rule
from .._utils import check_finite_sum, check_matrix, is_wrapped
from ._gaps import masked_reciprocal
from ._svd import check_degeneracy_tol, check_gauge
from ._svd_rules import checked_vjp, svd_core_vjp, svd_jvp
from ._svd_complement import _check_split_gap, _complement, _Opts
from ._svd_gaps import block_tangent, needs_block, svd_gaps
from ._svd_ties import CheckToken, resolve_tol
from ._svd_iterative import adjoint_mm, default_block, default_max_dim, krylov_svd, no_convergence

METHODS = ("auto", "full", "iterative")
ITERATIVE_IN_VMAP = (
    "method: 'iterative' runs a data-dependent number of iterations, which torch.func.vmap does "
    "not allow; use method='full' (or 'auto', which picks 'full' inside torch.func transforms)"
)


class _TruncatedSVD(Rule):
    @staticmethod
    def forward(A: Tensor, k: int, method: str, tol: float, gauge: str, opts: _Opts,
                token: CheckToken):
        if method == "iterative":
            if is_wrapped(A):  # under vmap the forward sees batched tensors
                raise InputError(ITERATIVE_IN_VMAP)
            out = krylov_svd(A, k, maxiter=opts.fwd_maxiter, give_up_early=opts.fallback)
            if out is not None:
                return tuple(t.clone() for t in out[:5])  # no views: forward AD needs that
            if not opts.fallback:
                raise no_convergence("the Krylov iteration of the forward", opts.fwd_maxiter)
        U, S, Vh = torch.linalg.svd(A, full_matrices=False)
        return tuple(t.clone() for t in (U[..., :k], S[..., :k], Vh[..., :k, :], U[..., k:], S[..., k:]))

    @staticmethod
    def save(ctx, inputs, output):
        A, k, _, ctx.tol, ctx.gauge, ctx.opts, ctx.token = inputs
        F1 = output[3]
        ctx.mark_non_differentiable(*output[3:])
        # All discarded pairs known (full SVD, or a subspace that spans everything): closed form.
        ctx.exact = F1.shape[-1] == min(A.shape[-2:]) - k
        return (A, *output)

    @staticmethod
    def gradients(ctx, A, U, S, Vh, F1, F2, gU, gS, gVh, _g1, _g2):
        _check_split_gap(A, S, F2)  # before the checks of the kept block: the more specific error
        gaps = svd_gaps(S, ctx.tol)
        square = A.shape[-2] == A.shape[-1] == S.shape[-1]

        def vjp(gS_in, D):
            gV = gVh.mH
            X, Y = U.mH @ gU, Vh @ gV
            MVh = svd_core_vjp(S, X, Y, gS_in, gaps, D) @ Vh
            if square:
                return U @ MVh
            G, H = gU - U @ X, gV - Vh.mH @ Y
            Gam, Th = _complement(A, U, S, Vh, F1, F2, ctx.exact, ctx.opts, G, H, D)
            # U M Vh + Gamma Vh + U Theta^H as one product of inner size 2k (one m x n pass)
            return torch.cat([U, Gam], dim=-1) @ torch.cat([MVh + Th.mH, Vh], dim=-2)

        # the complement terms divide by s_j - s_(k+1) (not s_j): the precision estimate's gaps
        s_next = F2[..., :1] if F2.shape[-1] else torch.zeros_like(S[..., :1])
        comp_inv = masked_reciprocal(S - s_next, S - s_next > 0).detach()
        return checked_vjp("svd_truncated", ctx, A, U, S, Vh, gU, gS, gVh, gaps, vjp,
                           comp_inv=None if square else comp_inv)

    @staticmethod
    def tangents(ctx, A, U, S, Vh, F1, F2, dA, *_):
        tol, exact, opts = ctx.tol, ctx.exact, ctx.opts

        def rule(A, U, S, Vh, F1, F2, dA):
            gaps = svd_gaps(S, tol)
            D = block_tangent(A, U, Vh, gaps) if needs_block(gaps) else None
            dU, dS, dVh = svd_jvp(U, S, Vh, dA, gaps, D, complement=False)
            if not (A.shape[-2] == A.shape[-1] == S.shape[-1]):
                V = Vh.mH
                dAV, dAhU = dA @ V, adjoint_mm(dA, U)
                dP = U.mH @ dAV
                R, Q = dAV - U @ dP, dAhU - V @ dP.mH
                Z, W = _complement(A, U, S, Vh, F1, F2, exact, opts, R, Q, D)
                dU, dVh = dU + Z, dVh + W.mH
            return dU, dS, dVh

        # Through ``call`` so that an outer forward level sees this rule's arithmetic (jvp of jvp).
        return call(rule, A, U, S, Vh, F1, F2, dA)


def _prefers_iterative(m: int, n: int, k: int) -> bool:
    k0 = min(m, n)
    return k0 >= 256 and 8 * default_block(k, k0) <= k0


# Cost model of method="auto" (flops; a full SVD with its backward runs at a lower rate than
# the skinny products of the iterations, folded into its constant): calibrated on 2000 x 2000
# float64 on one core, where torch.linalg.svd forward+backward takes ~4.2 s (~30 m n k0 at
# ~60 GFLOP/s) and an iteration has a fixed cost of ~0.5 ms (~30 small torch calls).
FULL_SVD_FLOPS = 30.0
ITERATION_OVERHEAD_FLOPS = 3e7


def _budgets(m: int, n: int, k: int) -> tuple[int, int]:
    """Budgets of method="auto": the numbers of Krylov steps and of conjugate-gradient iterations
    that cost about as much as the full SVD and backward of the fallback. A step costs two
    products with ``b``-column blocks and the reorthogonalization against up to ``max_dim``
    columns, a CG iteration two products with ``k`` columns and the deflation."""
    k0 = min(m, n)
    b = default_block(k, k0)
    d = default_max_dim(k, b, k0)
    full = FULL_SVD_FLOPS * m * n * k0
    step = 4.0 * m * n * b + 16.0 * (m + n) * d * b + ITERATION_OVERHEAD_FLOPS
    cg = 4.0 * m * n * k + 4.0 * m * d * k + ITERATION_OVERHEAD_FLOPS
    return max(10, int(full / step)), max(20, int(full / cg))


def svd_truncated(
    A: Tensor,
    k: int,
    *,
    method: str = "auto",
    degeneracy_tol: float | None = None,
    gauge: str = "error",
) -> tuple[Tensor, Tensor, Tensor]:
    """The ``k`` leading singular triplets, differentiable like a full SVD.

    Args:
        A: (..., m, n) real or complex (float32/64, complex64/128), finite.
        k: number of kept triplets, ``0 <= k <= min(m, n)`` (``k = 0``: empty factors, as
            for ``m = 0`` or ``n = 0``). The derivative needs a gap ``s_k > s_{k+1}`` (and
            ``s_k > 0`` if ``m != n``); otherwise backward raises ``DegenerateSpectrumError``.
        method: "full" (a full thin SVD), "iterative" (randomized block Krylov iteration and
            conjugate gradients, to machine precision; raises ``ConvergenceError`` if they do not
            converge; not under ``torch.func.vmap``) or "auto" (iterative on large matrices with
            a fallback to a full SVD, full otherwise and inside transforms). See the notes.
        degeneracy_tol: ties inside the kept block, as in ``difflinalg.svd`` (default: rounding
            level, ``4 max(m, n) eps``).
        gauge: the checks of backward for the kept block, ``"error"`` (default), ``"warn"`` or
            ``"ignore"``, as in ``difflinalg.svd``: at a cluster of kept singular values exact
            for the same class of losses, and a named error (``GaugeError``,
            ``DegenerateSpectrumError``) otherwise.

    Returns:
        ``(U_k, S_k, Vh_k)`` of shapes (..., m, k), (..., k), (..., k, n): the leading ``k``
        columns/values/rows of ``torch.linalg.svd(A, full_matrices=False)`` up to the gauge
        (phases/signs) of the singular vectors.

    Raises:
        InputError: ``A`` not a (batched) matrix, of an unsupported dtype, or non-finite; ``k``
            not an int in ``0 .. min(m, n)``; an unknown ``method`` or ``gauge``; an invalid
            ``degeneracy_tol``; ``method="iterative"`` under ``torch.func.vmap``.
        ConvergenceError: ``method="iterative"`` did not converge (forward iteration or the
            conjugate gradients of a derivative); ``"auto"`` falls back to a full SVD instead.
        GaugeError, DegenerateSpectrumError: in backward, as for ``difflinalg.svd``, and for a
            zero gap ``s_k = s_(k+1)`` (or ``s_k = 0`` for rectangular ``A``; also in forward
            mode).

    Warns:
        PrecisionWarning: in backward, when a gap the loss uses (inside the kept block, or
            ``s_k - s_(k+1)``) is below ``1e-2 / eps`` of ``s_max``.

    Example::

        import torch
        import difflinalg

        g = torch.Generator().manual_seed(0)
        A = torch.randn(50, 30, dtype=torch.float64, generator=g, requires_grad=True)
        U, S, Vh = difflinalg.svd_truncated(A, 3)    # (50, 3), (3,), (3, 30)
        assert torch.allclose(S, torch.linalg.svdvals(A.detach())[:3])
        S.sum().backward()                           # d(s_1 + s_2 + s_3)/dA = U_3 V_3^T
        assert torch.allclose(A.grad, (U @ Vh).detach())
    """
    A = check_matrix(A, "A", finite=False)
    check_finite_sum(A, "A")  # one reduction instead of three passes over a large A
    if A.is_conj():  # a lazily conjugated view (Z.conj(), Z.mH): the kernels need its values
        A = A.resolve_conj()
    m, n = A.shape[-2:]
    k0 = min(m, n)
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= k0:
        raise InputError(
            f"k: expected an integer with 0 <= k <= min(m, n) = {k0} for A of shape "
            f"{tuple(A.shape)}, got {k!r}"
        )
    if method not in METHODS:
        raise InputError(f"method: expected one of {METHODS}, got {method!r}")
    tol = resolve_tol(check_degeneracy_tol(degeneracy_tol), m, n, A.dtype)
    gauge = check_gauge(gauge)
    if k == 0 or A.numel() == 0:  # nothing to iterate on
        method, opts = "full", _Opts((False, 0, 0))
    elif method == "auto":
        method = "iterative" if (not is_wrapped(A) and _prefers_iterative(m, n, k)) else "full"
        opts = _Opts((True, *_budgets(m, n, k)))
    else:
        opts = _Opts((False, max(200, 2 * k0 // default_block(k, k0)), 1000))
    U, S, Vh, _, _ = _TruncatedSVD.apply(A, k, method, tol, gauge, opts, CheckToken())
    return U, S, Vh
