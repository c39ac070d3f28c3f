"""The perturbation candidates of rarl2's search (``_rarl2._perturb``): pole merges of the
perturbation rounds and the random jump's damping scalings (issue 17 item 5, rounds 4 and 6). The
searches that use them are tested in test_search_policy.py."""

from __future__ import annotations

import pytest
import torch


def test_perturbation_merges_two_real_poles_into_a_conjugate_pair():
    # round 4: the damping scalings of the perturbation rounds never leave the real axis; the merge
    # candidates replace two real poles a, b by (a + b) / 2 +- i |a - b| / 2 (real model, the other
    # poles kept), once per pair of real poles and criterion value
    from difflinalg.control.reduction._rarl2._perturb import _merge_real_poles

    g = torch.Generator().manual_seed(0)
    Q, _ = torch.linalg.qr(torch.randn(4, 4, generator=g, dtype=torch.float64))
    M = torch.tensor([[-0.5, 0, 0, 0], [0, -2.0, 0, 0], [0, 0, -0.1, 1.0], [0, 0, -1.0, -0.1]], dtype=torch.float64)
    A = Q @ M @ Q.T
    mu, V = torch.linalg.eig(A)
    models, keys, tried = [], [], set()
    _merge_real_poles(0.25, mu, V, torch.linalg.inv(V), torch.float64, tried, models, keys)
    assert len(models) == 1 and models[0].dtype == torch.float64  # one pair of real poles: one candidate
    got = sorted(torch.linalg.eigvals(models[0]).tolist(), key=lambda z: (z.real, z.imag))
    want = sorted([complex(-1.25, -0.75), complex(-1.25, 0.75), complex(-0.1, -1.0), complex(-0.1, 1.0)],
                  key=lambda z: (z.real, z.imag))
    assert all(abs(a - b) < 1e-12 for a, b in zip(got, want))
    tried.add(keys[0])  # a candidate already tried at this criterion value is not offered again
    models2: list = []
    _merge_real_poles(0.25, mu, V, torch.linalg.inv(V), torch.float64, tried, models2, [])
    assert models2 == []


@pytest.mark.parametrize("discrete", [False, True])
def test_jitter_poles_scales_each_damping_and_keeps_pairs_and_stability(discrete):
    # round 6: the random jump scales each pole's (pair's) damping -- the real part, discrete time
    # in the bilinear picture -- by exp(scale * g), one draw per pole or conjugate pair
    from difflinalg.control.reduction._rarl2._perturb import jitter_poles

    mu = torch.tensor([complex(-0.3, 2.0), complex(-0.3, -2.0), complex(-1.5, 0.0), complex(-0.02, 0.0)],
                      dtype=torch.complex128)
    if discrete:
        mu = (1 + mu) / (1 - mu)  # the same poles in the unit disc
    g = torch.tensor([0.7, -5.0, -1.2, 3.0], dtype=torch.float64)  # g[1]: unused, the pair takes g[0]
    out = jitter_poles(mu, g, 1.5, discrete, real=True)
    s0 = (mu - 1) / (mu + 1) if discrete else mu
    s1 = (out - 1) / (out + 1) if discrete else out
    fac = torch.exp(1.5 * torch.tensor([0.7, 0.7, -1.2, 3.0], dtype=torch.float64))
    assert torch.allclose(s1.real, s0.real * fac, rtol=1e-12, atol=0)
    assert torch.allclose(s1.imag, s0.imag, rtol=1e-12, atol=1e-15)  # frequencies kept
    assert abs(out[0] - out[1].conj()) < 1e-14  # the pair stays a pair: a real model stays real
    # stable for any factor, however large (discrete: inside the unit disc)
    big = jitter_poles(mu, torch.full((4,), 8.0, dtype=torch.float64), 1.0, discrete, real=True)
    assert bool((big.abs() < 1).all()) if discrete else bool((big.real < 0).all())
    # complex models: one draw per pole
    assert torch.allclose(jitter_poles(mu, g, 1.0, False, real=False).real, mu.real * torch.exp(g))
