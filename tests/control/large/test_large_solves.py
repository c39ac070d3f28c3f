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


@pytest.mark.parametrize("adjoint", [False, True])
def test_conjugate_shift_shares_the_factorization(adjoint):
    """A real pencil: ``A - conj(mu) E`` is solved with the conjugate of ``A - mu E``'s factors."""
    s = msd_descriptor(40)
    S = ShiftedSolver(s)
    mu = -0.3 + 1.7j
    X = np.random.default_rng(1).standard_normal((s.order, 2)) + 1j * np.random.default_rng(2).standard_normal((s.order, 2))
    S.shifted(mu, X, adjoint=adjoint)
    Y = S.shifted(np.conj(mu), X, adjoint=adjoint)
    assert S.factorizations == 1
    M = (s.A - np.conj(mu) * s.E).toarray()
    R = (M.conj().T if adjoint else M) @ Y - X
    assert np.abs(R).max() <= 1e-12 * np.abs(X).max() * np.linalg.norm(M, 1)


def test_cache_bounded_by_bytes_and_transient_phase():
    s = heat_2d(20)
    S = ShiftedSolver(s)
    S.shifted(-1.0, s.B)
    one = S.cached_bytes
    assert one > 0
    S = ShiftedSolver(s, cache_bytes=int(2.5 * one))
    for mu in (-1.0, -2.0, -3.0, -4.0):
        S.shifted(mu, s.B)
    # real shifts, equal fill: two fit the budget; the least recently used went first
    assert len(S.cache) == 2 and S.cached_bytes <= 2.5 * one and S.factorizations == 4
    assert [-k[1].real for k in S.cache] == [-3.0, -4.0]
    with S.transient():
        S.shifted(-5.0, s.B)
        S.shifted(-5.0, s.B, adjoint=True)
        assert len(S.cache) == 3  # a transient factorization evicts nothing ...
    assert [-k[1].real for k in S.cache] == [-3.0, -4.0]  # ... and is freed when its phase ends
    assert S.factorizations == 5
    S.clear()
    assert not S.cache and S.cached_bytes == 0
