r"""What the SVD rules check in backward at (near-)repeated and zero singular values.

Ties. Singular values closer than ``tol * s_max`` form clusters (chain clustering, ``_gaps``) and
the pairs inside a cluster are masked in the rules (``_svd.py``). ``degeneracy_tol=None`` (the
default) uses ``tol = TIE_FACTOR * max(m, n) * eps``: the SVD's backward error is
``O(max(m, n) eps ||A||_2)``, so an exact tie comes out split by up to that much (measured over
ranks 2..128, real/complex, single/double: at most ``0.41 max(m, n) eps s_max``, median 0.04),
and a gap that small carries no information. ``0.0`` masks exact ties only, a float ``t``
masks gaps up to ``t * s_max``.

The exact class. Let ``L(U, S, V)`` be a loss and ``phi(A) = L(svd(A))``. Write
``X = U^H gU``, ``Y = V^H gV`` and ``H = U^H grad(phi) V`` (the core of the exact gradient). At
a cluster ``c`` with value ``sigma > 0`` the map ``(U, S, V) -> U S V^H`` has a kernel (the joint
rotations ``(U_c Q, V_c Q)``), and its image misses exactly the directions
``dA = U_c E V_c^H`` with ``E`` Hermitian and off-diagonal: along them the cluster splits along
the eigenvectors of ``E``, a jump of the basis. So the cotangents ``(gU, gS, gV)`` determine
every part of ``H`` except ``herm(H_cc)`` off the diagonal, and no function of them can supply
that part; the rules set it to zero (``diag(gS_c)``). They are therefore exact precisely for the
losses whose ``herm(H_cc)`` is diagonal in the computed basis. Since that basis is arbitrary,
the class is the losses with ``herm(H_cc) = g I``: those invariant under ``(U_c, V_c) -> (U_c Q,
V_c Q)`` for every unitary ``Q`` *and at every nearby split of the cluster's values* and
symmetric in the cluster's values. Proof of sufficiency: along ``A + t U_c E V_c^H`` the SVD is
``(U_c Q, sigma + t e, V_c Q)`` with ``E = Q diag(e) Q^H``; invariance removes ``Q``, symmetry
gives ``dphi = g sum(e) = g tr(E)``. Examples: projectors ``U_c U_c^H``, ``V_c V_c^H`` and
``U_c V_c^H`` of whole clusters, any loss of the singular subspaces, symmetric functions of the
values (``sum S``, ``||A||_F^2``, ``log det``), and sums and products of these.

Outside it: ``<W, U f(S) V^H>`` is smooth in ``A`` (``svd_function``), invariant at the tie,
but ``herm(H_cc) = f'(sigma) herm(U_c^H W V_c)``. Two losses with the same cotangents show that
nothing can be read off them: ``sum(S_c) + <W, U_c V_c^H>`` (exact class, ``herm(H_cc) = I``)
and ``<W, U f(S) V^H>`` with ``f(sigma) = f'(sigma) = 1`` and ``diag(U_c^H W V_c) = 1`` have equal
``(gU, gS, gV)`` in the cluster and different gradients. The missing part is also
``lim (skew(X + Y))_ij / (s_j - s_i)``: the derivative of the loss's rotation cotangent with
respect to the cluster's split, a mixed second derivative of ``L`` that a backward never sees.

Criteria (backward; ``r = sqrt(eps)``, ``scale = |X| + |Y| + s_max |gS| + |gU| + |gVh|`` per
matrix, maxima of absolute values):

1. gauge: ``skew(X + Y)`` inside clusters (the diagonal: the phases), ``skew(X - Y)`` where
   ``s_i + s_j`` is masked, the free vectors of zero values and extra columns vanish (``<= r
   scale``): ``GaugeError``. Necessary for the class (the derivative along the gauge).
2. values: ``gS`` is equal inside every cluster away from zero (up to ``r scale / s_max`` and a
   curvature allowance ``8 |gS| |s_i - s_j| / min(s_i, s_j)`` for clusters of a user tolerance):
   necessary (a symmetric function has equal partials at a tie). Catches every coupling whose
   diagonal cotangents differ in the computed basis, i.e. the generic one.
3. coupling: a cluster whose values get a cotangent (``|gS_c| s_max > r scale``) and whose
   vectors get an off-diagonal Hermitian cotangent (``herm(X_cc)`` or ``herm(Y_cc)``, ``> r
   scale``). For the couplings ``<W, U f(S) V^H>`` and ``x^H U g(S) U^H x`` with ``f(sigma)``,
   ``g(sigma) != 0`` the missing part is proportional to exactly that off-diagonal block
   (``f'(sigma)/f(sigma) herm(X_cc)``), so it is caught also when criterion 2 is met by
   coincidence (structured input: ``A`` diagonal, ``W`` all ones). False alarm, by the proof
   above unavoidable for any such criterion: one svd call whose cluster receives both a value
   loss and a vector loss (``sum(S) + <W, U_c U_c^H>``); compute the two from separate calls
   (each node then gets one kind of cotangent). Couplings with ``f(sigma) = 0`` and equal
   diagonal cotangents escape every criterion.
4. zero: ``gS`` vanishes at masked zero singular values: ``s`` is not differentiable at 0 and
   ``u_i v_i^H`` there is an arbitrary pairing of null vectors (``sum(S)`` at a rank-deficient
   matrix); losses even in ``s`` (``S**2``) pass.

2-4 raise ``DegenerateSpectrumError`` naming the batch index, the cluster and the cotangent.
Inside ``torch.func`` transforms (no host synchronisation) the gradient of the offending
matrices is NaN and ``TransformCheckWarning`` is issued once. ``gauge="ignore"`` skips all.

Second order: ``_svd_curvature.py`` (a loss curved in a cluster's values). Forward mode (``jvp``,
forward-over-forward) receives only ``dA`` and nothing about the loss, so it cannot check: it is
exact for the class and otherwise returns the derivative of the class part (documented in
``svd``).

Precision (``docs/conventions.md``): ``kappa = s_max max(1/gap)`` over the unmasked gaps the
cotangent uses (``|X_ij| + |X_ji| + |Y_ij| + |Y_ji| > eps scale``; ``s_i + s_j`` likewise,
``s_i`` where the complement cotangent of column ``i`` is nonzero; the diagonal ``1/(2 s_i)``
only for complex input), read in the same host synchronisation as the checks. Cost: the
criteria 2-4 and the cluster part of 1 are computed only when a cluster or a zero value exists
(``has_ties``, read in that synchronisation; a second one then); the measured overhead is in
``benchmarks/README.md`` ("svd_truncated").
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import torch
from torch import Tensor

from .._errors import DegenerateSpectrumError, GaugeError, GaugeWarning, TransformCheckWarning
from .._utils import check_precision, eps, herm, is_wrapped, skew, warn_once
from ._gaps import TIE_FACTOR, default_tol  # noqa: F401 - TIE_FACTOR re-exported

CURVATURE_ALLOWANCE = 8.0


def resolve_tol(degeneracy_tol: float | None, m: int, n: int, dtype: torch.dtype) -> float:
    """The relative clustering tolerance: ``None`` -> ``TIE_FACTOR * max(m, n) * eps(dtype)``
    (``_gaps.default_tol``, shared with ``eigh``)."""
    return default_tol(degeneracy_tol, max(m, n), dtype)


class TieStats(NamedTuple):
    """Per-matrix (shape ``batch``) violation ratios (a check fails where > 1) and ``kappa``."""

    gauge: Tensor
    zero: Tensor
    values: Tensor
    coupling: Tensor
    kappa: Tensor

    def bad(self) -> Tensor:
        return (self.gauge > 1) | (self.zero > 1) | (self.values > 1) | (self.coupling > 1)


def _amax2(x: Tensor) -> Tensor:
    return x.amax(dim=(-2, -1)) if x.shape[-1] and x.shape[-2] else x.new_zeros(x.shape[:-2])


def abs2(x: Tensor) -> Tensor:
    """``|x|^2`` elementwise, real: ``re^2 + im^2`` (complex), 3-8x cheaper on CPU than
    ``x.abs()`` (``hypot``) and no square root; exact where ``abs2_in_range`` holds."""
    if not x.is_complex():
        return x.square()
    a = x.real.square()
    return a.addcmul_(x.imag, x.imag)


def max_component(x: Tensor) -> Tensor:
    """``max(|Re x_ij|, |Im x_ij|)`` per matrix of (..., a, b) ``x`` (not empty), exact; one
    ``amax`` and one ``amin`` over the real view, no temporary."""
    if x.is_conj():
        x = x.conj()  # the same magnitudes, and a real view exists
    if x.is_neg():
        x = x.resolve_neg()
    v = torch.view_as_real(x).flatten(-3) if x.is_complex() else x.flatten(-2)
    return torch.maximum(v.amax(-1), -v.amin(-1))


def abs2_in_range(m: Tensor, dtype: torch.dtype) -> Tensor:
    """Whether ``abs2`` is exact enough for the checks on matrices whose ``max_component`` is
    ``m``: ``2 m^2`` finite (no square overflows) and ``m`` either 0 or above ``sqrt(tiny) /
    eps`` (an entry whose square underflows is then below ``eps max|x|``, under every threshold
    of the checks). Then ``sqrt(max abs2(x))`` is ``max|x|`` up to rounding."""
    fi = torch.finfo(dtype)
    return (m < math.sqrt(fi.max / 2)) & ((m == 0) | (m > math.sqrt(fi.tiny) / fi.eps))


def _pair_tables(S: Tensor, gS: Tensor, X: Tensor, Y: Tensor, gaps):
    """(values excess, coupling size) per in-cluster pair away from zero, (..., k, k)."""
    Sd = S.detach()
    smax = Sd[..., :1, None]
    block = gaps.block  # in-cluster, off-diagonal, away from zero
    dgs = (gS[..., :, None] - gS[..., None, :]).abs()
    gap = (Sd[..., :, None] - Sd[..., None, :]).abs()
    smin = torch.minimum(Sd[..., :, None], Sd[..., None, :]).clamp_min(torch.finfo(Sd.dtype).tiny)
    gmax = torch.maximum(gS[..., :, None].abs(), gS[..., None, :].abs())
    allowance = CURVATURE_ALLOWANCE * gmax * gap / smin
    values = torch.where(block, (dgs - allowance).clamp_min(0) * smax, torch.zeros_like(dgs))
    hv = herm(X).abs() + herm(Y).abs()
    value_side = smax * gS.abs()[..., :, None]
    coupling = torch.where(block, torch.minimum(value_side.to(hv.dtype), hv), torch.zeros_like(hv))
    return values, coupling


def has_ties(S: Tensor, gaps) -> Tensor:
    """Whether any matrix has a cluster of two or more values or a (masked) zero value (a 0-dim
    bool tensor): only then do the criteria 2-4 and the cluster part of 1 have anything to do."""
    return gaps.block.any() | (S <= gaps.tol[..., 0]).any()


def tie_stats(S: Tensor, X: Tensor, Y: Tensor, gS: Tensor, gaps, extra: tuple[Tensor, ...] = (),
              grads: tuple[Tensor, ...] = (), complement: tuple[Tensor, ...] = (),
              comp_inv: Tensor | None = None, ties: bool = True) -> TieStats:
    """The criteria of the module notes, per matrix, without host synchronisation.

    ``extra``: components that must vanish (free vectors, extra columns), (..., *, *);
    ``grads``: incoming gradients (for the scale); ``complement``: the complement cotangents
    ``(I - U U^H) gU`` and ``(I - V V^H) gV`` (..., *, k) whose nonzero columns use
    ``comp_inv`` (..., k; default ``1/s_i``). ``ties=False`` (no cluster and no zero value,
    ``has_ties``): only the phases, ``extra`` and the precision estimate are computed.
    """
    S, gS, X, Y = S.detach(), gS.detach(), X.detach(), Y.detach()
    dt = S.dtype
    r = math.sqrt(eps(dt))
    smax = S[..., 0]
    scale = _amax2(X.abs()) + _amax2(Y.abs()) + smax * gS.abs().amax(-1)
    for g in grads:
        scale = scale + _amax2(g.detach().abs())
    thr = (r * scale).clamp_min(torch.finfo(dt).tiny)
    none = torch.zeros_like(scale)
    # 1. gauge (without ties: the phases Im(X_ii + Y_ii) of complex input only)
    if ties:
        G2m = (S[..., None, :] + S[..., :, None]).abs() <= gaps.tol
        Xa, Ya = skew(X), skew(Y)
        gauge = torch.maximum(_amax2((Xa + Ya).abs() * gaps.cluster), _amax2((Xa - Ya).abs() * G2m))
    elif X.is_complex():
        gauge = (X.diagonal(dim1=-2, dim2=-1) + Y.diagonal(dim1=-2, dim2=-1)).imag.abs().amax(-1)
    else:
        gauge = none
    for e in extra:
        gauge = torch.maximum(gauge, _amax2(e.detach().abs()))
    # 2, 3, 4
    values, coupling, zero_v = none, none, none
    if ties:
        values, coupling = (_amax2(t) for t in _pair_tables(S, gS, X, Y, gaps))
        zero = S <= gaps.tol[..., 0]
        zero_v = (gS.abs() * zero).amax(-1) * smax
    # precision: inverse gaps the cotangent uses, in units of s_max
    XY = X.abs() + Y.abs()
    used = (XY + XY.mT) > eps(dt) * scale[..., None, None]
    if not X.is_complex():  # the diagonal 1/(2 s_i) multiplies Im(X_ii - Y_ii) = 0 exactly
        used = used & ~torch.eye(used.shape[-1], dtype=torch.bool, device=used.device)
    kappa = _amax2((gaps.G1.detach().abs() + gaps.G2.detach().abs()) * used)
    inv_c = (gaps.Sinv if comp_inv is None else comp_inv).detach().abs()
    for c in complement:
        cols = c.detach().abs().amax(-2) > eps(dt) * scale[..., None]
        kappa = torch.maximum(kappa, (inv_c * cols).amax(-1))
    return TieStats(gauge / thr, zero_v / thr, values / thr, coupling / thr, kappa * smax)


# ----------------------------------------------------------------------------------------------
# Enforcement.


class CheckToken:
    """Shared by every application of one op call: ``torch.func`` nests reverse levels by
    applying the Function once per level (separate ``ctx`` objects), and the outer level's
    backward is the second-derivative pass, whose cotangents come from the first backward
    (formula terms that no check can judge): ``done`` makes the checks run once per call."""

    __slots__ = ("done", "forward")

    def __init__(self) -> None:
        self.done = False
        self.forward = False  # the op's forward-mode rule ran (set by ops that use it, eigh)


def check_mode(ctx, g: Tensor) -> str:
    """"skip" (gauge="ignore", or a repeated call for a second derivative), "poison" (inside
    ``torch.func``: NaN, no synchronisation) or "sync" (raise/warn after one host
    synchronisation). ``ctx.token``: the op call's ``CheckToken``."""
    if ctx.gauge == "ignore" or ctx.token.done:
        return "skip"
    if torch.is_grad_enabled() or is_wrapped(g):
        ctx.token.done = True
    return "poison" if is_wrapped(g) else "sync"


