"""Sparse and descriptor systems through the public functions (system/_route.py): the sparse path
above ``SPARSE_CROSSOVER`` (checked against the dense functions on the densified system), the dense
path below it, and ``StateSpace``'s choice between ``StateSpace`` and ``SparseSystem``."""

import math

import numpy as np
import pytest
import scipy.sparse as sps
import torch

from difflinalg import InputError, PrecisionWarning
from difflinalg.control import (
    LTISystem,
    ReductionResult,
    SparseSystem,
    StateSpace,
    balanced_truncation,
    frequency_response,
    h2_error,
    h2_norm,
    hankel_singular_values,
    is_stable,
    rarl2,
    reduce,
)
from difflinalg.control.large import convection_diffusion_2d, heat_2d, msd_descriptor
from difflinalg.control.system import _route

pytestmark = pytest.mark.usefixtures("one_thread")

MODELS = {"heat": lambda: heat_2d(12), "convdiff": lambda: convection_diffusion_2d(12),
          "msd": lambda: msd_descriptor(60)}


@pytest.fixture
def sparse_path(monkeypatch):
    """Every SparseSystem takes the sparse path, and forming it densely fails the test."""
    monkeypatch.setattr(_route, "SPARSE_CROSSOVER", 0)

    def no_dense(self, max_order=0):
        raise AssertionError("the sparse path formed a dense N x N system")

    monkeypatch.setattr(SparseSystem, "to_dense", no_dense)


_TO_DENSE = SparseSystem.to_dense  # before ``sparse_path`` patches it
#: the sparse H2 error is the error system's own low-rank Gramian (``h2_error_sparse``): a sum of
#: positive terms, accurate to ~1.6e-13 ||F|| absolute (its docstring: the solves' rounding and the
#: ADI tail); so a relative error e agrees with the dense yardstick to ~1.6e-13 / e, relatively,
#: plus the ADI tolerance's effect on ||F|| (the denominator)
SPARSE_RESOLUTION = 1e-12


def sparse_rel_tol(e: float) -> float:
    return SPARSE_RESOLUTION / e + 1e-7


def _dense(F):
    return _TO_DENSE(F)


# -- construction ---------------------------------------------------------------------------------
def test_statespace_returns_sparse_above_the_crossover(monkeypatch):
    F = heat_2d(12)
    monkeypatch.setattr(_route, "SPARSE_CROSSOVER", 100)
    G = StateSpace(F.A, F.B, F.C)
    assert isinstance(G, SparseSystem) and isinstance(G, LTISystem) and not isinstance(G, StateSpace)
    monkeypatch.setattr(_route, "SPARSE_CROSSOVER", 200)
    H = StateSpace(F.A, F.B, F.C)
    assert isinstance(H, StateSpace) and H.A.dtype == torch.float64
    assert isinstance(StateSpace(F.A, F.B, F.C, sparse=True), SparseSystem)
    assert isinstance(StateSpace(F.A.toarray(), F.B, F.C, sparse=True), SparseSystem)
    monkeypatch.setattr(_route, "SPARSE_CROSSOVER", 100)
    assert isinstance(StateSpace(F.A, F.B, F.C, sparse=False), StateSpace)


def test_descriptor_statespace_keeps_E_sparse():
    F = msd_descriptor(60)
    G = StateSpace(F.A, F.B, F.C, None, F.E, sparse=True)
    assert isinstance(G, SparseSystem) and (G.E != F.E).nnz == 0
    D = StateSpace(F.A, F.B, F.C, None, F.E, sparse=False)  # folded: E^{-1} A
    assert np.allclose(D.A.numpy(), sps.linalg.spsolve(F.E.tocsc(), F.A.tocsc()).toarray(), atol=1e-12)


def test_bad_sparse_input_is_named():
    F = heat_2d(6)
    A = F.A.copy()
    A.data[3] = np.nan
    with pytest.raises(InputError, match=r"A: contains 1 non-finite stored value"):
        StateSpace(A, F.B, F.C, sparse=True)
    with pytest.raises(InputError, match=r"E: expected shape \(36, 36\) to match A"):
        StateSpace(F.A, F.B, F.C, E=sps.identity(35, format="csc"), sparse=True)
    E = sps.identity(36, format="lil")
    E[5, 5] = 0.0
    with pytest.raises(InputError, match="E: the mass matrix is singular"):
        StateSpace(F.A, F.B, F.C, E=E.tocsc(), sparse=True)
    with pytest.raises(InputError, match="sparse: expected None, True or False"):
        StateSpace(F.A, F.B, F.C, sparse="yes")


