r"""The complement solve of ``svd_truncated``'s rules: the coupled equations for the parts of
the singular-vector derivatives outside the kept subspaces, through the resolvent
``K_j = s_j^2 I - A A^H + U diag(S^2) U^H`` (the derivation: module notes of
``_svd_truncated.py``). ``_Resolvent`` is a ``Rule`` whose derivatives apply it again.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._errors import DegenerateSpectrumError
from .._nested import call
from .._rule import Rule, or_zeros
from .._utils import eps, is_wrapped
from ._svd_iterative import adjoint_mm, no_convergence, resolvent_pcg, resolvent_spectral


class _Opts(tuple):
    """(fallback to a full SVD, forward maxiter, conjugate-gradient maxiter)."""

    @property
    def fallback(self) -> bool:
        return self[0]

    @property
    def fwd_maxiter(self) -> int:
        return self[1]

    @property
    def cg_maxiter(self) -> int:
        return self[2]


def _resolve(A: Tensor, U: Tensor, S: Tensor, B: Tensor, F1: Tensor, F2: Tensor, exact: bool,
             opts: _Opts) -> Tensor:
    """``K_j^{-1} b_j`` (no autograd): closed form if ``(F1, F2)`` are all discarded pairs."""
    if exact:
        return resolvent_spectral(B, S, F1, F2)
    X = resolvent_pcg(A, U, S, B, F1, F2, maxiter=opts.cg_maxiter, give_up_early=opts.fallback)
    if X is not None:
        return X
    if not opts.fallback:
        raise no_convergence("the conjugate-gradient solve of the backward/forward-mode correction",
                             opts.cg_maxiter)
    Uf, Sf, _ = torch.linalg.svd(A, full_matrices=False)
    k = S.shape[-1]
    return resolvent_spectral(B, S, Uf[..., k:], Sf[..., k:])


class _Resolvent(Rule):
    """``X[..., :, j] = (s_j^2 I - A A^H + U diag(S^2) U^H)^{-1} B[..., :, j]`` (module notes of
    ``_svd_truncated.py``).

    ``F1, F2``: the discarded left singular pairs (``exact``) or approximate ones used as the
    preconditioner; treated as constants of the factorization (not differentiated). Its
    derivatives apply it again (a solve with the same operator), so every order is exact.
    """

    @staticmethod
    def forward(A, U, S, B, F1, F2, exact: bool, opts: _Opts):
        return _resolve(A, U, S, B, F1, F2, exact, opts)

    @staticmethod
    def save(ctx, inputs, output):
        A, U, S, _, F1, F2, ctx.exact, ctx.opts = inputs
        return A, U, S, output, F1, F2

    @staticmethod
    def gradients(ctx, A, U, S, X, F1, F2, gX):
        W = _Resolvent.apply(A, U, S, gX, F1, F2, ctx.exact, ctx.opts)
        XhA, WhA = X.mH @ A, W.mH @ A
        gA = W @ XhA + X @ WhA
        UhX, UhW = U.mH @ X, U.mH @ W
        S2 = S.square().to(X.dtype)
        gU = -(W @ UhX.mH + X @ UhW.mH) * S2[..., None, :]
        gS = -2.0 * S * ((W.conj() * X).sum(dim=-2).real + (UhX * UhW.conj()).sum(dim=-1).real)
        return gA, gU, gS, W

    @staticmethod
    def tangents(ctx, A, U, S, X, F1, F2, dA, dU, dS, dB, *_):
        dA, dU, dS, dB = (or_zeros(d, x) for x, d in zip((A, U, S, X), (dA, dU, dS, dB)))
        # dB - dK X, through ``call`` so that an outer forward level sees it (jvp of jvp)
        R = call(_resolvent_jvp_rhs, A, U, S, X, dA, dU, dS, dB)
        return _Resolvent.apply(A, U, S, R, F1, F2, ctx.exact, ctx.opts)


def _resolvent_jvp_rhs(A, U, S, X, dA, dU, dS, dB):
    """``dB - dK_j x_j`` for every column (``dK_j`` in the module notes)."""
    S2 = S.square().to(X.dtype)
    UhX = U.mH @ X
    twoSdS = (2.0 * S * dS).to(X.dtype)
    return (dB + dA @ adjoint_mm(A, X) + A @ adjoint_mm(dA, X)
            - dU @ (S2[..., :, None] * UhX) - U @ (S2[..., :, None] * (dU.mH @ X))
            - X * twoSdS[..., None, :] - U @ (twoSdS[..., :, None] * UhX))


def _a_perp(A: Tensor, U: Tensor, S: Tensor, Vh: Tensor, X: Tensor) -> Tensor:
    """``A_perp X = A X - U_k S_k V_k^H X``."""
    return A @ X - U @ (S.to(X.dtype)[..., :, None] * (Vh @ X))


def _a_perp_h(A: Tensor, U: Tensor, S: Tensor, Vh: Tensor, Y: Tensor) -> Tensor:
    """``A_perp^H Y = A^H Y - V_k S_k U_k^H Y``."""
    return adjoint_mm(A, Y) - Vh.mH @ (S.to(Y.dtype)[..., :, None] * (U.mH @ Y))


def _check_split_gap(A: Tensor, S: Tensor, F2: Tensor) -> None:
    """Raise if ``s_k`` is not separated from ``s_{k+1}`` (or from 0 for rectangular input)."""
    m, n = A.shape[-2:]
    k = S.shape[-1]
    if is_wrapped(S) or (k == m and k == n) or k == 0 or S.numel() == 0:
        return
    s_next = F2[..., 0] if F2.shape[-1] else torch.zeros_like(S[..., 0])
    gap = S[..., -1] - s_next
    bad = gap <= 8.0 * math.sqrt(max(m, n)) * eps(A.dtype) * S[..., 0]  # zero up to rounding
    if bool(bad.any()):
        g = float(gap[bad].min())
        raise DegenerateSpectrumError(
            f"k: the kept singular value s_k and the next one (s_(k+1), or 0 for a rectangular "
            f"matrix) coincide (gap {g:.3e}), so the leading-k singular subspaces are not unique "
            "and their derivative is undefined; choose k at a gap of the spectrum"
        )


def _complement(A, U, S, Vh, F1, F2, exact, opts, G, H, D=None):
    """Solve the coupled complement equations for right-hand sides ``(G, H)`` (module notes).

    With a block tangent ``D`` (zero value, ``_svd.block_tangent``) the kept values enter as
    the block ``Sigma = diag(S) + D``: to first order in ``D`` the solution of
    ``Z Sigma - A_perp W = G``, ``W Sigma - A_perp^H Z = H`` is ``(Z0, W0) + L^{-1}(-Z0 D, -W0 D)``,
    which makes the second derivatives exact at kept clusters.
    """
    _check_split_gap(A, S, F2)
    m = A.shape[-2]
    Sd = S.to(G.dtype)[..., None, :]

    def solve(G, H):
        if m == S.shape[-1]:  # no left complement: A_perp = 0, gamma = 0
            return torch.zeros_like(G), H / Sd
        rhs = G * Sd + _a_perp(A, U, S, Vh, H)
        Gam = _Resolvent.apply(A, U, S, rhs, F1, F2, exact, opts)
        return Gam, (H + _a_perp_h(A, U, S, Vh, Gam)) / Sd

    Gam, Th = solve(G, H)
    if D is not None:
        Gam1, Th1 = solve(-Gam @ D, -Th @ D)
        Gam, Th = Gam + Gam1, Th + Th1
    return Gam, Th
