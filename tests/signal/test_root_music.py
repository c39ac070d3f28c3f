"""``root_music``: exact DOAs from an exact covariance, batched; RMSE against the stochastic
Cramer-Rao bound at high SNR; agreement with grid MUSIC refined by soft-argmax; bad input."""

import pytest
import torch

from difflinalg import DegenerateSpectrumError, InputError
from difflinalg.signal import decompose, find_peaks, noise_subspace_power, root_music, soft_argmax_refine, ula_steering

from _helpers import gen
from _signal_data import sample_covariance, snapshots, ula_crb

F64, C128 = torch.float64, torch.complex128


def exact_covariance(n, doas, powers, noise, spacing=0.5):
    A = ula_steering(n, torch.tensor(doas, dtype=F64), spacing=spacing)
    return A @ torch.diag(torch.tensor(powers, dtype=F64)).to(C128) @ A.mH + noise * torch.eye(n, dtype=C128)


@pytest.mark.parametrize("n, spacing", [(6, 0.5), (9, 0.4)])
def test_exact_covariance_gives_exact_doas(n, spacing):
    doas = [-0.71, 0.05, 0.33]
    R = torch.stack([exact_covariance(n, doas, [1.0, 3.0, 0.5], 0.1, spacing),
                     exact_covariance(n, [-0.2, 0.4, 1.1], [2.0, 2.0, 2.0], 1.0, spacing)])
    est = root_music(R, 3, spacing=spacing)
    assert est.shape == (2, 3) and est.dtype == F64
    assert torch.allclose(est[0], torch.tensor(doas, dtype=F64), atol=1e-9)
    assert torch.allclose(est[1], torch.tensor([-0.2, 0.4, 1.1], dtype=F64), atol=1e-9)
    assert torch.allclose(root_music(decompose(R), 3, spacing=spacing), est, atol=1e-12)


def test_rmse_at_the_cramer_rao_bound_and_grid_music():
    """n = 8, two uncorrelated sources at 10 dB, N = 200, 200 trials: root-MUSIC's RMSE is within
    the sampling error of the CRB (MUSIC is efficient at high SNR for uncorrelated sources;
    Stoica & Nehorai 1989); the refined grid MUSIC estimates agree with it to far below the CRB."""
    n, doas, N = 8, [-0.3037, 0.4071], 200
    A = ula_steering(n, torch.tensor(doas, dtype=F64))
    R = sample_covariance(snapshots(A, [10.0, 10.0], 1.0, N, gen(5), trials=(200,)))
    truth = torch.tensor(doas, dtype=F64)
    crb = ula_crb(n, doas, [10.0, 10.0], 1.0, N).sqrt()
    est = root_music(R, 2)
    ratio = ((est - truth) ** 2).mean(0).sqrt() / crb
    # 200 trials: the RMSE's relative sampling error is ~ 1/sqrt(400) = 5%
    assert bool(((ratio > 0.8) & (ratio < 1.25)).all()), ratio
    grid = torch.arange(-1.2, 1.2, 0.01, dtype=F64)
    Q = noise_subspace_power(R, ula_steering(n, grid), 2)
    refined = soft_argmax_refine(-Q, grid, find_peaks(1 / Q, 2)).sort(-1).values
    assert float((refined - est).abs().max()) < 0.2 * float(crb.min())


def test_bad_input():
    R = exact_covariance(5, [0.1, 0.5], [1.0, 1.0], 0.5)
    with pytest.raises(InputError, match="k: root-MUSIC takes an int"):
        root_music(R, torch.tensor([2]))
    with pytest.raises(InputError, match=r"k: expected 1 <= k <= n - 1 = 4"):
        root_music(R, 5)
    with pytest.raises(InputError, match="needs a complex covariance"):
        root_music(R.real, 2)
    with pytest.raises(InputError, match="spacing: expected a positive element spacing"):
        root_music(R, 2, spacing=0.0)
    with pytest.raises(DegenerateSpectrumError, match="lambda_3 = lambda_4"):
        root_music(R, 3)