# -- the sparse path agrees with the dense functions -------------------------------------------------
@pytest.mark.parametrize("name", sorted(MODELS))
def test_analysis_on_the_sparse_path(name, sparse_path):
    F = MODELS[name]()
    Fd = _dense(F)
    # low-rank ADI to 1e-12 (ADI_TOL): H2 norms to ~1e-8 relative
    assert float(h2_norm(F)) == pytest.approx(float(h2_norm(Fd)), rel=1e-8)
    hs, hd = hankel_singular_values(F, 4), hankel_singular_values(Fd, 4)
    assert hs.shape == (4,) and torch.allclose(hs, hd, rtol=1e-6)
    w = torch.tensor([0.0, 0.3, 5.0, 80.0], dtype=torch.float64)
    assert torch.allclose(frequency_response(F, w), frequency_response(Fd, w), rtol=1e-9, atol=1e-13)
    assert is_stable(F)
    H = balanced_truncation(F, 3)
    assert isinstance(H, StateSpace) and H.order == 3
    ref = float(h2_error(Fd, H, relative=True))
    assert float(h2_error(F, H, relative=True)) == pytest.approx(ref, rel=sparse_rel_tol(ref))


def test_unstable_sparse_system_is_not_stable(sparse_path):
    from difflinalg import UnstableSystemError

    A = sps.diags(np.linspace(-50.0, 1.0, 60), format="csc")  # one pole at +1
    F = SparseSystem(A, np.ones((60, 1)), np.ones((1, 60)))
    assert not is_stable(F)
    for fn in (h2_norm, lambda F: rarl2(F, 2), lambda F: balanced_truncation(F, 2), lambda F: reduce(F, 2, "irka")):
        with pytest.raises(UnstableSystemError, match=r"unstable: pole 1 \(real part 1 >= 0\), found by a sparse eigensolver"):
            fn(F)


def test_rarl2_sparse_target_returns_the_contract(sparse_path):
    F = heat_2d(12)
    res = rarl2(F, 2)
    assert isinstance(res, ReductionResult) and res.reductor == "rarl2" and res.method == "sparse"
    assert res.model.order == 2 and res.stability_margin > 0
    # measured on the full model: the same error as the dense yardstick, within the sparse path's
    # resolution (low-rank Gramian truncation, far below this 1e-2 relative error)
    ref = float(h2_error(_dense(F), res.model, relative=True))
    assert res.relative_error == pytest.approx(ref, rel=sparse_rel_tol(ref))
    assert res.error == pytest.approx(res.relative_error * res.target_norm, rel=1e-12)
    assert "bt" in res.details["candidates"]
    assert res.relative_error <= min(res.details["candidates"].values()) * (1 + 1e-12)


@pytest.mark.parametrize("reductor", ["bt", "irka"])
def test_reduce_sparse_target(reductor, sparse_path):
    F = msd_descriptor(60)
    res = reduce(F, 3, reductor)
    assert res.reductor == reductor and res.model.order == 3
    ref = float(h2_error(_dense(F), res.model, relative=True))
    assert res.relative_error == pytest.approx(ref, rel=sparse_rel_tol(ref))


def test_rarl2_small_sparse_error_is_resolved_with_its_resolution(sparse_path):
    F = heat_2d(12)
    res = rarl2(F, 8)  # relative error ~1e-6: resolved by the error system's Gramian
    ref = float(h2_error(_dense(F), res.model, relative=True, precise=True))
    assert res.relative_error == pytest.approx(ref, rel=sparse_rel_tol(ref))
    assert 0 < res.error_resolution < SPARSE_RESOLUTION * res.target_norm


def test_complex_sparse_system(sparse_path):
    F = heat_2d(10)
    G = SparseSystem(F.A.astype(complex) * (1 + 0.3j), F.B.astype(complex), F.C * (1 - 0.2j))
    Gd = _dense(G)
    assert float(h2_norm(G)) == pytest.approx(float(h2_norm(Gd)), rel=1e-8)
    w = torch.tensor([0.0, 3.0], dtype=torch.float64)
    assert torch.allclose(frequency_response(G, w), frequency_response(Gd, w), rtol=1e-9)
    assert torch.allclose(hankel_singular_values(G, 3), hankel_singular_values(Gd, 3), rtol=1e-6)
    res = rarl2(G, 2)
    assert res.model.dtype == torch.complex128
    ref = float(h2_error(Gd, res.model, relative=True))
    assert res.relative_error == pytest.approx(ref, rel=sparse_rel_tol(ref))


def test_sparse_error_below_the_resolution_is_the_resolution_and_warns(sparse_path):
    F = heat_2d(8)
    H = _dense(F)  # the same transfer function: the error is 0, below any resolution
    with pytest.warns(PrecisionWarning, match="below the sparse path's resolution"):
        e = float(h2_error(F, H, relative=True))
    assert 0 < e < SPARSE_RESOLUTION


def test_precise_sparse_error_makes_small_systems_dense_and_refuses_large_ones(monkeypatch):
    from difflinalg.control.large import _dispatch

    F = heat_2d(12)
    monkeypatch.setattr(_route, "SPARSE_CROSSOVER", 0)
    H = balanced_truncation(F, 10)
    ref = float(h2_error(_dense(F), H, relative=True, precise=True))
    assert float(h2_error(F, H, relative=True, precise=True)) == ref  # the dense yardstick itself
    monkeypatch.setattr(_dispatch, "DENSE_MAX", F.order - 1)
    with pytest.raises(InputError, match="method, precise: the dense H2 error methods need F dense"):
        h2_error(F, H, precise=True)


