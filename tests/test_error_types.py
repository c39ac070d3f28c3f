"""The error types: numerical failures are also ``torch.linalg.LinAlgError`` (so ``except`` clauses
written for torch.linalg keep working), bad arguments are also ``ValueError``."""

import pytest
import torch
from torch.linalg import LinAlgError

import difflinalg
from difflinalg import (ConvergenceError, DegenerateSpectrumError, InputError, NotPositiveDefiniteError,
                        SingularEquationError)

F64 = torch.float64


@pytest.mark.parametrize("err", [NotPositiveDefiniteError, SingularEquationError, DegenerateSpectrumError,
                                 ConvergenceError])
def test_numerical_failures_are_linalg_errors(err):
    assert issubclass(err, LinAlgError) and issubclass(err, difflinalg.DifflinalgError)


def test_input_errors_stay_value_errors():
    for err in (InputError, NotPositiveDefiniteError, SingularEquationError, DegenerateSpectrumError):
        assert issubclass(err, ValueError)


def test_cholesky_failure_is_caught_by_a_torch_linalg_handler():
    A = -torch.eye(3, dtype=F64)
    with pytest.raises(LinAlgError):
        torch.linalg.cholesky(A)
    with pytest.raises(LinAlgError, match="positive definite"):
        difflinalg.cholesky(A)


def test_singular_sylvester_is_caught_by_a_torch_linalg_handler():
    A = torch.diag(torch.tensor([1.0, 2.0, 3.0], dtype=F64))
    with pytest.raises(LinAlgError):
        difflinalg.solve_sylvester(A, -A, torch.eye(3, dtype=F64), method="schur")
