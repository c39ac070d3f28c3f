"""rarl2's arguments checked before any work, single-precision targets, unstable targets named."""

import math
import warnings

import pytest
import torch

from difflinalg import InputError, PrecisionWarning, UnstableSystemError
from difflinalg.control import StateSpace, h2_error, rarl2
from difflinalg.control.reduction._rarl2._validate import ROUNDING_CHECK_BELOW, check_rarl2_args

from _controlhelpers import embedded, random_system


@pytest.fixture
def no_work(monkeypatch):
    """Fail if rarl2 gets as far as factorizing the target."""
    from difflinalg.control.reduction._rarl2 import _api as _rarl2

    def boom(*a, **k):
        raise AssertionError("the target was factorized before the arguments were checked")

    monkeypatch.setattr(_rarl2, "Target", boom)


@pytest.mark.parametrize("kwargs, msg", [
    ({"max_iter": 0}, r"max_iter: expected a positive integer .* got 0; the default is 2000"),
    ({"max_iter": -3}, r"max_iter: expected a positive integer .* got -3"),
    ({"max_iter": 2.5}, r"max_iter: expected a positive integer .* got 2.5"),
    ({"tol": -1e-9}, r"tol: expected a finite number >= 0 .* got -1e-09; the default is 1e-9"),
    ({"tol": math.nan}, r"tol: expected a finite number >= 0 .* got nan"),
    ({"tol": "small"}, r"tol: expected a finite number >= 0 .* got 'small'"),
    ({"max_time": math.nan}, r"max_time: expected a positive number of seconds \(or None for no limit\), got nan"),
    ({"max_time": 0}, r"max_time: expected a positive number of seconds .* got 0"),
    ({"max_time": -1.0}, r"max_time: expected a positive number of seconds .* got -1.0"),
    ({"seed": "x"}, r"seed: expected an integer \(or None\), got str 'x'; pass e.g. seed=0"),
    ({"seed": 1.5}, r"seed: expected an integer \(or None\), got float 1.5"),
    ({"seed": True}, r"seed: expected an integer \(or None\), got bool True"),
    ({"starts": []}, r"starts: expected at least one start kind, got an empty list; .* starts=None"),
    ({"starts": 0}, r"starts: expected at least 1 start, got 0"),
    ({"starts": "bt"}, r"starts: expected a number of starts or a list of start kinds .* got 'bt'"),
    ({"progress": "yes"}, r"progress: expected True or False, got 'yes'"),
])
def test_bad_arguments_before_any_work(no_work, kwargs, msg):
    F = random_system(6, seed=71)
    with pytest.raises(InputError, match=msg):
        rarl2(F, 2, **kwargs)


def test_good_arguments_pass():
    check_rarl2_args(order=3, starts=["bt", "irka"], seed=0, max_iter=1, tol=0.0, max_time=math.inf,
                     progress=True)
    check_rarl2_args(order=1, starts=4, seed=torch.tensor(3).item())
    with pytest.raises(InputError, match="order: expected a positive integer .* got 0"):
        check_rarl2_args(order=0)


def test_tiny_time_budget_still_returns_a_model():
    """A budget spent before the first start runs the first start (balanced truncation) instead of
    failing with "no start produced a stable model"."""
    F = random_system(10, 1, 1, seed=72)
    res = rarl2(F, 2, max_time=1e-9)
    assert res.model.is_stable() and res.best_start == "bt" and len(res.starts) == 1


def _negated(F):
    return StateSpace(-F.A, F.B, F.C, time=F.time)


def _zero_poles(n, jordan):
    A = torch.diag(torch.ones(n - 1, dtype=torch.float64), 1) if jordan else torch.zeros(n, n, dtype=torch.float64)
    return StateSpace(A, torch.ones(n, 1, dtype=torch.float64), torch.ones(1, n, dtype=torch.float64))


