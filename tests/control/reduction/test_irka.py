"""``irka`` (control/reduction/_irka.py): IRKA from balanced truncation with the reductor contract."""

import math

import pytest
import torch

from difflinalg import InputError, UnstableSystemError
from difflinalg.control import StateSpace, builtin_model, h2_error, h2_norm, irka, rarl2


def _transfer(sys: StateSpace, s: complex, k: int = 0) -> torch.Tensor:
    """``d^k/ds^k C (sI - A)^{-1} B`` at the complex point ``s`` (SISO, k = 0 or 1)."""
    A, B, C = (x.to(torch.complex128) for x in (sys.A, sys.B, sys.C))
    R = torch.linalg.inv(s * torch.eye(A.shape[0], dtype=A.dtype) - A)
    return (C @ (R if k == 0 else -R @ R) @ B)[0, 0]


def test_converged_model_interpolates_at_the_mirrored_poles():
    """At a fixed point, F and H and their derivatives agree at sigma_i = -conj(mu_i) (the first-order
    H2 conditions). With shifts converged to 1e-12 the mismatch is of that order relative to |F|."""
    F = builtin_model("msd:10")
    res = irka(F, 4, tol=1e-12, max_iter=300)
    assert res.details["converged"] and res.reductor == "irka" and res.model.order == 4
    for mu in torch.linalg.eigvals(res.model.A).tolist():
        s = -mu.conjugate()
        for k in (0, 1):
            f, h = _transfer(F, s, k), _transfer(res.model, s, k)
            assert abs(f - h) <= 1e-8 * abs(f), (s, k)


def test_contract_fields_and_the_error_by_the_yardstick():
    F = builtin_model("msd:20")
    res = irka(F, 6)
    nrm = float(h2_norm(F))
    assert res.error == pytest.approx(float(h2_error(F, res.model)), rel=1e-12)
    assert res.relative_error == pytest.approx(res.error / nrm, rel=1e-10)
    assert res.seconds > 0 and res.model.is_stable() and res.model.dtype == F.dtype
    # rarl2 runs IRKA from balanced truncation as one of its starts and only improves on it
    assert rarl2(F, 6).relative_error <= res.relative_error * (1 + 1e-9)


def test_discrete_time_keeps_d():
    F = builtin_model("fir:8")
    res = irka(F, 3)
    assert res.model.discrete and torch.equal(res.model.D, F.D)
    assert res.error == pytest.approx(float(h2_error(F, res.model)), rel=1e-10)


def test_bad_input_is_named():
    F = builtin_model("msd:5")
    with pytest.raises(InputError, match="r: 10 is not below"):
        irka(F, 10)
    with pytest.raises(InputError, match="max_iter"):
        irka(F, 2, max_iter=0)
    with pytest.raises(InputError, match="method"):
        irka(F, 2, method="qr")
    A = torch.diag(torch.tensor([-1.0, 0.5, -2.0], dtype=torch.float64))
    with pytest.raises(UnstableSystemError, match="0.5"):
        irka(StateSpace(A, torch.ones(3, 1, dtype=torch.float64), torch.ones(1, 3, dtype=torch.float64)), 1)
    assert not math.isnan(irka(F, 2).relative_error)
