r"""How the Hermitian matrix of an eigendecomposition is read from its input.

Every Hermitian op of difflinalg (``eigh``, ``eigvalsh``, ``eigh_subspace``,
``subspace_projector``, ``eigh_function``) decomposes the Hermitian part
``herm(A) = (A + A^H)/2``: both triangles are read, the imaginary part of the diagonal is dropped,
and, ``herm`` being linear, the value, the JVP (of ``herm(dA)``) and the gradient (Hermitian)
describe one function of ``A``, differentiable in every direction (``docs/conventions.md``,
"Hermitian inputs").

``torch.linalg.eigh(A, UPLO)`` reads one triangle instead. On the inputs it is defined for
(Hermitian ones, "A is assumed Hermitian") both readings give the same matrix, and its gradient is
the Hermitian one returned here; ``UPLO`` is therefore accepted for compatibility and only
validated (``check_uplo``). On a non-Hermitian input torch silently uses one triangle, difflinalg
the Hermitian part: the one documented difference (``docs/conventions.md``, "torch.linalg
compatibility").
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._errors import InputError
from .._utils import check_finite, is_wrapped

UPLO_VALUES = ("L", "U")


def check_uplo(UPLO) -> str:
    """Validate torch's ``UPLO`` ("L" or "U"; torch also accepts lower case) and return it
    upper-cased. It selects nothing: the Hermitian part is decomposed (module notes)."""
    if not isinstance(UPLO, str) or UPLO.upper() not in UPLO_VALUES:
        raise InputError(f"UPLO: expected 'L' or 'U' (as in torch.linalg.eigh; either gives the same "
                         f"result, the Hermitian part of A is decomposed), got {UPLO!r}")
    return UPLO.upper()


def hermitian_part(A: Tensor) -> Tensor:
    """``(A + A^H)/2`` for a forward pass (not differentiated): materializing ``A^H`` first makes
    the sum contiguous (about 2x faster than ``herm`` on large complex batches); the result is
    exactly Hermitian."""
    return (A.mH.contiguous() + A).mul_(0.5)


def check_finite_fast(A: Tensor, name: str) -> None:
    """``check_finite`` at the cost of one sum: a non-finite entry makes the sum non-finite (the
    exact, slower check runs only then, so an overflowing sum of finite entries passes)."""
    if is_wrapped(A) or A.numel() == 0:
        return
    total = torch.view_as_real(A).sum() if A.is_complex() else A.sum()
    if not bool(torch.isfinite(total)):
        check_finite(A, name)


def resolve_views(A: Tensor) -> Tensor:
    """Materialize conjugate and negative views (``Z.mH``, ``H.conj()``): the checks read the
    entries through ``view_as_real``, which refuses unresolved views."""
    return A.resolve_conj().resolve_neg()
