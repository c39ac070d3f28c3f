"""``_sparse.lu_solve``: SuperLU solves for any right-hand side, with the factor's dtype read without
copying a factor (``lu_dtype``)."""

import numpy as np
import pytest
import scipy.sparse as sps
import scipy.sparse.linalg as spla

from difflinalg.control.system._sparse import lu_dtype, lu_solve


class _NoFactorCopies:
    """A SuperLU whose ``L`` and ``U`` (each access copies a factor) raise: only ``solve`` and
    ``shape`` get through."""

    def __init__(self, lu):
        self._lu = lu
        self.shape = lu.shape

    def solve(self, *args, **kwargs):
        return self._lu.solve(*args, **kwargs)

    def __getattr__(self, name):
        raise AssertionError(f"lu.{name} accessed (copies a factor)")


def _matrix(dtype, n=40, seed=0):
    rng = np.random.default_rng(seed)
    M = sps.random(n, n, density=0.15, random_state=rng, format="csc")
    if np.dtype(dtype).kind == "c":
        M = M + 1j * sps.random(n, n, density=0.15, random_state=rng, format="csc")
    return (M + 4 * sps.eye(n)).astype(dtype).tocsc()


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
def test_lu_dtype_is_the_factors_dtype(dtype):
    lu = spla.splu(_matrix(dtype))
    assert lu_dtype(_NoFactorCopies(lu)) == lu.L.dtype == np.dtype(dtype)


@pytest.mark.parametrize("factor", [np.float64, np.complex128])
@pytest.mark.parametrize("rhs", [np.float64, np.complex128])
@pytest.mark.parametrize("trans", ["N", "T", "H"])
@pytest.mark.parametrize("shape", [(40,), (40, 3)])
def test_lu_solve_matches_a_dense_solve(factor, rhs, trans, shape):
    M = _matrix(factor)
    rng = np.random.default_rng(1)
    X = rng.standard_normal(shape)
    if np.dtype(rhs).kind == "c":
        X = X + 1j * rng.standard_normal(shape)
    Y = lu_solve(_NoFactorCopies(spla.splu(M)), X, trans=trans)
    D = M.toarray()
    op = {"N": D, "T": D.T, "H": D.conj().T}[trans]
    want = np.linalg.solve(op, X)
    assert Y.shape == want.shape
    # a complex answer exactly where the factor or the right-hand side is complex
    assert np.iscomplexobj(Y) == (np.dtype(factor).kind == "c" or np.dtype(rhs).kind == "c")
    # backward-stable solves of a well-conditioned (diagonally shifted) matrix: error ~ cond * eps
    cond = np.linalg.cond(D)
    assert np.abs(Y - want).max() <= 100 * cond * np.finfo(float).eps * np.abs(want).max()
