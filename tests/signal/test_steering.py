"""Steering vectors: values against the closed forms, layout, derivatives, bad input."""

import math

import pytest
import torch

from difflinalg import InputError
from difflinalg.signal import ula_steering, ura_steering


def test_ula_values_and_layout():
    theta = torch.tensor([0.0, 0.3, -1.1], dtype=torch.float64)
    a = ula_steering(6, theta, spacing=0.4)
    assert a.shape == (6, 3) and a.dtype == torch.complex128
    m = torch.arange(6, dtype=torch.float64)
    for g, t in enumerate(theta.tolist()):
        ref = torch.exp(1j * 2 * math.pi * 0.4 * m * math.sin(t))
        assert torch.allclose(a[:, g], ref, atol=1e-14)
    assert torch.allclose(a[:, 0], torch.ones(6, dtype=torch.complex128))  # broadside: in phase
    assert ula_steering(4, torch.zeros(2, 5)).shape == (2, 4, 5)
    assert ula_steering(4, 0.1).shape == (4, 1)
    assert ula_steering(3, torch.zeros(2, dtype=torch.float32)).dtype == torch.complex64


def test_ura_is_kron_of_ulas():
    theta = torch.tensor([0.2, 0.7, 1.2], dtype=torch.float64)
    phi = torch.tensor([0.0, 1.0, -2.5], dtype=torch.float64)
    a = ura_steering(3, 4, theta, phi, spacing=(0.5, 0.3))
    assert a.shape == (12, 3)
    for g in range(3):
        u = math.sin(theta[g]) * math.cos(phi[g])
        v = math.sin(theta[g]) * math.sin(phi[g])
        ax = torch.exp(1j * 2 * math.pi * 0.5 * torch.arange(3, dtype=torch.float64) * u)
        ay = torch.exp(1j * 2 * math.pi * 0.3 * torch.arange(4, dtype=torch.float64) * v)
        assert torch.allclose(a[:, g], torch.kron(ax, ay), atol=1e-14)
    # broadcasting of theta against phi
    t, p = torch.zeros(5, 1, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)
    assert ura_steering(2, 2, t, p).shape == (5, 4, 4)


def test_angle_derivative_matches_closed_form():
    theta = torch.tensor([0.4], dtype=torch.float64, requires_grad=True)
    a = ula_steering(5, theta)
    (a.imag.sum()).backward()
    m = torch.arange(5, dtype=torch.float64)
    ref = (torch.cos(2 * math.pi * 0.5 * m * math.sin(0.4)) * 2 * math.pi * 0.5 * m * math.cos(0.4)).sum()
    assert torch.allclose(theta.grad, ref.reshape(1))


def test_bad_input():
    with pytest.raises(InputError, match="n: expected a positive integer"):
        ula_steering(0, torch.zeros(2))
    with pytest.raises(InputError, match="n: expected a positive integer"):
        ula_steering(2.5, torch.zeros(2))
    with pytest.raises(InputError, match="spacing: expected a positive element spacing"):
        ula_steering(4, torch.zeros(2), spacing=-0.5)
    with pytest.raises(InputError, match="theta: angles must be real"):
        ula_steering(4, torch.zeros(2, dtype=torch.complex128))
    with pytest.raises(InputError, match="theta: contains 1 non-finite"):
        ula_steering(4, torch.tensor([0.0, float("nan")]))
    with pytest.raises(InputError, match="spacing: expected a pair"):
        ura_steering(2, 2, torch.zeros(2), torch.zeros(2), spacing=0.5)
    with pytest.raises(InputError, match="theta, phi: shapes"):
        ura_steering(2, 2, torch.zeros(2), torch.zeros(3))
    with pytest.raises(InputError, match="ny: expected a positive integer"):
        ura_steering(2, 0, torch.zeros(2), torch.zeros(2))
