r"""What the eigh rules check in backward at (near-)repeated eigenvalues; shared by ``eigh``,
``eigh_subspace`` and ``subspace_projector``.

Ties. Eigenvalues closer than ``tol * max|w|`` form clusters (chain clustering, ``_gaps``) and the
pairs inside a cluster are masked in the rules (``_eigh.py``; the masks: ``_eigh_gaps``).
``degeneracy_tol=None`` (the default) uses ``tol = TIE_FACTOR * n * eps`` (``_gaps.default_tol``,
the SVD's constant): a Hermitian eigensolver's backward error is ``O(n eps ||A||_2)``, so an exact
tie comes out split by up to that much and a gap that small carries no information. ``0.0`` masks
exact ties only.

The exact class (eigh). Let ``L(w, V)`` be a loss and ``phi(A) = L(eigh(A))``; write
``T = V^H gV`` and ``H = V^H grad(phi) V``. At a cluster ``c`` with eigenvalue ``lambda`` the map
``(w, V) -> V diag(w) V^H`` has the rotations ``V_c -> V_c Q`` in its kernel, and its image
misses exactly the directions ``dA = V_c E V_c^H`` with ``E`` Hermitian and off-diagonal (the
tangent ``V (Omega Lambda - Lambda Omega + diag(dw)) V^H`` has a diagonal cluster block, since
``Lambda_cc = lambda I``): along them the cluster splits along the eigenvectors of ``E``, a jump
of the basis. So ``(gw, gV)`` determine every part of ``H`` except the off-diagonal of ``H_cc``;
the rule sets that part to zero (``H_cc = diag(gw_c)``) and is exact precisely for the losses
whose ``H_cc`` is diagonal in the computed basis. That basis is arbitrary, so the class is the
losses with ``H_cc = g I``: invariant under ``V_c -> V_c Q`` for every unitary ``Q`` *at every
nearby split of the cluster* and symmetric in the cluster's eigenvalues. Sufficiency: along
``A + t V_c E V_c^H`` (``E = Q diag(e) Q^H``) the decomposition is ``(lambda + t e, V_c Q)``;
invariance removes ``Q``, symmetry gives ``dphi = g sum(e) = g tr(E)``. Examples: projectors
``V_c V_c^H`` of whole clusters and any loss of the eigenspaces, symmetric functions of a
cluster's eigenvalues (``sum(w_c)``, ``sum(w**2) = ||A||_F^2``, ``log det``), sums and products
of these. Outside it: ``<W, V f(w) V^H> = <W, f(A)>``, smooth, but ``H_cc = f'(lambda)
(V_c^H W V_c)``; ``sum(w_c) + <W, V_c V_c^H>`` (in the class) and ``<W, V f(w) V^H>`` with
``f(lambda) = f'(lambda) = 1``, ``diag(V_c^H W V_c) = 1`` have equal cotangents in the cluster
and different gradients: nothing can be read off the cotangents. Exact path: ``eigh_function``.

eigh_subspace (the kept block ``U1``, ``w1``; ``T11 = U1^H gU1``) differentiates the subspace and
not its basis (no in-block rotation): exact for losses invariant under ``U1 -> U1 Q`` for every
unitary ``Q`` and, at ties inside the block, symmetric in the tied eigenvalues; at distinct kept
eigenvalues each ``w1_j`` has its exact derivative. ``subspace_projector``'s output is invariant:
always in the class (given a gap across the split).

Criteria (backward; ``r = sqrt(eps)``, ``scale = max|T| + max|w| max|gw| + max|gV|`` per matrix):

1. gauge: ``skew(T)`` inside clusters (its diagonal: the phases of complex eigenvectors) vanishes
   (``<= r scale``): ``GaugeError``. Necessary (the derivative along the gauge).
1b. basis (eigh_subspace only): ``skew(T11)`` on pairs of distinct kept eigenvalues vanishes, up
   to ``max(r scale |w_i - w_j| / max|w|, BASIS_FACTOR n eps scale)`` (the dropped term
   ``skew(T11)_ij / (w_j - w_i)`` relative to the gradient, above the rounding of ``T11``):
   ``GaugeError`` pointing to ``eigh``.
2. values: ``gw`` is equal inside every cluster (up to ``r scale / max|w|`` and, for pairs split by
   more than rounding (a user tolerance), a curvature allowance ``8 |gw| gap / min(|w_i|, |w_j|)``):
   necessary (a symmetric function has equal partials at a tie; an individual eigenvalue of a
   cluster, ``w[j]``, is not differentiable there).
3. coupling: a cluster whose eigenvalues get a cotangent (``|gw_c| max|w| > r scale``) and whose
   vectors get an off-diagonal Hermitian cotangent (``herm(T_cc)``, ``> r scale``). For
   ``<W, V f(w) V^H>`` and ``x^H V g(w) V^H x`` with ``f(lambda), g(lambda) != 0`` the missing part
   is proportional to exactly that block, so it is caught also when 2 is met by coincidence
   (``A`` diagonal, ``W`` all ones). False alarm, unavoidable by the proof above: one call whose
   cluster receives both a value loss and a vector loss (``sum(w) + <W, V_c V_c^H>``); compute
   them from separate calls. Couplings with ``f(lambda) = 0`` and equal diagonal cotangents
   escape every criterion.

2-3 raise ``DegenerateSpectrumError`` naming the batch index, the cluster and the cotangent.
Inside ``torch.func`` transforms the gradient of the offending matrices is NaN and
``TransformCheckWarning`` is issued once (``_svd_ties.poison``). ``gauge="ignore"`` skips all.
Second order: a loss curved in a cluster's eigenvalues (``sum(w**2)``) needs
``lim (gw_i - gw_j)/(w_i - w_j)``, which no rule on ``(w, V)`` receives: the checks of
``_svd_curvature`` (shared) raise for it. Forward mode sees only ``dA`` and is not checked.

Precision (``docs/conventions.md``): ``kappa = max|w| max(1/gap)`` over the unmasked gaps the
cotangent uses, read in the same host synchronisation as the checks.

Cost (the checks must stay cheap next to the rule's three matrix products; issue 19's floor: a
MUSIC training step on ``difflinalg.eigh`` within 1.05x of ``torch.linalg.eigh``). The first
synchronisation reads the tie-independent part, computed without any n x n ``|.|``: the maxima
of ``T`` and ``gV`` from ``|x|^2 = re^2 + im^2`` (exact when the largest component of each
matrix is in range, ``_svd_ties.abs2_in_range``), the phases ``Im T_ii``, and for the precision
the bound ``max|w| max|F|`` over all unmasked pairs; together with the ``cluster_width`` (the
largest index distance inside a cluster, ``O(k)``). A second pass runs only where needed: at ties
the in-cluster criteria on the band ``0 < j - i <= width`` (``band_stats``; every in-cluster pair
lies in it, ``O(k width)`` instead of ``O(k^2)``); where a square is out of range or the bound
would warn, the exact part (``|.|``, the used pairs) and then the band. The full ``(k, k)`` tables
are built only inside ``torch.func`` (no synchronisation, so no width) and for an error message.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from .._errors import DegenerateSpectrumError, GaugeError
from .._utils import PRECISION_TOL, check_precision, eps, herm, is_wrapped, skew
from ._eigh_gaps import EighGaps, cluster_width
from ._gaps import TIE_FACTOR
from ._svd_curvature import curvature_guard, curvature_probe
from ._svd_ties import (CURVATURE_ALLOWANCE, _amax2, _cluster_of, _fmt, _where, abs2, abs2_in_range, check_mode,
                        max_component, poison, raise_or_warn, screen)

BASIS_FACTOR = 64.0
"""Rounding allowance of ``skew(U1^H gU1)`` for eigh_subspace's basis check, in ``n eps scale``."""

