"""Values-only forms of ``eigh`` and ``svd``, with ``torch.linalg.eigvalsh``'s and
``torch.linalg.svdvals``' signatures.

They are the value fields of the full decompositions (the vectors are computed too: the
derivatives need them), so their derivatives are exactly those of ``eigh`` and ``svd`` for a loss
of the values alone: at a cluster of repeated values the loss must be symmetric in the cluster's
values (equal cotangents, e.g. ``sum``, ``sum(w**2)``), and for ``svdvals`` no nonzero cotangent
may reach a zero singular value (``|s|`` has no derivative at 0: the nuclear norm of a
rank-deficient matrix raises, ``sum(S**2)`` is exact); otherwise backward raises ``DegenerateSpectrumError`` (``_eigh_ties.py``,
``_svd_ties.py``). The vector gauge never enters.
"""

from __future__ import annotations

from torch import Tensor

from ._eigh import eigh
from ._svd import svd


def eigvalsh(A: Tensor, UPLO: str = "L", *, degeneracy_tol: float | None = None,
             gauge: str = "error") -> Tensor:
    """Eigenvalues of a Hermitian matrix, ascending: ``eigh(A, UPLO, ...).eigenvalues``.

    As ``torch.linalg.eigvalsh(A, UPLO)`` for every Hermitian ``A`` (values and gradient), with
    ``eigh``'s keyword-only options; the Hermitian part ``(A + A^H)/2`` is decomposed.

    Args:
        A: (..., n, n) real or complex, finite; its Hermitian part is decomposed (see ``eigh``).
        UPLO: ``"L"`` (default) or ``"U"``: accepted for compatibility with torch, validated; on a
            non-Hermitian input torch uses that triangle, difflinalg the Hermitian part (see
            ``eigh``).
        degeneracy_tol: the cluster tolerance of ``eigh``.
        gauge: the checks of ``eigh``'s backward ("error", "warn", "ignore").

    Returns:
        ``w`` (..., n), real, ascending.

    Raises:
        InputError: as ``eigh``.
        DegenerateSpectrumError: in backward, for a loss that is not symmetric in the values
            of a cluster (``gauge="error"``).

    Example::

        import torch
        import difflinalg

        A = torch.eye(3, dtype=torch.float64, requires_grad=True)   # a triple eigenvalue
        (g,) = torch.autograd.grad(difflinalg.eigvalsh(A).sum(), A)  # the trace: symmetric
        assert torch.equal(g, torch.eye(3, dtype=torch.float64))
    """
    return eigh(A, UPLO, degeneracy_tol=degeneracy_tol, gauge=gauge).eigenvalues


def svdvals(A: Tensor, *, driver: str | None = None, degeneracy_tol: float | None = None,
            gauge: str = "error") -> Tensor:
    """Singular values, descending: ``svd(A, full_matrices=False, ...).S``.

    As ``torch.linalg.svdvals(A, driver=driver)``, with ``svd``'s keyword-only options. The thin
    factors are computed (the derivative needs them), so this costs an ``svd``, not the cheaper
    values-only LAPACK call of ``torch.linalg.svdvals``.

    Args:
        A: (..., m, n) real or complex, finite.
        driver: torch's cuSOLVER method (CUDA tensors only), as in ``svd``.
        degeneracy_tol: the tie tolerance of ``svd``.
        gauge: the checks of ``svd``'s backward ("error", "warn", "ignore").

    Returns:
        ``S`` (..., min(m, n)), real, descending.

    Raises:
        InputError: as ``svd``.
        DegenerateSpectrumError: in backward, for a loss that is not symmetric in the values of
            a cluster, or that has a cotangent at a zero singular value (``gauge="error"``).

    Example::

        import torch
        import difflinalg

        A = torch.tensor([[3.0, 0.0], [0.0, 4.0], [0.0, 0.0]], dtype=torch.float64, requires_grad=True)
        S = difflinalg.svdvals(A)
        assert torch.allclose(S, torch.tensor([4.0, 3.0], dtype=torch.float64))
        (g,) = torch.autograd.grad(S.sum(), A)   # nuclear norm: U V^H
        assert torch.allclose(g, torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]], dtype=torch.float64))
    """
    return svd(A, False, driver=driver, degeneracy_tol=degeneracy_tol, gauge=gauge).S
