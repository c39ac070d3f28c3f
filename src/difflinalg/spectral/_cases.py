"""Verification cases of the spectral rules (one module per rule group)."""

from . import _cases_eigh, _cases_svd  # noqa: F401
