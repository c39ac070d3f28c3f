r"""How the Hermitian matrix of an eigendecomposition is read from its input.

Two conventions, both exact (the value, the JVP and the gradient describe one function of ``A``):

- ``herm(A) = (A + A^H)/2`` (``hermitian_part``): both triangles are read; the gradient is
  Hermitian. Used by ``eigh_subspace``, ``subspace_projector``, ``eigh_function`` and the other
  difflinalg ops (``docs/conventions.md``, "Hermitian inputs").
- one triangle (``from_triangle``), as ``torch.linalg.eigh(A, UPLO)``: the Hermitian matrix
  ``H_L(A)`` whose lower (``UPLO="L"``) or upper (``"U"``) triangle is that of ``A``, with the
  real part of the diagonal (LAPACK ignores its imaginary part); the other triangle is never read
  (it may hold anything, even NaN). Used by ``eigh`` and ``eigvalsh``.

The triangle reading is a linear map ``P`` applied with differentiable torch operations, so the
derivatives are those of the composite ``A -> f(P(A))``: the JVP sees ``P(dA)`` and the gradient is
``P^*(G) = 2 tril(G, -1) + diag(G)`` (``UPLO="L"``; ``triu`` for ``"U"``) for the Hermitian
gradient ``G`` of ``f``. ``torch.linalg.eigh`` reads the same triangle but returns ``G`` itself,
which is the derivative along Hermitian directions only (for a non-Hermitian ``dA`` it does not
match finite differences of its own value); ``herm(P^*(G)) = G`` recovers it, and for every
``A`` built Hermitian from parameters (``B + B^H``, ``X X^H``, ...) the gradients of the
parameters are identical under both.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._errors import InputError
from .._utils import check_finite, is_wrapped

UPLO_VALUES = ("L", "U")


def check_uplo(UPLO) -> str:
    """Validate torch's ``UPLO`` ("L" or "U"; torch also accepts lower case) and return it upper-cased."""
    if not isinstance(UPLO, str) or UPLO.upper() not in UPLO_VALUES:
        raise InputError(f"UPLO: expected 'L' (read the lower triangle) or 'U' (the upper one), as in "
                         f"torch.linalg.eigh, got {UPLO!r}")
    return UPLO.upper()


def from_triangle(A: Tensor, UPLO: str) -> Tensor:
    """The Hermitian matrix whose ``UPLO`` triangle (diagonal included) is that of ``A``; the other
    triangle is the conjugate transpose (a ``where``: entries there are never read, and its
    backward gives ``P^*`` of the module notes). The diagonal's imaginary part is left in place:
    ``hermitian_part`` (forward) and ``herm`` (the rules) drop it, as LAPACK does."""
    n = A.shape[-1]
    keep = torch.ones(n, n, dtype=torch.bool, device=A.device)
    keep = keep.tril() if UPLO == "L" else keep.triu()
    return torch.where(keep, A, A.mH)


def hermitian_part(A: Tensor) -> Tensor:
    """``(A + A^H)/2`` for a forward pass (not differentiated): materializing ``A^H`` first makes
    the sum contiguous (about 2x faster than ``herm`` on large complex batches); the result is
    exactly Hermitian."""
    return (A.mH.contiguous() + A).mul_(0.5)


def check_finite_fast(A: Tensor, name: str, UPLO: str | None = None) -> None:
    """``check_finite`` at the cost of one sum: a non-finite entry makes the sum non-finite (the
    exact, slower check runs only then, so an overflowing sum of finite entries passes).
    ``UPLO``: ``A`` is ``from_triangle``'s result; the count reports the read triangle only."""
    if is_wrapped(A) or A.numel() == 0:
        return
    total = torch.view_as_real(A).sum() if A.is_complex() else A.sum()
    if not bool(torch.isfinite(total)):
        check_finite(A if UPLO is None else A.tril() if UPLO == "L" else A.triu(), name)


def resolve_views(A: Tensor) -> Tensor:
    """Materialize conjugate and negative views (``Z.mH``, ``H.conj()``): the checks read the
    entries through ``view_as_real``, which refuses unresolved views."""
    return A.resolve_conj().resolve_neg()
