"""pyMOR's IRKA as a comparison for ``difflinalg reduce`` (the ``pymor`` extra, imported lazily)."""

from __future__ import annotations

import time

import torch

from ..system._sparse import SparseSystem


def pymor_irka(F, r):
    """pyMOR's IRKA (continuous time, default options) on the target: ``(model, seconds, failure)``
    (model None and the failure message when IRKA breaks down), or None if pyMOR is not installed.
    Its reduced model ``(E, A, B, C)`` is returned as ``(E^-1 A, E^-1 B, C)``; a sparse target is
    passed to pyMOR with its sparse ``A`` and ``E``."""
    try:
        from pymor.core.logger import set_log_levels
        from pymor.models.iosys import LTIModel
        from pymor.reductors.h2 import IRKAReductor
    except ImportError:
        return None
    set_log_levels({"pymor": "WARN"})
    if isinstance(F, SparseSystem):  # pyMOR takes the sparse matrices and E as they are
        fom = LTIModel.from_matrices(F.A, F.B, F.C, E=F.E)
    else:
        A, B, C = (x.detach().cpu().numpy() for x in (F.A, F.B, F.C))
        fom = LTIModel.from_matrices(A, B, C)
    t0 = time.perf_counter()
    try:
        rom = IRKAReductor(fom).reduce(r)
    except Exception as exc:  # noqa: BLE001 - pyMOR's IRKA can diverge (non-finite shifts): reported
        return None, time.perf_counter() - t0, f"{type(exc).__name__}: {exc}"
    sec = time.perf_counter() - t0
    return pymor_to_statespace(rom), sec, ""


def pymor_to_statespace(rom):
    """A pyMOR ``LTIModel`` (with a possibly non-identity E) as a ``StateSpace``."""
    import numpy as np

    from ..system._statespace import StateSpace

    def mat(op):
        return np.array(op.matrix.toarray() if hasattr(op.matrix, "toarray") else op.matrix, dtype=float)

    Ar, Br, Cr = mat(rom.A), mat(rom.B), mat(rom.C)
    E = getattr(rom, "E", None)
    if E is not None and hasattr(E, "matrix"):
        Em = mat(E)
        Ar, Br = np.linalg.solve(Em, Ar), np.linalg.solve(Em, Br)
    return StateSpace(torch.as_tensor(Ar), torch.as_tensor(Br), torch.as_tensor(Cr))
