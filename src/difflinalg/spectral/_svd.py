r"""Singular value decomposition ``A = U diag(S) V^H`` with reverse, forward and second-order rules.

Real and complex, rectangular both ways, rank-deficient inputs, degenerate singular values.

Notation: ``A`` is ``(..., m, n)``, ``k0 = min(m, n)``, the thin factors are ``U`` (m x k0),
``S`` (k0, descending), ``V = Vh^H`` (n x k0). ``herm(X) = (X + X^H)/2``, ``skew(X) = (X - X^H)/2``.

Everything follows from the Hermitian dilation ``[[0, A], [A^H, 0]]``, whose eigenvalues are
``+-s_i`` (eigenvectors ``(u_i, +-v_i)/sqrt(2)``) and ``|m - n|`` zeros. Its eigenvalue gaps are
``s_j - s_i``, ``s_j + s_i`` (``2 s_i`` on the diagonal) and ``s_i`` (against the zeros); every
division below is by one of these gaps, and ``degeneracy_tol`` masks each of them separately.

With ``G1_ij = 1/(s_j - s_i)`` (``G1_ii = 0``), ``G2_ij = 1/(s_j + s_i)`` and ``Sinv = 1/s``:

forward mode (Wan & Zhang 2019; Seeger et al. 2017), with ``dP = U^H dA V``::

    dS = Re diag(dP)
    dU = U (herm(dP) o G1 + skew(dP) o G2) + (I - U U^H) dA V Sinv
    dV = V (herm(dP) o G1 - skew(dP) o G2) + (I - V V^H) dA^H U Sinv

The diagonal of ``skew(dP) o G2`` is ``i Im(dP_ii) / (2 s_i)``: the phase change that the
tangent puts half on ``u_i`` and half on ``v_i`` (a symmetric gauge fixing; any other split
differs by a gauge direction ``i (u_i, v_i) theta``).

reverse mode, with ``X = U^H gU``, ``Y = V^H gV`` (PyTorch's convention for complex gradients)::

    M  = (skew(X) + skew(Y)) o G1 + (skew(X) - skew(Y)) o G2 + diag(gS)
    gA = U M V^H + (I - U U^H) gU Sinv V^H + U Sinv gV^H (I - V V^H)

This is the formula of the reference note ("Singular Value Decomposition": the real part, the
diagonal imaginary part ``U (I o (U^H gU) - h.c.)/2 S^{-1} V^H`` and the ``(I - U U^H)`` terms;
Francuz, Schuch & Vanhecke 2023, arXiv:2311.11894) in the symmetric gauge: its diagonal term is
``i Im(X_ii - Y_ii) / (2 s_i)``, which equals the reference's ``i Im X_ii / s_i`` for every loss
that is invariant under the phases, ``Im(X_ii + Y_ii) = 0``. The rules are the adjoint of each
other for every loss, so forward-over-reverse and double backward are consistent.

Degeneracies and zero singular values. The entries divided by a masked gap are set to zero
(``1/0 := 0``, the pseudo-inverse convention). With ``tol = degeneracy_tol * s_max`` (per matrix,
masks only, no host synchronisation), masked are: ``s_j - s_i`` for ``i, j`` in one cluster
(chain clustering of the sorted values with steps ``<= tol``, ``_gaps.cluster_mask``, shared with
``eigh``; the diagonal always: it multiplies the gauge component ``Im(X_ii + Y_ii)``), and every
``s_j + s_i`` and ``s_i`` that is ``<= tol``. ``degeneracy_tol=None`` means ``tol = 0``: only
exactly zero gaps are masked. The result is exact for losses invariant under the freedom that
the masked gaps leave: rotations ``(U_c, V_c) -> (U_c Q, V_c Q)`` inside a cluster, independent
rotations of the left and right singular vectors of zero singular values (and of the null
spaces), and the phases; and depending on a cluster's singular values only through symmetric
functions of them (at a degeneracy the individual values are not differentiable). For other
losses the derivative does not exist at such a point. For numerically rank-deficient or
clustered inputs (values equal only up to rounding) pass ``degeneracy_tol`` (e.g. ``1e-10`` in
float64): ``1/(1e-17)`` is not a useful number.

Second order. Backward and forward rules are differentiable torch operations (the forward rule
through ``_nested.call``), so all second derivatives (double backward, forward-over-reverse,
forward-over-forward) are exact wherever no gap is masked. At a masked cluster the rules above
differentiate along a tangent that keeps the cluster's basis fixed, which is right for the
vectors (the loss does not see the rotation) but not for the values: a cluster splits along the
eigenvectors of ``herm(U_c^H dA V_c)``, a matrix, of which ``dS`` keeps only the diagonal. The
rules therefore also take ``D``, the off-diagonal in-cluster part of ``herm(U^H A V)``
(``block_tangent``: value exactly 0, derivative that block), and contain the first-order terms in
``D`` of the block formulas, in which each cluster carries the matrix ``Sigma_c = s_c I + D_c``.
Derived on the dilation, where the cluster blocks are ``+-Sigma_c`` and the off-cluster part
``N`` of the eigen-rule solves ``N B - B N = T`` (``B`` block diagonal: the form of
``_eigh.py``), so
``N ~ F o T + F o (D N0 - N0 D)``::

    jvp:  C += G1 o [D, a] - G2 o {D, c},  Dv += G1 o [D, a] + G2 o {D, c}    (a = H o G1, c = K o G2)
    vjp:  M += herm(G1 o [D, G1 o (X + Y)]) - skew(G2 o {D, G2 o (X - Y)})
    both: Sinv -> Sinv - Sinv D Sinv  in the (I - U U^H) / (I - V V^H) terms

(``[D, a] = D a - a D``, ``{D, c} = D c + c D``). Second derivatives are then exact at clusters
away from zero for the invariant losses above that are linear in each cluster's values (their
sum); a loss curved in the values of a cluster needs limits of divided differences of its own
gradient, ``(gS_i - gS_j)/(s_i - s_j)``, which no rule on ``(U, S, V)`` can supply (the same
limit is documented for ``eigh``). At masked zero singular values (and ``s_i + s_j``) only first
derivatives are exact. ``D`` is formed only with ``degeneracy_tol`` (an ``O(m n k)`` product).

Gauge check (``gauge="error"``, the default, or ``"warn"``): in backward, the components of the
incoming gradient along the masked directions (``Im(X_ii + Y_ii)`` for complex input, the
cluster rotations, the free vectors of zero singular values, the extra columns of
``full_matrices=True``) must vanish up to rounding (``sqrt(eps)`` relative); otherwise the loss
depends on an arbitrary choice of the decomposition and its gradient is not defined. The check
needs one host synchronisation per backward call and is skipped inside ``torch.func`` transforms
(``gauge="ignore"`` skips it always and returns the gradient in the symmetric gauge).

``full_matrices=True``: the extra columns ``U_e = U[..., k0:]`` (or ``V_e``) are an arbitrary
orthonormal basis of the complement. They are differentiated with the minimal rotation that
keeps them orthogonal to the moving range, ``dU_e = -U Sinv V^H dA^H U_e`` (and
``dV_e = -V Sinv U^H dA V_e``), which is exact for losses invariant under ``U_e -> U_e Q``
(e.g. those depending on ``U_e U_e^H = I - U U^H``); a dependence on the basis itself is a
gauge dependence (checked as above).
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import torch
from torch import Tensor

from .._errors import GaugeError, GaugeWarning, InputError
from .._nested import call
from .._utils import check_matrix, eps, herm, is_wrapped, skew
from ._gaps import check_degeneracy_tol as _check_degeneracy_tol
from ._gaps import cluster_mask, masked_reciprocal, spectral_scale

GAUGE_MODES = ("error", "warn", "ignore")


# ----------------------------------------------------------------------------------------------
# Masked inverse gaps and the cluster structure (shared with the truncated SVD).


def masked_inverse(x: Tensor, tol: Tensor | float) -> Tensor:
    """``1/x`` where ``|x| > tol`` and ``0`` elsewhere (no inf/NaN in values or derivatives)."""
    return masked_reciprocal(x, x.abs() > tol)


class SVDGaps(NamedTuple):
    """The masked gap structure of a (thin) SVD with singular values ``S`` (..., k).

    ``G1 = 1/(s_j - s_i)`` (0 inside clusters and on the diagonal), ``G2 = 1/(s_j + s_i)``,
    ``Sinv = 1/s`` (0 where masked); ``tol`` (..., 1, 1) absolute; ``cluster`` (..., k, k) bool,
    chain clusters (``_gaps.cluster_mask``); ``block`` (..., k, k) bool, the off-diagonal pairs
    of clusters away from zero (where the block tangent ``D`` of the second-order rules lives).
    """

    G1: Tensor
    G2: Tensor
    Sinv: Tensor
    tol: Tensor
    cluster: Tensor
    block: Tensor


def svd_gaps(S: Tensor, degeneracy_tol: float | None) -> SVDGaps:
    """Masks and inverse gaps of the rules (differentiable through ``S``: the masks are not)."""
    tol_rel = 0.0 if degeneracy_tol is None else degeneracy_tol
    k = S.shape[-1]
    tol = (tol_rel * spectral_scale(S))[..., None]  # (..., 1, 1)
    cluster = cluster_mask(S, tol_rel)
    diff = S[..., None, :] - S[..., :, None]
    G1 = masked_reciprocal(diff, ~cluster & (diff.detach() != 0))
    G2 = masked_inverse(S[..., None, :] + S[..., :, None], tol)
    Sinv = masked_inverse(S, tol[..., 0])
    zero = S.detach() <= tol[..., 0]
    eye = torch.eye(k, dtype=torch.bool, device=S.device)
    block = cluster & ~eye & ~zero[..., :, None] & ~zero[..., None, :]
    return SVDGaps(G1, G2, Sinv, tol, cluster, block)


def block_tangent(A: Tensor, U: Tensor, Vh: Tensor, gaps: SVDGaps,
                  degeneracy_tol: float | None) -> Tensor | None:
    """``D``: the off-diagonal in-cluster part of ``herm(U^H A V) - diag(S)``, as a tensor whose
    value is exactly 0 but whose derivative is that of the block (see the module notes). ``None``
    without ``degeneracy_tol`` (then only exact ties form clusters: a measure-zero case left at
    first order, which saves an ``O(m n k)`` product)."""
    if degeneracy_tol is None:
        return None
    Hs = herm(U.mH @ A @ Vh.mH)
    return (Hs - Hs.detach()) * gaps.block


def _inv_block(Sinv: Tensor, D: Tensor | None) -> Tensor:
    """``Sigma^{-1}`` to first order in the block tangent: ``Sinv - Sinv D Sinv`` (a matrix)."""
    M = torch.diag_embed(Sinv)
    if D is None:
        return M
    M = M.to(D.dtype)
    return M - Sinv[..., :, None].to(D.dtype) * D * Sinv[..., None, :].to(D.dtype)


def _comm(D: Tensor, X: Tensor) -> Tensor:
    return D @ X - X @ D


def _acomm(D: Tensor, X: Tensor) -> Tensor:
    return D @ X + X @ D


# ----------------------------------------------------------------------------------------------
# Rules on thin factors.


def svd_jvp(U: Tensor, S: Tensor, Vh: Tensor, dA: Tensor, gaps: SVDGaps, D: Tensor | None = None,
            complement: bool = True) -> tuple[Tensor, Tensor, Tensor]:
    """Tangents ``(dU, dS, dVh)`` of thin factors for a tangent ``dA`` (formulas above).

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
        c1, c2 = G1 * _comm(D, a), G2 * _acomm(D, c)
        C, Dv = C + c1 - c2, Dv + c1 + c2
    dU, dV = U @ C, V @ Dv
    Sig_inv = _inv_block(gaps.Sinv, D).to(dP.dtype)
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
        M = M + herm(gaps.G1 * _comm(D, A1)) - skew(gaps.G2 * _acomm(D, B1))
    return M + torch.diag_embed(gS.to(M.dtype))


