"""``music_spectrum`` / ``noise_subspace_power``: values against a direct noise-subspace
computation, peaks at the true directions, derivatives (the registered cases run in
tests/check/test_registered_cases.py; with respect to the steering vectors too), broadcasting,
the zero-gap error, bad input."""

import math

import pytest
import torch
from torch.func import grad, vmap

from difflinalg import DegenerateSpectrumError, InputError
from difflinalg.check import gradcheck
from difflinalg.signal import music_spectrum, noise_subspace_power, ula_steering, ura_steering
from difflinalg.spectral._cases_eigh import randn

from _helpers import gen

F64, C64, C128 = torch.float64, torch.complex64, torch.complex128


def _sample_covariance(n, doas, snapshots, noise, g):
    A = ula_steering(n, torch.tensor(doas, dtype=F64))
    s = randn(C128, g, len(doas), snapshots) * 2.0
    x = A @ s + noise * randn(C128, g, n, snapshots) / math.sqrt(2)
    return x @ x.mH / snapshots


def test_values_against_direct_noise_subspace():
    R = _sample_covariance(8, [-0.4, 0.5], 200, 0.3, gen(1))
    S = ula_steering(8, torch.linspace(-1.2, 1.2, 50, dtype=F64))
    w, V = torch.linalg.eigh(R)
    En = V[:, :6]
    ref = (En.mH @ S).abs().square().sum(0)
    assert torch.allclose(noise_subspace_power(R, S, 2), ref, atol=1e-12)
    assert torch.allclose(music_spectrum(R, S, 2), 1 / ref, rtol=1e-10)


def test_peaks_at_true_directions():
    doas = [-0.4, 0.5]
    R = _sample_covariance(10, doas, 400, 0.2, gen(2))
    grid = torch.linspace(-1.2, 1.2, 2401, dtype=F64)
    P = music_spectrum(R, ula_steering(10, grid), 2)
    # the two largest local maxima
    peaks = ((P[1:-1] > P[:-2]) & (P[1:-1] > P[2:])).nonzero()[:, 0] + 1
    top = peaks[P[peaks].argsort(descending=True)[:2]]
    found = sorted(grid[top].tolist())
    assert abs(found[0] - doas[0]) < 0.01 and abs(found[1] - doas[1]) < 0.01


def test_ura_and_broadcasting():
    n = 3 * 4
    R = randn(C128, gen(3), 2, n, n)
    R = R @ R.mH
    S = ura_steering(3, 4, torch.tensor([0.1, 0.5, 0.9], dtype=F64), torch.tensor([0.0, 1.0, 2.0], dtype=F64))
    out = music_spectrum(R, S, 2)
    assert out.shape == (2, 3) and out.dtype == F64
    assert torch.allclose(out[1], music_spectrum(R[1], S, 2))
    out2 = music_spectrum(R, S.expand(2, n, 3), 2)
    assert torch.allclose(out, out2)
    gv = vmap(grad(lambda r: music_spectrum(r, S, 2).sum()))(R)
    assert torch.allclose(gv[0], grad(lambda r: music_spectrum(r, S, 2).sum())(R[0]), atol=1e-12)


def test_gradient_with_respect_to_angles():
    """Through the steering helper, the spectrum is differentiable in the angle (peak refinement)."""
    R = _sample_covariance(8, [0.3], 300, 0.3, gen(4))

    def f(t):
        return music_spectrum(R, ula_steering(8, t), 1)

    assert gradcheck(f, torch.tensor([0.1, 0.25, 0.4], dtype=F64), modes=("vjp", "jvp", "hvp")).passed


def test_zero_gap_raises():
    R = torch.diag(torch.tensor([1.0, 1.0, 1.0, 3.0], dtype=C128))
    S = ula_steering(4, torch.zeros(2, dtype=F64))
    with pytest.raises(DegenerateSpectrumError, match="k at a gap"):
        music_spectrum(R, S, 2)  # only one source above the floor


def test_bad_input():
    R = torch.eye(4, dtype=C128)
    S = ula_steering(4, torch.zeros(3, dtype=F64))
    with pytest.raises(InputError, match=r"steering: expected shape \(\.\.\., n, G\) with n = 4"):
        music_spectrum(R, ula_steering(5, torch.zeros(3, dtype=F64)), 1)
    with pytest.raises(InputError, match=r"R, steering: dtypes differ.*steering\.to\(R\.dtype\)"):
        music_spectrum(R, S.to(C64), 1)
    for k in (0, 4):
        with pytest.raises(InputError, match=r"k: expected 1 <= k <= n - 1 = 3"):
            music_spectrum(R, S, k)
    with pytest.raises(InputError, match="R: expected a square matrix"):
        music_spectrum(torch.ones(4, 3, dtype=C128), S, 1)
    with pytest.raises(InputError, match="R: contains"):
        music_spectrum(torch.full((4, 4), float("nan"), dtype=C128), S, 1)
    with pytest.raises(InputError, match="batch shapes"):
        music_spectrum(R.expand(2, 4, 4), S.expand(3, 4, 3), 1)
