"""``difflinalg.eigvalsh`` and ``svdvals`` through the verification registry (their torch.linalg
compatibility, ties and bad input: test_torch_compat.py)."""

import pytest

from difflinalg.check import cases

from _helpers import gradcheck_case

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("case", cases(["eigvalsh"]), ids=lambda c: c.name)
def test_registered_cases(case):
    """Generic and batched non-Hermitian points (UPLO "L" and "U"), an exact triple tie with
    cluster-symmetric losses: float64 and complex128, every registered mode."""
    assert len(cases(["eigvalsh"])) == 3
    for dtype in case.dtypes:
        rep = gradcheck_case(case, dtype)
        assert rep.passed and len(rep.records) >= 4
