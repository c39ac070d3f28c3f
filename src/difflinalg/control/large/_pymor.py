r"""pyMOR ``LTIModel`` targets whose operators are not NumPy matrices (PETSc, FEniCS, NGSolve, or any
matrix-free ``Operator``): the large solves go through pyMOR's operator interface, the small
optimization stays local.

``PymorSystem`` is a ``SparseSystem`` whose matrices are pyMOR operators: ``apply_A``/``apply_E``
call ``Operator.apply`` / ``apply_adjoint``, and its solver ``PymorSolver`` (the interface of
``ShiftedSolver``: ``solve(a, b, X, adjoint)``, ``shifted(mu, X, adjoint)``, ``check_memory``)
forms ``a A + b E`` as pyMOR's ``LincombOperator``, assembles it (a backend assembles a lincomb of
its own matrices into one of its matrices: PETSc's ``MatAXPY``, ...) and calls ``apply_inverse`` /
``apply_inverse_adjoint``. The assembled operator of each shift is cached, so a backend that keeps
its factorization (or preconditioner) on the operator reuses it when the shift repeats (IRKA at
convergence, cyclic ADI shifts). ``irka_sparse``, the low-rank Gramians, ``check_stable_sparse``
and ``rarl2_large`` run on it unchanged (they reach the solver through ``solver_of``).

Data moved to this process: ``B`` (N x m) and ``C`` (p x N) as NumPy arrays, and the N x k blocks
of right-hand sides and solutions (``VectorArray.to_numpy`` / ``from_numpy``), O(N (m + p + r))
memory; never an N x N matrix. Complex shifts need a backend with complex vectors.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from ..._errors import InputError
from ..system._base import check_time
from ..system._sparse import DENSE_MAX, SparseSystem


class PymorSolver:
    """Shifted solves ``(a A + b E)^{-1} X`` through pyMOR operators (module docstring).

    Args:
        sys: the ``PymorSystem``. max_cached: at most this many assembled shifted operators are
            kept (least recently used ones are dropped).
    """

    def __init__(self, sys: "PymorSystem", max_cached: int = 64):
        self.sys = sys
        self.memory_limit = None  # the backend manages its own memory
        self.max_cached = max_cached
        self.cache: OrderedDict = OrderedDict()
        self.factorizations = 0  # assembled shifted operators (a backend factorizes each at most once)
        self.solves = 0

    def check_memory(self, complex_factors: bool = True) -> int:
        """0: the memory of pyMOR's solvers is not estimated here (the backend's own business)."""
        return 0

    def _operator(self, a: complex, b: complex):
        from pymor.operators.constructions import IdentityOperator, LincombOperator

        s = self.sys
        key = (complex(a), complex(b))
        if key in self.cache:
            self.cache.move_to_end(key)
            return self.cache[key]
        E = s.op_E if s.op_E is not None else IdentityOperator(s.op_A.source)
        ops, coeffs = [], []
        for op, c in ((s.op_A, key[0]), (E, key[1])):
            if c != 0:
                ops.append(op)
                coeffs.append(c.real if (c.imag == 0 and not s.is_complex) else c)
        M = LincombOperator(ops, coeffs).assemble()
        while len(self.cache) >= self.max_cached:
            self.cache.popitem(last=False)
        self.cache[key] = M
        self.factorizations += 1
        return M

    def solve(self, a: complex, b: complex, X: np.ndarray, adjoint: bool = False) -> np.ndarray:
        """``(a A + b E)^{-1} X`` (or ``(a A + b E)^{-H} X``) by pyMOR's ``apply_inverse``.

        Args:
            a, b: the coefficients (not both 0). X: (N,) or (N, k) numpy array.
            adjoint: solve with the conjugate transpose (``apply_inverse_adjoint``).

        Returns:
            A numpy array of the shape of ``X``.

        Raises:
            InputError: ``a = b = 0``, or pyMOR could not invert the operator (its message).
        """
        if a == 0 and b == 0:
            raise InputError("solve: the combination 0 A + 0 E is singular")
        X = np.asarray(X)
        if a == 0 and self.sys.op_E is None:  # (b I)^{-1}
            return X / (np.conj(b) if adjoint else b)
        M = self._operator(a, b)
        real_op = not self.sys.is_complex and complex(a).imag == 0 and complex(b).imag == 0
        if real_op and np.iscomplexobj(X):  # real backends have real vectors: real and imaginary parts
            return self.solve(a, b, X.real, adjoint) + 1j * self.solve(a, b, X.imag, adjoint)
        V = (M.source if adjoint else M.range).from_numpy(X.reshape(X.shape[0], -1))
        try:
            U = M.apply_inverse_adjoint(V) if adjoint else M.apply_inverse(V)
        except Exception as exc:  # noqa: BLE001 - pyMOR's InversionError or the backend's own
            raise InputError(f"sys: pyMOR could not solve with {a} A + ({b}) E ({type(exc).__name__}: {exc}); "
                             "the shift may be a pole of the target, or the backend has no solver for it") from None
        self.solves += 1
        return U.to_numpy().reshape(X.shape)

    def shifted(self, mu: complex, X: np.ndarray, adjoint: bool = False) -> np.ndarray:
        """``(A - mu E)^{-1} X`` (or its adjoint solve)."""
        return self.solve(1.0, -mu, X, adjoint)


def _columns(va) -> np.ndarray:
    return np.array(va.to_numpy())  # a writable copy (pyMOR may hand out read-only views)


class PymorSystem(SparseSystem):
    """A large system given by a pyMOR ``LTIModel`` with operators that are not NumPy matrices
    (module docstring). Built by ``StateSpace.from_pymor`` (and so by every public function given
    such a model); the constructor is the same.

    Args:
        model: a pyMOR ``LTIModel`` (non-parametric).

    Raises:
        InputError: not an ``LTIModel``; a parametric model; pyMOR is not installed.
    """

    def __init__(self, model):  # noqa: D107 - SparseSystem's checks are for matrices: not called
        try:
            from pymor.algorithms.to_matrix import to_matrix
            from pymor.models.iosys import LTIModel
            from pymor.operators.constructions import IdentityOperator
        except ImportError:
            raise InputError("model: pyMOR is not installed (pip install pymor)") from None
        if not isinstance(model, LTIModel):
            raise InputError(f"model: expected a pyMOR LTIModel, got {type(model).__name__}")
        if model.parametric:
            raise InputError("model: a parametric LTIModel; fix its parameters first (model.with_(...) or "
                             "pymor's FixedParameterOperator)")
        self.time, self.dt = check_time(None if model.sampling_time == 0 else "discrete",
                                        float(model.sampling_time) or None)
        self.model = model
        self.op_A = self.A = model.A
        self.op_E = None if isinstance(model.E, IdentityOperator) else model.E
        self.E = self.op_E
        self._E_lu = None
        self.B = _columns(model.B.as_range_array())
        self.C = _columns(model.C.as_source_array()).conj().T
        try:
            self.D = np.array(to_matrix(model.D, format="dense")).reshape(self.C.shape[0], self.B.shape[1])
        except (NotImplementedError, TypeError, AttributeError):
            self.D = np.zeros((self.C.shape[0], self.B.shape[1]))
        for name, x in (("B", self.B), ("C", self.C), ("D", self.D)):
            if not np.isfinite(x).all():
                raise InputError(f"model: its {name} contains non-finite values (NaN or inf); clean the input")
        cplx = any(np.iscomplexobj(x) for x in (self.B, self.C, self.D))
        self.dtype = np.dtype(np.complex128 if cplx else np.float64)
        self.cache = {"solver": PymorSolver(self)}

    @property
    def order(self) -> int:
        """Number of states N (``model.order``)."""
        return int(self.model.order)

    @property
    def E_or_identity(self):
        """Not available: the operators are not matrices."""
        raise InputError("sys: the pyMOR operators of this system are not matrices (use apply_A/apply_E)")

    def _apply(self, op, X: np.ndarray, adjoint: bool) -> np.ndarray:
        X = np.asarray(X)
        if np.iscomplexobj(X) and not self.is_complex:  # real backends: real and imaginary parts
            return self._apply(op, X.real, adjoint) + 1j * self._apply(op, X.imag, adjoint)
        V = (op.range if adjoint else op.source).from_numpy(X.reshape(X.shape[0], -1))
        return (op.apply_adjoint(V) if adjoint else op.apply(V)).to_numpy().reshape(X.shape)

    def apply_A(self, X: np.ndarray, adjoint: bool = False) -> np.ndarray:
        """``A X`` (or ``A^H X``) by ``Operator.apply`` (``apply_adjoint``)."""
        return self._apply(self.op_A, X, adjoint)

    def apply_E(self, X: np.ndarray, adjoint: bool = False) -> np.ndarray:
        """``E X`` (or ``E^H X``); ``X`` itself when ``E`` is the identity."""
        return X if self.op_E is None else self._apply(self.op_E, X, adjoint)

    def to_dense(self, max_order: int = DENSE_MAX):
        """The dense ``StateSpace`` ``(E^{-1} A, E^{-1} B, C, D)``, from the operators applied to the
        identity (N applications and one dense solve; for N at most ``max_order``).

        Raises:
            InputError: the order is above ``max_order``.
        """
        N = self.order
        if N > max_order:
            raise InputError(f"system: to_dense forms {N} x {N} dense matrices (max_order={max_order}); "
                             "the sparse functions of difflinalg.control work on the operators")
        eye = np.eye(N)
        A = self.apply_A(eye)
        E = self.apply_E(eye)
        return SparseSystem(A, self.B, self.C, self.D, E if self.op_E is not None else None,
                            time=self.time, dt=self.dt).to_dense(max_order)

    def __repr__(self) -> str:
        return (f"PymorSystem(order={self.order}, inputs={self.n_inputs}, outputs={self.n_outputs}, "
                f"A={type(self.op_A).__name__}, E={'identity' if self.op_E is None else type(self.op_E).__name__}, "
                f"time={self.time!r}, dtype={self.dtype})")
