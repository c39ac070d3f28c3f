"""Factorizations and solves: Cholesky, QR/LQ, the regularized solve."""

from ._cholesky import cholesky
from ._qr import lq, qr
from ._regularized_solve import regularized_solve

__all__ = ["cholesky", "lq", "qr", "regularized_solve"]
