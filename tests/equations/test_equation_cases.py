"""The equations family registers generic, batched and hard verification cases for every op (they
run through ``gradcheck`` in tests/check/test_registered_cases.py, as ``difflinalg verify`` runs
them)."""

import torch

from difflinalg.check import cases

OPS = ["solve_sylvester", "solve_stein", "solve_continuous_lyapunov", "solve_discrete_lyapunov",
       "SylvesterOperator", "SteinOperator"]


def test_every_op_has_generic_batched_and_hard_cases():
    names = {op: {c.name for c in cases([op])} for op in OPS}
    for op in OPS[:4]:
        assert any("batched" in n for n in names[op]), op
        assert any(c.hard for c in cases([op])), op
    assert {c.dtypes for c in cases(OPS)} == {(torch.float64, torch.complex128)}
