"""``find_peaks`` / ``soft_argmax_refine``: peaks of known spectra (1-D, 2-D, batched, ordering,
fallback), the refinement exact for a locally quadratic score, its derivatives with respect to R
(through the MUSIC null spectrum, all modes), and the 2-D DOA readout of a URA against the
stochastic Cramer-Rao bound; bad input."""

import pytest
import torch

from difflinalg import InputError
from difflinalg.check import gradcheck
from difflinalg.signal import find_peaks, noise_subspace_power, soft_argmax_refine, ula_steering, ura_steering

from _helpers import gen
from _signal_data import sample_covariance, snapshots, ura_crb

F64, C128 = torch.float64, torch.complex128


def test_find_peaks_1d_and_2d():
    x = torch.linspace(-3, 3, 121, dtype=F64)
    P = torch.exp(-(x - 1.0) ** 2 / 0.1) + 2 * torch.exp(-(x + 1.5) ** 2 / 0.2) + 0.5 * torch.exp(-(x - 2.5) ** 2 / 0.05)
    pk = find_peaks(P, 3)
    assert torch.allclose(x[pk], torch.tensor([-1.5, 1.0, 2.5], dtype=F64), atol=1e-12)  # by decreasing value
    batch = torch.stack([P, P.flip(0)])
    assert torch.equal(find_peaks(batch, 2)[1], 120 - pk[:2])
    # fewer local maxima than asked: the rest are the largest other grid values
    assert find_peaks(torch.exp(-x ** 2), 2).tolist() == [60, 59] or find_peaks(torch.exp(-x ** 2), 2).tolist() == [60, 61]
    y = torch.linspace(-2, 2, 41, dtype=F64)
    X, Y = torch.meshgrid(x, y, indexing="ij")
    P2 = 3 * torch.exp(-((X - 0.5) ** 2 + (Y + 1.0) ** 2) / 0.1) + torch.exp(-((X + 2.0) ** 2 + (Y - 1.2) ** 2) / 0.1)
    pk2 = find_peaks(P2.expand(2, -1, -1), 2, ndim=2)
    assert pk2.shape == (2, 2, 2)
    assert torch.allclose(torch.stack([x[pk2[0, :, 0]], y[pk2[0, :, 1]]], -1),
                          torch.tensor([[0.5, -1.0], [-2.0, 1.2]], dtype=F64), atol=1e-12)
    # a plateau edge at the grid border counts (edges are lower neighbours)
    assert find_peaks(x, 1).tolist() == [120]


@pytest.mark.parametrize("radius", [2, 4])
def test_refinement_exact_for_quadratic_scores(radius):
    """s(x) = -c (x - x0)^2 (1-D) and a tilted 2-D quadratic: the Gaussian weights' mean is x0 up to
    the grid aliasing (<= 2 pi h exp(-pi^2) ~ 3.3e-4 h at the default width h / sqrt(2)) and the
    window truncation (<= radius h Phi_c(sqrt(2) (radius - 1/2)): 2e-6 h at radius 4, 0.04 h at
    radius 2), for several sub-grid offsets."""
    h = 0.01
    x = torch.arange(200, dtype=F64) * h
    for x0 in (0.7, 0.7031, 0.7049, 1.2377):
        s = -300.0 * (x - x0) ** 2
        pk = find_peaks(s, 1)
        est = soft_argmax_refine(s, x, pk, radius=radius)
        tol = 4e-4 * h if radius == 4 else 0.04 * h
        assert abs(float(est[0]) - x0) < tol, (x0, float(est[0]) - x0)
    y = torch.arange(150, dtype=F64) * 0.02
    X, Y = torch.meshgrid(x, y, indexing="ij")
    x0, y0 = 1.0234, 1.4871
    s = -(400 * (X - x0) ** 2 + 200 * (X - x0) * (Y - y0) + 150 * (Y - y0) ** 2)
    est = soft_argmax_refine(s, (x, y), find_peaks(s, 1, ndim=2), radius=radius)
    tol = 4e-4 * 0.02 if radius == 4 else 0.04 * 0.02
    assert est.shape == (1, 2) and torch.allclose(est[0], torch.tensor([x0, y0], dtype=F64), atol=tol)


def test_refinement_derivatives_through_music():
    """The refined DOA is differentiable in R (the score -||E_n^H a||^2 on the grid, the default
    temperature included): finite differences in all modes, float64 and complex128 inputs."""
    n, doas = 6, [-0.3, 0.42]
    A = ula_steering(n, torch.tensor(doas, dtype=F64))
    R = sample_covariance(snapshots(A, [10.0, 10.0], 1.0, 100, gen(7)))
    grid = torch.arange(-1.0, 1.0, 0.02, dtype=F64)
    S = ula_steering(n, grid)
    pk = find_peaks(1 / noise_subspace_power(R, S, 2), 2)

    def doa(r):
        return soft_argmax_refine(-noise_subspace_power(r, S, 2), grid, pk)

    assert torch.allclose(doa(R).sort().values, torch.tensor(doas, dtype=F64), atol=0.03)
    assert gradcheck(doa, R, modes=("vjp", "jvp", "hvp", "hvp_rev", "jvp2"), max_step=1e-3).passed


