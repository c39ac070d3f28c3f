r"""Singular value decomposition ``A = U diag(S) V^H`` with reverse, forward and second-order rules.

Real and complex, rectangular both ways, rank-deficient inputs, degenerate singular values. This
module holds the public ``svd``, its argument checks and its autograd Function (``full_matrices``'
extra columns); the rules on thin factors that it shares with ``svd_truncated`` are in
``_svd_rules``; their mathematics is below.

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

Degeneracies and zero singular values (the masks and inverse gaps: ``_svd_gaps.py``). The entries
divided by a masked gap are set to zero
(``1/0 := 0``, the pseudo-inverse convention). With ``tol = t * s_max`` (per matrix, masks only,
no host synchronisation), masked are: ``s_j - s_i`` for ``i, j`` in one cluster (chain clustering
of the sorted values with steps ``<= tol``, ``_gaps.cluster_mask``, shared with ``eigh``; the
diagonal always: it multiplies the gauge component ``Im(X_ii + Y_ii)``), and every ``s_j + s_i``
and ``s_i`` that is ``<= tol``. ``degeneracy_tol=None`` (default): ``t = 4 max(m, n) eps``, the
size of a split that rounding alone produces (a tie computed by LAPACK comes out split by up to
``0.4 max(m, n) eps s_max``, and ``1/gap`` of such a split is noise: without the mask the
projector onto a rotated repeated pair had 90% error); ``0.0``: exact ties only; a float:
that relative tolerance. Which losses are exact at a cluster, why no rule on ``(U, S, Vh)`` can
be exact for the others (``<W, U f(S) V^H>``: use ``svd_function``), and what backward checks
(gauge, equal value cotangents, value/vector coupling, zero values; ``DegenerateSpectrumError``)
is proved in ``_svd_ties.py``. In short: exact for losses invariant under the rotations
``(U_c, V_c) -> (U_c Q, V_c Q)`` of each cluster (at every nearby split of its values) and
symmetric in its values, e.g. projectors of whole clusters, ``U_c V_c^H``, ``sum(S)``,
``||A||_F^2``; at zero singular values also invariant under independent rotations of the left and
right vectors and of the null spaces, with no dependence on the zero values themselves beyond
even functions (``S**2``).

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
away from zero for the losses of the class that are linear in each cluster's values (their sum);
a loss curved in the values of a cluster needs limits of divided differences of its own
gradient, ``(gS_i - gS_j)/(s_i - s_j)``, which no rule on ``(U, S, V)`` can supply:
forward-over-reverse and double backward raise ``DegenerateSpectrumError`` for it
(``_svd_curvature.py``; NaN inside ``torch.func``). At masked zero singular values (and ``s_i + s_j``) only first derivatives are
exact. Forward mode (``jvp``, forward-over-forward) sees only ``dA``, nothing of the loss: it is
exact for the class above and cannot check the consumer of its tangents.

Checks (``gauge="error"``, the default, or ``"warn"``): backward verifies the criteria of
``_svd_ties.py`` (the components of the incoming gradient along the gauge directions vanish:
``Im(X_ii + Y_ii)`` for complex input, the cluster rotations, the free vectors of zero singular
values, the extra columns of ``full_matrices=True``; equal value cotangents in every cluster; no
value/vector coupling in a cluster; no value cotangent at zero values) with one host
synchronisation (a second one only where a cluster or a zero value exists), which also applies the single-precision policy (``PrecisionWarning`` when
``s_max / gap`` of a gap the cotangent uses exceeds ``1e-2 / eps``). Inside ``torch.func`` the
failing matrices get a NaN gradient and ``TransformCheckWarning`` is issued once;
``gauge="ignore"`` skips the checks and returns the masked rule in the symmetric gauge.

``full_matrices=True``: the extra columns ``U_e = U[..., k0:]`` (or ``V_e``) are an arbitrary
orthonormal basis of the complement. They are differentiated with the minimal rotation that
keeps them orthogonal to the moving range, ``dU_e = -U Sinv V^H dA^H U_e`` (and
``dV_e = -V Sinv U^H dA V_e``), which is exact for losses invariant under ``U_e -> U_e Q``
(e.g. those depending on ``U_e U_e^H = I - U U^H``); a dependence on the basis itself is a
gauge dependence (checked as above).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .._errors import InputError
from .._nested import call
from .._rule import Rule
from .._utils import check_matrix, skew
from ._gaps import check_degeneracy_tol as _check_degeneracy_tol
from ._svd_gaps import block_tangent, inv_block, needs_block, svd_gaps
from ._svd_rules import checked_vjp, svd_jvp, svd_vjp
from ._svd_ties import CheckToken, resolve_tol

GAUGE_MODES = ("error", "warn", "ignore")
SVD_DRIVERS = ("gesvd", "gesvdj", "gesva")  # torch.linalg.svd's cuSOLVER methods


# ----------------------------------------------------------------------------------------------
# The autograd Function.


def _split(U: Tensor, Vh: Tensor, k0: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Thin factors and the extra columns of ``full_matrices=True`` (possibly empty)."""
    return U[..., :k0], Vh[..., :k0, :], U[..., k0:], Vh[..., k0:, :]


