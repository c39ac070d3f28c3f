"""``decompose`` / ``SpectralDecomposition``: losses on one shared decomposition equal the losses
on ``R``; conjugate views into every signal loss; per-sample k for the MUSIC losses (against the
loop over samples, registered cases in all modes, under vmap); bad input."""

import warnings

import pytest
import torch
from torch.func import grad, jvp, vmap

from difflinalg import InputError, eigh
from difflinalg.check import cases
from difflinalg.signal import (SpectralDecomposition, cluster_mean_gap_loss, decompose, eigengap_loss,
                               music_spectrum, noise_subspace_power, ula_steering)
from difflinalg.spectral._cases_eigh import hermitian_with_spectrum, randn

from _helpers import gen, gradcheck_case

F64, C64, C128 = torch.float64, torch.complex64, torch.complex128


@pytest.mark.parametrize("case", cases(["decompose"]), ids=lambda c: c.name)
def test_registered_cases(case):
    for dtype in case.dtypes:
        assert gradcheck_case(case, dtype).passed


def _R(batch=(), n=8, floor_width=0.2, seed=1, dtype=C128):
    g = gen(seed)
    w = torch.cat([1.0 + floor_width * torch.rand(n - 3, generator=g, dtype=F64), torch.tensor([4.0, 7.0, 9.0], dtype=F64)])
    return hermitian_with_spectrum(dtype, g, w, batch)


S8 = ula_steering(8, torch.linspace(-1.0, 1.0, 7, dtype=F64))


def test_shared_decomposition_equals_separate_losses():
    R = _R((2,)).requires_grad_()
    d = decompose(R)
    assert isinstance(d, SpectralDecomposition)
    w_ref, V_ref = eigh(R.detach())
    assert torch.equal(d.eigenvalues.detach(), w_ref)
    parts = [(eigengap_loss, (2, 6.0)), (cluster_mean_gap_loss, (2, 6.0)), (noise_subspace_power, (S8, 2)),
             (music_spectrum, (S8, torch.tensor([1, 3])))]
    for fn, args in parts:
        a, b = fn(d, *args), fn(R, *args)
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-13), fn.__name__
        ga, = torch.autograd.grad(a.sum(), R, retain_graph=True)
        gb, = torch.autograd.grad(b.sum(), R)
        assert torch.allclose(ga, gb, rtol=1e-10, atol=1e-12), fn.__name__
    # a decomposition built from difflinalg.eigh directly is accepted
    assert torch.allclose(eigengap_loss(SpectralDecomposition(*eigh(R)), 2, 6.0), eigengap_loss(R, 2, 6.0))


@pytest.mark.parametrize("view", ["conj", "mH", "conj_of_product"])
def test_conjugate_views(view):
    """Lazily conjugated inputs (R.conj(), Z.mH) give the values and gradients of the resolved ones."""
    base = _R()
    Z = randn(C128, gen(2), 8, 8)
    make = {"conj": lambda r: r.conj(), "mH": lambda r: r.mH,
            "conj_of_product": lambda r: (r + Z @ Z.mH).conj()}[view]
    losses = [lambda r: eigengap_loss(r, 2, 6.0), lambda r: cluster_mean_gap_loss(r, 2, 6.0),
              lambda r: noise_subspace_power(r, S8, 3).sum(), lambda r: music_spectrum(r, S8, 3).sum(),
              lambda r: music_spectrum(r, S8.conj(), 3).sum(), lambda r: eigengap_loss(decompose(r), 3, 6.0)]
    for f in losses:
        R1 = base.clone().requires_grad_()
        R2 = base.clone().requires_grad_()
        v1 = f(make(R1))
        assert make(R1).is_conj() or view == "mH" and make(R1).is_conj()
        v2 = f(make(R2).resolve_conj())
        assert torch.allclose(v1, v2, rtol=1e-13)
        g1, = torch.autograd.grad(v1, R1)
        g2, = torch.autograd.grad(v2, R2)
        assert torch.allclose(g1, g2, rtol=1e-12, atol=1e-13)
    # and under torch.func
    gv = vmap(grad(lambda r: music_spectrum(make(r), S8, 3).sum()))(base.expand(2, 8, 8))
    assert torch.allclose(gv[1], grad(lambda r: music_spectrum(make(r).resolve_conj(), S8, 3).sum())(base), atol=1e-12)


def test_per_sample_k_equals_loop():
    R = _R((4,)).requires_grad_()
    k = torch.tensor([1, 3, 2, 3])
    for fn in (noise_subspace_power, music_spectrum):
        out = fn(R, S8, k)
        ref = torch.stack([fn(R[i], S8, int(k[i])) for i in range(4)])
        assert out.shape == (4, 7) and torch.allclose(out, ref, rtol=1e-12)
        cot = torch.randn(4, 7, dtype=F64, generator=gen(3))
        g, = torch.autograd.grad((out * cot).sum(), R)
        g_ref, = torch.autograd.grad((ref * cot).sum(), R)
        assert torch.allclose(g, g_ref, rtol=1e-10, atol=1e-12)
    # k broadcasting over a (2, 2) batch, steering batched too
    R4 = R.detach().reshape(2, 2, 8, 8)
    out = noise_subspace_power(R4, S8.expand(2, 1, 8, 7), torch.tensor([[1], [3]]))
    assert torch.allclose(out[1, 0], noise_subspace_power(R4[1, 0], S8, 3), rtol=1e-12)


