"""``StateSpace(..., E=E)``: a dense mass matrix folded in by one LU (system/_descriptor.py)."""

import warnings

import numpy as np
import pytest
import torch

from difflinalg import InputError, PrecisionWarning, TransformCheckWarning
from difflinalg.check import gradcheck
from difflinalg.control import StateSpace, frequency_response, h2_norm


def _descriptor(n=5, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    E = torch.eye(n, dtype=dtype) + 0.3 * torch.randn(n, n, generator=g, dtype=dtype)
    A = -2.0 * torch.eye(n, dtype=dtype) @ E + 0.2 * torch.randn(n, n, generator=g, dtype=dtype)
    B = torch.randn(n, 2, generator=g, dtype=dtype)
    C = torch.randn(1, n, generator=g, dtype=dtype)
    return A, B, C, E


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
def test_transfer_function_is_kept(dtype):
    A, B, C, E = _descriptor(dtype=dtype)
    F = StateSpace(A, B, C, E=E)
    w = torch.tensor([0.0, 0.7, 3.0], dtype=torch.float64)
    G = frequency_response(F, w)
    # C (i w E - A)^{-1} B straight from the pencil
    ref = torch.stack([C.to(torch.complex128) @ torch.linalg.solve(1j * float(wi) * E.to(torch.complex128) - A, B.to(torch.complex128))
                       for wi in w])
    assert torch.allclose(G, ref, rtol=1e-12, atol=1e-14)
    assert torch.allclose(F.A, torch.linalg.solve(E, A), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
def test_gradient_of_the_folded_matrices(dtype):
    A, B, C, E = _descriptor(3, dtype=dtype)

    def folded(A_, B_, E_):
        F = StateSpace(A_, B_, C, E=E_)
        return F.A, F.B

    gradcheck(folded, A, B, E)


@pytest.mark.slow
def test_gradient_of_h2_norm_through_E():
    A, B, C, E = _descriptor(4)
    gradcheck(lambda E_: h2_norm(StateSpace(A, B, C, E=E_)), E, modes=("vjp", "jvp"))


def test_batched_E_broadcasts():
    A, B, C, E = _descriptor(4)
    Eb = torch.stack([E, 2 * E])
    F = StateSpace(A, B, C, E=Eb)
    assert F.batch_shape == (2,)
    assert torch.allclose(F.A[1], torch.linalg.solve(2 * E, A), rtol=1e-12)


def test_bad_E():
    A, B, C, E = _descriptor(3)
    with pytest.raises(InputError, match=r"E: expected shape \(\.\.\., 3, 3\) to match A"):
        StateSpace(A, B, C, E=torch.eye(4, dtype=A.dtype))
    with pytest.raises(InputError, match="E: expected a square matrix"):
        StateSpace(A, B, C, E=torch.ones(3, 2, dtype=A.dtype))
    with pytest.raises(InputError, match="E: the mass matrix is numerically singular"):
        StateSpace(A, B, C, E=torch.ones(3, 3, dtype=A.dtype))
    with pytest.raises(InputError, match="E"):
        StateSpace(A, B, C, E=torch.full((3, 3), float("nan"), dtype=A.dtype))
    with pytest.raises(InputError, match="one dtype"):
        StateSpace(A, B, C, E=E.to(torch.float32))


def test_ill_conditioned_E_warns_with_condition_number():
    A, B, C, _ = _descriptor(3)
    E = torch.diag(torch.tensor([1.0, 1.0, 1e-14], dtype=A.dtype))  # cond 1e14: cond eps ~ 0.02
    with pytest.warns(PrecisionWarning, match=r"condition ~1\.00e\+14"):
        StateSpace(A, B, C, E=E)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        StateSpace(A, B, C, E=torch.diag(torch.tensor([1.0, 1.0, 1e-6], dtype=A.dtype)))


def test_inside_vmap_a_singular_E_gives_nan(monkeypatch):
    import difflinalg._utils as utils

    monkeypatch.setattr(utils, "_warned", set())  # warn_once: other tests may have warned already
    A, B, C, E = _descriptor(3)
    Es = torch.stack([E, torch.ones(3, 3, dtype=A.dtype)])
    with pytest.warns(TransformCheckWarning):
        out = torch.func.vmap(lambda E_: StateSpace(A, B, C, E=E_).A)(Es)
    assert torch.isfinite(out[0]).all() and torch.isnan(out[1]).all()
    assert torch.allclose(out[0], torch.linalg.solve(E, A), rtol=1e-12)


def test_sparse_E_of_a_small_system_is_folded():
    import scipy.sparse as sps

    A, B, C, E = _descriptor(4)
    F = StateSpace(A.numpy(), B.numpy(), C.numpy(), E=sps.csc_matrix(E.numpy()))
    assert isinstance(F, StateSpace)
    assert np.allclose(F.A.numpy(), np.linalg.solve(E.numpy(), A.numpy()), rtol=1e-12)


def test_float32_E_warns_at_its_own_precision():
    A, B, C, _ = _descriptor(3, dtype=torch.float32)
    E = torch.diag(torch.tensor([1.0, 1.0, 1e-6]))  # cond 1e6: cond eps(float32) ~ 0.1
    with pytest.warns(PrecisionWarning, match=r"condition ~1\.00e\+06, so in float32"):
        F = StateSpace(A, B, C, E=E)
    assert F.dtype == torch.float32