@pytest.mark.slow
def test_refinement_derivatives_2d_batched():
    """2-D, batched, with an explicit temperature: finite differences of the refined angles."""
    T, P = torch.meshgrid(torch.arange(0.2, 1.0, 0.05, dtype=F64), torch.arange(-1.0, 1.0, 0.1, dtype=F64), indexing="ij")
    A2 = ura_steering(3, 3, torch.tensor([0.5, 0.7], dtype=F64), torch.tensor([0.3, -0.4], dtype=F64))
    R2 = sample_covariance(snapshots(A2, [10.0, 10.0], 1.0, 100, gen(8), trials=(2,)))
    S2 = ura_steering(3, 3, T.reshape(-1), P.reshape(-1))
    Q = noise_subspace_power(R2, S2, 2).reshape(2, *T.shape)
    pk2 = find_peaks(1 / Q, 2, ndim=2)

    def doa2(r):
        return soft_argmax_refine(-noise_subspace_power(r, S2, 2).reshape(2, *T.shape), (T[:, 0], P[0]), pk2,
                                  radius=2, temperature=torch.tensor(0.05, dtype=F64))

    assert gradcheck(doa2, R2, modes=("vjp", "jvp", "hvp"), max_step=1e-3).passed


@pytest.mark.slow
def test_ura_doa_against_cramer_rao_bound():
    """4 x 4 URA, two uncorrelated sources at 10 dB, N = 200, 100 trials: grid MUSIC (steps
    0.01 x 0.02 rad in polar angle x azimuth), peak picking and the soft-argmax refinement of the
    null spectrum reach the stochastic CRB of each angle within the sampling error (measured
    RMSE / sqrt(CRB): 1.00-1.16); the unrefined grid estimates do not (grid quantisation)."""
    ang = [(0.5037, 0.8123), (0.9071, -1.1874)]  # off the grid
    truth = torch.tensor(ang, dtype=F64)
    A = ura_steering(4, 4, truth[:, 0], truth[:, 1])
    N, M = 200, 100
    R = sample_covariance(snapshots(A, [10.0, 10.0], 1.0, N, gen(0), trials=(M,)))
    tg = torch.arange(0.3, 1.1, 0.01, dtype=F64)
    pg = torch.arange(-1.6, 1.2, 0.02, dtype=F64)
    T, P = torch.meshgrid(tg, pg, indexing="ij")
    S = ura_steering(4, 4, T.reshape(-1), P.reshape(-1))
    est, coarse = [], []
    for Rc in R.split(25):  # memory: 25 x 16 x 11200 complex residuals at a time
        Q = noise_subspace_power(Rc, S, 2).reshape(-1, len(tg), len(pg))
        pk = find_peaks(1 / Q, 2, ndim=2)
        est.append(soft_argmax_refine(-Q, (tg, pg), pk))
        coarse.append(torch.stack([tg[pk[..., 0]], pg[pk[..., 1]]], -1))
    order = lambda e: e.gather(-2, e[..., 0].argsort(-1)[..., None].expand(-1, -1, 2))  # noqa: E731
    est, coarse = order(torch.cat(est)), order(torch.cat(coarse))
    crb = ura_crb(4, 4, ang, [10.0, 10.0], 1.0, N).sqrt().reshape(2, 2).T  # (source, angle)
    ratio = ((est - truth) ** 2).mean(0).sqrt() / crb
    print("URA RMSE / sqrt(CRB) (source x angle):", ratio.tolist())
    # 100 trials: relative sampling error of an RMSE ~ 7%
    assert bool(((ratio > 0.75) & (ratio < 1.4)).all()), ratio
    assert float((((coarse - truth) ** 2).mean(0).sqrt() / crb).max()) > float(ratio.max())


def test_bad_input():
    x = torch.arange(10, dtype=F64)
    with pytest.raises(InputError, match="n_peaks: expected 1 <= n_peaks <= 10"):
        find_peaks(x, 11)
    with pytest.raises(InputError, match="spectrum: expected shape"):
        find_peaks(torch.ones(2, dtype=F64), 1)
    with pytest.raises(InputError, match="spectrum: expected a real floating"):
        find_peaks(torch.ones(5, dtype=C128), 1)
    with pytest.raises(InputError, match="ndim: expected 1"):
        find_peaks(x, 1, ndim=3)
    with pytest.raises(InputError, match=r"grids\[0\]: expected a 1-D tensor of 10"):
        soft_argmax_refine(x, x[:5], torch.tensor([3]))
    with pytest.raises(InputError, match="radius: expected"):
        soft_argmax_refine(x, x, torch.tensor([3]), radius=5)
    with pytest.raises(InputError, match="peaks: expected int64 grid indices"):
        soft_argmax_refine(x, x, torch.tensor([3.0]))
    with pytest.raises(InputError, match=r"peaks: expected int64 grid indices of shape \(\.\.\., P, 2\)"):
        soft_argmax_refine(torch.ones(10, 10, dtype=F64), (x, x), torch.tensor([3]))
    with pytest.raises(InputError, match=r"peaks: expected the batch shape \(2,\) of the score"):
        soft_argmax_refine(x.expand(2, 10), x, torch.tensor([3]))
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(InputError, match="temperature: expected positive finite"):
            soft_argmax_refine(x, x, torch.tensor([3]), radius=2, temperature=bad)


def test_refinement_without_curvature_is_nan():
    """A linear score has no negative curvature at its (edge) maximum: no width to derive, so the
    refined coordinate is NaN, value and gradient (an explicit temperature works)."""
    x = torch.arange(10, dtype=F64)
    s = (0.5 * x).requires_grad_()
    out = soft_argmax_refine(s, x, find_peaks(s, 1), radius=2)
    assert torch.isnan(out).all()
    g, = torch.autograd.grad(out.sum(), s)
    assert torch.isnan(g).any()
    assert torch.isfinite(soft_argmax_refine(s, x, find_peaks(s, 1), radius=2, temperature=1.0)).all()
