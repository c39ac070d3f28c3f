"""Matrix functions: sqrtm, logm, Hermitian matrix functions."""

__all__: list[str] = []
