"""The reductor contract (control/reduction/_registry.py): ``REDUCTORS``, ``reduce``, ``reduce_bt``;
the result records' field names (control/reduction/_results.py)."""

import warnings

import pytest
import torch

import difflinalg._utils as utils
from difflinalg import InputError
from difflinalg.control import REDUCTORS, ReductionResult, balanced_truncation, builtin_model, h2_error, reduce, reduce_bt


@pytest.mark.parametrize("name", sorted(REDUCTORS))
def test_every_reductor_keeps_the_contract(name):
    F = builtin_model("msd:12")
    res = reduce(F, 4, name)
    assert isinstance(res, ReductionResult) and res.reductor == name and res.model.order == 4
    assert isinstance(res.error, float) and isinstance(res.relative_error, float) and res.seconds >= 0
    # the absolute error is the H2 norm of the error system (RARL2's comes from its criterion)
    assert res.error == pytest.approx(float(h2_error(F, res.model)), rel=1e-8)
    assert res.relative_error == pytest.approx(res.error / res.target_norm, rel=1e-12)


def test_reduce_bt_is_balanced_truncation():
    F = builtin_model("msd:12")
    res = reduce_bt(F, 5)
    H, hsv = balanced_truncation(F, 5, return_hsv=True)
    assert all(torch.equal(x, y) for x, y in zip(res.model.matrices(), H.matrices()))
    assert torch.equal(res.details["hsv"], hsv) and res.method == "square-root"


def test_reduce_passes_options_and_names_unknown_reductors():
    F = builtin_model("msd:12")
    assert reduce(F, 3, "rarl2", starts=["bt"]).starts[0].name == "bt"
    assert reduce(F, 3, "irka", max_iter=1).details["iterations"] == 1
    with pytest.raises(InputError, match=r"reductor: unknown reductor 'hinf'; choose from \['bt', 'irka', 'rarl2'\]"):
        reduce(F, 3, "hinf")


def test_start_result_relative_names_and_deprecated_aliases(monkeypatch):
    monkeypatch.setattr(utils, "_warned", set())
    s = reduce(builtin_model("msd:12"), 3, starts=["bt"]).starts[0]
    with pytest.warns(DeprecationWarning, match="relative_error"):
        assert s.error == s.relative_error
    with pytest.warns(DeprecationWarning, match="start_relative_error"):
        assert s.start_error == s.start_relative_error
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert s.error == s.relative_error  # warned once
