"""Cached shifted sparse solves and the memory estimate."""

import numpy as np
import pytest

from difflinalg.control.large import FactorizationMemoryError, ShiftedSolver, heat_2d, lu_memory_estimate, msd_descriptor


@pytest.mark.parametrize("adjoint", [False, True])
def test_shifted_solve_residual_and_reuse(adjoint):
    s = msd_descriptor(40)
    S = ShiftedSolver(s)
    mu = -0.3 + 1.7j
    M = (s.A - mu * s.E).toarray()
    X = np.random.default_rng(0).standard_normal((s.order, 3))
    Y = S.shifted(mu, X, adjoint=adjoint)
    R = (M.conj().T if adjoint else M) @ Y - X
    assert np.abs(R).max() <= 1e-12 * np.abs(X).max() * np.linalg.norm(M, 1)
    S.shifted(mu, X, adjoint=not adjoint)
    S.solve(2.0, -2.0 * mu, X)  # the same shift, scaled: 2 (A - mu E)
    assert S.factorizations == 1
    S.shifted(0.5, X)
    assert S.factorizations == 2


def test_real_factor_complex_rhs():
    s = heat_2d(8)
    S = ShiftedSolver(s)
    X = np.ones((s.order, 1)) * (1 + 2j)
    Y = S.shifted(-1.0, X)
    np.testing.assert_allclose((s.A + s.E_or_identity).toarray() @ Y, X, atol=1e-12)


def test_memory_estimate_and_error():
    s = heat_2d(30)
    est = lu_memory_estimate(abs(s.A), complex_factors=True)
    S = ShiftedSolver(s)
    S.shifted(-1.0 + 1j, s.B)
    lu = next(iter(S.cache.values()))
    actual = (lu.L.nnz + lu.U.nnz) * 16
    assert actual / 3 <= est <= 10 * actual  # an estimate, of the right size
    small = ShiftedSolver(s, memory_limit=est // 2)
    with pytest.raises(FactorizationMemoryError, match=r"needs an estimated .* GiB, above the memory limit"):
        small.shifted(-1.0, s.B)
    assert small.factorizations == 0 and not small.cache
