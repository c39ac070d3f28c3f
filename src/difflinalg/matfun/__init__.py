"""Matrix functions: sqrtm, logm, Hermitian matrix functions."""

from ._hermitian import expmh, hermitian_function, logmh, powmh, sqrtmh
from ._logm import logm
from ._sqrtm import sqrtm

__all__: list[str] = ["expmh", "hermitian_function", "logm", "logmh", "powmh", "sqrtm", "sqrtmh"]
