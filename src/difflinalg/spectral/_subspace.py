r"""Invariant subspace of the k smallest (or largest) eigenvalues of a Hermitian matrix.

``eigh_subspace(A, k)`` returns the kept eigenvalues ``w1`` (k) and an orthonormal basis ``U1``
(n x k) of their invariant subspace; ``subspace_projector(A, k) = U1 U1^H``. The caller names the
split, and the derivatives use only the gaps *across* it: they are exact for every loss invariant
under ``U(k) x U(n-k)`` (a loss of the projector ``P = U1 U1^H``, of ``I - P``, of symmetric
functions of ``w1``) whatever the degeneracy inside the kept block and inside its complement.
Typical use: the MUSIC noise subspace ``I - P_signal`` on a flat noise floor, where
``torch.linalg.eigh`` returns NaN gradients (``shared/reference/anchors.md``).

Notation: ``U2``, ``w2`` the complement (n x (n-k)); ``dAh = herm(dA)``; the cross inverse gaps
``C_ij = 1/(w1_j - w2_i)`` ((n-k) x k). The Hermitian part ``herm(A)`` is decomposed (both
triangles read), as in ``eigh``.

First order (the block form of the eigh rule, Seeger et al. 2017, keeping the pairs
(complement, kept) only; Kato's resolvent expansion of the spectral projector)::

    forward mode:  dw1 = Re diag(U1^H dAh U1),   dU1 = U2 (C o (U2^H dAh U1))
    reverse mode:  gA  = herm((U1 diag(gw1) + Y) U1^H),   Y = U2 (C o (U2^H gU1))

Column ``j`` of ``U2 (C o (U2^H g))`` is ``U2 diag(1/(w1_j - w2)) U2^H g = (w1_j - A)^+ (I - P) g``
restricted to the complement: a spectral function of ``A`` on the complement, unchanged by any
rotation of ``U2`` inside a degenerate complement eigenspace (the coefficient depends on ``w2_i``
only). No gap inside the kept block divides: the tangent ``dU1`` has no component inside
``span(U1)`` (the kept basis is not differentiated inside its own span; for an invariant loss
that component contributes nothing because ``U1^H gU1`` is Hermitian). Cost ``O(n^2 k)`` on top
of the eigendecomposition.

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
a repeated eigenvalue): exact for distinct eigenvalues and for losses linear in the eigenvalues of
each (near-)repeated eigenvalue (e.g. ``w1.sum()``); for a loss curved in the eigenvalues of a
repeated eigenvalue the limit is not computable from ``gw1`` (at a near repeat the quotients would
be dominated by rounding). All second-order terms cost ``O(n^2 k)``. Third derivatives are not
provided.

Zero gap across the split. When ``|w1_j - w2_i| <= n eps max|w|`` for some pair the kept subspace is
not unique and has no derivative. Outside ``torch.func`` transforms ``eigh_subspace`` raises
``DegenerateSpectrumError`` (one host synchronisation); inside them (no data-dependent control flow
there) the derivatives of the affected matrices are NaN (``C`` is NaN there), never a silent
number. The values are still returned.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .._errors import DegenerateSpectrumError, InputError
from .._utils import check_int, check_matrix, eps, herm, is_wrapped
from ._eigh import check_finite_fast, eigh_factor
from ._gaps import (
    cross_inverse_gaps,
    divided_differences,
    inverse_gaps,
    off_diagonal_pairs,
    spectral_scale,
    tie_tolerance,
)


class SubspaceResult(NamedTuple):
    """``eigenvalues`` (..., k) and ``eigenvectors`` (..., n, k), orthonormal columns."""

    eigenvalues: Tensor
    eigenvectors: Tensor


def _split(w: Tensor, V: Tensor, k: int, largest: bool):
    """(w1, U1, w2, U2): the kept block (k smallest or largest, ascending) and its complement."""
    n = w.shape[-1]
    if largest:
        return w[..., n - k:], V[..., n - k:], w[..., : n - k], V[..., : n - k]
    return w[..., :k], V[..., :k], w[..., k:], V[..., k:]


def _join(kept: Tensor, comp: Tensor, largest: bool, dim: int = -1) -> Tensor:
    return torch.cat([comp, kept] if largest else [kept, comp], dim=dim)


def _cross(w1: Tensor, w2: Tensor, w: Tensor) -> Tensor:
    """``C_ij = 1/(w1_j - w2_i)``, NaN for gaps that rounding alone could produce."""
    return cross_inverse_gaps(w2, w1, tie_tolerance(w)[..., None])


def _kept_pairs(w1: Tensor, w: Tensor) -> Tensor:
    """Kept pairs resolvable by the Daleckii-Krein terms: gap > sqrt(eps) max|w| (closer pairs are
    treated as a repeated eigenvalue; their quotients would be dominated by rounding)."""
    mask = torch.ones(w1.shape[:-1] + (w1.shape[-1],) * 2, dtype=torch.bool, device=w1.device)
    return off_diagonal_pairs(w1, mask, math.sqrt(eps(w.dtype)) * spectral_scale(w))


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


class _SubspaceJVP(torch.autograd.Function):
    """``(A, dA) -> (dw, dV)`` for the kept block (complement entries zero), with its own
    derivatives: forward-over-forward and reverse-over-forward second derivatives."""

    generate_vmap_rule = True

    @staticmethod
    def forward(A, dA, w, V, k, largest):
        w1, U1, w2, U2 = _split(w, V, k, largest)
        dw1, dU1 = subspace_jvp(w1, U1, w2, U2, w, dA)
        return _join(dw1, torch.zeros_like(w2), largest), _join(dU1, torch.zeros_like(U2), largest)

    @staticmethod
    def setup_context(ctx, inputs, output):
        A, dA, w, V, k, largest = inputs
        ctx.k, ctx.largest = k, largest
        ctx.save_for_backward(w, V, dA)
        ctx.save_for_forward(w, V, dA)

    @staticmethod
    @once_differentiable
    def backward(ctx, hw, hV):
        w, V, dA = ctx.saved_tensors
        w1, U1, w2, U2 = _split(w, V, ctx.k, ctx.largest)
        hw = torch.zeros_like(w) if hw is None else hw
        hV = torch.zeros_like(V) if hV is None else hV
        hw1, hU1, _, _ = _split(hw, hV, ctx.k, ctx.largest)
        ga, gb = subspace_jvp_vjp(w1, U1, w2, U2, w, dA, hw1, hU1)
        return ga, gb, None, None, None, None

    @staticmethod
    def jvp(ctx, a, b, _dw, _dV, _k, _largest):
        w, V, dA = ctx.saved_tensors
        largest = ctx.largest
        w1, U1, w2, U2 = _split(w, V, ctx.k, largest)
        a = torch.zeros_like(V) if a is None else a
        b = torch.zeros_like(V) if b is None else b
        ddw1, ddU1 = subspace_jvp_jvp(w1, U1, w2, U2, w, dA, a, b)
        return _join(ddw1, torch.zeros_like(w2), largest), _join(ddU1, torch.zeros_like(U2), largest)


class _SubspaceVJP(torch.autograd.Function):
    """``(A, gw, gV) -> gA`` for the kept block (second order of ``eigh_subspace``).

    ``gw``, ``gV`` are the gradients of the full ``(w, V)`` returned by ``_Subspace``; only the kept
    entries are read (the public function never exposes the complement).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(A, gw, gV, w, V, k, largest):
        w1, U1, w2, U2 = _split(w, V, k, largest)
        gw1, gU1, _, _ = _split(gw, gV, k, largest)
        return subspace_vjp(w1, U1, w2, U2, w, gw1, gU1)

    @staticmethod
    def setup_context(ctx, inputs, output):
        A, gw, gV, w, V, k, largest = inputs
        ctx.k, ctx.largest = k, largest
        ctx.save_for_backward(w, V, gw, gV)
        ctx.save_for_forward(w, V, gw, gV)

    @staticmethod
    @once_differentiable
    def backward(ctx, H):
        w, V, gw, gV = ctx.saved_tensors
        k, largest = ctx.k, ctx.largest
        w1, U1, w2, U2 = _split(w, V, k, largest)
        gw1, gU1, _, _ = _split(gw, gV, k, largest)
        gA, ggw1, ggU1 = subspace_vjp_vjp(w1, U1, w2, U2, w, gw1, gU1, H)
        ggw = _join(ggw1, torch.zeros_like(w2), largest)
        ggV = _join(ggU1, torch.zeros_like(U2), largest)
        return gA, ggw, ggV, None, None, None, None

    @staticmethod
    def jvp(ctx, dA, dgw, dgV, _dw, _dV, _k, _largest):
        w, V, gw, gV = ctx.saved_tensors
        k, largest = ctx.k, ctx.largest
        w1, U1, w2, U2 = _split(w, V, k, largest)
        gw1, gU1, _, _ = _split(gw, gV, k, largest)
        dA = torch.zeros_like(V) if dA is None else dA
        dgw1, dgU1, _, _ = _split(
            torch.zeros_like(gw) if dgw is None else dgw,
            torch.zeros_like(gV) if dgV is None else dgV, k, largest)
        return subspace_vjp_jvp(w1, U1, w2, U2, w, gw1, gU1, dA, dgw1, dgU1)


