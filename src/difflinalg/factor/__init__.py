"""Factorizations and solves: Cholesky, QR/LQ, the regularized solve (one-shot and factor-once)."""

from ._cholesky import cholesky
from ._qr import LQResult, QRResult, lq, qr
from ._regularized_solve import regularized_solve
from ._regularized_solver import RegularizedSolver

__all__ = ["LQResult", "QRResult", "RegularizedSolver", "cholesky", "lq", "qr", "regularized_solve"]
