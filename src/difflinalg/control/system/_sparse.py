r"""``SparseSystem``: a large linear time-invariant system with sparse ``A`` and mass matrix ``E``.

It lives in the system layer (beside ``StateSpace``, with which it shares ``LTISystem``) so that
``StateSpace(A, B, C, E=E)`` with sparse matrices can return one; its algorithms (shifted solves,
low-rank Gramians, sparse IRKA, two-level RARL2) are in ``control.large``, which the public functions
reach through ``_route`` above the crossover order.

Continuous time ``E x' = A x + B u, y = C x + D u`` (transfer function ``C (sE - A)^{-1} B + D``),
discrete time ``E x[k+1] = A x[k] + B u[k]`` (``C (zE - A)^{-1} B + D``). ``A`` and ``E`` are
``scipy.sparse`` matrices (kept in CSC form for the factorizations of ``_solves``), ``E`` is
optional (identity) and must be nonsingular (descriptor systems with algebraic parts are out of
scope: their H2 norm needs the splitting into proper and improper parts). ``B``, ``C``, ``D`` are
dense numpy arrays. Everything runs in float64 or complex128 (NumPy/SciPy): nothing here is
differentiated, the reduced models come back as dense ``StateSpace`` objects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sps

from ..._errors import InputError
from ._base import LTISystem, check_time

if TYPE_CHECKING:  # imported lazily below: _statespace imports this module
    from ._statespace import StateSpace

_DTYPES = (np.float64, np.complex128)
#: ``to_dense`` refuses systems above this order (an N x N dense matrix and an O(N^3) solve)
DENSE_MAX = 5000


def _dense(x, name: str) -> np.ndarray:
    """A 2-D float64/complex128 numpy array from an array, tensor or (small) sparse matrix."""
    if sps.issparse(x):
        x = x.toarray()
    elif hasattr(x, "detach"):
        x = x.detach().cpu().resolve_conj().numpy()
    x = np.asarray(x)
    if x.ndim != 2:
        raise InputError(f"{name}: expected a 2-D array, got shape {x.shape}; reshape it, e.g. "
                         f"{name}.reshape(-1, 1) for one input column")
    return _check_dtype(x, name)


def _check_dtype(x, name: str):
    if x.dtype not in _DTYPES:
        raise InputError(f"{name}: dtype {x.dtype} is not supported; expected float64 or complex128 "
                         f"(convert with {name}.astype(numpy.float64) or .astype(numpy.complex128))")
    return x


def _sparse(x, name: str, N: int | None = None) -> sps.csc_matrix:
    """A square CSC matrix with finite entries of a supported dtype (dense input is converted)."""
    if not sps.issparse(x):
        x = sps.csc_matrix(_dense(x, name))
    x = sps.csc_matrix(x)
    _check_dtype(x, name)
    if x.shape[0] != x.shape[1]:
        raise InputError(f"{name}: expected a square matrix, got shape {x.shape}")
    if N is not None and x.shape[0] != N:
        raise InputError(f"{name}: expected shape ({N}, {N}) to match A, got {x.shape}")
    bad = int((~np.isfinite(x.data)).sum())
    if bad:
        raise InputError(f"{name}: contains {bad} non-finite stored value(s) (NaN or inf); clean the "
                         f"matrix (e.g. {name}.data = numpy.nan_to_num({name}.data)) or find where they come from")
    x.sum_duplicates()
    return x


def _analysis(name: str):
    from ._statespace import _analysis as lookup

    return lookup(name)


def lu_dtype(lu) -> np.dtype:
    """The dtype of a SuperLU factorization (``scipy.sparse.linalg.splu``) without copying a factor.

    ``SuperLU`` has no ``dtype``; ``lu.L`` and ``lu.U`` build new sparse matrices (a copy of the factor,
    O(nnz) time and memory per call). ``solve`` returns its result in the factorization's dtype, and an
    empty right-hand side (N x 0; int8 casts safely to every factor dtype) makes that free."""
    return lu.solve(np.empty((lu.shape[0], 0), dtype=np.int8)).dtype


def lu_solve(lu, X: np.ndarray, trans: str = "N", complex_factors: bool | None = None) -> np.ndarray:
    """``lu.solve`` for any right-hand side: a complex one with a real factorization is solved by
    its real and imaginary parts (SuperLU's solve needs the factorization's dtype).
    ``complex_factors``: whether the factors are complex, where the caller knows it (the shifted
    solves of ``control.large``); else read by ``lu_dtype``."""
    X = np.asarray(X)
    if complex_factors is None:
        complex_factors = lu_dtype(lu).kind == "c"
    if complex_factors:
        return lu.solve(np.ascontiguousarray(X, dtype=np.complex128), trans=trans)
    trans = "T" if trans == "H" else trans  # real factors: the adjoint is the transpose
    if np.iscomplexobj(X):
        return lu.solve(np.ascontiguousarray(X.real), trans=trans) + 1j * lu.solve(np.ascontiguousarray(X.imag), trans=trans)
    return lu.solve(np.ascontiguousarray(X, dtype=np.float64), trans=trans)


def _check_nonsingular(E: sps.csc_matrix):
    """The sparse LU of E (kept for later solves); a zero or negligible pivot is an InputError."""
    import scipy.sparse.linalg as spla  # here: ``import difflinalg`` does not load scipy.linalg

    N = E.shape[0]
    try:
        lu = spla.splu(E, permc_spec="MMD_AT_PLUS_A")
    except RuntimeError as exc:  # SuperLU: "Factor is exactly singular"
        raise InputError(f"E: the mass matrix is singular (sparse LU: {exc}); a descriptor system with "
                         "algebraic equations is not supported: eliminate them (or pass E=None for the "
                         "identity)") from None
    d = np.abs(lu.U.diagonal())
    if d.min() <= N * np.finfo(float).eps * d.max():
        raise InputError(f"E: the mass matrix is numerically singular (LU pivots from {d.min():.3g} to "
                         f"{d.max():.3g}); a descriptor system with algebraic equations is not supported: "
                         "eliminate them (or pass E=None for the identity)")
    return lu


class SparseSystem(LTISystem):
    """A large sparse (descriptor) system ``(A, B, C, D, E)``.

    Args:
        A: (N, N) scipy.sparse (any format; stored as CSC) or dense array, float64 or complex128.
        B: (N, m) dense input matrix. C: (p, N) dense output matrix. D: (p, m) feedthrough (default 0).
        E: (N, N) nonsingular sparse mass matrix, or None for the identity.
        time, dt: as for ``StateSpace`` (``"continuous"`` or ``"discrete"``, sampling period).

    Raises:
        InputError: non-square or mismatched shapes, NaN/inf entries, unsupported dtypes (float32,
            integers), a singular E (zero pivot in its sparse LU), bad ``time``/``dt``.
    """

    def __init__(self, A, B, C, D=None, E=None, *, time: str | None = None, dt=None):
        self.time, self.dt = check_time(time, dt)
        self.A = _sparse(A, "A")
        N = self.A.shape[0]
        self.B = _dense(B, "B")
        self.C = _dense(C, "C")
        if self.B.shape[0] != N:
            raise InputError(f"B: expected {N} rows to match A ({N} x {N}), got shape {self.B.shape}")
        if self.C.shape[1] != N:
            raise InputError(f"C: expected {N} columns to match A ({N} x {N}), got shape {self.C.shape}")
        p, m = self.C.shape[0], self.B.shape[1]
        self.D = np.zeros((p, m)) if D is None else _dense(D, "D")
        if self.D.shape != (p, m):
            raise InputError(f"D: expected shape ({p}, {m}) ({p} outputs, {m} inputs), got {self.D.shape}")
        for name, x in (("B", self.B), ("C", self.C), ("D", self.D)):
            if not np.isfinite(x).all():
                raise InputError(f"{name}: contains non-finite values (NaN or inf); clean the input")
        self.E = None
        self._E_lu = None
        if E is not None:
            self.E = _sparse(E, "E", N)
            self._E_lu = _check_nonsingular(self.E)
        cplx = any(np.iscomplexobj(x) for x in (self.A, self.B, self.C, self.D, self.E) if x is not None)
        self.dtype = np.dtype(np.complex128 if cplx else np.float64)
        self.cache: dict = {}

    #: a sparse system is one system (no batch dimensions): ``batch_shape`` is ``()``
    batch_shape: tuple = ()

    def detach(self) -> "SparseSystem":
        """The system itself (NumPy data carries no autograd history)."""
        return self

    @property
    def is_complex(self) -> bool:
        """True when any matrix is complex (``dtype`` complex128)."""
        return self.dtype.kind == "c"

    @property
    def E_or_identity(self) -> sps.csc_matrix:
        """``E``, or the sparse (N, N) identity when ``E`` is None."""
        return self.E if self.E is not None else sps.identity(self.order, dtype=self.A.dtype, format="csc")

    def apply_E(self, X: np.ndarray, adjoint: bool = False) -> np.ndarray:
        """``E X`` (or ``E^H X``).

        Args:
            X: (N,) or (N, k) numpy array.
            adjoint: multiply by ``E^H``.

        Returns:
            A numpy array (``X`` itself when ``E`` is the identity).
        """
        if self.E is None:
            return X
        return (self.E.conj().T if adjoint else self.E) @ X

    def apply_A(self, X: np.ndarray, adjoint: bool = False) -> np.ndarray:
        """``A X`` (or ``A^H X``).

        Args:
            X: (N,) or (N, k) numpy array.
            adjoint: multiply by ``A^H``.

        Returns:
            A numpy array.
        """
        return (self.A.conj().T if adjoint else self.A) @ X

    # -- analysis (thin: the public functions, as StateSpace's methods) ------------------------------
    def is_stable(self) -> bool:
        """``control.is_stable(self)`` (above ``SPARSE_CROSSOVER`` states: a sparse eigensolver)."""
        return _analysis("is_stable")(self)

    def h2_norm(self):
        """``control.h2_norm(self)`` (above ``SPARSE_CROSSOVER`` states: a low-rank Gramian)."""
        return _analysis("h2_norm")(self)

    def hankel_singular_values(self, k: int | None = None):
        """``control.hankel_singular_values(self, k)``.

        Args:
            k: only the leading ``k`` values (default: all that the computation resolves).

        Returns:
            Real float64 tensor, descending.
        """
        return _analysis("hankel_singular_values")(self, k)

    def frequency_response(self, w):
        """``control.frequency_response(self, w)`` (one sparse LU per frequency above the crossover).

        Args:
            w: (K,) real finite frequencies (radians per sample in discrete time).

        Returns:
            (K, p, m) complex128 tensor.
        """
        return _analysis("frequency_response")(self, w)

    # -- conversions -------------------------------------------------------------------------------
    def to_dense(self, max_order: int = DENSE_MAX) -> StateSpace:
        """The dense ``StateSpace`` ``(E^{-1} A, E^{-1} B, C, D)`` (torch float64/complex128).

        Args:
            max_order: refuse systems above this order (default ``DENSE_MAX``).

        Returns:
            ``StateSpace`` of the same time domain and ``dt``.

        Raises:
            InputError: the order is above ``max_order`` (an N x N dense matrix would be formed).
        """
        N = self.order
        if N > max_order:
            raise InputError(f"system: to_dense forms {N} x {N} dense matrices (max_order={max_order}); "
                             "use the sparse functions of difflinalg.control.large, or raise max_order")
        A, B = self.A.toarray(), self.B
        if self._E_lu is not None:
            A, B = lu_solve(self._E_lu, A), lu_solve(self._E_lu, B)
        import torch

        from ._statespace import StateSpace

        dt = torch.complex128 if self.is_complex else torch.float64
        mats = [torch.as_tensor(np.array(x, dtype=self.dtype), dtype=dt) for x in (A, B, self.C, self.D)]
        return StateSpace(*mats, time=self.time, dt=self.dt)

    @classmethod
    def from_dense(cls, sys) -> "SparseSystem":
        """A ``SparseSystem`` from a single dense ``StateSpace`` (E = identity).

        Args:
            sys: an unbatched ``StateSpace`` (detached; float32 is refused by ``SparseSystem``).

        Returns:
            ``SparseSystem`` with ``A`` in CSC format, the same time domain and ``dt``.

        Raises:
            InputError: a batched system, or matrices ``SparseSystem`` refuses.
        """
        if sys.batch_shape != ():
            raise InputError(f"sys: expected one system, got a batch of shape {tuple(sys.batch_shape)}")
        A, B, C, D = (x.detach().cpu().resolve_conj().numpy() for x in sys.matrices())
        return cls(sps.csc_matrix(A), B, C, D, time=sys.time, dt=sys.dt)

    def to_pymor(self):
        """The pyMOR ``LTIModel`` with the sparse ``A`` and ``E`` kept (``sampling_time = dt``).

        Raises:
            InputError: a discrete-time system with unspecified ``dt``, or pyMOR is not installed.
        """
        from . import _interop

        return _interop.write_pymor(self.A, self.B, self.C, self.D, self.discrete, self.dt, E=self.E)

    def __repr__(self) -> str:
        E = "identity" if self.E is None else f"sparse ({self.E.nnz} nonzeros)"
        return (f"SparseSystem(order={self.order}, inputs={self.n_inputs}, outputs={self.n_outputs}, "
                f"A nnz={self.A.nnz}, E={E}, time={self.time!r}, dtype={self.dtype})")


def as_sparse_system(sys, name: str = "sys") -> SparseSystem:
    """A ``SparseSystem`` from a ``SparseSystem`` or a single dense ``StateSpace``."""
    if isinstance(sys, SparseSystem):
        return sys
    from ._statespace import StateSpace

    if isinstance(sys, StateSpace):
        return SparseSystem.from_dense(sys)
    raise InputError(f"{name}: expected a SparseSystem (or a StateSpace), got {type(sys).__name__}")


def small_model(Ar, Br, Cr, Dr, Er, like: SparseSystem):
    """A dense reduced ``StateSpace`` ``(Er^{-1} Ar, Er^{-1} Br, Cr, Dr)`` of ``like``'s type and time."""
    import scipy.linalg as sla
    import torch

    from ._statespace import StateSpace

    if Er is not None:
        Ar, Br = sla.solve(Er, Ar), sla.solve(Er, Br)
    if not like.is_complex:
        Ar, Br, Cr, Dr = (np.real_if_close(x, tol=1e6).real if np.iscomplexobj(x) else x for x in (Ar, Br, Cr, Dr))
    dt = torch.complex128 if like.is_complex else torch.float64
    mats = [torch.as_tensor(np.asarray(x, dtype=like.dtype), dtype=dt) for x in (Ar, Br, Cr, Dr)]
    return StateSpace(*mats, time=like.time, dt=like.dt)
