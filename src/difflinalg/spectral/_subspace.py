r"""Invariant subspace of the k smallest (or largest) eigenvalues of a Hermitian matrix.

``eigh_subspace(A, k)`` returns the kept eigenvalues ``w1`` (k) and an orthonormal basis ``U1``
(n x k) of their invariant subspace; ``subspace_projector(A, k) = U1 U1^H``. The caller names the
split, and the derivatives use only the gaps *across* it: they are exact for every loss invariant
under ``U(k) x U(n-k)`` (a loss of the projector ``P = U1 U1^H``, of ``I - P``, of symmetric
functions of ``w1``) whatever the degeneracy inside the kept block and inside its complement.
Typical use: the MUSIC noise subspace ``I - P_signal`` on a flat noise floor, where
``torch.linalg.eigh`` returns NaN gradients (derivation: ``docs/math/eigh.md``, "A named split").

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

Second order: ``_subspace_rules.py`` (both first-order rules are ``autograd.Function`` s with their
own JVP and VJP; only cross gaps divide).

Ties and checks: the exact class and the backward checks (a dependence on the basis of ``U1``,
ties inside the kept block) are in ``_eigh_ties.py``.

Zero gap across the split. When ``|w1_j - w2_i| <= 4 n eps max|w|`` for some pair the kept subspace is
not unique and has no derivative. Outside ``torch.func`` transforms ``eigh_subspace`` raises
``DegenerateSpectrumError`` (one host synchronisation); inside them (no data-dependent control flow
there) the derivatives of the affected matrices are NaN (``C`` is NaN there), never a silent
number. The values are still returned.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .._errors import DegenerateSpectrumError, InputError
from .._rule import DerivativeRule, Rule, or_zeros
from .._utils import check_int, check_matrix, is_wrapped
from ._eigh import eigh_factor
from ._hermitian_input import check_finite_fast, resolve_views
from ._eigh_gaps import eigh_gaps
from ._eigh_ties import Parts, checked_backward
from ._gaps import default_tol, spectral_scale
from ._subspace_rules import (
    _cross,
    _join,
    _split,
    curvature_tol,
    split_tie,
    subspace_jvp,
    subspace_jvp_jvp,
    subspace_jvp_vjp,
    subspace_vjp,
    subspace_vjp_jvp,
    subspace_vjp_vjp,
)
from ._svd import check_gauge
from ._svd_ties import CheckToken


class SubspaceResult(NamedTuple):
    """``eigenvalues`` (..., k) and ``eigenvectors`` (..., n, k), orthonormal columns."""

    eigenvalues: Tensor
    eigenvectors: Tensor


class _SubspaceJVP(DerivativeRule):
    """``(A, dA) -> (dw, dV)`` for the kept block (complement entries zero), with its own
    derivatives: forward-over-forward and reverse-over-forward second derivatives."""

    differentiable = 2  # A, dA

    @staticmethod
    def forward(A, dA, w, V, k, largest):
        w1, U1, w2, U2 = _split(w, V, k, largest)
        dw1, dU1 = subspace_jvp(w1, U1, w2, U2, w, dA)
        return _join(dw1, torch.zeros_like(w2), largest), _join(dU1, torch.zeros_like(U2), largest)

    @staticmethod
    def save(ctx, inputs, output):
        A, dA, w, V, ctx.k, ctx.largest = inputs
        return w, V, dA

    @staticmethod
    def gradients(ctx, w, V, dA, hw, hV):
        w1, U1, w2, U2 = _split(w, V, ctx.k, ctx.largest)
        hw1, hU1, _, _ = _split(hw, hV, ctx.k, ctx.largest)
        return subspace_jvp_vjp(w1, U1, w2, U2, w, dA, hw1, hU1)

    @staticmethod
    def tangents(ctx, w, V, dA, a, b):
        largest = ctx.largest
        w1, U1, w2, U2 = _split(w, V, ctx.k, largest)
        ddw1, ddU1 = subspace_jvp_jvp(w1, U1, w2, U2, w, dA, a, b)
        return _join(ddw1, torch.zeros_like(w2), largest), _join(ddU1, torch.zeros_like(U2), largest)


class _SubspaceVJP(DerivativeRule):
    """``(A, gw, gV) -> gA`` for the kept block (second order of ``eigh_subspace``).

    ``gw``, ``gV`` are the gradients of the full ``(w, V)`` returned by ``_Subspace``; only the kept
    entries are read (the public function never exposes the complement).
    """

    differentiable = 3  # A, gw, gV

    @staticmethod
    def forward(A, gw, gV, w, V, k, largest):
        w1, U1, w2, U2 = _split(w, V, k, largest)
        gw1, gU1, _, _ = _split(gw, gV, k, largest)
        return subspace_vjp(w1, U1, w2, U2, w, gw1, gU1)

    @staticmethod
    def save(ctx, inputs, output):
        A, gw, gV, w, V, ctx.k, ctx.largest = inputs
        return w, V, gw, gV

    @staticmethod
    def gradients(ctx, w, V, gw, gV, H):
        k, largest = ctx.k, ctx.largest
        w1, U1, w2, U2 = _split(w, V, k, largest)
        gw1, gU1, _, _ = _split(gw, gV, k, largest)
        gA, ggw1, ggU1 = subspace_vjp_vjp(w1, U1, w2, U2, w, gw1, gU1, H)
        return gA, _join(ggw1, torch.zeros_like(w2), largest), _join(ggU1, torch.zeros_like(U2), largest)

    @staticmethod
    def tangents(ctx, w, V, gw, gV, dA, dgw, dgV):
        k, largest = ctx.k, ctx.largest
        w1, U1, w2, U2 = _split(w, V, k, largest)
        gw1, gU1, _, _ = _split(gw, gV, k, largest)
        dgw1, dgU1, _, _ = _split(dgw, dgV, k, largest)
        return subspace_vjp_jvp(w1, U1, w2, U2, w, gw1, gU1, dA, dgw1, dgU1)


class _Subspace(Rule):
    """``A -> (w, V)`` (full decomposition) whose derivatives see only the kept block.

    The public functions slice the kept block out of the outputs; the complement's entries of the
    incoming gradients are zero and are ignored, and its tangents are returned as zero. Backward
    runs the checks of ``_eigh_ties`` on the kept block (``op``: the public name).
    """

    @staticmethod
    def forward(A, k, largest, op, gauge, token):
        return eigh_factor(A)

    @staticmethod
    def save(ctx, inputs, output):
        A, ctx.k, ctx.largest, ctx.op, ctx.gauge, ctx.token = inputs
        return (A, *output)

    @staticmethod
    def gradients(ctx, A, w, V, gw, gV):
        k, largest = ctx.k, ctx.largest
        gw = or_zeros(gw, w)
        gV = or_zeros(gV, V)
        w1, U1, w2, U2 = _split(w, V, k, largest)
        gw1, gU1, gw2, _ = _split(gw, gV, k, largest)
        n = w.shape[-1]

        def rule(gw1_in):
            return _SubspaceVJP.apply(A, _join(gw1_in, gw2, largest), gV, w, V, k, largest)

        def parts():
            # a poisoned (NaN) cross gap divides nothing the precision estimate could count
            inv = torch.nan_to_num(_cross(w1, w2, w), nan=0.0, posinf=0.0, neginf=0.0)
            return Parts(U1.mH @ gU1, (gU1,), inv, U2.mH @ gU1, True)

        wmax = spectral_scale(w)
        gaps = eigh_gaps(w1, default_tol(None, n, w.dtype), wmax)
        curv = eigh_gaps(w1, curvature_tol(w.dtype), wmax)
        wrapped = gV if is_wrapped(gV) else gw
        return checked_backward(ctx.op, ctx, rule, w1, gw1, gaps, n, wrapped, parts, "", curv)

    @staticmethod
    def tangents(ctx, A, w, V, dA, *_):
        ctx.token.forward = True
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
    thr = split_tie(w)[..., 0]
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


def _subspace(A: Tensor, k, largest: bool, op: str, gauge: str) -> tuple[Tensor, Tensor]:
    A = resolve_views(check_matrix(A, "A", square=True, finite=False))
    check_finite_fast(A, "A")
    n = A.shape[-1]
    k = check_k(k, n)
    if not isinstance(largest, bool):
        raise InputError(f"largest: expected a bool, got {largest!r}")
    w, V = _Subspace.apply(A, k, largest, op, check_gauge(gauge), CheckToken())
    _check_split_gap(w, k, largest)
    w1, U1, _, _ = _split(w, V, k, largest)
    if largest:  # the largest first (descending), like torch.topk
        w1, U1 = w1.flip(-1), U1.flip(-1)
    return w1, U1


def eigh_subspace(A: Tensor, k: int, *, largest: bool = False, gauge: str = "error") -> SubspaceResult:
    """The k smallest (or largest) eigenvalues of a Hermitian matrix and their invariant subspace.

    Args:
        A: (..., n, n) real or complex (float32/64, complex64/128), finite; its Hermitian part
            ``(A + A^H)/2`` is used (both triangles read).
        k: size of the kept block, ``1 <= k <= n``; the split must be at a gap of the spectrum.
        largest: keep the k largest eigenvalues instead of the k smallest.
        gauge: what backward does when a check fails (as in ``eigh``): "error", "warn"
            (``GaugeWarning``) or "ignore".

    Returns:
        ``SubspaceResult(eigenvalues, eigenvectors)``: ``w1`` (..., k), ascending for the smallest,
        descending (largest first) for ``largest=True``, and ``U1`` (..., n, k) with orthonormal
        columns, ``herm(A) U1 = U1 diag(w1)``.

    Derivatives (reverse, forward, second order; ``torch.func`` compatible) use only the gaps
    across the split: exact for losses invariant under rotations of ``U1`` inside its span (and of
    the complement), e.g. functions of ``U1 U1^H`` and symmetric functions of ``w1``, at any
    degeneracy inside each block (the kept basis is not differentiated inside its span). At
    distinct kept eigenvalues each ``w1_j`` has its exact derivative; at kept eigenvalues equal up
    to rounding (``4 n eps max|w|``) only symmetric functions of them do. Backward checks the
    loss (``_eigh_ties.py``): a dependence on the basis of ``U1`` (its phases, rotations, individual
    columns, a coupling of ``w1`` with ``U1``) raises ``GaugeError`` (use ``eigh``); unequal
    eigenvalue cotangents or a value/vector coupling at a tie inside the block raise
    ``DegenerateSpectrumError``; inside ``torch.func`` the gradient of such a matrix is NaN
    (``TransformCheckWarning`` once). Table: ``docs/ties.md``.

    Raises:
        InputError: wrong shape, dtype, ``k`` or option; non-finite entries.
        DegenerateSpectrumError: the gap across the split is zero up to rounding (outside
            ``torch.func`` transforms; inside them the derivatives are NaN for that matrix); in
            backward, a loss outside the exact class at a tie inside the kept block.
        GaugeError: in backward, a loss that depends on the basis of the kept subspace.

    Warns:
        PrecisionWarning: in backward, when a gap across the split that the loss uses is below
            ``1e-2 / eps`` of ``max|w|`` (``docs/conventions.md``).

    Example (two signal eigenvalues above a flat noise floor)::

        import torch
        from difflinalg import eigh_subspace

        gen = torch.Generator().manual_seed(0)
        Q, _ = torch.linalg.qr(torch.randn(5, 5, generator=gen, dtype=torch.float64))
        w = torch.tensor([1.0, 1.0, 1.0, 5.0, 6.0], dtype=torch.float64)  # a triple eigenvalue
        A = (Q @ torch.diag(w) @ Q.mT).requires_grad_()
        w1, U1 = eigh_subspace(A, 2, largest=True)
        assert torch.allclose(w1, torch.tensor([6.0, 5.0], dtype=torch.float64))
        w1.sum().backward()                       # d(w_4 + w_5)/dA = U1 U1^H
        assert torch.allclose(A.grad, U1.detach() @ U1.detach().mH)
    """
    w1, U1 = _subspace(A, k, largest, "eigh_subspace", gauge)
    return SubspaceResult(w1, U1)


def subspace_projector(A: Tensor, k: int, *, largest: bool = False) -> Tensor:
    """Orthogonal projector ``U1 U1^H`` (..., n, n) onto the invariant subspace of the k smallest
    (or largest) eigenvalues of ``herm(A)``. Arguments, derivatives and errors as ``eigh_subspace``;
    ``I - subspace_projector(A, k, largest=True)`` is the MUSIC noise-subspace projector. Every
    loss of the projector is in the exact class: its derivatives are exact at any degeneracy inside
    the two blocks (only the gap across the split divides; ``PrecisionWarning`` where it is below
    ``1e-2 / eps`` of ``max|w|``).

    Args:
        A: (..., n, n) real or complex (float32/64, complex64/128), finite; its Hermitian part
            ``(A + A^H)/2`` is used (both triangles read).
        k: rank of the projector, ``1 <= k <= n``; the split must be at a gap of the spectrum.
        largest: project onto the subspace of the k largest eigenvalues instead of the smallest.

    Returns:
        ``P`` (..., n, n), Hermitian, ``P @ P = P``, trace ``k``; differentiable (reverse,
        forward, second order; ``torch.func`` compatible) with the cross-gap rule
        (Seeger et al. 2017, block form; Kato's resolvent expansion).

    Raises:
        InputError: wrong shape or dtype, non-finite entries, ``k`` out of range, a non-bool
            ``largest``.
        DegenerateSpectrumError: the gap across the split is zero up to rounding (``4 n eps
            max|w|``), so the subspace is not unique (outside ``torch.func``; inside it the
            derivatives of that matrix are NaN).

    Warns:
        PrecisionWarning: in backward, a gap across the split below ``1e-2 / eps`` of ``max|w|``.

    Example (the MUSIC noise projector on a flat noise floor)::

        import torch
        from difflinalg import subspace_projector

        gen = torch.Generator().manual_seed(0)
        Q, _ = torch.linalg.qr(torch.randn(5, 5, generator=gen, dtype=torch.float64))
        w = torch.tensor([1.0, 1.0, 1.0, 5.0, 6.0], dtype=torch.float64)
        A = (Q @ torch.diag(w) @ Q.mT).requires_grad_()
        noise = torch.eye(5, dtype=torch.float64) - subspace_projector(A, 2, largest=True)
        assert torch.allclose(noise, Q[:, :3] @ Q[:, :3].mT)
        noise[0, 0].backward()                    # finite at the triple noise eigenvalue
        assert torch.isfinite(A.grad).all() and torch.allclose(A.grad, A.grad.mT)
    """
    _, U1 = _subspace(A, k, largest, "subspace_projector", "error")
    return U1 @ U1.mH