class _SVD(Rule):
    @staticmethod
    def forward(A: Tensor, full_matrices: bool, driver: str | None, tol: float, gauge: str,
                token: CheckToken):
        U, S, Vh = torch.linalg.svd(A, full_matrices=full_matrices, driver=driver)
        return U, S, Vh  # a plain tuple (vmap's generated rule does not flatten return_types)

    @staticmethod
    def save(ctx, inputs, output):
        A, _, _, ctx.tol, ctx.gauge, ctx.token = inputs
        return (A, *output)

    @staticmethod
    def gradients(ctx, A, U, S, Vh, gU: Tensor, gS: Tensor, gVh: Tensor):
        k0 = S.shape[-1]
        gaps = svd_gaps(S, ctx.tol)
        Ut, Vht, Ue, Vhe = _split(U, Vh, k0)
        gUt, gVht, gUe, gVhe = _split(gU, gVh, k0)
        extra: tuple[Tensor, ...] = ()
        if Ue.shape[-1]:  # extra columns: fold their gradient into the thin one (minimal rotation)
            gUt = gUt - Ue @ (gUe.mH @ Ut)
            extra += (skew(Ue.mH @ gUe),)
        if Vhe.shape[-2]:
            gVht = gVht - (Vht @ gVhe.mH) @ Vhe
            extra += (skew(Vhe @ gVhe.mH),)

        def vjp(gS_in, D):
            return svd_vjp(Ut, S, Vht, gUt, gS_in, gVht, gaps, D)

        return checked_vjp("svd", ctx, A, Ut, S, Vht, gUt, gS, gVht, gaps, vjp, extra, (gU, gVh))

    @staticmethod
    def tangents(ctx, A, U, S, Vh, dA: Tensor, *_):
        tol = ctx.tol

        def rule(A, U, S, Vh, dA):
            return svd_jvp_full(A, U, S, Vh, dA, tol)

        # Through ``call`` so that an outer forward level sees this rule's arithmetic (jvp of jvp).
        return call(rule, A, U, S, Vh, dA)


def svd_jvp_full(A: Tensor, U: Tensor, S: Tensor, Vh: Tensor, dA: Tensor, tol: float):
    """``svd_jvp`` with the block tangent, plus the extra columns of ``full_matrices=True``
    (minimal rotation)."""
    k0 = S.shape[-1]
    gaps = svd_gaps(S, tol)
    Ut, Vht, Ue, Vhe = _split(U, Vh, k0)
    D = block_tangent(A, Ut, Vht, gaps) if needs_block(gaps) else None
    dU, dS, dVh = svd_jvp(Ut, S, Vht, dA, gaps, D)
    Sig_inv = inv_block(gaps.Sinv, D).to(dA.dtype)
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


def check_driver(driver, A: Tensor) -> str | None:
    """Validate torch.linalg.svd's ``driver``: a cuSOLVER method, so CUDA input only (torch raises
    on other devices as well; checked here so that the error names the fix)."""
    if driver is None:
        return None
    if driver not in SVD_DRIVERS:
        raise InputError(f"driver: expected None or one of {SVD_DRIVERS} (cuSOLVER methods, as in "
                         f"torch.linalg.svd), got {driver!r}")
    if A.device.type != "cuda":
        raise InputError(f"driver: {driver!r} selects a cuSOLVER method and works only for CUDA "
                         f"tensors (as in torch.linalg.svd), got a tensor on {A.device.type!r}; "
                         f"leave driver=None on this device")
    return driver


class SVDResult(NamedTuple):
    """The result of ``svd``, field for field ``torch.linalg.svd``'s: ``U`` (..., m, m or k),
    ``S`` (..., k) real descending, ``Vh`` (..., n or k, n); unpacks like a tuple."""

    U: Tensor
    S: Tensor
    Vh: Tensor


