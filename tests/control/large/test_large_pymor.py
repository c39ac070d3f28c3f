"""pyMOR targets whose operators are not NumPy matrices (control/large/_pymor.py): the shifted solves
go through pyMOR's operator interface, and the results agree with the same model given as sparse
matrices."""

import numpy as np
import pytest
import torch

pytest.importorskip("pymor")

from difflinalg import InputError  # noqa: E402
from difflinalg.control import (  # noqa: E402
    StateSpace,
    frequency_response,
    h2_error,
    h2_norm,
    hankel_singular_values,
    is_stable,
    rarl2,
    reduce,
)
from difflinalg.control.large import PymorSolver, PymorSystem, ShiftedSolver, heat_2d, msd_descriptor  # noqa: E402
from difflinalg.control.system import _route  # noqa: E402

from _blackbox import blackbox_model  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def sparse_path(monkeypatch):
    monkeypatch.setattr(_route, "SPARSE_CROSSOVER", 0)


def test_operators_that_are_not_matrices_give_the_adapter():
    F = msd_descriptor(20)
    m, calls = blackbox_model(F)
    P = StateSpace.from_pymor(m)
    assert isinstance(P, PymorSystem) and P.order == 40 and calls["apply"] == 0  # nothing densified
    D = StateSpace.from_pymor(m, sparse=False)  # dense on request: the operators applied to I
    assert isinstance(D, StateSpace) and torch.allclose(D.A, F.to_dense().A, rtol=1e-12, atol=1e-12)
    with pytest.raises(InputError, match="to_dense forms 40 x 40 dense matrices"):
        P.to_dense(max_order=30)


@pytest.mark.parametrize("adjoint", [False, True])
@pytest.mark.parametrize("shift", [2.0, 0.5 + 3.0j])
def test_solver_matches_shifted_solver(adjoint, shift):
    F = msd_descriptor(20)
    m, calls = blackbox_model(F)
    P = StateSpace.from_pymor(m)
    S, R = PymorSolver(P), ShiftedSolver(F)
    X = np.random.default_rng(0).standard_normal((40, 3)) + 1j * np.random.default_rng(1).standard_normal((40, 3))
    got, ref = S.shifted(shift, X, adjoint), R.shifted(shift, X, adjoint)
    assert np.allclose(got, ref, rtol=1e-10, atol=1e-12)
    lu = calls["lu"]
    S.shifted(shift, X, adjoint)  # the assembled operator (and its factorization) is reused
    assert calls["lu"] == lu and S.factorizations == 1
    assert np.allclose(S.solve(0.0, 1.0, X), R.solve(0.0, 1.0, X), rtol=1e-10)
    assert np.allclose(P.apply_E(X, adjoint), F.apply_E(X, adjoint)) and np.allclose(P.apply_A(X, adjoint), F.apply_A(X, adjoint))


@pytest.mark.parametrize("make", [lambda: msd_descriptor(40), lambda: heat_2d(9)], ids=["msd", "heat"])
def test_public_functions_through_pymor_operators(make, sparse_path):
    F = make()
    m, calls = blackbox_model(F)
    assert float(h2_norm(m)) == pytest.approx(float(h2_norm(F)), rel=1e-10)
    assert torch.allclose(hankel_singular_values(m, 3), hankel_singular_values(F, 3), rtol=1e-8)
    w = torch.tensor([0.1, 2.0], dtype=torch.float64)
    assert torch.allclose(frequency_response(m, w), frequency_response(F, w), rtol=1e-10)
    assert is_stable(m)
    res = rarl2(m, 2)
    ref = rarl2(F, 2)
    assert res.model.order == 2 and calls["apply"] > 0 and calls["lu"] > 0
    # the same computation through pyMOR's operators: the same result up to the solves' rounding
    assert res.relative_error == pytest.approx(ref.relative_error, rel=1e-6)
    e = float(h2_error(F.to_dense(), res.model, relative=True))
    assert e == pytest.approx(res.relative_error, rel=1e-9 / (2 * e * e) + 1e-9)  # low-rank ||F||^2
    assert reduce(m, 2, "irka").relative_error == pytest.approx(reduce(F, 2, "irka").relative_error, rel=1e-6)


def test_small_pymor_operator_model_takes_the_dense_path():
    F = msd_descriptor(20)
    m, _ = blackbox_model(F)
    assert 40 <= _route.SPARSE_CROSSOVER
    assert torch.allclose(h2_norm(m), h2_norm(F.to_dense()), rtol=1e-12)


def test_operator_system_cannot_be_saved(tmp_path):
    from difflinalg.control import save_model

    m, _ = blackbox_model(msd_descriptor(10))
    with pytest.raises(InputError, match="its A is a BlackBoxOperator, not a matrix"):
        save_model(StateSpace.from_pymor(m), tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()
