r"""The SVD's rules on thin factors (``U`` (m, k), ``S`` (k,), ``Vh`` (k, n)), shared by ``svd`` and
``svd_truncated``: the forward rule ``svd_jvp``, the reverse rule ``svd_vjp`` (and its ``k x k`` core
``svd_core_vjp``) and ``checked_vjp``, which wraps a reverse rule in the checks of ``_svd_ties`` and the
second-order guards of ``_svd_curvature``. The formulas (Wan & Zhang 2019; Seeger et al. 2017;
Francuz, Schuch & Vanhecke 2023), the masks at degenerate and zero singular values and the block
tangent ``D`` are derived in ``_svd``'s module docstring."""

from __future__ import annotations

import torch
from torch import Tensor

from .._utils import herm, is_wrapped, skew
from ._svd_curvature import curvature_guard, curvature_probe
from ._svd_gaps import SVDGaps, acomm, block_tangent, comm, inv_block, needs_block
from ._svd_ties import check_mode, enforce, has_ties, poison, tie_stats


def svd_jvp(U: Tensor, S: Tensor, Vh: Tensor, dA: Tensor, gaps: SVDGaps, D: Tensor | None = None,
            complement: bool = True) -> tuple[Tensor, Tensor, Tensor]:
    """Tangents ``(dU, dS, dVh)`` of thin factors for a tangent ``dA`` (formulas: ``_svd``'s module
    docstring).

    ``D``: the block tangent of ``block_tangent`` (zero value; first-order block corrections).
    ``complement=False`` leaves out the ``(I - U U^H)`` / ``(I - V V^H)`` terms (the truncated
    SVD computes them separately).
    """
    V = Vh.mH
    G1, G2 = gaps.G1, gaps.G2
    dAV = dA @ V
    dP = U.mH @ dAV
    H, K = herm(dP), skew(dP)
    dS = dP.diagonal(dim1=-2, dim2=-1).real
    a, c = H * G1, K * G2
    C, Dv = a + c, a - c
    if D is not None:
        c1, c2 = G1 * comm(D, a), G2 * acomm(D, c)
        C, Dv = C + c1 - c2, Dv + c1 + c2
    dU, dV = U @ C, V @ Dv
    Sig_inv = inv_block(gaps.Sinv, D).to(dP.dtype)
    if complement and U.shape[-2] > S.shape[-1]:
        dU = dU + (dAV - U @ dP) @ Sig_inv
    if complement and V.shape[-2] > S.shape[-1]:
        dV = dV + (dA.mH @ U - V @ dP.mH) @ Sig_inv
    return dU, dS, dV.mH


def svd_core_vjp(S: Tensor, X: Tensor, Y: Tensor, gS: Tensor, gaps: SVDGaps,
                 D: Tensor | None = None) -> Tensor:
    """The ``k x k`` core ``M`` of the gradient ``U M V^H`` from ``X = U^H gU``, ``Y = V^H gV``."""
    Xa, Ya = skew(X), skew(Y)
    M = (Xa + Ya) * gaps.G1 + (Xa - Ya) * gaps.G2
    if D is not None:
        A1, B1 = gaps.G1 * (X + Y), gaps.G2 * (X - Y)
        M = M + herm(gaps.G1 * comm(D, A1)) - skew(gaps.G2 * acomm(D, B1))
    return M + torch.diag_embed(gS.to(M.dtype))


def svd_vjp(U: Tensor, S: Tensor, Vh: Tensor, gU: Tensor, gS: Tensor, gVh: Tensor,
            gaps: SVDGaps, D: Tensor | None = None) -> Tensor:
    """Gradient with respect to ``A`` from the gradients of the thin factors (formulas: ``_svd``'s
    module docstring)."""
    V, gV = Vh.mH, gVh.mH
    X, Y = U.mH @ gU, V.mH @ gV
    gA = (U @ svd_core_vjp(S, X, Y, gS, gaps, D)) @ Vh
    Sig_inv = inv_block(gaps.Sinv, D).to(X.dtype)
    if U.shape[-2] > S.shape[-1]:
        gA = gA + ((gU - U @ X) @ Sig_inv) @ Vh
    if V.shape[-2] > S.shape[-1]:
        gA = gA + U @ (Sig_inv @ (gV - V @ Y).mH)
    return gA


def checked_vjp(op: str, ctx, A: Tensor, U: Tensor, S: Tensor, Vh: Tensor, gU: Tensor, gS: Tensor,
                gVh: Tensor, gaps: SVDGaps, vjp, extra: tuple[Tensor, ...] = (),
                grads: tuple[Tensor, ...] = (), comp_inv: Tensor | None = None) -> Tensor:
    """The checks of ``_svd_ties`` around a backward rule ``vjp(gS, D) -> gA`` on thin factors
    (shared by ``svd`` and ``svd_truncated``): raise, or poison inside ``torch.func``; the
    second-order guards when the backward is differentiated. ``comp_inv`` (..., k): the inverse
    gaps of the complement terms for the precision estimate (default ``1/s``)."""
    mode = check_mode(ctx, gU) if S.numel() else "skip"
    stats = None
    if mode != "skip":
        X, Y = U.mH @ gU, Vh @ gVh.mH
        zero = (S <= gaps.tol[..., 0])[..., None, :]  # free vectors of zero singular values
        comp = ()
        if U.shape[-2] > S.shape[-1]:
            comp += (gU - U @ X,)
        if Vh.shape[-1] > S.shape[-1]:
            comp += (gVh.mH - Vh.mH @ Y,)
        extra += tuple(c * zero for c in comp)

        def stats_fn(ties: bool):
            return tie_stats(S, X, Y, gS, gaps, extra, grads or (gU, gVh), comp,
                             gaps.Sinv if comp_inv is None else comp_inv, ties)

        if mode == "sync":
            enforce(op, ctx.gauge, stats_fn, has_ties(S, gaps), S, gS, X, Y, gaps, ctx.tol)
        else:
            stats = stats_fn(True)
    # D has value 0: it only matters when this backward is differentiated again.
    second = torch.is_grad_enabled() or is_wrapped(gU)
    D = block_tangent(A, U, Vh, gaps) if second and needs_block(gaps) else None
    gS_in = curvature_guard(op, gS, gaps, ctx.gauge) if second and S.numel() else gS
    gA = vjp(gS_in, D)
    if mode == "poison":
        gA = poison(op, gA, stats)
    elif mode == "sync" and second:
        gA = curvature_probe(op, gA, gS, S, gaps, ctx.gauge)
    return gA
