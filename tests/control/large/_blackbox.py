"""A pyMOR operator that is not a NumPy matrix: it only applies, applies its adjoint, assembles
linear combinations of its kind and inverts through its own ``Solver`` (as PETSc, FEniCS or NGSolve
operators do). ``to_matrix`` cannot convert it, so difflinalg must use the operator interface."""

import numpy as np
import scipy.sparse as sps
import scipy.sparse.linalg as spla
from pymor.operators.interface import Operator
from pymor.solvers.interface import Solver
from pymor.vectorarrays.numpy import NumpyVectorSpace


def _rhs(operator, V):
    X = V.to_numpy()
    if np.iscomplexobj(X) and operator.dtype == np.float64:  # a real backend has real vectors only
        raise TypeError("complex right-hand side for a real operator")
    return X.astype(operator.dtype)


class BlackBoxSolver(Solver):
    def _solve(self, operator, V, mu, initial_guess):
        return operator.source.from_numpy(operator.lu().solve(_rhs(operator, V))), {}

    def _solve_adjoint(self, operator, U, mu, initial_guess):
        return operator.range.from_numpy(operator.lu().solve(_rhs(operator, U), trans="H")), {}


class BlackBoxOperator(Operator):
    linear = True

    def __init__(self, matrix, calls=None):
        self.matrix = matrix  # pyMOR's immutability contract: every __init__ argument is an attribute
        self._mat = sps.csc_matrix(matrix)
        self.dtype = np.complex128 if np.iscomplexobj(self._mat.data) else np.float64
        self.source = self.range = NumpyVectorSpace(matrix.shape[0])
        self.solver = BlackBoxSolver()
        self.calls = calls if calls is not None else {"apply": 0, "lu": 0}
        self._lu = None

    def lu(self):
        if self._lu is None:
            self.calls["lu"] += 1
            self._lu = spla.splu(self._mat.astype(self.dtype))
        return self._lu

    def apply(self, U, mu=None):
        self.calls["apply"] += 1
        return self.range.from_numpy(self._mat @ U.to_numpy())

    def apply_adjoint(self, V, mu=None):
        return self.source.from_numpy(self._mat.conj().T @ V.to_numpy())

    def _assemble_lincomb(self, operators, coefficients, identity_shift=0.0, name=None):
        from pymor.operators.constructions import IdentityOperator

        M = sps.csc_matrix(self._mat.shape, dtype=np.result_type(*coefficients, np.float64))
        for op, c in zip(operators, coefficients):
            if isinstance(op, IdentityOperator):
                M = M + c * sps.identity(self._mat.shape[0], format="csc")
            elif isinstance(op, BlackBoxOperator):
                M = M + c * op._mat
            else:
                return None
        if identity_shift:
            M = M + identity_shift * sps.identity(self._mat.shape[0], format="csc")
        return BlackBoxOperator(M, self.calls)


def blackbox_model(sys):
    """A pyMOR LTIModel of a SparseSystem with black-box A and E (B, C as NumPy operators)."""
    from pymor.models.iosys import LTIModel
    from pymor.operators.numpy import NumpyMatrixOperator

    calls = {"apply": 0, "lu": 0}
    A = BlackBoxOperator(sys.A, calls)
    E = BlackBoxOperator(sys.E, calls) if sys.E is not None else None
    B = NumpyMatrixOperator(sys.B)
    C = NumpyMatrixOperator(sys.C)
    return LTIModel(A, B, C, E=E), calls
