"""Every registered verification case of the equations family passes ``gradcheck`` in all modes
(this is what ``difflinalg verify --ops ...`` runs)."""

import pytest
import torch

from difflinalg.check import cases

from _helpers import gradcheck_case

OPS = ["solve_sylvester", "solve_stein", "solve_continuous_lyapunov", "solve_discrete_lyapunov",
       "SylvesterOperator", "SteinOperator"]
CASES = [(c, dt) for c in cases(OPS) for dt in c.dtypes]


def test_every_op_has_generic_batched_and_hard_cases():
    names = {op: {c.name for c in cases([op])} for op in OPS}
    for op in OPS[:4]:
        assert any("batched" in n for n in names[op]), op
        assert any(c.hard for c in cases([op])), op
    assert {c.dtypes for c in cases(OPS)} == {(torch.float64, torch.complex128)}


@pytest.mark.parametrize("case,dtype", CASES, ids=[f"{c.op}-{c.name}-{str(dt)[6:]}" for c, dt in CASES])
def test_case(case, dtype):
    rep = gradcheck_case(case, dtype)
    assert rep.passed and {r.mode for r in rep.records} == set(case.modes)
