"""Systems from and to python-control, scipy.signal and pyMOR: round trips, time domains and the
sampling period, descriptor matrices, and systems accepted wherever one is expected."""

import numpy as np
import pytest
import scipy.signal as sig
import torch

from difflinalg import InputError
from difflinalg.control import StateSpace, balanced_truncation, h2_error, h2_norm, hankel_singular_values

F64, C128 = torch.float64, torch.complex128


def _random(n=5, m=2, p=3, dtype=F64, discrete=False, dt=None, seed=0, feedthrough=None):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(n, n, dtype=F64, generator=g) / n ** 0.5
    if discrete:
        A = 0.8 * A / torch.linalg.eigvals(A).abs().max()
    else:
        A = A - (torch.linalg.eigvals(A).real.max() + 0.5) * torch.eye(n, dtype=F64)
    B, C, D = (torch.randn(*s, dtype=F64, generator=g) for s in ((n, m), (p, n), (p, m)))
    if not (discrete if feedthrough is None else feedthrough):
        D = torch.zeros_like(D)  # a finite H2 norm in continuous time
    F = StateSpace(A, B, C, D, time="discrete" if discrete else "continuous", dt=dt)
    return F.to(dtype)


def _same(F, G, tol=1e-14):
    assert (F.time, F.dt) == (G.time, G.dt)
    for x, y in zip(F.matrices(), G.matrices()):
        assert x.dtype == y.dtype and torch.allclose(x, y, rtol=tol, atol=tol)


CASES = [dict(), dict(discrete=True, dt=0.1), dict(discrete=True, dt=None)]


@pytest.mark.parametrize("kw", CASES, ids=["continuous", "discrete", "discrete-unspecified"])
def test_control_round_trip(kw):
    ct = pytest.importorskip("control")
    F = _random(**kw)
    S = F.to_control()
    assert isinstance(S, ct.StateSpace)
    assert S.dt == (0 if not F.discrete else (F.dt if F.dt else True))
    _same(StateSpace.from_control(S), F)
    # python-control's own H2 norm of the converted system agrees with ours
    if not F.discrete:
        assert abs(ct.norm(S, p=2) - float(h2_norm(F))) <= 1e-12 * float(h2_norm(F))


@pytest.mark.parametrize("kw", CASES, ids=["continuous", "discrete", "discrete-unspecified"])
def test_scipy_round_trip(kw):
    F = _random(**kw)
    S = F.to_scipy()
    assert isinstance(S, sig.dlti if F.discrete else sig.lti)
    _same(StateSpace.from_scipy(S), F)


def test_scipy_transfer_function_and_complex():
    F = StateSpace.from_scipy(sig.TransferFunction([1.0], [1.0, 3.0, 2.0]))
    assert F.order == 2 and F.time == "continuous"
    w = torch.tensor([0.0, 1.0, 10.0], dtype=F64)
    H = F.frequency_response(w).reshape(-1)
    exact = 1 / ((1j * w) ** 2 + 3 * (1j * w) + 2)
    assert torch.allclose(H, exact.to(H.dtype), rtol=1e-14, atol=0)
    Fc = _random(dtype=C128, feedthrough=True)
    _same(StateSpace.from_scipy(Fc.to_scipy()), Fc)


@pytest.mark.parametrize("kw", CASES[:2], ids=["continuous", "discrete"])
def test_pymor_round_trip(kw):
    pytest.importorskip("pymor")
    F = _random(**kw)
    M = F.to_pymor()
    assert M.sampling_time == (F.dt or 0)
    _same(StateSpace.from_pymor(M), F)
    # pyMOR's own H2 norm agrees with ours (Gramians in both)
    assert abs(M.h2_norm() - float(h2_norm(F))) <= 1e-11 * float(h2_norm(F))


def test_pymor_descriptor_is_folded_in():
    pytest.importorskip("pymor")
    from pymor.models.iosys import LTIModel

    F = _random()
    A, B, C, D = (x.numpy() for x in F.matrices())
    E = np.diag([1.0, 2.0, 3.0, 4.0, 5.0])
    G = StateSpace.from_pymor(LTIModel.from_matrices(E @ A, E @ B, C, D, E=E))
    _same(G, F, tol=1e-13)
    with pytest.raises(InputError, match="E is singular"):
        StateSpace.from_pymor(LTIModel.from_matrices(A, B, C, D, E=np.diag([1.0, 1.0, 1.0, 1.0, 0.0])))
    with pytest.raises(InputError, match="sampling period"):
        _random(discrete=True).to_pymor()


def test_foreign_systems_are_accepted_where_a_system_is_expected():
    F = _random(n=8, m=1, p=1)
    S = F.to_scipy()
    assert float(h2_norm(S)) == pytest.approx(float(h2_norm(F)), rel=1e-14)
    assert torch.allclose(hankel_singular_values(S), hankel_singular_values(F), rtol=1e-13, atol=0)
    H = balanced_truncation(S, 3)
    assert isinstance(H, StateSpace) and float(h2_error(S, H)) == pytest.approx(float(h2_error(F, H)), rel=1e-12)
    pytest.importorskip("control")
    assert float(h2_norm(F.to_control())) == pytest.approx(float(h2_norm(F)), rel=1e-14)


def test_tuples_are_never_guessed():
    F = _random()
    with pytest.raises(InputError, match="markov_system"):
        h2_norm(tuple(F.matrices()))
    with pytest.raises(InputError, match="expected a system, got str"):
        h2_norm("beam.mat")


def test_dt_is_validated_and_carried():
    F = _random(discrete=True, dt=0.25)
    assert F.dt == 0.25 and F.detach().dt == 0.25 and F.to(C128).dt == 0.25
    assert balanced_truncation(F, 2).dt == 0.25
    assert StateSpace(*F.matrices(), dt=0.5).time == "discrete"
    assert StateSpace(*F.matrices(), dt=True).dt is None
    assert _random().dt == 0.0
    for bad in (-1.0, float("nan"), "x"):
        with pytest.raises(InputError, match="dt"):
            StateSpace(*F.matrices(), dt=bad)
    with pytest.raises(InputError, match="continuous-time system has dt = 0"):
        StateSpace(*F.matrices(), time="continuous", dt=0.1)
    with pytest.raises(InputError, match="sampling periods differ"):
        h2_error(F, _random(discrete=True, dt=0.5, seed=1))


def test_batched_system_conversion_is_refused():
    F = StateSpace(torch.zeros(2, 3, 3, dtype=F64) - torch.eye(3, dtype=F64), torch.ones(3, 1, dtype=F64),
                   torch.ones(1, 3, dtype=F64))
    with pytest.raises(InputError, match="batch"):
        F.to_scipy()


@pytest.mark.parametrize("suffix", [".npz", ".mat"])
@pytest.mark.parametrize("dt", [0.125, None])
def test_sampling_period_survives_files(tmp_path, suffix, dt):
    from difflinalg.control import load_model, save_model

    F = _random(discrete=True, dt=dt)
    save_model(F, tmp_path / f"m{suffix}")
    G = load_model(tmp_path / f"m{suffix}")
    _same(G, F)
