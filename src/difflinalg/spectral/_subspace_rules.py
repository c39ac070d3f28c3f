r"""Rules of ``eigh_subspace``: first and second order on the kept block (``_subspace.py``).

Notation of ``_subspace.py``: ``w1``, ``U1`` the kept block, ``w2``, ``U2`` its complement, ``C_ij =
1/(w1_j - w2_i)`` the cross inverse gaps, ``dAh = herm(dA)``.

Second order. Both first-order rules are ``autograd.Function`` s with their own JVP and VJP:
``_SubspaceVJP`` (the backward: double backward, forward-over-reverse / ``torch.func.hessian``) and
``_SubspaceJVP`` (the forward rule: forward-over-forward, reverse-over-forward). Written in an
arbitrary basis of the kept block (``B1 = U1^H A U1``) and of the complement (``B2``), ``Y``
solves the Sylvester equation ``A Y - Y B1 = -(I - P) gU1`` with ``Y = (I - P) Y`` and ``O`` solves
``O B1 - B2 O = X21``; their tangents have the full ``dB1 = X11`` and ``dB2`` (not only their
diagonals), and only cross gaps divide. With ``X11 = U1^H dAh U1``, ``X21 = U2^H dAh U1``,
``O = C o X21``, ``D = U2 O`` (the tangent of ``U1``), ``N21 = C o (U2^H gU1)``, ``T11 = U1^H gU1``,
the derivative of the reverse rule along ``(dA, dgw1, dgU1)``::

    dN21 = C o (U2^H dgU1 - O T11 + U2^H dAh Y - N21 X11)
    dN11 = diag(dgw1) + W o X11
    dgA  = herm((U1 (dN11 - O^H N21) + 2 D diag(gw1) + U2 dN21) U1^H + Y D^H)

and its adjoint (``Hh = herm(H)``, ``H11 = U1^H Hh U1``, ``H21 = U2^H Hh U1``, ``R = C o H21``)::

    ggw1 = Re diag(H11),   ggU1 = U2 R
    G11  = W o H11 - N21^H R
    G21  = C o (-N21 H11 - R T11^H + U2^H (2 Hh U1 diag(gw1) + Hh Y))
    gA2  = herm((U1 G11 + U2 G21) U1^H + U2 R Y^H)

The derivative of the forward rule when ``A`` moves along ``a`` and ``dA`` along ``b``
(``X'11 = U1^H herm(a) U1``, ``O' = C o (U2^H herm(a) U1)``, ``D' = U2 O'``)::

    dO     = C o (U2^H herm(b) U1 - O' X11 + U2^H dAh D' - O X'11 + U2^H herm(a) D)
    d(dU1) = U2 dO - U1 O'^H O
    d(dw1) = Re diag(U1^H herm(b) U1 + O'^H X21 + X21^H O' + X11 Ow - Ow X11),  Ow = Fw o X'11

with its adjoint in ``subspace_jvp_vjp``. The eigenvalue curvature inside the kept block (the
Daleckii-Krein terms ``W_il = (gw1_l - gw1_i)/(w1_l - w1_i)`` and ``Fw_il = 1/(w1_l - w1_i)``) is
kept for pairs separated by more than ``sqrt(eps) max|w|`` and dropped for closer pairs (treated as
a repeated eigenvalue; at a near repeat the quotients would be dominated by rounding): exact for
distinct eigenvalues and for losses linear in the eigenvalues of each (near-)repeated eigenvalue
(e.g. ``w1.sum()``); for a loss curved in the eigenvalues of such a pair the limit is not
computable from ``gw1``: the second-order checks of ``_eigh_ties`` raise for it (chain clusters at
``sqrt(eps) max|w|``; NaN inside ``torch.func``). All second-order terms cost ``O(n^2 k)``. Third derivatives are not
provided.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._utils import eps, herm
from ._gaps import (
    TIE_FACTOR,
    cross_inverse_gaps,
    divided_differences,
    inverse_gaps,
    off_diagonal_pairs,
    spectral_scale,
)


def _split(w: Tensor, V: Tensor, k: int, largest: bool):
    """(w1, U1, w2, U2): the kept block (k smallest or largest, ascending) and its complement."""
    n = w.shape[-1]
    if largest:
        return w[..., n - k:], V[..., n - k:], w[..., : n - k], V[..., : n - k]
    return w[..., :k], V[..., :k], w[..., k:], V[..., k:]


def _join(kept: Tensor, comp: Tensor, largest: bool, dim: int = -1) -> Tensor:
    return torch.cat([comp, kept] if largest else [kept, comp], dim=dim)


def split_tie(w: Tensor) -> Tensor:
    """Absolute tie tolerance ``TIE_FACTOR * n * eps * max|w|`` (..., 1) (``_gaps.default_tol``):
    gaps below it are ties up to rounding, across the split (no derivative) and inside a block."""
    return TIE_FACTOR * max(w.shape[-1], 1) * eps(w.dtype) * spectral_scale(w)


def _cross(w1: Tensor, w2: Tensor, w: Tensor) -> Tensor:
    """``C_ij = 1/(w1_j - w2_i)``, NaN for gaps that rounding alone could produce."""
    return cross_inverse_gaps(w2, w1, split_tie(w)[..., None])


def _kept_pairs(w1: Tensor, w: Tensor) -> Tensor:
    """Kept pairs resolvable by the Daleckii-Krein terms: gap > ``CURVATURE_TOL * max|w|`` (closer
    pairs are treated as a repeated eigenvalue: their quotients, and the ``1/gap`` terms of the
    forward rule's eigenvalue curvature, which cancel for a sum, would be dominated by rounding;
    a loss curved in them is refused by the curvature checks of ``_eigh_ties``)."""
    mask = torch.ones(w1.shape[:-1] + (w1.shape[-1],) * 2, dtype=torch.bool, device=w1.device)
    return off_diagonal_pairs(w1, mask, curvature_tol(w.dtype) * spectral_scale(w))


def curvature_tol(dtype: torch.dtype) -> float:
    """``sqrt(eps)``: relative gap below which kept pairs carry no second-order curvature terms."""
    return math.sqrt(eps(dtype))


def subspace_jvp(w1, U1, w2, U2, w, dA) -> tuple[Tensor, Tensor]:
    """Tangents ``(dw1, dU1)`` of the kept block for a tangent ``dA`` (uses ``herm(dA)``)."""
    C = _cross(w1, w2, w)
    Z1 = herm(dA) @ U1
    dw1 = (U1.mH @ Z1).diagonal(dim1=-2, dim2=-1).real
    return dw1, U2 @ (C * (U2.mH @ Z1))


def subspace_vjp(w1, U1, w2, U2, w, gw1, gU1) -> Tensor:
    """Gradient with respect to ``A`` from the gradients ``gw1``, ``gU1`` of the kept block."""
    C = _cross(w1, w2, w)
    Y = U2 @ (C * (U2.mH @ gU1))
    return herm((U1 * gw1.to(U1.dtype)[..., None, :] + Y) @ U1.mH)


def subspace_vjp_jvp(w1, U1, w2, U2, w, gw1, gU1, dA, dgw1, dgU1) -> Tensor:
    """Tangent of ``subspace_vjp`` along ``(dA, dgw1, dgU1)``."""
    C = _cross(w1, w2, w)
    W = divided_differences(gw1, w1, _kept_pairs(w1, w))
    dAh = herm(dA)
    Z1 = dAh @ U1
    X11 = U1.mH @ Z1
    O = C * (U2.mH @ Z1)
    D = U2 @ O
    T11 = U1.mH @ gU1
    N21 = C * (U2.mH @ gU1)
    Y = U2 @ N21
    dN21 = C * (U2.mH @ (dgU1 + dAh @ Y) - O @ T11 - N21 @ X11)
    dN11 = torch.diag_embed(dgw1.to(U1.dtype)) + W * X11
    g = gw1.to(U1.dtype)[..., None, :]
    left = U1 @ (dN11 - O.mH @ N21) + 2 * D * g + U2 @ dN21
    return herm(left @ U1.mH + Y @ D.mH)


def subspace_vjp_vjp(w1, U1, w2, U2, w, gw1, gU1, H) -> tuple[Tensor, Tensor, Tensor]:
    """Adjoint of ``subspace_vjp_jvp``: ``(gA, ggw1, ggU1)`` for a cotangent ``H`` of ``gA``."""
    C = _cross(w1, w2, w)
    W = divided_differences(gw1, w1, _kept_pairs(w1, w))
    T11 = U1.mH @ gU1
    N21 = C * (U2.mH @ gU1)
    Y = U2 @ N21
    Hh = herm(H)
    HU1 = Hh @ U1
    H11 = U1.mH @ HU1
    R = C * (U2.mH @ HU1)
    ggw1 = H11.diagonal(dim1=-2, dim2=-1).real
    ggU1 = U2 @ R
    G11 = W * H11 - N21.mH @ R
    g = gw1.to(U1.dtype)[..., None, :]
    G21 = C * (U2.mH @ (2 * HU1 * g + Hh @ Y) - N21 @ H11 - R @ T11.mH)
    gA = herm((U1 @ G11 + U2 @ G21) @ U1.mH + (U2 @ R) @ Y.mH)
    return gA, ggw1, ggU1


def subspace_jvp_jvp(w1, U1, w2, U2, w, dA, a, b) -> tuple[Tensor, Tensor]:
    """Tangent of ``subspace_jvp(..., dA)`` when ``A`` moves along ``a`` and ``dA`` along ``b``."""
    C = _cross(w1, w2, w)
    Fw = inverse_gaps(w1, ~_kept_pairs(w1, w))
    dAh, ah = herm(dA), herm(a)
    Z1 = dAh @ U1
    X11, X21 = U1.mH @ Z1, U2.mH @ Z1
    O = C * X21
    D = U2 @ O
    Za = ah @ U1
    Xa11, Op = U1.mH @ Za, C * (U2.mH @ Za)
    Dp = U2 @ Op
    Zb = herm(b) @ U1
    dO = C * (U2.mH @ (Zb + dAh @ Dp + ah @ D) - Op @ X11 - O @ Xa11)
    Omw = Fw * Xa11
    ddw1 = (U1.mH @ Zb + Op.mH @ X21 + X21.mH @ Op + X11 @ Omw - Omw @ X11).diagonal(dim1=-2, dim2=-1).real
    return ddw1, U2 @ dO - U1 @ (Op.mH @ O)


def subspace_jvp_vjp(w1, U1, w2, U2, w, dA, hw1, hU1) -> tuple[Tensor, Tensor]:
    """Adjoint of ``subspace_jvp_jvp`` in ``(a, b)``: gradients for cotangents ``(hw1, hU1)``."""
    C = _cross(w1, w2, w)
    Fw = inverse_gaps(w1, ~_kept_pairs(w1, w))
    dAh = herm(dA)
    Z1 = dAh @ U1
    X11, X21 = U1.mH @ Z1, U2.mH @ Z1
    O = C * X21
    D = U2 @ O
    Q = U1.mH @ hU1
    Rc = C * (U2.mH @ hU1)
    U2Rc = U2 @ Rc
    hd = hw1.to(U1.dtype)
    PO = -O @ Q.mH - Rc @ X11 + U2.mH @ (dAh @ U2Rc) + 2 * X21 * hd[..., None, :]
    G11 = -O.mH @ Rc + Fw * (X11 * hd[..., None, :] - hd[..., :, None] * X11)
    G21 = C * PO
    ga = herm((U1 @ G11 + U2 @ G21) @ U1.mH + U2Rc @ D.mH)
    gb = herm(U2Rc @ U1.mH + (U1 * hd[..., None, :]) @ U1.mH)
    return ga, gb
