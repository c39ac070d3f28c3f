r"""Hermitian eigendecomposition ``A = V diag(w) V^H`` (w ascending) with first- and second-order rules.

Input. The decomposed matrix is the Hermitian part ``herm(A) = (A + A^H)/2`` (both triangles are
read, the imaginary part of the diagonal is dropped). The value, the JVP (of ``herm(dA)``) and the
gradient (Hermitian) then describe one function of ``A``, exact in every direction (``herm`` is
linear). ``torch.linalg.eigh(A, UPLO)`` reads one triangle; on the Hermitian inputs it is defined
for, both give the same values and the same (Hermitian) gradient, so ``UPLO`` is accepted and only
validated (``_hermitian_input.py``; ``docs/conventions.md``, "torch.linalg compatibility").

Notation: ``X = V^H herm(dA) V``, ``T = V^H gV``, ``F_ij = 1/(w_j - w_i)`` for ``i != j`` outside a
cluster, ``F = 0`` inside a cluster and on the diagonal; ``o`` is the elementwise product.

First order (Seeger et al. 2017, "Auto-differentiating linear algebra"; Giles 2008, "An extended
collection of matrix derivative results"; the derivation: ``docs/math/eigh.md``, "First
order")::

    forward mode:  dw = Re diag(X),   dV = V (F o X)
    reverse mode:  gA = V herm(diag(gw) + F o T) V^H

The gauge: an eigenvector is defined up to a phase (a sign in the real case). ``dV`` is the
tangent with ``Im diag(V^H dV) = 0``, and the reverse rule drops ``Im diag(T)``: the loss must not
depend on the phases (``torch.linalg.eigh`` raises for such losses; here it is documented only).

Degeneracy. ``degeneracy_tol`` groups the eigenvalues into clusters (chain clustering, see
``_gaps.py``: consecutive sorted eigenvalues closer than ``tol * max|w|`` share a cluster;
computed with masks, no host synchronisation). ``None`` (default): ``tol = 4 n eps``
(``_gaps.default_tol``, shared with the SVD), the size of a split that rounding produces; ``0.0``:
exactly equal eigenvalues only. Pairs inside a cluster contribute nothing (``F = 0``). This is
exact for the losses invariant under unitary rotations ``V_c -> V_c Q`` inside each cluster (at
every nearby split) and symmetric in its eigenvalues, e.g. projectors ``V_c V_c^H`` and
``w[c].sum()``: for such a loss ``T_cc`` is Hermitian, so the dropped terms ``herm(F_cc o T_cc)``
vanish, and ``gw`` is constant on the cluster. It is *not* exact for ``<W, V f(w) V^H>`` (smooth,
but its gradient has an off-diagonal cluster block that no rule on ``(w, V)`` receives). The
proof, and the checks with which backward refuses the losses outside the class
(``GaugeError`` / ``DegenerateSpectrumError``; NaN inside ``torch.func``), are in
``_eigh_ties.py``; the exact path for matrix functions is ``eigh_function``.

Second order. Both first-order rules are themselves ``autograd.Function`` s with their own JVP
and VJP: ``_EighVJP`` (the backward; used by double backward and forward-over-reverse, e.g.
``torch.func.hessian``) and ``_EighJVP`` (the forward rule; used by forward-over-forward and
reverse-over-forward). Second derivatives are then exact for cluster-invariant losses at any
degeneracy, where differentiating the first-order formulas through ``V`` would re-introduce
``1/(w_i - w_l)`` inside clusters. Writing a cluster's block in an arbitrary orthonormal basis (the
rotation inside a cluster is not differentiated: the tangent of ``V`` is the "horizontal"
``V Omega``, ``Omega = F o X``), the off-cluster part ``N_off = F o T`` solves
``N_off B - B N_off = T_off`` with ``B`` the block-diagonal part of ``V^H A V``, whose tangent is
the whole block-diagonal part ``X_bd = M o X`` (``M`` the cluster mask), not only its diagonal.

Derivative of the reverse rule ``gA = V herm(N) V^H``, ``N = diag(gw) + N_off``, along
``(dA, dgw, dgV)``, and its adjoint (``Hb = V^H herm(H) V``)::

    dT  = V^H dgV - Omega T
    dN  = diag(dgw) + F o (dT + X_bd N_off - N_off X_bd)
    dgA = V herm(Omega N - N Omega + dN) V^H

    ggw = Re diag(Hb),   ggV = V (F o Hb)
    C   = Hb N^H - N^H Hb - (F o Hb) T^H
    gA2 = V herm(F o C + M o ((F o Hb) N_off^H - N_off^H (F o Hb))) V^H

Derivative of the forward rule ``(dw, dV) = (Re diag X, V Omega)`` when ``A`` moves along ``a``
and ``dA`` along ``b`` (``X' = V^H herm(a) V``, ``Omega' = F o X'``, ``Y = V^H herm(b) V``)::

    d(dV) = V (Omega' Omega + F o (Y - Omega' X + X Omega' + X'_bd Omega - Omega X'_bd))
    d(dw) = Re diag(Y + X Omega' - Omega' X)

and its adjoint (``eigh_jvp_vjp``). Only cross-cluster gaps divide. Inside a cluster the
eigenvalue curvature (the Daleckii-Krein terms ``(gw_l - gw_i)/(w_l - w_i)`` and
``2 Re(X_il X'_li)/(w_i - w_l)``) contributes nothing, like every pair inside a cluster: exact for
losses linear in each cluster's eigenvalues (their sum, a trace); for a loss curved in the
eigenvalues of a cluster it drops the in-cluster curvature. At an exact repeat that limit is not
computable from ``gw`` at all (no rule on ``(w, V)`` can supply it; the same limitation is
documented for the SVD), and at a near repeat the quotients would be dominated by rounding: the
curvature checks of ``_eigh_ties`` raise for such a loss (double backward, forward-over-reverse).

Third and higher derivatives are not provided (the second-order rules are ``once_differentiable``
in reverse mode; a third forward-mode derivative treats the decomposition as constant).
Costs: ``O(n^3)`` per rule, as the eigendecomposition itself.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .._rule import DerivativeRule, Rule, or_zeros
from .._utils import check_matrix, herm, is_wrapped
from ._eigh_gaps import eigh_gaps
from ._eigh_ties import Parts, checked_backward
from ._gaps import check_degeneracy_tol, cluster_mask, default_tol, inverse_gaps
from ._hermitian_input import check_finite_fast, check_uplo, hermitian_part, resolve_views
from ._svd import check_gauge
from ._svd_ties import CheckToken


class EighResult(NamedTuple):
    """``eigenvalues`` (..., n) ascending, real; ``eigenvectors`` (..., n, n), orthonormal columns."""

    eigenvalues: Tensor
    eigenvectors: Tensor


def eigh_factor(A: Tensor) -> tuple[Tensor, Tensor]:
    """Eigendecomposition of ``herm(A)`` (no autograd rule), as a plain tuple ``(w, V)``."""
    w, V = torch.linalg.eigh(hermitian_part(A))
    return w, V


def _structure(w: Tensor, tol: float | None) -> tuple[Tensor, Tensor]:
    """Cluster mask ``M`` (bool) and masked inverse gaps ``F``."""
    M = cluster_mask(w, 0.0 if tol is None else tol)
    return M, inverse_gaps(w, M)


def _diag(x: Tensor) -> Tensor:
    return x.diagonal(dim1=-2, dim2=-1)


def eigh_jvp(w: Tensor, V: Tensor, dA: Tensor, tol: float | None) -> tuple[Tensor, Tensor]:
    """Tangents ``(dw, dV)`` for a tangent ``dA`` (uses ``herm(dA)``)."""
    _, F = _structure(w, tol)
    X = V.mH @ herm(dA) @ V
    return _diag(X).real, V @ (F * X)


def eigh_vjp(w: Tensor, V: Tensor, gw: Tensor, gV: Tensor, tol: float | None,
             T: Tensor | None = None, F: Tensor | None = None) -> Tensor:
    """Gradient with respect to ``A`` given the gradients ``gw``, ``gV`` of the outputs.
    ``T = V^H gV`` and the masked inverse gaps ``F`` when the caller has them (the checks)."""
    if F is None:
        _, F = _structure(w, tol)
    # F's diagonal is 0: write gw there (not + diag_embed(gw), an n x n add); in place on the
    # fresh product outside torch.func (whose batching rules need the out-of-place form)
    N = F * (V.mH @ gV if T is None else T)
    if is_wrapped(N) or is_wrapped(gw):
        N = torch.diagonal_scatter(N, gw.to(V.dtype), 0, -2, -1)
    else:
        N.diagonal(dim1=-2, dim2=-1).copy_(gw)
    G = V @ N @ V.mH
    if is_wrapped(G):
        return herm(G)
    # herm(G) with one n x n temporary instead of three (each fresh n x n buffer costs page
    # faults, ~2 ms per 10 MB); G is a fresh product and this runs without autograd
    return G.mH.contiguous().add_(G).mul_(0.5)


def eigh_vjp_jvp(w, V, gw, gV, dA, dgw, dgV, tol) -> Tensor:
    """Tangent of ``eigh_vjp`` along ``(dA, dgw, dgV)`` (the eigendecomposition moving with ``A``)."""
    M, F = _structure(w, tol)
    Mf = M.to(F.dtype)
    X = V.mH @ herm(dA) @ V
    Om = F * X
    T = V.mH @ gV
    Noff = F * T
    N = Noff + torch.diag_embed(gw.to(V.dtype))
    Xbd = Mf * X
    dT = V.mH @ dgV - Om @ T
    dN = torch.diag_embed(dgw.to(V.dtype)) + F * (dT + Xbd @ Noff - Noff @ Xbd)
    dK = Om @ N - N @ Om + dN
    return herm(V @ dK @ V.mH)


def eigh_vjp_vjp(w, V, gw, gV, H, tol) -> tuple[Tensor, Tensor, Tensor]:
    """Adjoint of ``eigh_vjp_jvp``: gradients ``(gA, ggw, ggV)`` for a cotangent ``H`` of ``gA``."""
    M, F = _structure(w, tol)
    Mf = M.to(F.dtype)
    T = V.mH @ gV
    Noff = F * T
    N = Noff + torch.diag_embed(gw.to(V.dtype))
    Hb = V.mH @ herm(H) @ V
    Hf = F * Hb
    ggw = _diag(Hb).real
    ggV = V @ Hf
    NH = N.mH
    C = Hb @ NH - NH @ Hb - Hf @ T.mH
    NoffH = Noff.mH
    GX = F * C + Mf * (Hf @ NoffH - NoffH @ Hf)
    return herm(V @ GX @ V.mH), ggw, ggV


def eigh_jvp_jvp(w, V, dA, a, b, tol) -> tuple[Tensor, Tensor]:
    """Tangent of ``eigh_jvp(w, V, dA)`` when ``A`` moves along ``a`` and ``dA`` along ``b``."""
    M, F = _structure(w, tol)
    Mf = M.to(F.dtype)
    X = V.mH @ herm(dA) @ V
    Om = F * X
    Xp = V.mH @ herm(a) @ V
    Omp = F * Xp
    Y = V.mH @ herm(b) @ V
    Xbd = Mf * Xp
    dOm = F * (Y - Omp @ X + X @ Omp + Xbd @ Om - Om @ Xbd)
    ddw = _diag(Y + X @ Omp - Omp @ X).real
    return ddw, V @ (Omp @ Om + dOm)


def eigh_jvp_vjp(w, V, dA, hw, hV, tol) -> tuple[Tensor, Tensor]:
    """Adjoint of ``eigh_jvp_jvp`` in ``(a, b)``: gradients for cotangents ``(hw, hV)``."""
    M, F = _structure(w, tol)
    Mf = M.to(F.dtype)
    X = V.mH @ herm(dA) @ V
    Om = F * X
    K = V.mH @ hV
    Kf = F * K
    Hd = torch.diag_embed(hw.to(V.dtype))
    XH, OmH = X.mH, Om.mH
    P1 = K @ OmH - Kf @ XH + XH @ Kf + XH @ Hd - Hd @ XH
    GX = F * P1 + Mf * (Kf @ OmH - OmH @ Kf)
    GY = Kf + Hd
    return herm(V @ GX @ V.mH), herm(V @ GY @ V.mH)


class _EighJVP(DerivativeRule):
    """``(A, dA) -> (dw, dV)``: the forward rule, with its own derivatives (so that
    forward-over-forward and reverse-over-forward are second derivatives of eigh)."""

    differentiable = 2  # A, dA

    @staticmethod
    def forward(A, dA, w, V, tol):
        return eigh_jvp(w, V, dA, tol)

    @staticmethod
    def save(ctx, inputs, output):
        A, dA, w, V, ctx.tol = inputs
        return w, V, dA

    @staticmethod
    def gradients(ctx, w, V, dA, hw, hV):
        return eigh_jvp_vjp(w, V, dA, hw, hV, ctx.tol)

    @staticmethod
    def tangents(ctx, w, V, dA, a, b):
        return eigh_jvp_jvp(w, V, dA, a, b, ctx.tol)


class _EighVJP(DerivativeRule):
    """``(A, gw, gV) -> gA``: the reverse rule, with its own derivatives (second order of eigh).

    ``A`` enters only so that the derivative with respect to it is connected; the decomposition
    ``(w, V)`` of ``A`` is passed in and treated as a function of ``A`` by the rules below.
    """

    differentiable = 3  # A, gw, gV

    @staticmethod
    def forward(A, gw, gV, w, V, tol, T=None, F=None):
        # T = V^H gV and F: computed by the backward of eigh for its checks already
        return eigh_vjp(w, V, gw, gV, tol, T, F)

    @staticmethod
    def save(ctx, inputs, output):
        A, gw, gV, w, V, ctx.tol = inputs[:6]
        return w, V, gw, gV

    @staticmethod
    def gradients(ctx, w, V, gw, gV, H):
        return eigh_vjp_vjp(w, V, gw, gV, H, ctx.tol)

    @staticmethod
    def tangents(ctx, w, V, gw, gV, dA, dgw, dgV):
        return eigh_vjp_jvp(w, V, gw, gV, dA, dgw, dgV, ctx.tol)


class _Eigh(Rule):
    @staticmethod
    def forward(A, tol, gauge, token):
        return eigh_factor(A)

    @staticmethod
    def save(ctx, inputs, output):
        A, ctx.tol, ctx.gauge, ctx.token = inputs
        return (A, *output)

    @staticmethod
    def gradients(ctx, A, w, V, gw, gV):
        gw = or_zeros(gw, w)
        gV = or_zeros(gV, V)
        gaps = eigh_gaps(w, ctx.tol)
        # T and F once, for the checks and the rule (detached: the rule's own derivatives
        # handle the second order)
        T = (V.mH @ gV).detach()

        def rule(gw_in):
            return _EighVJP.apply(A, gw_in, gV, w, V, ctx.tol, T, gaps.F)

        def parts():
            return Parts(T, (gV,), gaps.F, None, False)

        wrapped = gV if is_wrapped(gV) else gw
        return checked_backward("eigh", ctx, rule, w, gw, gaps, w.shape[-1], wrapped, parts, TOL_HINT)

    @staticmethod
    def tangents(ctx, A, w, V, dA, *_):
        ctx.token.forward = True
        return _EighJVP.apply(A, dA, w, V, ctx.tol)


TOL_HINT = ("; if the eigenvalues are genuinely distinct, pass degeneracy_tol=0.0; gauge='ignore' "
            "skips the checks")


def eigh(A: Tensor, UPLO: str = "L", *, degeneracy_tol: float | None = None,
         gauge: str = "error") -> EighResult:
    """Eigendecomposition of a Hermitian matrix, batched; derivatives exact or loud at clusters.

    The signature, defaults and result are ``torch.linalg.eigh``'s (``UPLO="L"``, positional; a
    named tuple ``(eigenvalues, eigenvectors)``), with the keyword-only options ``degeneracy_tol``
    and ``gauge`` added (``docs/conventions.md``, "torch.linalg compatibility"). The Hermitian part
    ``(A + A^H)/2`` is decomposed: for every Hermitian ``A`` (the inputs ``torch.linalg.eigh`` is
    defined for) the values and the gradient (Hermitian, also for a leaf ``A``) are torch's, and
    the derivative is exact in every direction, Hermitian or not.

    At (nearly) repeated eigenvalues a derivative exists only for some losses: exact are those
    invariant under rotations inside each cluster and symmetric in its eigenvalues (projectors
    ``V_c V_c^H`` of whole clusters, ``w[c].sum()``, ``sum(w**2) = ||A||_F^2``, ...; second
    derivatives: those linear in each cluster's eigenvalues). For other losses backward raises
    ``DegenerateSpectrumError`` (``GaugeError`` for a gauge dependence) instead of returning a
    wrong number; ``V f(w) V^H`` is exact through ``difflinalg.eigh_function``. Proofs, the
    criteria and their one false alarm (an eigenvalue loss and an eigenvector loss of one
    cluster from the same call: split them into two calls) are in ``_eigh_ties.py``; a table per
    point and dtype in ``docs/ties.md``. Forward mode cannot see the loss and is not checked.

    Args:
        A: (..., n, n) real or complex (float32/64, complex64/128), finite. Its Hermitian part
            ``(A + A^H)/2`` is decomposed (both triangles are read; for a Hermitian ``A`` this is
            ``A`` itself). The gradient returned for ``A`` is Hermitian. Conjugate views are
            accepted.
        UPLO: ``"L"`` (default) or ``"U"`` (lower case accepted), as in ``torch.linalg.eigh``:
            accepted for compatibility; for the Hermitian inputs torch defines ``eigh`` on,
            either triangle gives the same result, which difflinalg computes from the Hermitian
            part. On a non-Hermitian input torch silently uses one triangle while difflinalg uses
            the Hermitian part (documented difference).
        degeneracy_tol: consecutive eigenvalues closer than ``tol * max|w|`` (per matrix) form a
            cluster whose internal pairs contribute nothing to the derivatives. ``None``
            (default): ``tol = 4 n eps``, the size of a split that rounding produces, so
            rounding-level splits are ties and every real gap is resolved; ``0.0``: exact ties
            only; a float: that tolerance.
        gauge: what backward does when a check fails: "error" (raise ``GaugeError`` /
            ``DegenerateSpectrumError``), "warn" (``GaugeWarning``) or "ignore" (no checks: the
            masked rule). The checks cost one host synchronisation per backward (two at ties);
            inside ``torch.func`` failing matrices get NaN gradients instead
            (``TransformCheckWarning`` once).

    Returns:
        ``EighResult(eigenvalues, eigenvectors)`` (a named tuple, like
        ``torch.return_types.linalg_eigh``): ``w`` (..., n) ascending (real dtype) and ``V``
        (..., n, n) with ``herm(A) = V diag(w) V^H``, as ``torch.linalg.eigh(herm(A))``.

    Raises:
        InputError: wrong shape or dtype, non-finite entries, bad option (``UPLO`` included).
        GaugeError: in backward, for a loss that depends on the eigenvector phases or on
            rotations inside a cluster (``gauge="error"``).
        DegenerateSpectrumError: in backward (and second derivatives), for a loss outside the
            exact class at a cluster (``gauge="error"``).

    Warns:
        PrecisionWarning: in backward, when a gap the loss uses is below ``1e-2 / eps`` of
            ``max|w|`` (single precision mostly; ``docs/conventions.md``).

    Derivatives: reverse, forward, and second order (double backward, forward-over-reverse),
    usable under ``torch.func`` (vmap, grad, jvp, hessian).

    Example::

        import torch
        import difflinalg

        A = torch.diag(torch.tensor([1.0, 1.0, 3.0], dtype=torch.float64)).requires_grad_()
        w, V = difflinalg.eigh(A)                      # a double eigenvalue at 1
        P = V[:, :2] @ V[:, :2].mT                     # the projector of the cluster: exact class
        (g,) = torch.autograd.grad(w[:2].sum() + P[0, 0], A)
        assert torch.allclose(g, torch.diag(torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64)))
    """
    A = resolve_views(check_matrix(A, "A", square=True, finite=False))
    check_uplo(UPLO)
    check_finite_fast(A, "A")
    tol = default_tol(check_degeneracy_tol(degeneracy_tol, "max |eigenvalue|"), A.shape[-1], A.dtype)
    w, V = _Eigh.apply(A, tol, check_gauge(gauge), CheckToken())
    return EighResult(w, V)
