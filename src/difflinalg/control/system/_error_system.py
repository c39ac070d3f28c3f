"""The error system ``F - H`` of two comparable systems (one time domain, one size), which the H2
and Hinf errors, ``StateSpace.__sub__`` and the reductions' reports are built on, and the check that
makes two arguments comparable (``check_comparable``)."""

from __future__ import annotations

import torch

from ..._errors import InputError
from ..._utils import check_same_dtype
from ._statespace import StateSpace, as_system

__all__ = ["check_comparable", "error_system"]


def check_comparable(F, H) -> tuple[StateSpace, StateSpace]:
    """``F`` and ``H`` as StateSpaces (``as_system``) of one time domain and one (outputs x inputs)
    size."""
    F, H = as_system(F, "F"), as_system(H, "H")
    if F.time != H.time:
        raise InputError(f"F, H: time domains differ ({F.time} and {H.time}); both must be {F.time}")
    if F.dt and H.dt and F.dt != H.dt:
        raise InputError(f"F, H: sampling periods differ (dt = {F.dt:g} and {H.dt:g}); resample one of them")
    if (F.n_outputs, F.n_inputs) != (H.n_outputs, H.n_inputs):
        raise InputError(f"F, H: sizes differ: F is {F.n_outputs} x {F.n_inputs} (outputs x inputs), "
                         f"H is {H.n_outputs} x {H.n_inputs}")
    return F, H


def error_system(F: StateSpace, H: StateSpace) -> StateSpace:
    """The system ``F - H``: ``([A_F 0; 0 A_H], [B_F; B_H], [C_F, -C_H], D_F - D_H)``.

    Args:
        F, H: systems (``as_system`` converts foreign ones) of one time domain, one size
            (outputs x inputs) and one dtype; orders ``n_F``, ``n_H`` may differ; batch shapes
            broadcast.

    Returns:
        ``StateSpace`` of order ``n_F + n_H`` (block-diagonal state matrix), the broadcast batch
        shape, the time domain of ``F`` (``dt``: that of ``F``, else of ``H``); differentiable in
        the matrices of both.

    Raises:
        InputError: not systems; time domains, sampling periods, sizes or dtypes differ.

    Example::

        from difflinalg.control import builtin_model, error_system

        F = builtin_model("random")
        E = error_system(F, F)  # also F - F
        assert E.order == 2 * F.order and float(E.h2_norm()) < 1e-6 * float(F.h2_norm())
    """
    F, H = check_comparable(F, H)
    check_same_dtype(F=F.A, H=H.A)
    batch = torch.broadcast_shapes(F.batch_shape, H.batch_shape)
    nF, nH = F.order, H.order

    def ex(x, *tail):
        return x.expand(*batch, *x.shape[-2:])

    A = torch.cat([
        torch.cat([ex(F.A), torch.zeros(*batch, nF, nH, dtype=F.dtype, device=F.A.device)], -1),
        torch.cat([torch.zeros(*batch, nH, nF, dtype=F.dtype, device=F.A.device), ex(H.A)], -1),
    ], -2)
    B = torch.cat([ex(F.B), ex(H.B)], -2)
    C = torch.cat([ex(F.C), -ex(H.C)], -1)
    return StateSpace(A, B, C, F.D - H.D, time=F.time, dt=F.dt or H.dt)
