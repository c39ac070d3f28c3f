r"""Principal logarithm of a general square matrix, ``L = logm(A)`` with ``expm(L) = A``.

Forward: Schur form (CPU, LAPACK) or eigendecomposition (other devices), then inverse scaling and
squaring on the triangular factor (``_sqrt_log_triangular.log_triangular``: ``k`` square roots, an
[m/m] Pade approximant in partial fractions, times ``2^k``; Higham, "Functions of Matrices", Alg. 11.10).

Derivative: the Frechet derivative is the upper-right block of the same algorithm applied to
``[[A, E], [0, A]]`` (block-triangular identity; Higham, Thm. 3.6), in the triangular basis of the
forward pass and with its ``(k, m)``: the square roots of the block matrix carry the chain of
Sylvester equations ``R_i E_{i+1} + E_{i+1} R_i = E_i`` and the Pade step carries
``sum_j w_j (I + x_j X)^{-1} E_k (I + x_j X)^{-1}`` (Al-Mohy, Higham and Relton 2013). The adjoint
is ``L(A^H, G) = L(A, G^H)^H``. Both rules are the op itself, so every order is exact; see
``_primary``.
"""

from __future__ import annotations

from torch import Tensor

from .._utils import check_matrix, reject_meta
from ._primary import primary_function


def logm(A: Tensor, method: str = "auto") -> Tensor:
    """Principal logarithm of a square matrix, batched over leading dimensions.

    Args:
        A: (..., n, n) real or complex, nonsingular, without eigenvalues on the negative real axis.
        method: "schur" (CPU LAPACK Schur form), "eig" (torch eigendecomposition, any device,
            diagonalizable inputs only) or "auto" (Schur on the CPU, eig elsewhere).

    Returns:
        ``L`` with ``expm(L) = A`` and eigenvalues with imaginary parts in (-pi, pi); real for real
        ``A``.

    Raises:
        InputError: for a singular ``A`` or an eigenvalue on the negative real axis, naming it;
            for method "eig", for an ill-conditioned eigenvector matrix (condition number above
            ``1 / (n sqrt(eps))``); for a non-square, non-finite or meta ``A``, an unsupported
            dtype, an unknown ``method``.

    Derivatives (reverse, forward, any order): the Frechet derivative by the block-triangular
    identity (Higham, "Functions of Matrices", Thm. 3.6; Al-Mohy, Higham and Relton 2013).

    Example::

        import torch
        from difflinalg import logm

        L = torch.tensor([[0.1, 0.5], [-0.3, 0.2]], dtype=torch.float64)
        A = torch.linalg.matrix_exp(L).requires_grad_()
        assert torch.allclose(logm(A), L)
        logm(A).trace().backward()  # d tr(log A) / dA = A^{-T}
        assert torch.allclose(A.grad, torch.linalg.inv(A.detach()).mT)
    """
    reject_meta("A", A)
    A = check_matrix(A, "A", square=True)
    return primary_function(A, "log", method, "A")
