"""Named errors of the analysis functions: frequency_response at a pole or a non-finite frequency,
Gramians whose input/output matrix batch does not match A."""

import math

import pytest
import torch

from difflinalg import InputError, SingularEquationError
from difflinalg.control import StateSpace, frequency_response
from difflinalg.equations import controllability_gramian, observability_gramian

from _controlhelpers import random_system


def _oscillator(discrete=False):
    """Poles +-1j (continuous) or 1 and -1 (discrete): on the frequency axis, where sI - A is exactly
    singular at w = +-1 (continuous) and w = 0 (discrete: z = e^{i0} = 1)."""
    A = torch.tensor([[0.0, 1.0], [-1.0, 0.0]] if not discrete else [[1.0, 0.0], [0.0, -1.0]], dtype=torch.float64)
    return StateSpace(A, torch.ones(2, 1, dtype=torch.float64), torch.ones(1, 2, dtype=torch.float64),
                      time="discrete" if discrete else "continuous")


@pytest.mark.parametrize("discrete, w, k, text", [
    (False, [0.5, 1.0, 2.0], 1, r"w\[1\] = 1 is a pole of the system \(0\+1j is an eigenvalue of A\)"),
    (False, [-1.0], 0, r"w\[0\] = -1 is a pole of the system \(0-1j is an eigenvalue of A\)"),
    (True, [0.3, 0.0], 1, r"w\[1\] = 0 is a pole of the system \(1 is an eigenvalue of A\)"),
])
def test_frequency_response_at_a_pole(discrete, w, k, text):
    F = _oscillator(discrete)
    with pytest.raises(SingularEquationError, match=text + ": the transfer function is infinite there"):
        frequency_response(F, torch.tensor(w, dtype=torch.float64))
    # beside the pole: finite (the transfer function is large, not undefined)
    G = frequency_response(F, torch.tensor([w[k] + 1e-3], dtype=torch.float64))
    assert bool(torch.isfinite(G).all()) and float(G.abs().max()) > 100


def test_frequency_response_at_a_pole_batched():
    F = _oscillator()
    Fb = StateSpace(torch.stack([F.A - 2 * torch.eye(2, dtype=torch.float64), F.A]), F.B, F.C)
    with pytest.raises(SingularEquationError, match=r"w\[0\] = 1 is a pole"):
        frequency_response(Fb, torch.tensor([1.0], dtype=torch.float64))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_frequency_response_non_finite_frequency(bad):
    F = random_system(4, seed=81)
    with pytest.raises(InputError, match=rf"w: expected finite frequencies, got w\[2\] = {bad}; remove it"):
        frequency_response(F, torch.tensor([0.1, 1.0, bad], dtype=torch.float64))


@pytest.mark.parametrize("discrete", [False, True])
def test_gramians_name_the_mismatched_argument(discrete):
    """A batch mismatch between A and B (C) names B (C), the caller's argument, not the internal
    right-hand side Q = B B^H."""
    F = random_system(4, seed=82, batch=(2,), discrete=discrete)
    B3 = torch.randn(3, 4, 2, dtype=torch.float64)
    with pytest.raises(InputError, match=r"batch dimensions do not broadcast \(A: \(2, 4, 4\), B: \(3, 4, 2\)\)"):
        controllability_gramian(F.A, B3, discrete=discrete)
    with pytest.raises(InputError, match=r"batch dimensions do not broadcast \(A: \(2, 4, 4\), C: \(3, 2, 4\)\)"):
        observability_gramian(F.A, B3.mT, discrete=discrete)


def test_frequency_response_at_a_pole_inside_vmap_is_nan_and_warns():
    """Inside torch.func the pole check cannot raise: that entry is NaN (never a finite number),
    the others are those outside the transform, and TransformCheckWarning says so."""
    from difflinalg import TransformCheckWarning
    from difflinalg import _utils

    _utils._warned.discard("frequency_response-pole")  # warned once per process
    F = _oscillator()
    w = torch.tensor([0.5, 1.0], dtype=torch.float64)
    As = torch.stack([F.A - torch.eye(2, dtype=torch.float64), F.A])

    def resp(a):
        return frequency_response(StateSpace(a, F.B, F.C), w)

    with pytest.warns(TransformCheckWarning, match="frequency_response: inside torch.func"):
        G = torch.func.vmap(resp)(As)
    assert torch.equal(G[0], resp(As[0]))
    assert torch.equal(G[1, 0], frequency_response(F, w[:1])[0])
    assert bool(G[1, 1].isnan().all())