def test_per_sample_k_flat_floor_matches_subspace_path():
    """On exactly flat floors the masked full decomposition gives the eigh_subspace gradient."""
    R = torch.stack([hermitian_with_spectrum(C128, gen(s), [1.0] * 5 + [4.0, 7.0, 9.0]) for s in range(3)])
    k = torch.tensor([3, 2, 3])
    g = grad(lambda r: music_spectrum(r, S8, k).sum())(R)
    assert torch.isfinite(g).all()
    for i in range(3):
        gi = grad(lambda r: music_spectrum(r, S8, int(k[i])).sum())(R[i])
        assert torch.allclose(g[i], gi, rtol=1e-9, atol=1e-10)


def test_per_sample_k_under_vmap_and_jvp():
    R = _R((3,))
    k = torch.tensor([1, 2, 3])
    gv = vmap(grad(lambda r, kk: music_spectrum(r, S8, kk).sum()))(R, k)
    g = grad(lambda r: music_spectrum(r, S8, k).sum())(R)
    assert torch.allclose(gv, g, rtol=1e-11, atol=1e-12)
    D = randn(C128, gen(4), 3, 8, 8)
    D = D + D.mH
    _, t = jvp(lambda r: music_spectrum(r, S8, k).sum(), (R,), (D,))
    assert torch.allclose(t, (g.conj() * D).real.sum(), rtol=1e-10)


def test_complex64_per_sample_k():
    R = _R((3,))
    k = torch.tensor([1, 2, 3])
    g128 = grad(lambda r: noise_subspace_power(r, S8, k).sum())(R)
    g64 = grad(lambda r: noise_subspace_power(r, S8.to(C64), k).sum())(R.to(C64))
    assert g64.dtype == C64
    assert (g64.to(C128) - g128).norm() <= 1e-4 * g128.norm()


def test_bad_input():
    R = _R()
    with pytest.raises(InputError, match=r"margin: expected a finite desired gap"):
        eigengap_loss(R, 1, float("nan"))
    with pytest.raises(InputError, match=r"margin: expected a finite desired gap"):
        cluster_mean_gap_loss(R, 1, torch.tensor([float("inf")], dtype=F64))
    with pytest.raises(InputError, match="margin: expected a real"):
        eigengap_loss(R, 1, torch.tensor(True))
    with pytest.raises(InputError, match="margin: shape"):
        eigengap_loss(R.expand(2, 8, 8), 1, torch.ones(3, dtype=F64))
    with pytest.raises(InputError, match="SpectralDecomposition needs eigenvalues"):
        eigengap_loss(SpectralDecomposition(torch.ones(3, dtype=F64), torch.eye(4, dtype=F64)), 1, 1.0)
    d = decompose(R)
    with pytest.raises(InputError, match=r"k: every entry must satisfy 1 <= k <= n - 1 = 7"):
        music_spectrum(SpectralDecomposition(d[0].expand(2, 8), d[1].expand(2, 8, 8)), S8, torch.tensor([1, 8]))
    with pytest.raises(InputError, match="k: expected an integer tensor"):
        noise_subspace_power(R, S8, torch.tensor([1.0]))
    with pytest.raises(InputError, match="k: shape"):
        noise_subspace_power(R.expand(2, 8, 8), S8, torch.tensor([1, 2, 3]))
    with pytest.raises(InputError, match=r"steering\.to\(R\.dtype\)"):
        noise_subspace_power(d, S8.to(C64), 2)
    with pytest.raises(InputError, match="signal: expected 'smallest' or 'mean'"):
        cluster_mean_gap_loss(R, 1, 1.0, signal="max")
    with pytest.raises(InputError, match="k: expected an integer or an integer tensor"):
        eigengap_loss(R, 1.5, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        eigengap_loss(R, torch.tensor(2), 1.0)


def test_zero_split_gap_is_loud():
    """k beyond the sources the data support (lambda_k = lambda_{k+1} on a flat floor): an error
    naming the sample, and NaN with one TransformCheckWarning inside torch.func."""
    from difflinalg import DegenerateSpectrumError, TransformCheckWarning
    from difflinalg._utils import _warned

    R = torch.stack([hermitian_with_spectrum(C128, gen(s), [1.0] * 6 + [4.0, 7.0]) for s in range(2)])
    with pytest.raises(DegenerateSpectrumError, match=r"lambda_3 = lambda_4 up to rounding.*batch index \(1,\)"):
        music_spectrum(R, S8, torch.tensor([2, 3]))
    with pytest.raises(DegenerateSpectrumError, match="estimate_source_count"):
        noise_subspace_power(decompose(R), S8, 3)
    _warned.discard("signal.split_gap")
    with pytest.warns(TransformCheckWarning, match="cannot raise inside torch.func"):
        g = vmap(grad(lambda r, kk: music_spectrum(r, S8, kk).sum()))(R, torch.tensor([2, 3]))
    assert torch.isfinite(g[0]).all() and torch.isnan(g[1]).all()