CURVED_MSG = (
    "{op}: the loss is curved in the eigenvalues of a cluster of (nearly) equal eigenvalues (its "
    "gradient gw changes differently for eigenvalues of one cluster), so its second derivative at "
    "the tie needs the limit (gw_i - gw_j)/(w_i - w_j), which no rule on (w, V) has. Write the loss "
    "through a matrix function that is exact there: sum(f(w)) = trace(difflinalg.eigh_function(A, "
    "f, df)), e.g. sum(w**2) = (A * A.conj()).real.sum(){tol_hint}"
)


class EighStats(NamedTuple):
    """Per-matrix violation ratios (a check fails where > 1) and ``kappa``."""

    gauge: Tensor
    basis: Tensor
    values: Tensor
    coupling: Tensor
    kappa: Tensor

    def bad(self) -> Tensor:
        return (self.gauge > 1) | (self.basis > 1) | (self.values > 1) | (self.coupling > 1)


class Parts(NamedTuple):
    """What a rule hands to the checks (``checked_backward``): ``T = V^H gV`` (of the block the
    checks judge), the incoming gradients ``grads`` (for the scale), the inverse gaps ``inv`` the
    rule multiplies cotangent components by (finite: 0 where nothing is divided) and those
    components ``used`` (same shape; ``None``: ``|T| + |T|^T``, eigh's), for the precision
    estimate; ``basis``: add criterion 1b (eigh_subspace)."""

    T: Tensor
    grads: tuple[Tensor, ...]
    inv: Tensor
    used: Tensor | None
    basis: bool


