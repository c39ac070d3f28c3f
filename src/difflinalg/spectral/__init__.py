"""Spectral rules: eigh, invariant subspaces, SVD, truncated SVD."""

__all__: list[str] = []
