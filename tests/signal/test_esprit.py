"""``unitary_esprit``: the Pi-real unitary matrices, exact DOAs from an exact covariance (batched,
even and odd n), RMSE against the stochastic Cramer-Rao bound and agreement with root-MUSIC,
derivatives with respect to R (registered-style gradcheck), bad input."""

import cmath
import math

import pytest
import torch

from difflinalg import InputError
from difflinalg.check import cases
from difflinalg.signal import root_music, ula_steering, unitary_esprit
from difflinalg.signal._esprit import unitary_matrix

from _helpers import gen, gradcheck_case
from _signal_data import sample_covariance, snapshots, ula_crb
from test_root_music import exact_covariance

F64, C128 = torch.float64, torch.complex128


@pytest.mark.parametrize("n", [2, 5, 8])
def test_unitary_matrix_is_left_pi_real(n):
    Q = unitary_matrix(n)
    Pi = torch.eye(n, dtype=C128).flip(0)
    assert torch.allclose(Q.mH @ Q, torch.eye(n, dtype=C128), atol=1e-15)
    assert torch.allclose(Pi @ Q.conj(), Q, atol=1e-15)
    # a centred ULA steering vector maps to a real vector
    mu = 2 * math.pi * 0.5 * math.sin(0.37)
    a = ula_steering(n, torch.tensor([0.37], dtype=F64))[:, 0] * cmath.exp(-1j * mu * (n - 1) / 2)
    assert float((Q.mH @ a).imag.abs().max()) < 1e-14


@pytest.mark.parametrize("n, spacing", [(7, 0.5), (8, 0.45)])
def test_exact_covariance_gives_exact_doas(n, spacing):
    doas = [[-0.71, 0.05, 0.33], [-0.2, 0.4, 1.1]]
    R = torch.stack([exact_covariance(n, d, [1.0, 3.0, 0.5], 0.1, spacing) for d in doas])
    est = unitary_esprit(R, 3, spacing=spacing)
    assert est.shape == (2, 3) and est.dtype == F64
    assert torch.allclose(est, torch.tensor(doas, dtype=F64), atol=1e-9)


def test_rmse_against_cramer_rao_bound_and_root_music():
    """n = 8, two uncorrelated sources at 10 dB, N = 200, 200 trials. LS unitary ESPRIT uses the
    two subarrays only (n - 1 of n elements each): its RMSE is above the CRB, by 1.2-1.3x in this
    setting (Rao & Hari 1989 give the asymptotic ratio), and close to root-MUSIC's."""
    n, doas, N = 8, [-0.3037, 0.4071], 200
    A = ula_steering(n, torch.tensor(doas, dtype=F64))
    R = sample_covariance(snapshots(A, [10.0, 10.0], 1.0, N, gen(5), trials=(200,)))
    truth = torch.tensor(doas, dtype=F64)
    crb = ula_crb(n, doas, [10.0, 10.0], 1.0, N).sqrt()
    est = unitary_esprit(R, 2)
    ratio = ((est - truth) ** 2).mean(0).sqrt() / crb
    assert bool(((ratio > 0.9) & (ratio < 1.6)).all()), ratio
    assert float((est - root_music(R, 2)).abs().max()) < 5 * float(crb.max())


@pytest.mark.parametrize("case", cases(["unitary_esprit"]), ids=lambda c: c.name)
def test_registered_cases(case):
    """Derivatives of the DOAs with respect to R (simple ESPRIT eigenvalues)."""
    for dtype in case.dtypes:
        assert gradcheck_case(case, dtype).passed


def test_bad_input():
    R = exact_covariance(5, [0.1, 0.5], [1.0, 1.0], 0.5)
    with pytest.raises(InputError, match="k: unitary ESPRIT takes an int"):
        unitary_esprit(R, 2.0)
    with pytest.raises(InputError, match=r"k: expected 1 <= k <= n - 1 = 3"):
        unitary_esprit(R, 4)
    with pytest.raises(InputError, match="needs a complex covariance"):
        unitary_esprit(R.real, 2)
    with pytest.raises(InputError, match="needs n >= 3"):
        unitary_esprit(torch.eye(2, dtype=C128), 1)