def svd(
    A: Tensor,
    full_matrices: bool = True,
    *,
    driver: str | None = None,
    degeneracy_tol: float | None = None,
    gauge: str = "error",
) -> SVDResult:
    """Singular value decomposition ``A = U diag(S) Vh``, differentiable at degenerate points.

    The signature, defaults and result are ``torch.linalg.svd``'s (``full_matrices=True``,
    positional; ``driver``; a named tuple ``(U, S, Vh)``), with the keyword-only options
    ``degeneracy_tol`` and ``gauge`` added (``docs/conventions.md``, "torch.linalg
    compatibility"). The values equal ``torch.linalg.svd(A, full_matrices, driver=driver)`` (also
    for ``m = 0`` or ``n = 0`` and empty batches). The derivatives (reverse, forward and second
    order) use the formulas of this module: the complex gauge term, the ``(I - U U^H)`` /
    ``(I - V V^H)`` terms of rectangular input, and masked gaps.

    At (nearly) repeated singular values a derivative exists only for some losses: exact are
    those invariant under rotations inside each cluster and symmetric in its values
    (projectors of whole clusters, ``U_c V_c^H``, ``sum(S)``, ``||A||_F^2``, ...; second
    derivatives: those linear in each cluster's values). For other losses backward raises
    ``DegenerateSpectrumError`` (``GaugeError`` for a gauge dependence) instead of returning a
    wrong number; ``U f(S) V^H`` is exact through ``difflinalg.svd_function``. Proofs, the
    criteria and their one false alarm (a value loss and a vector loss of one cluster from the
    same call: split them into two calls) are in ``_svd_ties.py``; a table per point and
    dtype in ``docs/ties_svd.md``. Forward mode cannot see the loss and is not checked.

    Args:
        A: (..., m, n) real or complex (float32/64, complex64/128), finite.
        full_matrices: ``True`` (default, as torch): the square ``U`` (m x m) and ``Vh`` (n x n);
            ``False``: the thin factors. The extra columns of the square factors are an
            arbitrary basis of the complement: only losses invariant under its rotations (e.g.
            functions of ``U_e U_e^H = I - U U^H``) have a gradient (they follow the minimal
            rotation; see the module notes); a loss that depends on the basis itself raises
            ``GaugeError`` in backward. Losses of the thin columns only are unaffected.
        driver: torch's cuSOLVER method (``None``, ``"gesvd"``, ``"gesvdj"``, ``"gesva"``),
            passed to ``torch.linalg.svd``; CUDA tensors only (as in torch). The derivatives
            do not depend on it.
        degeneracy_tol: singular values in one chain cluster (consecutive gaps at most
            ``tol * max(S)``), and sums ``s_i + s_j`` and values ``s_i`` below that, count as
            ties and their pairs contribute nothing (masks, no host synchronisation).
            ``None`` (default): ``tol = 4 max(m, n) eps``, the size of a split that rounding
            produces, so rounding-level splits are ties and every real gap is resolved;
            ``0.0``: exact ties only; a float: that tolerance (a larger one trades accuracy for
            robustness, for losses of the exact class).
        gauge: what backward does when a check fails: "error" (raise ``GaugeError`` /
            ``DegenerateSpectrumError``), "warn" (``GaugeWarning``) or "ignore" (no checks: the
            masked rule in the symmetric gauge). The checks cost one host synchronisation per
            backward (two at ties); inside ``torch.func`` failing matrices get NaN gradients instead
            (``TransformCheckWarning`` once).

    Returns:
        ``SVDResult(U, S, Vh)`` (a named tuple, like ``torch.return_types.linalg_svd``): ``U``
        (..., m, m), ``S`` (..., k) real descending, ``Vh`` (..., n, n) with ``k = min(m, n)``;
        with ``full_matrices=False``, ``U`` (..., m, k) and ``Vh`` (..., k, n).

    Raises:
        InputError: wrong shape or dtype, non-finite entries, bad option (also ``driver`` on a
            non-CUDA tensor).
        GaugeError: in backward, for a gauge-dependent loss with ``gauge="error"`` (including a
            dependence on the basis of the extra columns of ``full_matrices=True``).
        DegenerateSpectrumError: in backward (and second derivatives), for a loss outside the
            exact class at a cluster or zero singular value, with ``gauge="error"``.

    Warns:
        PrecisionWarning: in backward, when a gap the loss uses is below ``1e-2 / eps`` of
            ``s_max`` (single precision mostly; ``docs/conventions.md``).

    Example::

        import torch
        import difflinalg

        A = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
        U, S, Vh = difflinalg.svd(A, full_matrices=False)      # torch.linalg.svd's signature
        assert torch.allclose(U @ torch.diag(S) @ Vh, A)
        (g,) = torch.autograd.grad((U @ Vh).pow(2).sum() + S.sum(), A)   # gauge-invariant losses
    """
    A = check_matrix(A, "A")
    if not isinstance(full_matrices, bool):
        raise InputError(f"full_matrices: expected a bool, got {full_matrices!r}")
    driver = check_driver(driver, A)
    tol = resolve_tol(check_degeneracy_tol(degeneracy_tol), A.shape[-2], A.shape[-1], A.dtype)
    return SVDResult(*_SVD.apply(A, full_matrices, driver, tol, check_gauge(gauge), CheckToken()))