def _pair_core(wi, wj, gwi, gwj, hv, vside, block, wmax, n):
    """(values excess, coupling size) of the pairs ``(i, j)`` given elementwise (broadcasting):
    eigenvalues, cotangents, ``hv = |herm(T)_ij|``, ``vside`` the eigenvalue side of the coupling;
    zero outside ``block``. Shared by the full tables and the band."""
    dg = (gwi - gwj).abs()
    gap = (wi - wj).abs()
    wmin = torch.minimum(wi.abs(), wj.abs()).clamp_min(torch.finfo(wi.dtype).tiny)
    gmax = torch.maximum(gwi.abs(), gwj.abs())
    # the curvature allowance only where the split is more than rounding (a user tolerance)
    split = gap > TIE_FACTOR * n * eps(wi.dtype) * wmax
    allowance = torch.where(split, CURVATURE_ALLOWANCE * gmax * gap / wmin, torch.zeros_like(gap))
    values = torch.where(block, (dg - allowance).clamp_min(0) * wmax, torch.zeros_like(dg))
    coupling = torch.where(block, torch.minimum(vside.to(hv.dtype), hv), torch.zeros_like(hv))
    return values, coupling


def pair_tables(w: Tensor, gw: Tensor, T: Tensor, gaps: EighGaps, n: int) -> tuple[Tensor, Tensor]:
    """(values excess, coupling size) per in-cluster pair, (..., k, k), in units of the scale."""
    wd, gw = w.detach(), gw.detach()
    wmax = gaps.wmax[..., None]
    hv = herm(T.detach()).abs()
    return _pair_core(wd[..., :, None], wd[..., None, :], gw[..., :, None], gw[..., None, :], hv,
                      wmax * gw.abs()[..., :, None], gaps.block, wmax, n)


def band_stats(w: Tensor, gw: Tensor, T: Tensor, gaps: EighGaps, n: int, width: int) -> tuple[Tensor, Tensor, Tensor]:
    """Per matrix: the in-cluster gauge (``max |skew(T)|`` inside clusters, the phases included),
    values and coupling maxima of ``pair_tables``, from the pairs ``(i, i + d)``, ``0 < d <=
    width`` only: ``O(k width)`` instead of ``O(k^2)``, the same maxima when ``width`` is the
    ``cluster_width`` (the tables are symmetric: the coupling of a pair takes the larger of its
    two eigenvalue sides)."""
    wd, gw, T = w.detach(), gw.detach(), T.detach()
    k = wd.shape[-1]
    d = torch.arange(1, width + 1, device=wd.device)
    j = torch.arange(k, device=wd.device)[:, None] + d
    valid = j < k
    J = j.clamp_max(k - 1)
    JT = J.expand(T.shape[:-1] + (width,))
    Tij = T.gather(-1, JT)
    Tji = T.mT.gather(-1, JT)  # (T^T)_{i, j} = T_{j, i}
    block = (gaps.ids[..., :, None] == gaps.ids[..., J]) & valid
    wmax = gaps.wmax[..., None]
    gwi, gwj = gw[..., :, None], gw[..., J]
    hv = (Tij + Tji.conj()).abs() * 0.5
    sv = (Tij - Tji.conj()).abs() * 0.5
    values, coupling = _pair_core(wd[..., :, None], wd[..., J], gwi, gwj, hv,
                                  wmax * torch.maximum(gwi.abs(), gwj.abs()), block, wmax, n)
    gauge = _amax2(sv.masked_fill(~block, 0.0))
    return gauge, _amax2(values), _amax2(coupling)