@pytest.mark.parametrize("method", ["auto", "schur"])
@pytest.mark.parametrize("case, msg", [
    ("all-unstable", r"target: the system is not stable: continuous-time pole .* has real part \d"),
    ("all-at-0", r"target: the system is not stable: continuous-time pole 0 has real part 0 >= 0"),
    ("jordan-at-0", r"target: the system is not stable: continuous-time pole 0 has real part 0 >= 0"),
    ("discrete-unstable", r"target: the system is not stable: discrete-time pole .* has modulus"),
])
def test_unstable_targets_named(case, msg, method):
    """All poles unstable (or at 0): UnstableSystemError naming a pole, no NumPy RuntimeWarning and no
    ConvergenceError about a zero norm."""
    F = {"all-unstable": lambda: _negated(random_system(8, seed=73)),
         "all-at-0": lambda: _zero_poles(4, False),
         "jordan-at-0": lambda: _zero_poles(3, True),
         "discrete-unstable": lambda: StateSpace(2.0 * random_system(5, discrete=True, seed=74).A / 0.8,
                                                 torch.ones(5, 1, dtype=torch.float64),
                                                 torch.ones(1, 5, dtype=torch.float64), time="discrete"),
         }[case]()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UnstableSystemError, match=msg):
            rarl2(F, 1, method=method)


def test_one_unstable_pole_with_negative_trace_named():
    """The trace test is only a shortcut: a target with a stable trace and one unstable pole is
    still refused, naming that pole."""
    A = torch.diag(torch.tensor([-5.0, -3.0, 0.5], dtype=torch.float64))
    F = StateSpace(A, torch.ones(3, 1, dtype=torch.float64), torch.ones(1, 3, dtype=torch.float64))
    with pytest.raises(UnstableSystemError, match="pole 0.5 has real part 0.5"):
        rarl2(F, 1)


@pytest.mark.parametrize("discrete", [False, True])
@pytest.mark.parametrize("single, double", [(torch.float32, torch.float64), (torch.complex64, torch.complex128)])
def test_single_precision_target(single, double, discrete):
    """A float32 (complex64) target is reduced in double precision and the model returned in its
    dtype; the reported error is that of the returned (rounded) model within the rounding's own H2
    norm (triangle inequality)."""
    F = random_system(10, 2, 2, discrete=discrete, dtype=double, seed=75).to(single)
    res = rarl2(F, 3, starts=["bt", "irka"])
    assert res.model.dtype == single and res.model.time == F.time
    ref = rarl2(F.to(double), 3, starts=["bt", "irka"])  # the same computation in double precision
    assert ref.model.dtype == double
    for x, y in zip(res.model.matrices(), ref.model.matrices()):
        assert torch.equal(x, y.to(single))
    assert res.relative_error > ROUNDING_CHECK_BELOW and res.relative_error == ref.relative_error
    F64, H = F.to(double), res.model.to(double)
    rounding = float(h2_error(ref.model, H, method="gramian"))
    true = float(h2_error(F64, H, method="gramian"))
    assert abs(true - res.error) <= rounding + 1e-10 * res.error


def test_single_precision_exact_model_reports_its_rounding():
    """A float32 target of McMillan degree 3 reduced to order 3: in double precision the error is at
    rounding level, the model rounded to float32 is off by ~eps32: that error is reported (not the
    double-precision one), with a PrecisionWarning."""
    F, _ = embedded(3, 8, 1, 1, seed=76)
    F = F.to(torch.float32)
    with pytest.warns(PrecisionWarning, match="rounded to the target's float32 has relative error"):
        res = rarl2(F, 3, starts=["bt"])
    assert res.model.dtype == torch.float32
    # the yardstick at tiny errors (double-precision residues are off by ~20% here: pole errors)
    true = float(h2_error(F.to(torch.float64), res.model.to(torch.float64), precise=True))
    assert res.error == pytest.approx(true, rel=1e-9, abs=0)
    ref = rarl2(F.to(torch.float64), 3, starts=["bt"])
    assert ref.relative_error < 0.1 * res.relative_error  # the rounding dominates
    assert 1e-9 < res.relative_error < ROUNDING_CHECK_BELOW
