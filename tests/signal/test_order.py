"""``information_criteria`` / ``estimate_source_count``: AIC and MDL against the closed form
written term by term, batched; the right number of sources at high SNR on synthetic data (MDL in
every trial, AIC never below it); bad input."""

import math

import pytest
import torch

from difflinalg import InputError
from difflinalg.signal import decompose, estimate_source_count, information_criteria, ula_steering

from _helpers import gen
from _signal_data import sample_covariance, snapshots

F64 = torch.float64


def _closed_form(lam, N, k, criterion):
    lam = sorted(lam, reverse=True)
    p = len(lam)
    tail = lam[k:]
    a = sum(tail) / (p - k)
    geo = math.exp(sum(math.log(x) for x in tail) / (p - k))
    L = N * (p - k) * math.log(a / geo)
    return 2 * L + 2 * k * (2 * p - k) if criterion == "aic" else L + 0.5 * k * (2 * p - k) * math.log(N)


@pytest.mark.parametrize("criterion", ["mdl", "aic"])
def test_against_closed_form(criterion):
    w = torch.rand(3, 6, generator=gen(1), dtype=F64) * 5 + 0.1
    out = information_criteria(w, 37, criterion)
    assert out.shape == (3, 6)
    for b in range(3):
        ref = [_closed_form(w[b].tolist(), 37, k, criterion) for k in range(6)]
        assert torch.allclose(out[b], torch.tensor(ref, dtype=F64), rtol=1e-12, atol=1e-10)
    # a flat floor has L(k) = 0 from the true k on: the penalty decides
    flat = torch.tensor([1.0, 1.0, 1.0, 1.0, 9.0, 20.0], dtype=F64)
    out = information_criteria(flat, 100, criterion)
    assert int(out.argmin()) == 2 and abs(float(out[2]) - (0.5 * 20 * math.log(100) if criterion == "mdl" else 40)) < 1e-9


def test_high_snr_synthetic():
    """p = 8 sensors, 3 uncorrelated sources at 20 dB, N = 200, 100 trials in one batch."""
    n, doas, N = 8, [-0.5, 0.1, 0.6], 200
    A = ula_steering(n, torch.tensor(doas, dtype=F64))
    R = sample_covariance(snapshots(A, [100.0] * 3, 1.0, N, gen(2), trials=(100,)))
    k_mdl = estimate_source_count(R, N)
    k_aic = estimate_source_count(decompose(R), N, criterion="aic")
    assert k_mdl.dtype == torch.int64 and k_mdl.shape == (100,)
    assert bool((k_mdl == 3).all())
    assert bool((k_aic >= 3).all()) and float((k_aic == 3).double().mean()) >= 0.8
    # no sources: noise only
    R0 = sample_covariance(snapshots(A[:, :0], [], 1.0, N, gen(3), trials=(50,)))
    assert bool((estimate_source_count(R0, N) == 0).all())


def test_bad_input():
    with pytest.raises(InputError, match="eigenvalues: expected positive eigenvalues"):
        information_criteria(torch.tensor([0.0, 1.0, 2.0], dtype=F64), 10)
    with pytest.raises(InputError, match="eigenvalues: expected real floating"):
        information_criteria(torch.tensor([1, 2, 3]), 10)
    with pytest.raises(InputError, match="eigenvalues: expected shape"):
        information_criteria(torch.tensor([1.0], dtype=F64), 10)
    with pytest.raises(InputError, match="n_snapshots: expected a positive integer"):
        information_criteria(torch.tensor([1.0, 2.0], dtype=F64), 0)
    with pytest.raises(InputError, match="criterion: expected one of"):
        estimate_source_count(torch.eye(3, dtype=F64), 10, criterion="bic")
    with pytest.raises(InputError, match="R: expected a square matrix"):
        estimate_source_count(torch.ones(3, 4, dtype=F64), 10)