class _Common(NamedTuple):
    """What every check needs, whether or not there are ties: computed once per backward.
    ``redo`` (0-dim bool, ``fast`` only): the fast part cannot decide, recompute exactly."""

    w: Tensor
    T: Tensor
    gw: Tensor
    thr: Tensor
    phase: Tensor
    basis: Tensor
    kappa: Tensor
    redo: Tensor | None


def _common(w: Tensor, gw: Tensor, gaps: EighGaps, n: int, p: Parts, fast: bool = False) -> _Common:
    """``fast`` (no n x n ``|.|``): the maxima of the n x n cotangents from ``abs2`` (exact where
    ``abs2_in_range`` of their ``max_component``) and, for the precision estimate, the bound ``max|w| max|inv|`` over all
    pairs instead of the pairs the cotangent uses; ``redo`` flags what this cannot decide (a
    square out of range, or a bound that would warn): the caller recomputes with ``fast=False``."""
    w, T, gw = w.detach(), p.T.detach(), gw.detach()
    dt = w.dtype
    r = math.sqrt(eps(dt))
    grads = tuple(g.detach() for g in p.grads)
    ok = torch.ones((), dtype=torch.bool, device=w.device)
    if fast:
        xs = tuple(x for x in (T,) + grads if x.shape[-1] and x.shape[-2])
        ok = torch.stack([ok] + [abs2_in_range(max_component(x), dt).all() for x in xs]).all()
        Tmax, gmax = _amax2(abs2(T)).sqrt(), [_amax2(abs2(g)).sqrt() for g in grads]
    else:
        Tabs = T.abs()
        Tmax, gmax = _amax2(Tabs), [_amax2(g.abs()) for g in grads]
    # scale = max|T| + max|w| max|gw| + max|g| per incoming gradient g
    scale = Tmax + sum(gmax, torch.zeros_like(Tmax))
    if gw.shape[-1]:
        scale = scale + gaps.wmax[..., 0] * gw.abs().amax(-1)
    thr = (r * scale).clamp_min(torch.finfo(dt).tiny)
    # the phases (the diagonal of skew(T) is i Im T_ii): the gauge check without ties
    if T.is_complex() and T.shape[-1]:
        phase = T.diagonal(dim1=-2, dim2=-1).imag.abs().amax(-1)
    else:
        phase = torch.zeros_like(thr)
    basis_r = torch.zeros_like(scale)
    if p.basis and T.shape[-1] > 1:
        gap = (w[..., :, None] - w[..., None, :]).abs()
        bound = torch.maximum(r * scale[..., None, None] * gap / gaps.wmax[..., None],
                              BASIS_FACTOR * n * eps(dt) * scale[..., None, None])
        basis_r = _amax2(torch.where(gaps.cluster, torch.zeros_like(gap),
                                     skew(T).abs() / bound.clamp_min(torch.finfo(dt).tiny)))
    inv = p.inv.detach().abs()
    if fast:
        kappa = _amax2(inv) * gaps.wmax[..., 0]
        redo = ~ok | (kappa.amax() * eps(dt) > PRECISION_TOL if kappa.numel() else ~ok)
        return _Common(w, T, gw, thr, phase, basis_r, kappa, redo)
    used_abs = Tabs + Tabs.mT if p.used is None else p.used.detach().abs()
    used = used_abs > eps(dt) * scale[..., None, None]
    kappa = _amax2(inv.masked_fill(~used, 0.0)) * gaps.wmax[..., 0]
    return _Common(w, T, gw, thr, phase, basis_r, kappa, None)


