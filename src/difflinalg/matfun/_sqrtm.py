r"""Principal square root of a general square matrix, ``X = sqrtm(A)`` with ``X^2 = A``.

Forward: Schur form (CPU, LAPACK) or eigendecomposition (other devices), then the triangular
recurrence of Bjorck and Hammarling (``_sqrt_log_triangular.sqrt_triangular``); see ``_primary``.

Derivative: ``X dX + dX X = dA`` (differentiate ``X^2 = A``), a Sylvester equation with the
result itself; the adjoint solves ``X^H gA + gA X^H = gX``. In the triangular basis of the forward
pass, ``A = Q T Q^{-1}``, ``X = Q R Q^{-1}``, this is the triangular Sylvester equation
``R Y + Y R = Q^{-1} dA Q``, which is exactly what the block identity of ``_primary`` evaluates:
the square-root recurrence on ``[[T, E~], [0, T]]`` computes ``[[R, Y], [0, R]]`` (Higham,
"Functions of Matrices", Thm. 3.6 and Sec. 6.1), so both rules reuse the forward factorization
and stay differentiable to any order.
"""

from __future__ import annotations

from torch import Tensor

from .._utils import check_matrix, reject_meta
from ._primary import primary_function


def sqrtm(A: Tensor, method: str = "auto") -> Tensor:
    """Principal square root of a square matrix, batched over leading dimensions.

    Args:
        A: (..., n, n) real or complex, without eigenvalues on the closed negative real axis.
        method: "schur" (CPU LAPACK Schur form; tensors on other devices are copied to the CPU),
            "eig" (torch eigendecomposition, any device, diagonalizable inputs only), or "auto"
            (Schur on the CPU, eig elsewhere).

    Returns:
        ``X`` with ``X @ X = A`` and eigenvalues in the open right half-plane; real for real ``A``.

    Raises:
        InputError: for an eigenvalue on the closed negative real axis (including a singular
            ``A``: the square root is not differentiable there), naming it; for method "eig", for
            an ill-conditioned eigenvector matrix (condition number above ``1 / (n sqrt(eps))``);
            for a non-square, non-finite or meta ``A``, an unsupported dtype, an unknown
            ``method``.

    Derivatives (reverse, forward, any order) solve the Sylvester equation ``X dX + dX X = dA``
    in the forward pass's triangular basis (Higham, "Functions of Matrices", Thm. 3.6).

    Example::

        import torch
        from difflinalg import sqrtm

        A = torch.tensor([[4.0, 1.0], [0.0, 9.0]], dtype=torch.float64, requires_grad=True)
        X = sqrtm(A)
        assert torch.allclose(X, torch.tensor([[2.0, 0.2], [0.0, 3.0]], dtype=torch.float64))
        X.trace().backward()  # d tr(sqrt(A)) / dA = (1/2) A^{-1/2}^T
        assert torch.allclose(A.grad, 0.5 * torch.linalg.inv(X.detach()).mT)
    """
    reject_meta("A", A)
    A = check_matrix(A, "A", square=True)
    return primary_function(A, "sqrt", method, "A")
