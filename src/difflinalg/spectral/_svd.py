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
(``1/0 := 0``, the pseudo-inverse convention). Masked are: the diagonal of ``G1`` (always: it
multiplies the gauge component ``Im(X_ii + Y_ii)``), and with ``tol = degeneracy_tol * s_max``
(per matrix, no host synchronisation) every gap ``|s_j - s_i|``, ``s_j + s_i`` and ``s_i`` that is
``<= tol``; ``degeneracy_tol=None`` means ``tol = 0``, only exactly zero gaps are masked. The
result is exact for losses invariant under the freedom that the masked gap leaves:
rotations ``(U_c, V_c) -> (U_c Q, V_c Q)`` inside a cluster of equal singular values, independent
rotations of the left and right singular vectors of zero singular values (and of the null
spaces), and the phases. For other losses the derivative does not exist at such a point.
For numerically rank-deficient or clustered inputs (singular values equal only up to rounding)
pass ``degeneracy_tol`` (e.g. ``1e-10`` in float64): ``1/(1e-17)`` is not a useful number.
"Invariant" includes: the loss depends on the singular values of a cluster only through
symmetric functions of them (at a degeneracy the individual values are not differentiable).

Second order. Backward is written in differentiable torch operations, so double backward and
forward-over-reverse are exact wherever no gap is masked. At a masked gap only the first
derivatives are exact: the second derivative of a loss at a degenerate cluster needs limits of
divided differences of the loss's own gradient, such as ``(gS_i - gS_j) / (s_i - s_j)``, paired
with the off-diagonal part of the perturbation ``U_c^H dA V_c`` (a degenerate cluster splits
along the eigenvectors of that matrix); a vector ``dS`` cannot carry it, so no rule on
``(U, S, V)`` can. Such second derivatives come out finite but not exact.

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

import torch
from torch import Tensor

from .._errors import GaugeError, GaugeWarning, InputError
from .._nested import call
from .._utils import check_matrix, eps, herm, is_wrapped, skew

GAUGE_MODES = ("error", "warn", "ignore")


# ----------------------------------------------------------------------------------------------
# Masked inverse gaps (shared with the truncated SVD).


def masked_inverse(x: Tensor, tol: Tensor | float) -> Tensor:
    """``1/x`` where ``|x| > tol`` and ``0`` elsewhere (no inf/NaN in values or derivatives)."""
    keep = x.abs() > tol
    safe = torch.where(keep, x, torch.ones_like(x))
    return torch.where(keep, 1.0 / safe, torch.zeros_like(x))


def gap_tolerance(S: Tensor, degeneracy_tol: float | None) -> Tensor:
    """Absolute gap tolerance ``degeneracy_tol * s_max`` per matrix, shape (..., 1, 1)."""
    if degeneracy_tol is None or degeneracy_tol == 0:
        return torch.zeros(S.shape[:-1] + (1, 1), dtype=S.dtype, device=S.device)
    smax = S.amax(dim=-1) if S.shape[-1] else torch.zeros(S.shape[:-1], dtype=S.dtype, device=S.device)
    return (degeneracy_tol * smax)[..., None, None]