def tie_stats(w: Tensor, gw: Tensor, gaps: EighGaps, n: int, c: _Common, ties: bool = True,
              width: int | None = None) -> EighStats:
    """The criteria of the module notes per matrix, no host synchronisation. ``c``: the
    tie-independent part (``_common``); ``ties``: compute the in-cluster criteria (gauge inside
    clusters, values, coupling), over the whole ``(k, k)`` tables (``width=None``) or, when the
    ``cluster_width`` is known (read in the first host synchronisation), over the band of that
    width only (``band_stats``: the same numbers, ``O(k width)``)."""
    none = torch.zeros_like(c.thr)
    gauge, values, coupling = c.phase, none, none
    if ties and width is None:
        gauge = torch.maximum(gauge, _amax2(skew(c.T).abs().masked_fill(~gaps.cluster, 0.0)))
        values, coupling = (_amax2(t) for t in pair_tables(c.w, c.gw, c.T, gaps, n))
    elif ties and width > 0:
        band_gauge, values, coupling = band_stats(c.w, c.gw, c.T, gaps, n, width)
        gauge = torch.maximum(gauge, band_gauge)
    return EighStats(gauge / c.thr, c.basis, values / c.thr, coupling / c.thr, c.kappa)


def enforce(op: str, gauge: str, stats_fn, ties: Tensor, w: Tensor, gw: Tensor, T: Tensor,
            gaps: EighGaps, n: int, tol_hint: str) -> None:
    """Raise (or warn, ``gauge="warn"``) for the first failed check; apply the precision policy.
    ``stats_fn(t: float) -> EighStats``; ``ties``: the ``cluster_width`` (0-dim; 0: no
    cluster; -1: recompute the common part exactly, ``checked_backward``). One host synchronisation without ties, a second one at ties."""
    if w.numel() == 0:
        return
    stats, worst, kappa = screen(stats_fn, ties, 2, w.dtype)
    if max(worst) > 1:
        _fail(op, gauge, stats, worst, w, gw, T, gaps, n, tol_hint)
    check_precision(op, kappa, w.dtype,
                    "the eigenvector derivative (max|w| / smallest gap the loss uses)")


def _fail(op, gauge, stats, worst, w, gw, T, gaps, n, tol_hint) -> None:
    kind = next(i for i, v in enumerate(worst) if v > 1)
    b = _where(stats[kind])
    where = f" (batch index {b})" if b else ""
    tol_txt = f"tolerance {gaps.tol:.2g} * max|w|"
    if kind == 0:
        msg = (f"{op}: the loss depends on the gauge of the eigenvectors{where} (their phases, or "
               f"rotations inside a cluster of eigenvalues equal up to the {tol_txt}), so its "
               "derivative is not defined. Make the loss invariant (e.g. |V[..., j]^H x|^2, or the "
               "projector V_c V_c^H onto a whole cluster instead of one of its vectors)" + tol_hint)
        return raise_or_warn(GaugeError, msg, gauge)
    if kind == 1:
        msg = (f"{op}: the loss depends on the basis of the kept subspace{where}, not only on the "
               "subspace: eigh_subspace differentiates U1 U1^H and symmetric functions of the kept "
               "eigenvalues, not the individual eigenvectors (no rotation inside the kept block). "
               "Use difflinalg.eigh for losses of individual eigenvectors or of eigenvalues and "
               "eigenvectors jointly, difflinalg.eigh_function(A, f, df) for V f(w) V^H")
        return raise_or_warn(GaugeError, msg, gauge)
    table = pair_tables(w, gw, T, gaps, n)[kind - 2][b]
    flat = int(table.abs().reshape(-1).argmax())
    i = flat // table.shape[-1]
    wb, gwb = w[b].detach(), gw[b].detach()
    idx = _cluster_of(w, gaps, b, i)
    spread = float(wb[idx].max() - wb[idx].min())
    head = (f"{op}: the eigenvalues w[{idx}] ~ {float(wb[i]):.6g}{where} form a cluster (spread "
            f"{spread:.2e}, within the {tol_txt})")
    fix = "For V f(w) V^H use difflinalg.eigh_function(A, f, df) (exact at ties)" + tol_hint
    if kind == 2:
        msg = (f"{head}, but the loss gives them different cotangents gw[{idx}] = {_fmt(gwb[idx])}: "
               "at a tie only losses symmetric in a cluster's eigenvalues and invariant under its "
               "rotations have a derivative that the cotangents determine (an individual eigenvalue "
               "of a cluster is not differentiable there; a coupling such as <W, V f(w) V^H> is not "
               "determined); use the cluster's sum w[c].sum() for its eigenvalues. " + fix)
    else:
        hv = herm(T[b]).abs()[idx][:, idx]
        off = float((hv - torch.diag_embed(hv.diagonal())).amax())
        msg = (f"{head} that receives both an eigenvalue cotangent (gw = {float(gwb[i]):.3e}) and "
               f"in-cluster eigenvector cotangents (off-diagonal |herm(V_c^H gV_c)| = {off:.3e}): a "
               "loss coupling a cluster's eigenvalues with its vectors (<W, V f(w) V^H>, "
               "x^H V g(w) V^H x) has a derivative the cotangents do not determine at a tie. " + fix
               + "; a sum of a symmetric function of the eigenvalues and a loss of the eigenspaces "
               f"is exact: compute the two parts from separate {op} calls")
    raise_or_warn(DegenerateSpectrumError, msg, gauge)