def poison(op: str, gA: Tensor, stats: TieStats) -> Tensor:
    """NaN for the matrices that fail a check (inside ``torch.func``), and a one-time warning."""
    warn_once(f"{op}-ties", f"{op}: inside torch.func the gauge and tie checks of backward cannot "
              "raise (no host synchronisation): the gradient of a matrix that fails them is NaN "
              "instead of a GaugeError/DegenerateSpectrumError", TransformCheckWarning, stacklevel=4)
    bad = stats.bad()
    return torch.where(bad[..., None, None], torch.full_like(gA, float("nan")), gA)


def _where(stats_field: Tensor) -> tuple[int, ...]:
    flat = int(stats_field.reshape(-1).argmax())
    return tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), stats_field.shape)) \
        if stats_field.ndim else ()


def _cluster_of(S: Tensor, gaps, b: tuple, i: int) -> list[int]:
    return [int(j) for j in torch.nonzero(gaps.cluster[b + (i,)]).reshape(-1)]


def _fmt(vals) -> str:
    return "[" + ", ".join(f"{float(v):.4g}" for v in vals) + "]"


def screen(stats_fn, ties: Tensor, n_first: int, dtype: torch.dtype) -> tuple[NamedTuple, list[float], float]:
    """Run the backward checks with as few host synchronisations as possible: the first
    ``n_first`` checks (those that need no clusters) and ``kappa`` in one, and, only if
    ``ties`` (0-dim bool, or a count such as eigh's cluster width) says a cluster exists, every
    check in a second one.

    ``stats_fn(ties)`` (``False``, then the value of ``ties`` read, truthy) returns a stats tuple whose last field is ``kappa`` and whose other
    fields are violation ratios (a check fails where > 1). Returns ``(stats, worst, kappa)``:
    ``worst`` the largest ratio of each check (0 for checks not run)."""
    stats = stats_fn(False)
    n_checks = len(stats) - 1
    vals = torch.stack([f.amax() for f in stats[:n_first]] + [stats.kappa.amax(), ties.to(dtype)]).tolist()
    worst, kappa, t = vals[:n_first] + [0.0] * (n_checks - n_first), vals[-2], vals[-1]
    if t:
        stats = stats_fn(t)
        *worst, kappa = torch.stack([f.amax() for f in stats]).tolist()
    return stats, worst, kappa


