"""Basin hopping of RARL2's search: perturbed models of the best result so far, in its pole
coordinates (``A = V diag(mu) V^{-1}``): one pole's damping scaled, two real poles merged into a
pair, one pole swapped for a dominant target mode (``perturb_start``, the perturbation rounds), or
every damping scaled at random (``jitter_start``, the final jump)."""

from __future__ import annotations

import torch
from torch import Tensor

from . import _policy
from ._run import _Run
from ._starts import dominant_modes


def perturb_start(run: _Run, tried: set, swap: bool = False):
    """Basin hopping: from the best model so far, scale the damping (real part) of one pole (or
    conjugate pair) by 4 or 1/4 or (real models, _policy.POLICY.perturb_merge) merge two real poles
    into a pair (``_merge_real_poles``); ``swap``: instead replace one pole (pair) by one of the
    _policy.POLICY.perturb_swap most dominant target modes (``dominant_modes``; same number of
    states, not already a pole of the model). Of the perturbed models not tried yet, return the one
    with the lowest criterion (None if none is left)."""
    T = run.T
    best = _best_poles(run)
    if best is None:
        return None
    f, C, A, mu, V, Vi = best
    models, keys = [], []
    modes = dominant_modes(T, _policy.POLICY.perturb_swap) if swap else []
    for j in range(mu.shape[0]):
        if T.real and float(mu[j].imag) < 0:
            continue  # the pair is handled with its upper member
        group = (mu - mu[j]).abs() <= 1e-9 * (1 + float(mu[j].abs()))
        if T.real:
            group = group | ((mu - mu[j].conj()).abs() <= 1e-9 * (1 + float(mu[j].abs())))
        for fac in (4.0, 0.25) if not swap else ():
            key = (round(float(f), 15), j, fac)
            if key in tried:
                continue
            mu2 = mu.clone()
            if T.discrete:  # scale the distance to the unit circle
                rad = mu[group].abs()
                new = 1 - (1 - rad) * fac
                if float(new.min()) <= -1 or float(new.max()) >= 1:
                    continue
                mu2[group] = mu[group] / rad * new
            else:
                mu2[group] = torch.complex(mu[group].real * fac, mu[group].imag)
            models.append(_with_poles(V, torch.diag(mu2), Vi, A.dtype))
            keys.append(key)
        for i, (lam, size) in enumerate(modes):
            key = (round(float(f), 15), j, "swap", i)
            # a real model's pair is swapped for a target pair, a real pole for a real mode; a mode
            # that is already (nearly) a pole of the model gives nothing new
            if (key in tried or (T.real and size != int(group.sum()))
                    or bool(((mu - lam).abs() <= 1e-3 * (1 + abs(lam))).any())):
                continue
            mu2 = mu.clone()
            mu2[group] = torch.where(mu[group].imag < 0, torch.full_like(mu[group], lam.conjugate()),
                                     torch.full_like(mu[group], lam))
            models.append(_with_poles(V, torch.diag(mu2), Vi, A.dtype))
            keys.append(key)
    if T.real and _policy.POLICY.perturb_merge and not swap:
        _merge_real_poles(f, mu, V, Vi, A.dtype, tried, models, keys)
    if not models:
        return None
    best, k = run.best_model(torch.stack(models), C.expand(len(models), *C.shape))
    if best is None:
        return None
    tried.add(keys[k])
    return best


def jitter_start(run: _Run, gen):
    """A random perturbation of the best model so far in pole coordinates: each pole's (pair's)
    damping scaled by a random factor (``jitter_poles``: ``exp(_policy.POLICY.jitter_scale * g)``,
    ``g`` standard normal, one draw per pole or conjugate pair; resonance frequencies kept), for
    _policy.POLICY.jitter_draws draws; the one with the lowest criterion (None if none is stable).
    The damping rounds of ``perturb_start`` scale one pole at a time by fixed factors; all poles
    moved at once reach basins they miss (development case drss 1002 of
    ``benchmarks/rarl2_generalization.py``, 0.58% above the reference's basin after them, reaches
    it; rss 6000: a jump from its shared basin reached the 0.26% lower one for 3 of 8 generator
    seeds at scale 1, none at scale 0.5)."""
    T = run.T
    best = _best_poles(run)
    if best is None:
        return None
    _, C, A, mu, V, Vi = best
    models = []
    for _ in range(_policy.POLICY.jitter_draws):
        mu2 = jitter_poles(mu, torch.randn(mu.shape[0], generator=gen, dtype=torch.float64),
                           _policy.POLICY.jitter_scale, T.discrete, T.real)
        models.append(_with_poles(V, torch.diag(mu2), Vi, A.dtype))
    best, _ = run.best_model(torch.stack(models), C.expand(len(models), *C.shape))
    return best


