"""The gauge check of complete-mode QR/LQ (``_qr``): the last ``m - n`` columns ``Q2`` of ``Q`` are
determined only up to ``Q2 -> Q2 W`` (``W`` unitary), and a loss has a derivative that does not depend
on that arbitrary basis exactly when ``Q2^H gQ2`` is Hermitian (``_qr``'s module docstring). The check
is exact when ``m - n <= 8``, else a sketch on 8 fixed probe columns (O(m (m - n)) work per probe)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._errors import GaugeError
from .._utils import eps, is_wrapped

#: probe columns of the sketched check (exact below this many columns of Q2)
_GAUGE_PROBES = 8


def _gauge_probes(p: int, like: Tensor) -> Tensor:
    """Fixed (p, q) probe matrix (deterministic, dense, full column rank) for the gauge check."""
    q = min(p, _GAUGE_PROBES)
    if p <= _GAUGE_PROBES:
        return torch.eye(p, dtype=like.dtype, device=like.device)
    i = torch.arange(p, dtype=torch.float64).unsqueeze(-1)
    j = torch.arange(q, dtype=torch.float64).unsqueeze(0)
    V = torch.cos((i + 1) * (j + 1) * (math.sqrt(2.0) + 0.1 * j) + 0.3 * i)  # quasi-random, no RNG state
    return V.to(dtype=like.dtype, device=like.device)


def check_gauge_invariant(Q2: Tensor, gQ2: Tensor, op: str) -> None:
    """Raise ``GaugeError`` unless ``Q2^H gQ2`` is Hermitian (the loss is invariant under Q2 -> Q2 W)."""
    if is_wrapped(Q2) or is_wrapped(gQ2) or gQ2.numel() == 0:
        return
    with torch.no_grad():
        V = _gauge_probes(Q2.shape[-1], Q2)
        BV = Q2.mH @ (gQ2 @ V)
        BhV = gQ2.mH @ (Q2 @ V)
        skew = torch.linalg.matrix_norm(BV - BhV)
        scale = torch.linalg.matrix_norm(BV) + torch.linalg.matrix_norm(BhV)
        bad = skew > math.sqrt(eps(Q2.dtype)) * scale
        if bool(bad.any()):
            rel = float((skew / scale.clamp_min(torch.finfo(scale.dtype).tiny)).amax())
            if op == "qr":
                part, gauge, ok = "last m - n columns Q2 of Q", "Q2 -> Q2 W", "Q2 Q2^H, ||Q2^H x||"
            else:
                part, gauge, ok = "last n - m rows Q2 of Q", "Q2 -> W Q2", "Q2^H Q2, ||Q2 x||"
            raise GaugeError(
                f"Q: the loss depends on the basis of the {part} (complete mode), which is only "
                f"determined up to a unitary factor W ({gauge}); the relative non-invariant part of "
                f"its gradient is {rel:.2e}. Make the loss invariant (use {ok}, ...) or use "
                "mode='reduced'"
            )
