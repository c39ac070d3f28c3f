"""The fast path of the eigh tie checks (``_eigh_ties``): the in-cluster criteria on the band of
the cluster width equal the full pair tables, the maxima from ``|x|^2`` equal those from ``|x|``,
and whatever the fast path cannot decide (a square out of range, a precision bound that would
warn) is recomputed exactly, so that no outcome of a check changes."""

from __future__ import annotations

import warnings

import pytest
import torch

from difflinalg import DegenerateSpectrumError, GaugeError, PrecisionWarning, eigh
from difflinalg.check import randn
from difflinalg.spectral._cases_eigh import hermitian_with_spectrum
from difflinalg.spectral._eigh_gaps import cluster_width, eigh_gaps
from difflinalg.spectral._eigh_ties import Parts, _common, tie_stats
from difflinalg.spectral._gaps import default_tol, inverse_gaps, masked_reciprocal
from difflinalg.spectral._svd_ties import abs2_in_range, max_component

from _helpers import gen

F32, F64, C64, C128 = torch.float32, torch.float64, torch.complex64, torch.complex128
REAL = {F32: F32, F64: F64, C64: F32, C128: F64}


def spectra(dtype: torch.dtype, seed: int) -> torch.Tensor:
    """A batch of 5 sorted spectra of 12 with clusters of 1-4 members at rounding level (and one
    without ties), so that the cluster width differs per matrix."""
    rd = REAL[dtype]
    e = torch.finfo(rd).eps
    g = gen(seed)
    rows = []
    for sizes in ((1,) * 12, (2, 1, 3, 1, 1, 4), (4, 4, 4), (1, 2, 2, 2, 2, 1, 1, 1), (3, 1, 1, 1, 1, 5)):
        w, x = [], -3.0
        for s in sizes:
            w += [x + j * e * float(torch.rand((), generator=g, dtype=torch.float64)) for j in range(s)]
            x += 0.5 + float(torch.rand((), generator=g, dtype=torch.float64))
        rows.append(w)
    return torch.tensor(rows, dtype=rd).sort(-1).values


def parts_of(w: torch.Tensor, dtype: torch.dtype, seed: int, equal_gw: bool):
    g = gen(seed)
    n = w.shape[-1]
    gaps = eigh_gaps(w, default_tol(None, n, dtype))
    T = randn(dtype, g, *w.shape, n)
    gV = randn(dtype, g, *w.shape, n)
    gw = randn(REAL[dtype], g, *w.shape)
    if equal_gw:  # the same cotangent inside every cluster: only the coupling can fail
        gw = torch.zeros_like(gw).scatter_reduce(-1, gaps.ids, gw, "amax", include_self=False).gather(-1, gaps.ids)
    return gaps, gw, Parts(T, (gV,), gaps.F, None, False)


@pytest.mark.parametrize("dtype", [F32, F64, C64, C128], ids=str)
@pytest.mark.parametrize("equal_gw", [False, True])
def test_band_equals_full_tables(dtype, equal_gw):
    """tie_stats on the band of the cluster width gives the full tables' numbers, per matrix."""
    w = spectra(dtype, 1)
    gaps, gw, p = parts_of(w, dtype, 2, equal_gw)
    width = int(cluster_width(gaps))
    assert width == 4  # the largest cluster has 5 members
    c = _common(w, gw, gaps, w.shape[-1], p)
    full = tie_stats(w, gw, gaps, w.shape[-1], c, True)
    band = tie_stats(w, gw, gaps, w.shape[-1], c, True, width)
    for name in ("gauge", "values", "coupling"):
        torch.testing.assert_close(getattr(band, name), getattr(full, name), rtol=4 * torch.finfo(REAL[dtype]).eps,
                                   atol=0.0, msg=name)
    assert (full.coupling[1:] > 0).all() and (full.gauge[1:] > 1).all()  # the tables are not trivially zero
    assert (full.values[1:] > 0).all() != equal_gw
    # a band narrower than the widest cluster misses pairs: the width is what makes it exact
    short = tie_stats(w, gw, gaps, w.shape[-1], c, True, width - 1)
    assert (short.values <= full.values).all() and (short.coupling <= full.coupling).all()


def test_cluster_width_any_order():
    """The largest index distance inside a cluster, also for an unsorted spectrum; 0 without ties."""
    tol = 1e-12
    w = torch.tensor([[1.0, 5.0, 1.0, 3.0, 1.0], [1.0, 2.0, 3.0, 4.0, 5.0]], dtype=F64)
    assert int(cluster_width(eigh_gaps(w, tol))) == 4
    assert int(cluster_width(eigh_gaps(w[1:], tol))) == 0
    assert int(cluster_width(eigh_gaps(w.sort(-1).values, tol))) == 2
    assert int(cluster_width(eigh_gaps(torch.zeros(2, 0, dtype=F64), tol))) == 0