# -- below the crossover: the dense path, exactly -----------------------------------------------
def test_small_sparse_system_takes_the_dense_path():
    F = heat_2d(8)
    assert F.order <= _route.SPARSE_CROSSOVER
    Fd = F.to_dense()
    assert torch.equal(h2_norm(F), h2_norm(Fd))
    assert torch.equal(hankel_singular_values(F), hankel_singular_values(Fd))
    H = balanced_truncation(F, 3)
    assert torch.equal(H.A, balanced_truncation(Fd, 3).A)
    assert torch.equal(h2_error(F, H), h2_error(Fd, H))


def test_hankel_singular_values_k_dense():
    Fd = heat_2d(6).to_dense()
    assert torch.equal(hankel_singular_values(Fd, 3), hankel_singular_values(Fd)[:3])
    with pytest.raises(InputError, match="k: expected a positive integer"):
        hankel_singular_values(Fd, 0)


def test_pymor_numpy_model_takes_the_sparse_matrices(sparse_path, monkeypatch):
    pytest.importorskip("pymor")
    from pymor.models.iosys import LTIModel

    F = msd_descriptor(60)
    fom = LTIModel.from_matrices(F.A, F.B, F.C, E=F.E)
    G = StateSpace.from_pymor(fom)
    assert isinstance(G, SparseSystem) and G.E is not None and G.E.nnz == F.E.nnz
    assert float(h2_norm(fom)) == pytest.approx(float(h2_norm(F)), rel=1e-12)
    back = G.to_pymor()  # E kept, sparse
    assert back.E.matrix.nnz == F.E.nnz and back.order == F.order
    monkeypatch.setattr(_route, "SPARSE_CROSSOVER", 10**6)
    assert isinstance(StateSpace.from_pymor(fom), StateSpace)  # small: dense, E folded
    assert math.isfinite(float(StateSpace.from_pymor(fom).h2_norm()))


def test_sparse_system_methods(sparse_path):
    F = heat_2d(10)
    Fd = _dense(F)
    assert F.is_stable() and float(F.h2_norm()) == pytest.approx(float(Fd.h2_norm()), rel=1e-8)
    assert torch.allclose(F.hankel_singular_values(2), Fd.hankel_singular_values(2), rtol=1e-6)
    w = torch.tensor([1.0], dtype=torch.float64)
    assert torch.allclose(F.frequency_response(w), Fd.frequency_response(w), rtol=1e-10)


def test_functions_without_a_sparse_path_densify_or_refuse():
    from difflinalg.control import as_system, decay_rate, error_system

    F = heat_2d(6)
    assert decay_rate(F) == pytest.approx(decay_rate(F.to_dense()), rel=1e-12)
    assert error_system(F, F).order == 72
    assert torch.equal(as_system(F).A, F.to_dense().A)
    with pytest.raises(InputError, match=r"F: to_dense forms 5041 x 5041 dense matrices"):
        as_system(heat_2d(71), "F")  # above DENSE_MAX: refused before anything dense is formed


def _stalling(*args, **options):
    from difflinalg import ConvergenceError
    raise ConvergenceError("sys: low-rank ADI stalled (test double)")


def test_a_stalling_sparse_path_falls_back_to_the_exact_dense_one(monkeypatch):
    """Lightly damped models can stall the low-rank iterations (SLICOT ISS12A); at orders the dense
    path can take, the dense algorithm answers instead; above DENSE_MAX the error reaches the user."""
    from difflinalg import ConvergenceError

    F = MODELS["msd"]()
    monkeypatch.setattr(_route, "SPARSE_CROSSOVER", 0)
    _route.backend("h2_norm")  # load control.large (it fills BACKEND), then replace the entry
    monkeypatch.setitem(_route.BACKEND, "h2_norm", _stalling)
    dense = h2_norm(_TO_DENSE(F))
    assert float(h2_norm(F)) == float(dense)
    monkeypatch.setattr(_route, "DENSE_MAX", F.order - 1)
    with pytest.raises(ConvergenceError, match="stalled"):
        h2_norm(F)


def test_sparse_error_with_a_coarse_resolution_warns(monkeypatch):
    """A non-normal target (upwind convection-diffusion) whose error system's ADI tail holds a
    visible share of a tiny error: the value comes with a warning quoting its resolution (whether
    the resolution covers the truth is tested against quadrature in test_large_errsys.py)."""
    from difflinalg.control.large._gramians import h2_error_norm

    F = convection_diffusion_2d(14, velocity=(30.0, 15.0))
    H = balanced_truncation(_dense(F), 14)
    r = h2_error_norm(F, H)
    assert r.resolution > 1e-3 * r.error  # the case this test is about
    monkeypatch.setattr(_route, "SPARSE_CROSSOVER", 0)
    with pytest.warns(PrecisionWarning, match="resolved only to"):
        e = float(h2_error(F, H))
    assert e == r.error
