"""``lu_solve``: a linear solve whose derivatives are right to every order in every mode.

``torch.linalg.solve`` gives wrong forward-over-forward derivatives in torch 2.13 (the second
directional derivative comes out halved, relative error 0.5, for real and complex inputs) and,
with ``left=False`` on complex inputs, trips an internal assertion of forward-mode views; the
composition ``lu_factor`` + ``lu_solve`` is correct in every mode (``tests/control``), so the
control family solves with it.
"""

from __future__ import annotations

import torch
from torch import Tensor


def lu_solve(M: Tensor, R: Tensor, left: bool = True) -> Tensor:
    """``M^{-1} R`` (``left``) or ``R M^{-1}``, batched with broadcasting."""
    LU, piv = torch.linalg.lu_factor(M)
    if left:
        return torch.linalg.lu_solve(LU, piv, R)
    # R M^{-1} = (M^T \\ R^T)^T, with the LU factors of M: lu_solve(..., adjoint) solves M^H X = .
    return torch.linalg.lu_solve(LU, piv, R.mH, adjoint=True).mH