@pytest.mark.parametrize("dtype", [F32, F64, C64, C128], ids=str)
def test_fast_common_matches_exact(dtype):
    """The fast part: the same scale (thresholds) and phases; its precision figure is an upper
    bound of the exact one; nothing to redo in range."""
    w = spectra(dtype, 3)
    gaps, gw, p = parts_of(w, dtype, 4, False)
    n = w.shape[-1]
    fast, exact = _common(w, gw, gaps, n, p, fast=True), _common(w, gw, gaps, n, p)
    e = torch.finfo(REAL[dtype]).eps
    torch.testing.assert_close(fast.thr, exact.thr, rtol=8 * e, atol=0.0)
    assert torch.equal(fast.phase, exact.phase)
    assert (fast.kappa >= exact.kappa * (1 - 8 * e)).all()
    assert not bool(fast.redo)


@pytest.mark.parametrize("dtype", [F32, C64, F64, C128], ids=str)
def test_out_of_range_squares_are_redone(dtype):
    """A square that overflows, or a cotangent whose squares all underflow, is flagged (the
    exact recomputation then runs); a zero cotangent is exact (no redo)."""
    rd = REAL[dtype]
    fi = torch.finfo(rd)
    w = spectra(dtype, 5)
    gaps, gw, p = parts_of(w, dtype, 6, False)
    n = w.shape[-1]
    big, small = fi.max ** 0.5, fi.tiny ** 0.5
    for T, want in ((p.T * big, True), (p.T * small, True), (torch.zeros_like(p.T), False)):
        q = p._replace(T=T, grads=(torch.zeros_like(T),))
        assert bool(_common(w, gw, gaps, n, q, fast=True).redo) == want
    x = randn(dtype, gen(7), 3, 4, 4)
    assert torch.equal(max_component(x.conj()), max_component(x))
    assert not abs2_in_range(max_component(x * big), rd).any()


def test_precision_bound_that_would_warn_is_redone():
    """float32, an unmasked gap of 1e-5 that the loss does not use: the bound max|w| / gap would
    warn, so the exact estimate runs, and it does not warn (as before the fast path)."""
    A = hermitian_with_spectrum(F32, gen(8), [1.0, 1.0 + 1e-5, 2.0, 4.0])
    w, V = eigh(A.requires_grad_(), degeneracy_tol=0.0)
    gaps, gw, p = parts_of(w.detach()[None], F32, 9, False)
    assert bool(_common(w.detach()[None], torch.zeros_like(w)[None], eigh_gaps(w.detach()[None], 0.0), 4,
                        p._replace(T=p.T[..., :4, :4] * 0, grads=()), fast=True).redo)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PrecisionWarning)
        torch.autograd.grad((V[:, 3].abs().square() * torch.arange(4.0)).sum() + w[2], A)
    with pytest.warns(PrecisionWarning):  # the loss uses that gap: the exact estimate warns
        w, V = eigh(A, degeneracy_tol=0.0)
        torch.autograd.grad((V[:, 0].abs().square() * torch.arange(4.0)).sum(), A)


@pytest.mark.parametrize("scale", [1e25, 1e-30, 1.0])
def test_checks_at_extreme_cotangents(scale):
    """complex64 at an exact tie: a gauge-dependent loss raises and a loss of the class passes,
    whatever the size of the cotangent (squares overflow at 1e25 and underflow at 1e-30)."""
    A = hermitian_with_spectrum(C64, gen(10), [1.0, 1.0, 3.0, 5.0]).requires_grad_()
    w, V = eigh(A)
    with pytest.raises((GaugeError, DegenerateSpectrumError)):
        torch.autograd.grad(scale * V[0, 0].abs().square(), A, retain_graph=True)
    P = V[:, :2] @ V[:, :2].mH
    g, = torch.autograd.grad(scale * P[0, 1].abs().square(), A)
    assert torch.isfinite(g).all() and g.abs().amax() > 0


@pytest.mark.parametrize("dtype", [F32, F64], ids=str)
def test_inverse_gaps_formula(dtype):
    """inverse_gaps (masked_fill form) equals the masked reciprocal it replaced, bit for bit."""
    w = spectra(dtype, 11)
    M = eigh_gaps(w, default_tol(None, 12, dtype)).cluster
    d = w[..., None, :] - w[..., :, None]
    eye = torch.eye(12, dtype=torch.bool)
    assert torch.equal(inverse_gaps(w, M), masked_reciprocal(d, ~(eye | M) & (d != 0)))
    assert torch.equal(inverse_gaps(w), masked_reciprocal(d, ~eye & (d != 0)))


@pytest.mark.parametrize("dtype", [F64, C128], ids=str)
def test_reverse_rule_in_place_path(dtype):
    """The reverse rule's in-place Hermitian projection (outside torch.func) gives an exactly
    Hermitian gradient equal to the out-of-place path that vmap takes."""
    from difflinalg.spectral._eigh import eigh_vjp

    A = randn(dtype, gen(12), 3, 6, 6)
    w, V = torch.linalg.eigh(A + A.mH)
    gw, gV = randn(REAL[dtype], gen(13), 3, 6), randn(dtype, gen(14), 3, 6, 6)
    g = eigh_vjp(w, V, gw, gV, 1e-12)
    assert torch.equal(g, g.mH)
    g_vmap = torch.func.vmap(lambda w, V, gw, gV: eigh_vjp(w, V, gw, gV, 1e-12))(w, V, gw, gV)
    torch.testing.assert_close(g, g_vmap, rtol=1e-13, atol=1e-13)