def jitter_poles(mu: Tensor, g: Tensor, scale: float, discrete: bool, real: bool) -> Tensor:
    """The poles ``mu`` (complex, (r,)) with each damping, the real part, scaled by ``exp(scale * g)``
    (``g`` (r,) standard normal draws); discrete time in the continuous picture ``s = (z - 1) / (z +
    1)`` (the bilinear map: ``|z| < 1`` exactly when ``Re s < 0``, so every factor keeps the poles
    stable). ``real``: a conjugate pair takes one factor (the draw of its member listed first), so
    the poles stay conjugate-closed."""
    lead = torch.arange(mu.shape[0])
    if real:  # a pole's partner is its conjugate (itself when real); the pair shares the first draw
        partner = torch.argmin((mu[:, None] - mu.conj()[None, :]).abs(), dim=1)
        lead = torch.minimum(lead, partner)
    fac = torch.exp(scale * g[lead])
    s = (mu - 1) / (mu + 1) if discrete else mu
    s = torch.complex(s.real * fac, s.imag)
    return (1 + s) / (1 - s) if discrete else s


def _best_poles(run: _Run):
    """The best result so far in pole coordinates: ``(f, C, A, mu, V, V^{-1})`` with its criterion
    ``f``, output-normal pair ``(C, A)`` and ``A = V diag(mu) V^{-1}`` (complex); None if ``V`` is
    singular (a defective ``A``: no pole coordinates)."""
    f, _, x, sigma, _ = run.best()
    run.space.sigma = sigma
    C, A = run.space.pair(x)
    mu, V = torch.linalg.eig(A.to(run.T.cdt))
    try:
        Vi = torch.linalg.inv(V)
    except RuntimeError:
        return None
    return f, C, A, mu, V, Vi


def _with_poles(V: Tensor, M: Tensor, Vi: Tensor, dtype: torch.dtype) -> Tensor:
    """``V M V^{-1}``: a model matrix ``V diag(mu) V^{-1}`` with its pole block ``M`` changed, in the
    model's ``dtype`` (a real model's poles stay conjugate-closed: its real part)."""
    A2 = V @ M @ Vi
    return A2 if dtype.is_complex else A2.real.to(dtype)


def _merge_real_poles(f: float, mu: Tensor, V: Tensor, Vi: Tensor, dtype, tried: set, models: list, keys: list):
    """Candidates of ``perturb_start`` for a real model: two real poles ``a``, ``b`` replaced by the
    conjugate pair ``(a + b) / 2 +- i |a - b| / 2`` (same real eigenvectors, a 2x2 rotation block in
    their plane): the damping scalings never leave the real axis, and a basin whose poles are a pair
    where the best model has two real poles is found otherwise only by random starts (development
    case rss 4000 of benchmarks/rarl2_generalization.py, r = 2). Appends to ``models`` / ``keys``."""
    real = torch.nonzero(mu.imag.abs() <= 1e-12 * (1 + mu.abs())).reshape(-1).tolist()
    for a_i, i in enumerate(real):
        for k in real[a_i + 1:]:
            key = (round(float(f), 15), "merge", i, k)
            if key in tried:
                continue
            a, b = float(mu[i].real), float(mu[k].real)
            M = torch.diag(mu)
            c, d = (a + b) / 2, abs(a - b) / 2
            M[i, i], M[k, k], M[i, k], M[k, i] = c, c, d, -d
            models.append(_with_poles(V, M, Vi, dtype))
            keys.append(key)
