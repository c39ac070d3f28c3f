"""Rank-deficiency helpers of the QR/LQ rules (``_qr``): which pivots are numerically zero, the
checks that decide between the leading-block gradient and a named error, and the NaN marking inside
``torch.func`` transforms. The mathematics is in ``_qr``'s module docstring."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from .._errors import InputError, TransformCheckWarning
from .._utils import eps, warn_once


def deficient(R: Tensor) -> Tensor:
    """Boolean (..., k): ``|R_ii|`` numerically zero (rounding leaves a dependent column with
    ``|R_ii| ~ a few eps |A|``; a genuine one is far above)."""
    k = min(R.shape[-2], R.shape[-1])
    d = R.diagonal(dim1=-2, dim2=-1)[..., :k].abs()
    tol = 10 * max(R.shape[-2], R.shape[-1]) * eps(R.dtype) * d.amax(dim=-1, keepdim=True)
    return d <= tol


def rank_error(op: str, where: str, j: int, k: int, value: float, reason: str) -> InputError:
    what, fac = ("rows", "L") if op == "lq" else ("columns", "R")
    lead = f"L[:, :{j}], Q[:{j}, :]" if op == "lq" else f"Q[:, :{j}], R[:{j}, :]"
    return InputError(
        f"A: {op} derivative of this loss is undefined at a rank-deficient A{where}: "
        f"|{fac}[{j}, {j}]| = {value:.3e} is negligible, so {what} 0..{j} of A are linearly "
        f"dependent and the factorization is not unique; {reason}. "
        f"Losses of the leading block ({lead}) are differentiable here; otherwise make the {what} "
        "independent (e.g. add a small multiple of the identity) or use difflinalg's SVD for "
        "rank-revealing work"
    )


def first_deficient(R: Tensor) -> Tensor | None:
    """Per batch entry, the first numerically zero pivot index (k where none); None if there is none
    anywhere. Eager only (one host synchronisation)."""
    bad = deficient(R)
    if not bool(bad.any()):
        return None
    k = bad.shape[-1]
    idx = torch.arange(k, device=R.device).expand_as(bad)
    return torch.where(bad, idx, torch.full_like(idx, k)).amin(dim=-1)


def poison_transformed(R: Tensor, grads: Tensor, op: str) -> Tensor:
    """Inside torch.func: NaN for the rank-deficient batch entries (no host sync), warn once."""
    warn_once(
        f"{op}-rank",
        f"{op}: inside a torch.func transform the rank-deficiency check cannot raise; derivatives at "
        "rank-deficient batch entries are NaN (call outside the transform for a named error and for "
        "the leading-block gradient)",
        TransformCheckWarning,
    )
    bad = deficient(R).any(dim=-1)[..., None, None]
    return torch.where(bad, torch.full_like(grads, float("nan")), grads)


def unravel(i: int, shape: torch.Size) -> tuple[int, ...]:
    """Multi-index of flat index ``i`` in ``shape``."""
    return tuple(int(t) for t in torch.unravel_index(torch.tensor(i), tuple(shape)))


def trailing_small(g: Tensor | None, part: Tensor | None) -> Tensor | bool:
    """``||part|| <= sqrt(eps) ||g||`` per batch entry (True without a cotangent)."""
    if g is None:
        return True
    whole = torch.linalg.matrix_norm(g) if g.numel() else g.new_zeros(g.shape[:-2]).real
    tail = torch.linalg.matrix_norm(part) if part.numel() else torch.zeros_like(whole)
    return tail <= math.sqrt(eps(g.dtype)) * whole


def vjp_deficient(full: Callable, leading: Callable, Q: Tensor, R: Tensor, A: Tensor,
                  gQ: Tensor | None, gR: Tensor | None, op: str, first: Tensor) -> Tensor:
    """Eager backward when some batch entries are rank-deficient (``first`` < k there): the
    leading-block rule for those (after checking their trailing cotangents are negligible), the
    full rule for the others. A loop over the distinct values of ``first`` (at most k), not the batch.
    ``full(Q, R, A, gQ, gR, op)`` and ``leading(Q, R, A, gQ, gR, j)`` are ``_qr``'s two rules."""
    k = min(Q.shape[-2], R.shape[-1])
    batch = A.shape[:-2]
    flat = lambda t: None if t is None else t.reshape(-1, *t.shape[-2:])  # noqa: E731
    Qf, Rf, Af, gQf, gRf, ff = flat(Q), flat(R), flat(A), flat(gQ), flat(gR), first.reshape(-1)
    out = torch.zeros_like(Af)
    for j in sorted(set(ff.tolist())):
        sel = (ff == j).nonzero()[:, 0]
        pick = lambda t: None if t is None else t.index_select(0, sel)  # noqa: E731
        q, r, a, gq, gr = pick(Qf), pick(Rf), pick(Af), pick(gQf), pick(gRf)
        if j == k:
            g = full(q, r, a, gq, gr, op)
        else:
            okQ = trailing_small(gq, None if gq is None else gq[..., j:])
            okR = trailing_small(gr, None if gr is None else gr[..., j:, :])
            ok = torch.as_tensor(okQ) & torch.as_tensor(okR)
            if not bool(ok.all()):
                i = int((~ok).nonzero()[0, 0]) if ok.ndim else 0
                where = f" (batch index {unravel(int(sel[i]), batch)})" if batch else ""
                if not bool(torch.as_tensor(okQ).all()):
                    part = f"Q[{j}:, :]" if op == "lq" else f"Q[:, {j}:]"
                else:
                    part = f"L[:, {j}:]" if op == "lq" else f"R[{j}:, :]"
                raise rank_error(op, where, j, k, float(r[i, j, j].abs()),
                                  f"the loss depends on its trailing part {part}, which has no "
                                  "derivative at this point (see the qr docstring)")
            g = leading(q, r, a, gq, gr, j)
        out = out.index_copy(0, sel, g)
    return out.reshape(A.shape)
