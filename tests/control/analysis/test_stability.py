"""``decay_rate`` and its deprecated alias ``stability_margin`` (control/analysis/_stability.py)."""

import warnings

import pytest
import torch

import difflinalg._utils as utils
from difflinalg.control import StateSpace, decay_rate, stability_margin


def _system(poles, time="continuous"):
    A = torch.diag(torch.tensor(poles, dtype=torch.float64))
    n = A.shape[0]
    return StateSpace(A, torch.ones(n, 1, dtype=torch.float64), torch.ones(1, n, dtype=torch.float64), time=time)


def test_decay_rate_is_the_distance_to_the_boundary():
    assert decay_rate(_system([-1.0, -0.25, -3.0])) == pytest.approx(0.25)
    assert decay_rate(_system([0.5, -0.75], "discrete")) == pytest.approx(0.25)
    assert decay_rate(_system([-1.0, 0.5])) == pytest.approx(-0.5)  # unstable: negative
    assert _system([-2.0]).decay_rate() == pytest.approx(2.0)


def test_stability_margin_is_a_deprecated_alias_warning_once(monkeypatch):
    monkeypatch.setattr(utils, "_warned", set())
    F = _system([-1.0, -0.25])
    with pytest.warns(DeprecationWarning, match="decay_rate"):
        assert stability_margin(F) == decay_rate(F)
    with pytest.warns(DeprecationWarning, match="decay_rate"):
        assert F.stability_margin() == F.decay_rate()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert stability_margin(F) == F.stability_margin() == pytest.approx(0.25)  # once per process
