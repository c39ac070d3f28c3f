"""``forward_backward_average`` / ``spatial_smoothing``: against the definitions written with
explicit loops (1-D and 2-D), the rank they restore for coherent sources (DOAs recovered by
root-MUSIC and by 2-D grid MUSIC where the unsmoothed covariance fails), derivatives, bad input."""

import pytest
import torch

from difflinalg import InputError
from difflinalg.check import cases
from difflinalg.signal import (find_peaks, forward_backward_average, music_spectrum, root_music, spatial_smoothing,
                               ula_steering, ura_steering)
from difflinalg.spectral._cases_eigh import randn

from _helpers import gen, gradcheck_case
from _signal_data import sample_covariance, snapshots

F64, C128 = torch.float64, torch.complex128


def test_forward_backward_definition():
    X = randn(C128, gen(1), 2, 5, 9)
    R = X @ X.mH
    J = torch.eye(5, dtype=C128).flip(0)
    fb = forward_backward_average(R)
    assert torch.allclose(fb, 0.5 * (R + J @ R.conj() @ J), atol=1e-14)
    assert torch.allclose(J @ fb.conj() @ J, fb, atol=1e-14)  # centro-Hermitian
    Rr = R.real
    assert torch.allclose(forward_backward_average(Rr), 0.5 * (Rr + J.real @ Rr @ J.real), atol=1e-14)
    assert torch.allclose(forward_backward_average(R.conj()), forward_backward_average(R.conj().resolve_conj()))


def test_smoothing_definitions():
    X = randn(C128, gen(2), 3, 12, 20)
    R = X @ X.mH
    # 1-D: subarrays of 9 of 12
    ref = sum(R[:, l:l + 9, l:l + 9] for l in range(4)) / 4
    assert torch.allclose(spatial_smoothing(R, 9), ref, atol=1e-13)
    assert torch.allclose(spatial_smoothing(R, 9, forward_backward=True),
                          sum(forward_backward_average(R)[:, l:l + 9, l:l + 9] for l in range(4)) / 4, atol=1e-13)
    # 2-D: a 3 x 4 URA (element ix * 4 + iy), subarrays 2 x 3
    ref = 0
    for ox in range(2):
        for oy in range(2):
            idx = [(ox + ix) * 4 + oy + iy for ix in range(2) for iy in range(3)]
            ref = ref + R[:, idx][:, :, idx]
    assert torch.allclose(spatial_smoothing(R, (2, 3), shape=(3, 4)), ref / 4, atol=1e-13)
    assert spatial_smoothing(R, 12).shape == (3, 12, 12)


def test_coherent_sources_1d():
    """Two fully coherent sources (one waveform): the signal subspace of R has dimension 1 and
    root-MUSIC with k = 2 is wrong; after forward-backward spatial smoothing it is right."""
    n, doas = 10, [-0.25, 0.35]
    A = ula_steering(n, torch.tensor(doas, dtype=F64))
    R = sample_covariance(snapshots(A, [10.0, 10.0], 0.1, 500, gen(3), coherent=True))
    w = torch.linalg.eigvalsh(R)
    assert float(w[-2]) < 0.3  # rank 1 above the floor (0.1)
    Rs = spatial_smoothing(R, 8, forward_backward=True)
    w = torch.linalg.eigvalsh(Rs)
    assert float(w[-2]) > 10 * float(w[-3])  # rank 2 restored
    est = root_music(Rs, 2)
    assert torch.allclose(est, torch.tensor(doas, dtype=F64), atol=2e-3)
    assert float((root_music(R, 2) - torch.tensor(doas, dtype=F64)).abs().max()) > 2e-2


def test_coherent_sources_2d():
    """Two coherent sources on a 6 x 6 URA: 2-D smoothing with 5 x 5 subarrays, then grid MUSIC
    on the subarray's steering vectors finds both directions (to the grid step)."""
    ang = torch.tensor([[0.45, 0.9], [0.8, -1.3]], dtype=F64)
    A = ura_steering(6, 6, ang[:, 0], ang[:, 1])
    R = sample_covariance(snapshots(A, [10.0, 10.0], 0.1, 400, gen(4), coherent=True))
    Rs = spatial_smoothing(R, (5, 5), shape=(6, 6))
    tg = torch.arange(0.3, 1.0, 0.025, dtype=F64)
    pg = torch.arange(-1.6, 1.2, 0.05, dtype=F64)
    T, P = torch.meshgrid(tg, pg, indexing="ij")
    spec = music_spectrum(Rs, ura_steering(5, 5, T.reshape(-1), P.reshape(-1)), 2).reshape(len(tg), len(pg))
    pk = find_peaks(spec, 2, ndim=2)
    found = torch.stack([tg[pk[:, 0]], pg[pk[:, 1]]], -1)
    found = found[found[:, 0].argsort()]
    assert torch.allclose(found, ang, atol=0.03)


@pytest.mark.parametrize("case", cases(["spatial_smoothing"]), ids=lambda c: c.name)
def test_registered_cases(case):
    for dtype in case.dtypes:
        assert gradcheck_case(case, dtype).passed


def test_bad_input():
    R = torch.eye(6, dtype=C128)
    with pytest.raises(InputError, match=r"subarray: expected 1 <= size"):
        spatial_smoothing(R, 7)
    with pytest.raises(InputError, match=r"shape: \(2, 2\) has 4 elements but R is 6 x 6"):
        spatial_smoothing(R, (1, 1), shape=(2, 2))
    with pytest.raises(InputError, match="subarray: .* must have as many dimensions"):
        spatial_smoothing(R, (2, 2))
    with pytest.raises(InputError, match="subarray: expected an int"):
        spatial_smoothing(R, (1, 1, 1), shape=(1, 2, 3))
    with pytest.raises(InputError, match="R: expected a square matrix"):
        forward_backward_average(torch.ones(2, 3, dtype=C128))
