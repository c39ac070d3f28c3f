"""The case registry and ``verify`` (the engine behind ``difflinalg verify``)."""

import math

import pytest
import torch

from difflinalg import InputError
from difflinalg.check import Case, cases, register_case, unregister_case
from difflinalg.check import _registry
from difflinalg.check._verify import format_table, run_case, verify

from _faulty_rules import square

NO_CONJ = square("no_conj")  # z -> z^2, the conjugate missing from its gradient (complex only)


def _inputs(dtype, gen):
    return (torch.randn(3, generator=gen, dtype=dtype),)


@pytest.fixture
def scratch_op():
    """A name for test-only cases, removed from the registry afterwards."""
    yield "zz_test_op"
    unregister_case("zz_test_op")
    assert not [c for c in cases() if c.op == "zz_test_op"]


def test_cholesky_cases_are_registered():
    cs = {c.name: c for c in cases(["cholesky"])}
    assert {"generic", "batched", "upper", "ill_conditioned"} <= set(cs)
    assert all(isinstance(c, Case) for c in cs.values())
    assert cs["ill_conditioned"].hard and not cs["generic"].hard
    assert set(cs["generic"].dtypes) == {torch.float64, torch.complex128}
    assert set(cs["generic"].modes) == {"vjp", "jvp", "hvp", "hvp_rev", "jvp2"}


def test_register_replace_and_unregister(scratch_op):
    register_case(scratch_op, "a", torch.sin, _inputs, modes=("jvp",))
    register_case(scratch_op, "a", torch.cos, _inputs, modes=("vjp",), max_step=0.01)
    (c,) = cases([scratch_op])
    assert c.fn is torch.cos and c.modes == ("vjp",) and dict(c.gradcheck_kwargs) == {"max_step": 0.01}
    unregister_case(scratch_op, "a")
    with pytest.raises(InputError, match=r"ops: unknown op\(s\) \['zz_test_op'\]; registered ops are"):
        cases([scratch_op])


def test_register_rejects_bad_cases():
    with pytest.raises(InputError, match=r"modes: unknown mode\(s\) \['hessian'\]"):
        register_case("zz_bad", "a", torch.sin, _inputs, modes=("hessian",))
    with pytest.raises(InputError, match="fn, make_inputs"):
        register_case("zz_bad", "a", "sin", _inputs)
    with pytest.raises(InputError, match="op, name"):
        register_case("", "a", torch.sin, _inputs)
    assert not [c for c in _registry._CASES if c[0] == "zz_bad"]


def test_run_case_records_a_correct_case(scratch_op):
    case = register_case(scratch_op, "sin", torch.sin, _inputs, dtypes=(torch.float64,))
    recs = run_case(case, torch.float64)
    assert [r["mode"] for r in recs] == ["vjp", "jvp", "hvp", "hvp_rev", "jvp2"]
    assert all(r["passed"] and r["error"] is None for r in recs)
    assert all(0 <= r["max_rel_err"] < 1e-9 and 0 < r["fd_rel_err"] < 1e-9 for r in recs)


def test_run_case_catches_a_wrong_rule_in_complex_only(scratch_op):
    case = register_case(scratch_op, "no_conj", NO_CONJ, _inputs, modes=("vjp", "jvp"))
    real = run_case(case, torch.float64)
    cplx = run_case(case, torch.complex128)
    assert all(r["passed"] for r in real)
    vjp, jvp = cplx
    assert not vjp["passed"] and vjp["max_rel_err"] > 0.01 and vjp["error"] is None
    assert jvp["passed"]


def test_run_case_reports_a_crash(scratch_op):
    def boom(dtype, gen):
        raise RuntimeError("cannot build inputs")

    case = register_case(scratch_op, "crash", torch.sin, boom, modes=("jvp",))
    (rec,) = run_case(case, torch.float64)
    assert not rec["passed"] and math.isnan(rec["max_rel_err"])
    assert rec["error"] == "RuntimeError: cannot build inputs"


def test_verify_and_table(scratch_op):
    register_case(scratch_op, "sin", torch.sin, _inputs, modes=("jvp",))
    register_case(scratch_op, "no_conj", NO_CONJ, _inputs, modes=("vjp",))
    seen = []
    recs = verify([scratch_op], progress=seen.append)
    assert len(recs) == 4 and len(seen) == 4  # 2 cases x 2 dtypes
    assert [r["passed"] for r in recs] == [True, True, True, False]
    table = format_table(recs)
    assert "zz_test_op" in table and "no_conj" in table and "NO" in table
    assert table.endswith("3 of 4 checks passed")


def test_a_case_module_that_fails_to_import_is_a_failure(monkeypatch):
    real_import = _registry.importlib.import_module

    def fake_import(name):
        if name == "difflinalg.signal._cases":
            raise SyntaxError("broken case module")
        return real_import(name)

    monkeypatch.setattr(_registry.importlib, "import_module", fake_import)
    monkeypatch.setattr(_registry, "_loaded", False)
    monkeypatch.setattr(_registry, "_LOAD_ERRORS", {})
    monkeypatch.setattr(_registry, "FAMILIES", ("factor", "signal"))
    assert "difflinalg.signal._cases" in _registry.load_errors()
    # Named ops still run; an unknown name mentions the broken module.
    assert cases(["cholesky"])
    with pytest.raises(InputError, match="failed to import: difflinalg.signal._cases"):
        cases(["zz_missing"])
    monkeypatch.setattr(_registry, "_CASES", {})  # verify() of everything: only the import error
    (rec,) = verify()
    assert rec["op"] == "<difflinalg.signal._cases>" and not rec["passed"]
    assert "SyntaxError: broken case module" in rec["error"]
