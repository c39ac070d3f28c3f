"""``SparseSystem`` and its helpers, re-exported from the system layer (``control.system._sparse``),
where the class lives so that ``StateSpace(A, B, C, E=E)`` with sparse matrices can return one."""

from ..system._sparse import DENSE_MAX, SparseSystem, as_sparse_system, lu_solve, small_model

__all__ = ["DENSE_MAX", "SparseSystem", "as_sparse_system", "lu_solve", "small_model"]
