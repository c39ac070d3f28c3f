"""Factorizations and solves: Cholesky, QR/LQ, the regularized solve (one-shot and factor-once), and
its per-frequency form for convolutional sparse coding."""

from ._cholesky import cholesky
from ._convolutional import ConvolutionalSolver
from ._qr import LQResult, QRResult, lq, qr
from ._regularized_solve import regularized_solve
from ._regularized_solver import RegularizedSolver

__all__ = ["ConvolutionalSolver", "LQResult", "QRResult", "RegularizedSolver", "cholesky", "lq", "qr", "regularized_solve"]