def svd_vjp(U: Tensor, S: Tensor, Vh: Tensor, gU: Tensor, gS: Tensor, gVh: Tensor,
            gaps: SVDGaps, D: Tensor | None = None) -> Tensor:
    """Gradient with respect to ``A`` from the gradients of the thin factors (formulas above)."""
    V, gV = Vh.mH, gVh.mH
    X, Y = U.mH @ gU, V.mH @ gV
    gA = (U @ svd_core_vjp(S, X, Y, gS, gaps, D)) @ Vh
    Sig_inv = _inv_block(gaps.Sinv, D).to(X.dtype)
    if U.shape[-2] > S.shape[-1]:
        gA = gA + ((gU - U @ X) @ Sig_inv) @ Vh
    if V.shape[-2] > S.shape[-1]:
        gA = gA + U @ (Sig_inv @ (gV - V @ Y).mH)
    return gA


# ----------------------------------------------------------------------------------------------
# Gauge check.


def gauge_violation(S: Tensor, X: Tensor, Y: Tensor, gS: Tensor, gaps: SVDGaps,
                    extra: tuple[Tensor, ...] = (),
                    grads: tuple[Tensor, ...] = ()) -> tuple[float, float]:
    """Largest component of the incoming gradient along a masked (gauge) direction.

    Returns ``(violation, scale)``: the largest ``|skew(X) + skew(Y)|`` inside a cluster (the
    diagonal always), ``|skew(X) - skew(Y)|`` where ``s_j + s_i`` is masked, and the entries of
    ``extra`` (components that must vanish, already restricted to masked directions), and the
    size of the gradient they are judged against (``|X|``, ``|Y|``, ``s_max |gS|`` and the
    incoming vector gradients ``grads``). One host synchronisation.
    """
    G2m = (S[..., None, :] + S[..., :, None]).abs() <= gaps.tol
    Xa, Ya = skew(X), skew(Y)
    parts = [((Xa + Ya).abs() * gaps.cluster).amax(), ((Xa - Ya).abs() * G2m).amax()]
    parts += [e.abs().amax() for e in extra if e.numel()]
    viol = torch.stack([p.to(S.dtype) for p in parts]).amax()
    scale = X.abs().amax() + Y.abs().amax() + (S.amax(-1, keepdim=True) * gS.abs()).amax()
    for g in grads:
        scale = scale + g.abs().amax()
    vals = torch.stack([viol, scale]).tolist()
    return vals[0], vals[1]


