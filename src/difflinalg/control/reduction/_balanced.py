r"""Balanced truncation by the square-root method (Laub, Heath, Paige, Ward 1987; Tombs, Postlethwaite 1987).

With Gramian factors ``P = L_P L_P^H`` and ``Q = L_Q L_Q^H`` and the SVD ``L_Q^H L_P = U S V^H``,
the projections ``W = L_Q U_r S_r^{-1/2}``, ``V = L_P V_r S_r^{-1/2}`` (``W^H V = I``) give the
reduced model ``(W^H A V, W^H B, C V, D)``, balanced with Gramians ``S_r``. Only products of factors
are used, never ``P Q`` or a balancing transformation of the full system, so it is correct for
non-normal ``A`` and for numerically singular Gramians (factors from ``eigh`` with clipping). The
error bound ``||F - H||_inf <= 2 sum_{k>r} s_k`` holds (continuous time).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..._errors import InputError
from ..._utils import eps
from ..analysis._hankel import gramian_factor
from ..analysis._norms import controllability_gramian_of, observability_gramian_of
from ..analysis._stability import check_stable
from ..system._route import sparse_route
from ..system._statespace import StateSpace, check_system


def minimal_order(hsv: Tensor, dtype: torch.dtype | None = None, n_states: int = 0) -> int:
    """Numerical McMillan degree: the number of Hankel singular values above
    ``max(len(hsv), n_states) eps sigma_1`` (singular values below it are rounding)."""
    if hsv.numel() == 0 or float(hsv[0]) == 0.0:
        return 0
    tol = max(hsv.numel(), n_states) * eps(dtype or hsv.dtype) * float(hsv[0])
    return int((hsv > tol).sum())


def check_order(r, hsv: Tensor, dtype, n_states: int, name: str = "order") -> int:
    """Validate a reduced order: ``1 <= r < n_states`` and ``r <= minimal order`` (at equality the
    error is at the rounding level)."""
    if isinstance(r, bool) or not isinstance(r, int) or r < 1:
        raise InputError(f"{name}: expected a positive integer, got {r!r}")
    if r >= n_states:
        raise InputError(f"{name}: {r} is not below the target's order {n_states}; nothing to reduce: "
                         f"use the target itself, or choose {name} < {n_states}")
    k = minimal_order(hsv, dtype, n_states)
    if r > k:
        raise InputError(
            f"{name}: {r} exceeds the target's minimal order {k} (its Hankel singular values beyond "
            f"{k} are below {max(hsv.numel(), n_states)} eps sigma_1): an order-{k} model already "
            f"reproduces it to rounding; choose {name} <= {k}"
        )
    return r


def square_root_projection(Lp: Tensor, Lq: Tensor, r: int) -> tuple[Tensor, Tensor, Tensor]:
    """``(W, V, s)``: the square-root BT projections of order ``r`` and all the singular values
    ``s`` of ``Lq^H Lp`` (the Hankel singular values)."""
    U, s, Vh = torch.linalg.svd(Lq.mH @ Lp, full_matrices=False)
    d = s[:r].rsqrt().to(Lp.dtype)
    W = (Lq @ U[:, :r]) * d
    V = (Lp @ Vh[:r].mH) * d
    return W, V, s


@sparse_route("balanced_truncation")
def balanced_truncation(F: StateSpace, order: int, *, return_hsv: bool = False):
    """Balanced truncation of a stable system to ``order`` states (square-root method).

    Args:
        F: stable ``StateSpace`` (continuous or discrete time, real or complex, unbatched), or a
            ``SparseSystem`` (above ``SPARSE_CROSSOVER`` states: low-rank square root, Hankel
            values from the factors, ``control.large``).
        order: reduced order, below the minimal order of ``F``.
        return_hsv: also return the Hankel singular values of ``F``.

    Returns:
        The reduced ``StateSpace`` (same time domain and dtype; ``D`` kept), and the Hankel
        singular values if ``return_hsv``.

    Raises:
        UnstableSystemError: ``F`` is not stable (names the pole).
        InputError: ``order`` not a positive integer below the minimal order of ``F``; a batched
            ``F``; not a system.

    Example::

        from difflinalg.control import balanced_truncation, builtin_model

        H, hsv = balanced_truncation(builtin_model("random"), 4, return_hsv=True)
        assert H.order == 4 and hsv.shape == (30,)
    """
    F = check_system(F, "F")
    if F.batch_shape != ():
        raise InputError(f"F: balanced_truncation takes one system, got a batch of shape {tuple(F.batch_shape)}")
    check_stable(F, "F")
    P = F.cached("P", lambda: controllability_gramian_of(F))
    Q = F.cached("Q", lambda: observability_gramian_of(F))
    Lp, Lq = gramian_factor(P), gramian_factor(Q)
    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise InputError(f"order: expected a positive integer, got {order!r}")
    W, V, s = square_root_projection(Lp, Lq, min(order, F.order))
    check_order(order, s.detach(), F.dtype, F.order)
    red = F.with_matrices(W.mH @ F.A @ V, W.mH @ F.B, F.C @ V, F.D)
    return (red, s) if return_hsv else red