def checked_backward(op: str, ctx, rule, w: Tensor, gw: Tensor, gaps: EighGaps, n: int,
                     wrapped: Tensor, parts, tol_hint: str, curv: EighGaps | None = None) -> Tensor:
    """The checks around a reverse rule ``rule(gw) -> gA`` (``eigh``, ``eigh_subspace``): raise
    (or NaN inside ``torch.func``), the precision policy, and the second-order curvature guards
    when the backward is differentiated. ``ctx``: ``gauge`` and ``token``; ``wrapped``: a
    cotangent (is it a ``torch.func`` tensor?); ``parts() -> Parts`` (computed only when the
    checks run); ``curv``: the clusters whose
    curvature the second-order rule drops (default ``gaps``)."""
    mode = check_mode(ctx, wrapped) if w.numel() else "skip"
    if mode == "poison" and ctx.token.forward:
        # reverse-over-forward inside torch.func (jacrev(jacfwd(f))): the cotangents are terms of
        # the tangent formula, which no check can judge (forward-over-reverse is skipped as well:
        # the two orders cannot be told apart here; its curvature guard still runs)
        mode = "skip"
    stats = None
    if mode != "skip":
        p = parts()
        if mode == "sync":
            common = _common(w, gw, gaps, n, p, fast=True)

            def stats_fn(t: float) -> EighStats:
                c = common
                if t < 0:  # see _common: exact magnitudes, the precision estimate on the used pairs
                    c, t = _common(w, gw, gaps, n, p), float(cluster_width(gaps))
                return tie_stats(w, gw, gaps, n, c, t > 0, int(t))

            # the cluster width, or -1 to redo exactly, read in the first sync
            ties = torch.where(common.redo, -1.0, cluster_width(gaps).to(w.dtype))
            enforce(op, ctx.gauge, stats_fn, ties, w, gw, p.T, gaps, n, tol_hint)
        else:
            stats = tie_stats(w, gw, gaps, n, _common(w, gw, gaps, n, p), True)
    second = torch.is_grad_enabled() or is_wrapped(wrapped)
    msg = CURVED_MSG.format(op=op, tol_hint=tol_hint)
    curv = gaps if curv is None else curv
    gw_in = curvature_guard(op, gw, curv, ctx.gauge, msg) if second and w.numel() else gw
    gA = rule(gw_in)
    if mode == "poison":
        gA = poison(op, gA, stats)
    elif mode == "sync" and second:
        gA = curvature_probe(op, gA, gw, w, curv, ctx.gauge, msg)
    return gA