def needs_gauge_check(ctx, g: Tensor) -> bool:
    """Whether this backward call checks the gauge: not for "ignore", not inside ``torch.func``
    (no host synchronisation there), and only on the first call of a node. With
    ``create_graph=True`` the node's backward is called again for the second derivative, with
    cotangents produced by the first backward (invariant if the loss is, up to rounding of
    quantities that vanish: not something a relative test can judge)."""
    if ctx.gauge == "ignore" or is_wrapped(g) or getattr(ctx, "gauge_checked_for_graph", False):
        return False
    if torch.is_grad_enabled():
        ctx.gauge_checked_for_graph = True
    return True


def apply_gauge_policy(op: str, gauge: str, violation: float, scale: float, dtype: torch.dtype) -> None:
    """Raise or warn when the gauge component exceeds ``sqrt(eps)`` relative to the gradient."""
    if gauge == "ignore" or not violation > math.sqrt(eps(dtype)) * max(scale, 1e-300):
        return
    msg = (
        f"{op}: the loss depends on the gauge of the singular vectors (their phases, rotations "
        "inside a cluster of (nearly) equal singular values, or the vectors of zero singular "
        f"values): its gradient has a component {violation:.3e} along these directions "
        f"(gradient size {scale:.3e}), so its derivative is not defined. Make the loss invariant "
        "(e.g. use |U[..., j]^H x|^2 or U[..., j] Vh[..., j, :] instead of U[..., j]), or pass "
        "gauge='ignore' to get the gradient in the symmetric gauge"
    )
    if gauge == "error":
        raise GaugeError(msg)
    warnings.warn(msg, GaugeWarning, stacklevel=3)


