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


META = torch.empty(2, 4, 4, device="meta", dtype=F64)
META_CALLS = {
    "eigh": lambda: difflinalg.eigh(META), "eigvalsh": lambda: difflinalg.eigvalsh(META),
    "svd": lambda: difflinalg.svd(META), "svdvals": lambda: difflinalg.svdvals(META),
    "eigh_subspace": lambda: difflinalg.eigh_subspace(META, 2),
    "subspace_projector": lambda: difflinalg.subspace_projector(META, 2),
    "svd_truncated": lambda: difflinalg.svd_truncated(META, 2),
    "eigh_function": lambda: difflinalg.eigh_function(META, torch.exp, torch.exp),
    "svd_function": lambda: difflinalg.svd_function(META, torch.exp, torch.exp),
    "cholesky": lambda: difflinalg.cholesky(META), "qr": lambda: difflinalg.qr(META),
    "lq": lambda: difflinalg.lq(META),
    "regularized_solve": lambda: difflinalg.regularized_solve(META, torch.empty(2, 4, device="meta", dtype=F64), 1.0),
    "solve_sylvester": lambda: difflinalg.solve_sylvester(META, META, META),
    "solve_continuous_lyapunov": lambda: difflinalg.solve_continuous_lyapunov(META, META),
    "sqrtm": lambda: difflinalg.sqrtm(META), "expmh": lambda: difflinalg.expmh(META),
    "eigengap_loss": lambda: difflinalg.signal.eigengap_loss(META, 1, 1.0),
    "decompose": lambda: difflinalg.signal.decompose(META),
}


@pytest.mark.parametrize("op", sorted(META_CALLS))
def test_meta_tensors_get_a_named_error(op):
    """Every rule reads values (checks, host factorizations): on the meta device it raises an
    InputError naming the argument, not torch's ".item() cannot be called on meta tensors"."""
    with pytest.raises(InputError, match="meta tensors are not supported"):
        META_CALLS[op]()
