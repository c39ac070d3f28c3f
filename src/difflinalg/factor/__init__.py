"""Factorizations and solves: Cholesky, QR/LQ, the regularized solve."""

from ._cholesky import cholesky

__all__ = ["cholesky"]