def raise_or_warn(cls: type[Exception], msg: str, gauge: str) -> None:
    """``gauge="error"``: raise ``cls(msg)``; ``"warn"``: the same message as a ``GaugeWarning``
    (pointing at the caller of the rule's backward: this is called from ``_fail``, from ``enforce``)."""
    if gauge == "error":
        raise cls(msg)
    warnings.warn(msg, GaugeWarning, stacklevel=5)


def enforce(op: str, gauge: str, stats_fn, ties: Tensor, S: Tensor, gS: Tensor, X: Tensor,
            Y: Tensor, gaps, tol_rel: float) -> None:
    """Raise (or warn, ``gauge="warn"``) for the first failed check; apply the precision policy.

    ``stats_fn(ties: bool) -> TieStats``; ``ties``: ``has_ties``. One host synchronisation when
    there are no ties and everything passes (the common case), a second one at ties."""
    if S.numel() == 0:
        return
    stats, worst, kappa = screen(stats_fn, ties, 1, S.dtype)
    if max(worst) > 1:
        _fail(op, gauge, stats, worst, S, gS, X, Y, gaps, tol_rel)
    check_precision(op, kappa, S.dtype,
                    "the singular-vector derivative (s_max / smallest gap the loss uses)")


def _fail(op, gauge, stats, worst, S, gS, X, Y, gaps, tol_rel) -> None:
    kind = next(i for i, w in enumerate(worst[:4]) if w > 1)
    field = stats[kind]
    b = _where(field)
    where = f" (batch index {b})" if b else ""
    tol_txt = f"tolerance {tol_rel:.2g} * s_max"
    if kind == 0:
        msg = (
            f"{op}: the loss depends on the gauge of the singular vectors{where} (their phases, "
            "rotations inside a cluster of singular values equal up to the "
            f"{tol_txt}, or the vectors of zero singular values), so its derivative is not "
            "defined. Make the loss invariant (e.g. |U[..., j]^H x|^2, U[..., j] Vh[..., j, :], or "
            "the projector onto a whole cluster instead of one of its vectors); if the singular "
            "values are genuinely distinct, pass degeneracy_tol=0.0; gauge='ignore' returns the "
            "gradient in the symmetric gauge"
        )
        return raise_or_warn(GaugeError, msg, gauge)
    Sb, gSb = S[b].detach(), gS[b].detach()
    if kind == 1:
        zero = (Sb <= gaps.tol[b][..., 0]) & (gSb != 0)
        i = int(torch.nonzero(zero).reshape(-1)[0]) if bool(zero.any()) else int(Sb.argmin())
        msg = (
            f"{op}: the singular value S[{i}] = {float(Sb[i]):.3e}{where} is zero (within the "
            f"{tol_txt}) and the loss has the cotangent gS[{i}] = {float(gSb[i]):.3e} on it: a "
            "singular value is not differentiable at 0 (like |x|) and u_i v_i^H pairs arbitrary "
            "null vectors. Use a loss even in the singular values (e.g. S**2), "
            "difflinalg.svd_function with f(0) = 0, or regularize the matrix"
        )
    else:
        table = (_pair_tables(S, gS, X, Y, gaps)[kind - 2])[b]
        flat = int(table.abs().reshape(-1).argmax())
        i = flat // table.shape[-1]
        idx = _cluster_of(S, gaps, b, i)
        spread = float(Sb[idx].max() - Sb[idx].min())
        head = (f"{op}: the singular values S[{idx}] ~ {float(Sb[i]):.6g}{where} form a cluster "
                f"(spread {spread:.2e}, within the {tol_txt})")
        fix = ("For U f(S) V^H use difflinalg.svd_function(A, f, df) (exact at ties); if the "
               "singular values are genuinely distinct, pass degeneracy_tol=0.0")
        if kind == 2:
            msg = (f"{head}, but the loss gives them different cotangents gS[{idx}] = "
                   f"{_fmt(gSb[idx])}: at a tie only losses symmetric in a cluster's values and "
                   "invariant under its rotations have a derivative that the cotangents "
                   "determine (a coupling such as <W, U f(S) V^H> does not). " + fix)
        else:
            hv = (herm(X[b]).abs() + herm(Y[b]).abs())[idx][:, idx]
            off = float((hv - torch.diag_embed(hv.diagonal())).amax())
            msg = (f"{head} that receives both a value cotangent (gS = {float(gSb[i]):.3e}) and "
                   f"in-cluster singular-vector cotangents (off-diagonal |herm(U_c^H gU_c)| + "
                   f"|herm(V_c^H gV_c)| = {off:.3e}): a loss coupling a cluster's values with its "
                   "vectors (<W, U f(S) V^H>, x^H U g(S) U^H x) has a derivative the cotangents "
                   "do not determine at a tie. " + fix + "; a sum of a symmetric function of the "
                   "values and a loss of the singular subspaces is exact: compute the two parts "
                   "from separate svd calls")
    raise_or_warn(DegenerateSpectrumError, msg, gauge)
