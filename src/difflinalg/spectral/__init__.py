"""Spectral rules: eigh, invariant subspaces, SVD, truncated SVD."""

from ._svd import SVDResult, svd
from ._svd_function import svd_function
from ._svd_truncated import svd_truncated

__all__: list[str] = []
__all__ += ["svd", "SVDResult", "svd_truncated", "svd_function"]

from ._eigh import EighResult, eigh
from ._eigh_function import eigh_function

__all__ += ["eigh", "EighResult", "eigh_function"]

from ._values import eigvalsh, svdvals

__all__ += ["eigvalsh", "svdvals"]

from ._subspace import SubspaceResult, eigh_subspace, subspace_projector

__all__ += ["eigh_subspace", "subspace_projector", "SubspaceResult"]
