"""Every registered verification case (``difflinalg.check.cases()``, what ``difflinalg verify``
runs) through ``gradcheck`` in each of its dtypes and modes: one test per case, id ``op/case``.

Cases that take more than ~2 s (all their dtypes, one thread, measured on the 2-core development
machine) are marked slow; every op keeps at least one case in the default run
(``test_every_op_has_a_fast_case``).
"""

import pytest

from difflinalg.check import cases, load_errors

from _helpers import gradcheck_case

pytestmark = pytest.mark.usefixtures("one_thread")

# op/case -> seconds (float64 + complex128) when measured; > ~2 s runs only with -m slow.
SLOW = {
}

CASES = cases()


def _param(case):
    key = f"{case.op}/{case.name}"
    return pytest.param(case, id=key, marks=[pytest.mark.slow] if key in SLOW else [])


def test_every_case_module_imports():
    """A case module that fails to import would drop its cases from the list below silently."""
    assert load_errors() == {}


def test_every_op_has_a_fast_case():
    ops = {c.op for c in CASES}
    fast = {c.op for c in CASES if f"{c.op}/{c.name}" not in SLOW}
    assert ops - fast == set()
    assert {f"{c.op}/{c.name}" for c in CASES} >= set(SLOW), "SLOW names a case that no longer exists"


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_registered_case(case):
    for dtype in case.dtypes:
        rep = gradcheck_case(case, dtype)  # raises GradcheckError naming the input and mode
        assert rep.passed and {r.mode for r in rep.records} == set(case.modes)