def svd_gaps(S: Tensor, tol: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Masked ``G1 = 1/(s_j - s_i)`` (zero diagonal), ``G2 = 1/(s_j + s_i)`` and ``1/s``.

    ``S`` is (..., k) real, ``tol`` (..., 1, 1); the results are (..., k, k), (..., k, k), (..., k).
    """
    diff = S[..., None, :] - S[..., :, None]
    eye = torch.eye(S.shape[-1], dtype=torch.bool, device=S.device)
    G1 = masked_inverse(diff, tol).masked_fill(eye, 0.0)
    G2 = masked_inverse(S[..., None, :] + S[..., :, None], tol)
    Sinv = masked_inverse(S, tol[..., 0])
    return G1, G2, Sinv


# ----------------------------------------------------------------------------------------------
# Rules on thin factors.


def svd_jvp(U: Tensor, S: Tensor, Vh: Tensor, dA: Tensor, tol: Tensor,
            complement: bool = True) -> tuple[Tensor, Tensor, Tensor]:
    """Tangents ``(dU, dS, dVh)`` of thin factors for a tangent ``dA`` (formulas above).

    ``complement=False`` leaves out the ``(I - U U^H)`` / ``(I - V V^H)`` terms (the truncated
    SVD computes them separately).
    """
    V = Vh.mH
    G1, G2, Sinv = svd_gaps(S, tol)
    dAV = dA @ V
    dP = U.mH @ dAV
    H, K = herm(dP), skew(dP)
    dS = dP.diagonal(dim1=-2, dim2=-1).real
    HG1, KG2 = H * G1, K * G2
    dU = U @ (HG1 + KG2)
    dV = V @ (HG1 - KG2)
    if complement and U.shape[-2] > S.shape[-1]:
        dU = dU + (dAV - U @ dP) * Sinv[..., None, :]
    if complement and V.shape[-2] > S.shape[-1]:
        dV = dV + (dA.mH @ U - V @ dP.mH) * Sinv[..., None, :]
    return dU, dS, dV.mH


def svd_core_vjp(S: Tensor, X: Tensor, Y: Tensor, gS: Tensor, tol: Tensor) -> Tensor:
    """The ``k x k`` core ``M`` of the gradient ``U M V^H`` from ``X = U^H gU``, ``Y = V^H gV``."""
    G1, G2, _ = svd_gaps(S, tol)
    Xa, Ya = skew(X), skew(Y)
    M = (Xa + Ya) * G1 + (Xa - Ya) * G2
    return M + torch.diag_embed(gS.to(M.dtype))


def svd_vjp(U: Tensor, S: Tensor, Vh: Tensor, gU: Tensor, gS: Tensor, gVh: Tensor,
            tol: Tensor) -> Tensor:
    """Gradient with respect to ``A`` from the gradients of the thin factors (formulas above)."""
    V, gV = Vh.mH, gVh.mH
    X, Y = U.mH @ gU, V.mH @ gV
    gA = (U @ svd_core_vjp(S, X, Y, gS, tol)) @ Vh
    _, _, Sinv = svd_gaps(S, tol)
    if U.shape[-2] > S.shape[-1]:
        gA = gA + ((gU - U @ X) * Sinv[..., None, :]) @ Vh
    if V.shape[-2] > S.shape[-1]:
        gA = gA + U @ ((gV - V @ Y) * Sinv[..., None, :]).mH
    return gA


# ----------------------------------------------------------------------------------------------
# Gauge check.


def gauge_violation(S: Tensor, X: Tensor, Y: Tensor, gS: Tensor, tol: Tensor,
                    extra: tuple[Tensor, ...] = (),
                    grads: tuple[Tensor, ...] = ()) -> tuple[float, float]:
    """Largest component of the incoming gradient along a masked (gauge) direction.

    Returns ``(violation, scale)``: the largest ``|skew(X) + skew(Y)|`` where ``s_j - s_i`` is
    masked (the diagonal always), ``|skew(X) - skew(Y)|`` where ``s_j + s_i`` is masked, and the
    entries of ``extra`` (components that must vanish, already restricted to masked directions),
    and the size of the gradient they are judged against (``|X|``, ``|Y|``, ``s_max |gS|`` and
    the incoming vector gradients ``grads``). One host synchronisation.
    """
    G1m = (S[..., None, :] - S[..., :, None]).abs() <= tol
    G2m = (S[..., None, :] + S[..., :, None]).abs() <= tol
    Xa, Ya = skew(X), skew(Y)
    parts = [((Xa + Ya).abs() * G1m).amax(), ((Xa - Ya).abs() * G2m).amax()]
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
        _, full_matrices, degeneracy_tol, gauge = inputs
        U, S, Vh = output
        ctx.degeneracy_tol, ctx.gauge = degeneracy_tol, gauge
        ctx.save_for_backward(U, S, Vh)
        ctx.save_for_forward(U, S, Vh)

    @staticmethod
    def backward(ctx, gU: Tensor, gS: Tensor, gVh: Tensor):
        U, S, Vh = ctx.saved_tensors
        k0 = S.shape[-1]
        tol = gap_tolerance(S, ctx.degeneracy_tol)
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
            zero = (S <= tol[..., 0])[..., None, :]  # free vectors of zero singular values
            if Ut.shape[-2] > k0:
                extra.append((gUt - Ut @ X) * zero)
            if Vht.shape[-1] > k0:
                extra.append((gVht.mH - Vht.mH @ Y) * zero)
            viol, scale = gauge_violation(S, X, Y, gS, tol, tuple(extra), (gU, gVh))
            apply_gauge_policy("svd", ctx.gauge, viol, scale, S.dtype)
        gA = svd_vjp(Ut, S, Vht, gUt, gS, gVht, tol)
        return gA, None, None, None

    @staticmethod
    def jvp(ctx, dA: Tensor, *_):
        U, S, Vh = ctx.saved_tensors
        degeneracy_tol = ctx.degeneracy_tol

        def rule(U, S, Vh, dA):
            return svd_jvp_full(U, S, Vh, dA, gap_tolerance(S, degeneracy_tol))

        # Through ``call`` so that an outer forward level sees this rule's arithmetic (jvp of jvp).
        return call(rule, U, S, Vh, dA)


def svd_jvp_full(U: Tensor, S: Tensor, Vh: Tensor, dA: Tensor, tol: Tensor):
    """``svd_jvp`` plus the extra columns of ``full_matrices=True`` (minimal rotation)."""
    k0 = S.shape[-1]
    Ut, Vht, Ue, Vhe = _split(U, Vh, k0)
    dU, dS, dVh = svd_jvp(Ut, S, Vht, dA, tol)
    _, _, Sinv = svd_gaps(S, tol)
    if Ue.shape[-1]:
        dUe = -Ut @ (Sinv[..., :, None] * (Vht @ (dA.mH @ Ue)))
        dU = torch.cat([dU, dUe], dim=-1)
    if Vhe.shape[-2]:
        dVe = -Vht.mH @ (Sinv[..., :, None] * (Ut.mH @ (dA @ Vhe.mH)))
        dVh = torch.cat([dVh, dVe.mH], dim=-2)
    return dU, dS, dVh


def check_degeneracy_tol(degeneracy_tol) -> float | None:
    if degeneracy_tol is None:
        return None
    if isinstance(degeneracy_tol, bool) or not isinstance(degeneracy_tol, (int, float)) \
            or not math.isfinite(degeneracy_tol) or degeneracy_tol < 0:
        raise InputError(
            f"degeneracy_tol: expected None or a finite float >= 0 (relative to the largest "
            f"singular value), got {degeneracy_tol!r}"
        )
    return float(degeneracy_tol)


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
    forward, and of any order) use the formulas of this module: the complex gauge term, the
    ``(I - U U^H)`` / ``(I - V V^H)`` terms of rectangular input, and masked gaps.

    Args:
        A: (..., m, n) real or complex (float32/64, complex64/128), finite.
        full_matrices: return the square ``U`` (m x m) and ``Vh`` (n x n). The extra columns are
            an arbitrary basis of the complement: only losses invariant under its rotations have
            a gradient (they follow the minimal rotation; see the module notes).
        degeneracy_tol: gaps (``s_i - s_j``, ``s_i + s_j``, ``s_i``) at most
            ``degeneracy_tol * max(S)`` count as zero and contribute nothing (masks, no host
            synchronisation). Exact for losses invariant under rotations within each cluster of
            equal singular values and of the singular vectors of zero singular values. ``None``:
            only exactly zero gaps are masked.
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