class _Subspace(torch.autograd.Function):
    """``A -> (w, V)`` (full decomposition) whose derivatives see only the kept block.

    The public functions slice the kept block out of the outputs; the complement's entries of the
    incoming gradients are zero and are ignored, and its tangents are returned as zero.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(A, k, largest):
        return eigh_factor(A)

    @staticmethod
    def setup_context(ctx, inputs, output):
        A, k, largest = inputs
        w, V = output
        ctx.k, ctx.largest = k, largest
        ctx.save_for_backward(A, w, V)
        ctx.save_for_forward(A, w, V)

    @staticmethod
    def backward(ctx, gw, gV):
        A, w, V = ctx.saved_tensors
        gw = torch.zeros_like(w) if gw is None else gw
        gV = torch.zeros_like(V) if gV is None else gV
        return _SubspaceVJP.apply(A, gw, gV, w, V, ctx.k, ctx.largest), None, None

    @staticmethod
    def jvp(ctx, dA, _k, _largest):
        A, w, V = ctx.saved_tensors
        return _SubspaceJVP.apply(A, dA, w, V, ctx.k, ctx.largest)


def check_k(k, n: int, name: str = "k", low: int = 1, high: int | None = None) -> int:
    """Validate an integer ``k`` with ``low <= k <= high`` (default ``n``)."""
    high = n if high is None else high
    k = check_int(k, name)
    if not low <= k <= high:
        raise InputError(f"{name}: expected {low} <= {name} <= {high} for matrices of size n = {n}, got {k}")
    return k


def _check_split_gap(w: Tensor, k: int, largest: bool) -> None:
    """Raise ``DegenerateSpectrumError`` where the gap across the split is zero up to rounding."""
    n = w.shape[-1]
    if k == n or is_wrapped(w) or w.numel() == 0:
        return
    lo, hi = (n - k - 1, n - k) if largest else (k - 1, k)
    gap = w[..., hi] - w[..., lo]
    thr = tie_tolerance(w)[..., 0]
    bad = gap <= thr
    if bool(bad.any()):
        idx = tuple(bad.nonzero()[0].tolist()) if bad.ndim else ()
        where = f" (batch index {idx})" if idx else ""
        which = "largest" if largest else "smallest"
        raise DegenerateSpectrumError(
            f"A: eigenvalues {lo + 1} and {hi + 1} (ascending) are equal up to rounding{where}: "
            f"{float(w[idx + (lo,)]):.6g} and {float(w[idx + (hi,)]):.6g} (gap {float(gap[idx]):.3g} "
            f"<= {float(thr[idx]):.3g}), so the invariant subspace of the {k} {which} eigenvalues "
            f"is not unique and has no derivative; choose k at a gap of the spectrum (e.g. the "
            f"number of sources above the noise floor)"
        )


def _subspace(A: Tensor, k, largest: bool) -> tuple[Tensor, Tensor]:
    A = check_matrix(A, "A", square=True, finite=False)
    check_finite_fast(A, "A")
    n = A.shape[-1]
    k = check_k(k, n)
    if not isinstance(largest, bool):
        raise InputError(f"largest: expected a bool, got {largest!r}")
    w, V = _Subspace.apply(A, k, largest)
    _check_split_gap(w, k, largest)
    w1, U1, _, _ = _split(w, V, k, largest)
    if largest:  # the largest first (descending), like torch.topk
        w1, U1 = w1.flip(-1), U1.flip(-1)
    return w1, U1


def eigh_subspace(A: Tensor, k: int, *, largest: bool = False) -> SubspaceResult:
    """The k smallest (or largest) eigenvalues of a Hermitian matrix and their invariant subspace.

    Args:
        A: (..., n, n) real or complex (float32/64, complex64/128), finite; its Hermitian part
            ``(A + A^H)/2`` is used (both triangles read).
        k: size of the kept block, ``1 <= k <= n``; the split must be at a gap of the spectrum.
        largest: keep the k largest eigenvalues instead of the k smallest.

    Returns:
        ``SubspaceResult(eigenvalues, eigenvectors)``: ``w1`` (..., k), ascending for the smallest,
        descending (largest first) for ``largest=True``, and ``U1`` (..., n, k) with orthonormal
        columns, ``herm(A) U1 = U1 diag(w1)``.

    Derivatives (reverse, forward, second order; ``torch.func`` compatible) use only the gaps
    across the split: exact for losses invariant under rotations of ``U1`` inside its span (and of
    the complement), e.g. functions of ``U1 U1^H`` and symmetric functions of ``w1``, at any
    degeneracy inside each block. A loss of the individual columns of ``U1`` gets the gradient of
    its rotation-invariant part only. Individual eigenvalues have exact first derivatives.

    Raises:
        DegenerateSpectrumError: the gap across the split is zero up to rounding (outside
            ``torch.func`` transforms; inside them the derivatives are NaN for that matrix).
    """
    w1, U1 = _subspace(A, k, largest)
    return SubspaceResult(w1, U1)


def subspace_projector(A: Tensor, k: int, *, largest: bool = False) -> Tensor:
    """Orthogonal projector ``U1 U1^H`` (..., n, n) onto the invariant subspace of the k smallest
    (or largest) eigenvalues of ``herm(A)``. Arguments, derivatives and errors as ``eigh_subspace``;
    ``I - subspace_projector(A, k, largest=True)`` is the MUSIC noise-subspace projector.
    """
    _, U1 = _subspace(A, k, largest)
    return U1 @ U1.mH
