"""The noise measurement behind ``derivative``'s error estimate (``check/_fd_error.py``)."""

import math

import torch

from difflinalg.check._fd_error import ErrorModel, fit_residuals, resid_noise

F64 = torch.float64
TS = [o * s for s in (1.0, 2.0 / 3.0) for o in (-2, -1, 1, 2)] + [0.0]  # the samples of a 5-point check


def test_a_polynomial_leaves_no_residual():
    t = torch.tensor(TS, dtype=F64)
    vals = [torch.stack([1 + 2 * x - x**3 + 0.5 * x**6, torch.tensor(3.0, dtype=F64)]) for x in t]
    R, dof = fit_residuals(TS, vals, 1.0, 6)
    assert R.shape == (9, 2) and dof == 2
    assert float(R.abs().max()) < 1e-13


def test_white_noise_level_is_measured():
    """sigma from 2 degrees of freedom per component is rough; pooled over 200 components it is
    within 10% of the truth, and a complex value counts both parts."""
    g = torch.Generator().manual_seed(0)
    sigma = 1e-9
    noise = sigma * torch.randn(9, 200, generator=g, dtype=F64)
    ts = [1e-3 * t for t in TS]  # samples at step h = 1e-3
    R, dof = fit_residuals(ts, list(torch.sin(torch.tensor(ts, dtype=F64))[:, None] + noise), 1e-3, 6)
    assert abs(float(resid_noise(R, dof).square().mean().sqrt()) / sigma - 1) < 0.1
    z = torch.complex(noise, torch.randn(9, 200, generator=g, dtype=F64) * sigma)
    Rz, _ = fit_residuals(ts, list(z), 1e-3, 6)
    assert abs(float(resid_noise(Rz, dof).square().mean().sqrt()) / (sigma * math.sqrt(2)) - 1) < 0.1


def test_too_few_samples():
    assert fit_residuals([0.0, 1.0, -1.0], [torch.zeros(2, dtype=F64)] * 3, 1.0, 2) is None


def test_a_projection_gets_the_noise_of_its_own_residuals():
    """Fully correlated noise (the same error in every component): ``w . D`` with w = (1, 1) has
    twice the noise of a component, which the residuals of the projection show and the
    quadrature sum of the componentwise bounds (sqrt(2) times) does not."""
    r = torch.tensor([1.0, -2.0, 0.5, 1.5, -1.0], dtype=F64)[:, None].expand(5, 2)
    zero = torch.zeros(2, dtype=F64)
    model = ErrorModel(trunc=zero, noise=resid_noise(r, 2), resid=r, dof=2)
    single = float(model.error()[0])
    both = float(model.dot(torch.ones(2, dtype=F64)).error())
    assert math.isclose(both, 2 * single, rel_tol=1e-12)