# ----------------------------------------------------------------------------------------------
# The autograd Function.


def _split(U: Tensor, Vh: Tensor, k0: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Thin factors and the extra columns of ``full_matrices=True`` (possibly empty)."""
    return U[..., :k0], Vh[..., :k0, :], U[..., k0:], Vh[..., k0:, :]


class _SVD(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(A: Tensor, full_matrices: bool, degeneracy_tol: float | None, gauge: str):
        U, S, Vh = torch.linalg.svd(A, full_matrices=full_matrices)
        return U, S, Vh  # a plain tuple (vmap's generated rule does not flatten return_types)

    @staticmethod
    def setup_context(ctx, inputs, output):
        A, full_matrices, degeneracy_tol, gauge = inputs
        U, S, Vh = output
        ctx.degeneracy_tol, ctx.gauge = degeneracy_tol, gauge
        ctx.save_for_backward(A, U, S, Vh)
        ctx.save_for_forward(A, U, S, Vh)

    @staticmethod
    def backward(ctx, gU: Tensor, gS: Tensor, gVh: Tensor):
        A, U, S, Vh = ctx.saved_tensors
        k0 = S.shape[-1]
        gaps = svd_gaps(S, ctx.degeneracy_tol)
        Ut, Vht, Ue, Vhe = _split(U, Vh, k0)
        gUt, gVht, gUe, gVhe = _split(gU, gVh, k0)
        extra: list[Tensor] = []
        if Ue.shape[-1]:  # extra columns: fold their gradient into the thin one (minimal rotation)
            gUt = gUt - Ue @ (gUe.mH @ Ut)
            extra.append(skew(Ue.mH @ gUe))
        if Vhe.shape[-2]:
            gVht = gVht - (Vht @ gVhe.mH) @ Vhe
            extra.append(skew(Vhe @ gVhe.mH))
        if needs_gauge_check(ctx, gUt):
            X, Y = Ut.mH @ gUt, Vht @ gVht.mH
            zero = (S <= gaps.tol[..., 0])[..., None, :]  # free vectors of zero singular values
            if Ut.shape[-2] > k0:
                extra.append((gUt - Ut @ X) * zero)
            if Vht.shape[-1] > k0:
                extra.append((gVht.mH - Vht.mH @ Y) * zero)
            viol, scale = gauge_violation(S, X, Y, gS, gaps, tuple(extra), (gU, gVh))
            apply_gauge_policy("svd", ctx.gauge, viol, scale, S.dtype)
        # D has value 0: it only matters when this backward is differentiated again.
        second = torch.is_grad_enabled() or is_wrapped(gUt)
        D = block_tangent(A, Ut, Vht, gaps, ctx.degeneracy_tol) if second else None
        gA = svd_vjp(Ut, S, Vht, gUt, gS, gVht, gaps, D)
        return gA, None, None, None

    @staticmethod
    def jvp(ctx, dA: Tensor, *_):
        A, U, S, Vh = ctx.saved_tensors
        degeneracy_tol = ctx.degeneracy_tol

        def rule(A, U, S, Vh, dA):
            return svd_jvp_full(A, U, S, Vh, dA, degeneracy_tol)

        # Through ``call`` so that an outer forward level sees this rule's arithmetic (jvp of jvp).
        return call(rule, A, U, S, Vh, dA)


def svd_jvp_full(A: Tensor, U: Tensor, S: Tensor, Vh: Tensor, dA: Tensor,
                 degeneracy_tol: float | None):
    """``svd_jvp`` with the block tangent, plus the extra columns of ``full_matrices=True``
    (minimal rotation)."""
    k0 = S.shape[-1]
    gaps = svd_gaps(S, degeneracy_tol)
    Ut, Vht, Ue, Vhe = _split(U, Vh, k0)
    D = block_tangent(A, Ut, Vht, gaps, degeneracy_tol)
    dU, dS, dVh = svd_jvp(Ut, S, Vht, dA, gaps, D)
    Sig_inv = _inv_block(gaps.Sinv, D).to(dA.dtype)
    if Ue.shape[-1]:
        dUe = -Ut @ (Sig_inv @ (Vht @ (dA.mH @ Ue)))
        dU = torch.cat([dU, dUe], dim=-1)
    if Vhe.shape[-2]:
        dVe = -Vht.mH @ (Sig_inv @ (Ut.mH @ (dA @ Vhe.mH)))
        dVh = torch.cat([dVh, dVe.mH], dim=-2)
    return dU, dS, dVh


def check_degeneracy_tol(degeneracy_tol) -> float | None:
    """Validate the ``degeneracy_tol`` of the SVDs (relative to the largest singular value)."""
    return _check_degeneracy_tol(degeneracy_tol, "the largest singular value")


def check_gauge(gauge) -> str:
    if gauge not in GAUGE_MODES:
        raise InputError(f"gauge: expected one of {GAUGE_MODES}, got {gauge!r}")
    return gauge


def svd(
    A: Tensor,
    *,
    full_matrices: bool = False,
    degeneracy_tol: float | None = None,
    gauge: str = "error",
) -> tuple[Tensor, Tensor, Tensor]:
    """Singular value decomposition ``A = U diag(S) Vh``, differentiable at degenerate points.

    The values equal ``torch.linalg.svd(A, full_matrices=...)``. The derivatives (reverse,
    forward and second order) use the formulas of this module: the complex gauge term, the
    ``(I - U U^H)`` / ``(I - V V^H)`` terms of rectangular input, and masked gaps.

    Args:
        A: (..., m, n) real or complex (float32/64, complex64/128), finite.
        full_matrices: return the square ``U`` (m x m) and ``Vh`` (n x n). The extra columns are
            an arbitrary basis of the complement: only losses invariant under its rotations have
            a gradient (they follow the minimal rotation; see the module notes).
        degeneracy_tol: singular values in one chain cluster (consecutive gaps at most
            ``degeneracy_tol * max(S)``), and sums ``s_i + s_j`` and values ``s_i`` below that,
            count as degenerate and their pairs contribute nothing (masks, no host
            synchronisation). Exact for losses invariant under rotations within each cluster
            and of the singular vectors of zero singular values, also at second order at
            clusters away from zero for losses linear in a cluster's values (module notes).
            ``None``: only exactly equal values (and exact zeros) are masked.
        gauge: what backward does when the loss depends on the gauge (the phases of complex
            singular vectors, rotations inside masked clusters): "error" (raise ``GaugeError``),
            "warn" (``GaugeWarning``) or "ignore" (gradient in the symmetric gauge). The check
            costs one host synchronisation per backward and is skipped inside ``torch.func``.

    Returns:
        ``(U, S, Vh)``: ``U`` (..., m, k), ``S`` (..., k) real descending, ``Vh`` (..., k, n) with
        ``k = min(m, n)`` (or ``m`` and ``n`` with ``full_matrices``).

    Raises:
        InputError: wrong shape or dtype, non-finite entries, bad option.
        GaugeError: in backward, for a gauge-dependent loss with ``gauge="error"``.
    """
    A = check_matrix(A, "A")
    if A.shape[-1] == 0 or A.shape[-2] == 0:
        raise InputError(f"A: expected a non-empty matrix (..., m, n), got shape {tuple(A.shape)}")
    if not isinstance(full_matrices, bool):
        raise InputError(f"full_matrices: expected a bool, got {full_matrices!r}")
    tol = check_degeneracy_tol(degeneracy_tol)
    return _SVD.apply(A, full_matrices, tol, check_gauge(gauge))
