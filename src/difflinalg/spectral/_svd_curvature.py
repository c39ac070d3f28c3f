r"""Second derivatives of the SVD rules at ties: the check for losses curved in a cluster's values.

With the block tangent of ``_svd.py`` second derivatives are exact at clusters for the losses of
the exact class (``_svd_ties.py``) that are linear in each cluster's values: along a split of the
cluster, ``gS_i - gS_j`` must stay 0 to first order. A loss curved in a cluster's values
(``sum(S**2) = ||A||_F^2``) needs ``lim (gS_i - gS_j)/(s_i - s_j) = d_ii phi - d_ij phi`` (for a
symmetric ``phi``), a second derivative of the loss that no rule on ``(U, S, Vh)`` receives; the
rules would drop ``(d_ii phi - d_ij phi) herm(U_c^H dA V_c)`` off the diagonal.

* Forward-over-reverse (``torch.func.hessian``, ``jvp(grad(f))``, forward AD over backward):
  ``curvature_guard`` wraps ``gS`` in an identity whose forward-mode derivative sees the tangent
  ``dgS = (d^2 phi) dS``; unequal inside a cluster means curved: raise, NaN inside ``torch.func``.
  Not seen: directions that move a cluster's values equally (``dS_i = dS_j``), where the
  difference vanishes whatever the curvature.
* Double backward (outside ``torch.func``): ``curvature_probe`` computes ``(d gS/d S) z`` for a
  ``z`` of zero sum per cluster through the loss's own graph of ``gS`` (it exists because the
  first backward runs with ``create_graph=True``): zero iff the rows of ``d gS/d S`` are equal
  inside every cluster. If not, the returned gradient raises on any derivative (a lazy error: the
  first-order gradient itself is exact).
* Reverse-over-reverse inside ``torch.func`` (``jacrev(jacrev(f))``) is not checked: the second
  pass is a separate application of the Function whose cotangents mix the loss's curvature with
  terms of the first backward's formula.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor

from .._errors import DegenerateSpectrumError, GaugeWarning, TransformCheckWarning
from .._rule import Rule
from .._utils import eps, is_wrapped, warn_once


def _amax2(x: Tensor) -> Tensor:
    return x.amax(dim=(-2, -1)) if x.shape[-1] and x.shape[-2] else x.new_zeros(x.shape[:-2])


def _curved(dg: Tensor, block: Tensor) -> Tensor:
    """Per matrix: the tangent ``dg`` differs inside a cluster (beyond rounding of its size)."""
    d = (dg[..., :, None] - dg[..., None, :]).abs() * block
    size = dg.abs().amax(-1, keepdim=True)[..., None] if dg.shape[-1] else d
    return _amax2(d - math.sqrt(eps(dg.dtype)) * size) > 0


CURVED_MSG = (
    "{op}: the loss is curved in the singular values of a cluster of (nearly) equal singular "
    "values (its gradient gS changes differently for values of one cluster), so its second "
    "derivative at the tie needs the limit (gS_i - gS_j)/(s_i - s_j), which no rule on "
    "(U, S, Vh) has. Write the loss through a matrix function that is exact there "
    "(difflinalg.svd_function for U f(S) V^H; sum f(s_i) = trace of "
    "difflinalg.hermitian_function(A^H A, g) with g(x) = f(sqrt(x))), or pass degeneracy_tol=0.0 "
    "if the singular values are genuinely distinct"
)


class _CurvatureGuard(Rule):
    """Identity on ``gS`` whose forward-mode derivative checks that the tangent of ``gS`` is equal
    inside every cluster (forward-over-reverse: ``torch.func.hessian``, ``jvp(grad(...))``)."""

    @staticmethod
    def forward(gS: Tensor, block: Tensor, op: str, gauge: str, msg: str):
        return gS.clone()

    @staticmethod
    def save(ctx, inputs, output):
        _, block, ctx.op, ctx.gauge, ctx.msg = inputs
        return (block,)  # for both passes: vmap's generated backward expects its saved tensors

    @staticmethod
    def gradients(ctx, block, g):
        return g.clone()

    @staticmethod
    def tangents(ctx, block, dgS, *_):
        bad = _curved(dgS, block)
        if is_wrapped(dgS):
            warn_once(f"{ctx.op}-curvature", f"{ctx.op}: inside torch.func the second-order check "
                      "(a loss curved in the values of a cluster of equal eigen- or singular "
                      "values) cannot "
                      "raise: such a second derivative is NaN instead of a DegenerateSpectrumError",
                      TransformCheckWarning)
            return torch.where(bad[..., None], torch.full_like(dgS, float("nan")), dgS)
        if bool(bad.any()):
            _raise_or_warn(ctx.msg, ctx.gauge)
        return dgS.clone()


def _raise_or_warn(msg: str, gauge: str) -> None:
    if gauge == "error":
        raise DegenerateSpectrumError(msg)
    warnings.warn(msg, GaugeWarning, stacklevel=3)


def curvature_guard(op: str, gS: Tensor, gaps, gauge: str, msg: str | None = None) -> Tensor:
    """``gS`` with the forward-over-reverse curvature check attached (identity in value);
    ``gauge`` as in ``svd`` ("ignore": nothing attached). ``gaps``: anything with the bool
    ``block`` (in-cluster, off-diagonal pairs) of the values ``gS`` belongs to (shared with
    ``eigh``); ``msg``: the error message (default: the SVD's)."""
    if gauge == "ignore":
        return gS
    return _CurvatureGuard.apply(gS, gaps.block, op, gauge, msg or CURVED_MSG.format(op=op))


class _RaiseOnDerivative(Rule):
    """Identity whose derivatives (reverse and forward) raise ``DegenerateSpectrumError`` (or
    warn ``GaugeWarning`` and pass through, ``gauge="warn"``)."""

    @staticmethod
    def forward(x: Tensor, msg: str, gauge: str):
        return x.clone()

    @staticmethod
    def save(ctx, inputs, output):
        _, ctx.msg, ctx.gauge = inputs
        return ()

    @staticmethod
    def gradients(ctx, g):
        _raise_or_warn(ctx.msg, ctx.gauge)
        return g

    @staticmethod
    def tangents(ctx, dx, *_):
        _raise_or_warn(ctx.msg, ctx.gauge)
        return dx.clone()


def curvature_probe(op: str, gA: Tensor, gS: Tensor, S: Tensor, gaps, gauge: str,
                    msg: str | None = None) -> Tensor:
    """Double backward (outside ``torch.func``): if ``gS`` depends on ``S`` unequally inside a
    cluster, any derivative of the returned ``gA`` raises (a lazy error: a first-order gradient
    taken with ``create_graph=True`` stays usable). Test: ``J = d gS / d S`` has equal rows inside
    every cluster iff ``J z = 0`` for ``z`` of zero sum per cluster; judged against ``|J o|``
    (``o`` the clusters' indicator) and ``|gS| / s_max``. Two extra backward passes through the
    loss's graph of ``gS``."""
    if not gS.requires_grad or is_wrapped(gS) or not bool(gaps.block.any()):
        return gA
    Sd = S.detach()
    member = gaps.block.any(-1)
    o = member.to(Sd.dtype)
    z = torch.cos(1.0 + 2.0 * torch.arange(Sd.shape[-1], device=Sd.device, dtype=Sd.dtype)) * o
    cl = gaps.cluster.to(Sd.dtype) * o[..., None, :]
    z = (z - (cl @ z[..., None])[..., 0] / cl.sum(-1).clamp_min(1)) * o  # zero sum per cluster
    rz, = torch.autograd.grad(gS, S, z, retain_graph=True, allow_unused=True)
    if rz is None:
        return gA
    ro, = torch.autograd.grad(gS, S, o, retain_graph=True, allow_unused=True)
    smax = Sd.abs().amax(-1, keepdim=True)
    ref = gS.detach().abs().amax(-1, keepdim=True) / smax.clamp_min(torch.finfo(Sd.dtype).tiny)
    if ro is not None:
        ref = ref + ro.detach().abs().amax(-1, keepdim=True)
    curved = (rz.detach().abs() * o > math.sqrt(eps(Sd.dtype)) * ref).any()
    if not bool(curved):
        return gA
    return _RaiseOnDerivative.apply(gA, msg or CURVED_MSG.format(op=op), gauge)
