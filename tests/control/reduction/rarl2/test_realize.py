"""RARL2 on targets whose realization is too far from normal for Gramians (``_rarl2/_realize.py``).

The pathological targets are ``(D A0 D^{-1}, D B0, C0 D^{-1})`` with ``A0`` normal and ``D`` a diagonal
of powers of two: the scaling is exact in floating point, so the transfer function is exactly that
of the normal realization ``(A0, B0, C0)``, the precise yardstick; ``||A||`` is 1e11-1e15 at
spectral radius < 1 (like python-control's ``drss(300, 1, 1)`` at seed 1001: ``||A|| = 1.8e4``,
whose Gramians fail with condition >= 3e14), with a near-repeated pole, so the modal path is refused.
"""

from __future__ import annotations

import math

import pytest
import torch
from _controlhelpers import random_system

from difflinalg import SingularEquationError
from difflinalg.control import StateSpace, balanced_truncation, h2_error, h2_norm, rarl2
from difflinalg.control.reduction._rarl2._realize import (
    Realization,
    to_continuous,
    to_discrete,
)


def scaled_pair(N: int = 40, bits: int = 40, discrete: bool = True, seed: int = 0, rho: float = 0.95,
                complex_: bool = False, band: tuple[float, float] = (-1.0, 1.0), p: int = 1, m: int = 1):
    """``(F, G)``: the far-from-normal realization and the normal one of the same transfer function."""
    g = torch.Generator().manual_seed(seed)
    dt = torch.complex128 if complex_ else torch.float64
    Z = torch.randn(N, N, generator=g, dtype=dt)
    Q, _ = torch.linalg.qr(Z)
    if discrete:
        lam = rho * torch.rand(N, generator=g, dtype=torch.float64) ** 0.5 * torch.sign(
            torch.randn(N, generator=g, dtype=torch.float64))
        lam[2] = rho  # the spectral radius
    else:
        lam = -torch.logspace(*band, N, dtype=torch.float64)
    lam[1] = lam[0] * (1 + 1e-12)  # a near-repeated pole: the modal path is refused
    A0 = Q @ torch.diag(lam).to(dt) @ Q.mH
    A0 = (A0 + A0.mH) / 2
    B0 = torch.randn(N, m, generator=g, dtype=dt)
    C0 = torch.randn(p, N, generator=g, dtype=dt)
    d = (2.0 ** torch.linspace(0, bits, N, dtype=torch.float64).round()).to(dt)
    t = "discrete" if discrete else "continuous"
    D = torch.randn(p, m, generator=g, dtype=dt) if discrete else torch.zeros(p, m, dtype=dt)
    return (StateSpace(d[:, None] * A0 / d[None, :], d[:, None] * B0, C0 / d[None, :], D, time=t),
            StateSpace(A0, B0, C0, D, time=t))


def _check_reduction(F: StateSpace, G: StateSpace, r: int):
    res = rarl2(F, r)
    info = res.details["realization"]
    assert info["delta"] <= 1e-11 and info["order"] < F.order
    assert info["norm_A"] > 1e10 and info["spectral_radius"] < 1
    nG = float(h2_norm(G))
    assert res.target_norm == pytest.approx(nG, rel=1e-12)
    # the reported error is the error against the original target: by the extended-precision
    # yardstick on the normal realization (measured agreement 5e-16 .. 1.3e-14 relative)
    true = float(h2_error(G, res.model, precise=True))
    assert abs(res.error - true) <= res.error_resolution + 1e-15 * nG
    assert res.error_resolution <= 1e-11 * nG
    # and it is a good model: no worse than balanced truncation of the same transfer function
    bt = float(h2_error(G, balanced_truncation(G, r), method="gramian"))
    assert res.error <= bt * (1 + 1e-9)
    return res


def test_discrete_far_from_normal_target_is_rerealized():
    F, G = scaled_pair(bits=40, discrete=True)
    _check_reduction(F, G, 4)


def test_mimo_far_from_normal_targets():
    F, G = scaled_pair(N=36, bits=40, discrete=True, p=3, m=2, seed=2)
    _check_reduction(F, G, 4)
    F, G = scaled_pair(N=36, bits=50, discrete=False, p=2, m=3, seed=2)
    _check_reduction(F, G, 4)


def test_complex_discrete_far_from_normal_target():
    F, G = scaled_pair(N=30, bits=40, discrete=True, complex_=True, seed=1)
    _check_reduction(F, G, 3)


@pytest.mark.parametrize("complex_", [False, True])
def test_continuous_far_from_normal_target_is_rerealized(complex_):
    F, G = scaled_pair(bits=50, discrete=False, complex_=complex_)
    res = _check_reduction(F, G, 4)
    assert res.details["realization"]["omega"] > 0


def test_continuous_too_costly_rerealization_is_refused():
    # poles over six decades: the bilinear image's spectral radius is 0.998 (L_0 ~ 1.6e4 terms)
    F, _ = scaled_pair(N=20, bits=50, discrete=False, band=(-4.0, 2.0))
    with pytest.raises(SingularEquationError) as exc:
        Realization(F)
    msg = str(exc.value)
    assert "largest pole magnitude 100" in msg and "spectral radius of its bilinear image 0.99" in msg


def test_too_costly_rerealization_is_refused_with_the_cause_and_remedy():
    # spectral radius 0.9999: ~3e5 Markov parameters would be needed; refused before any of them
    F, _ = scaled_pair(N=20, bits=45, discrete=True, rho=0.9999)
    with pytest.raises(SingularEquationError) as exc:
        Realization(F)
    msg = str(exc.value)
    for part in ("too far from normal", "||A|| = ", "spectral radius 0.9999", "transfer function may be fine",
                 "balanced realization", "ERA from its Markov parameters", "HANKEL_MAX"):
        assert part in msg, part
    with pytest.raises(SingularEquationError, match="too far from normal"):
        rarl2(F, 2)


def test_bilinear_map_round_trip_and_transfer_function():
    F = random_system(8, 2, 3, discrete=False, seed=3, with_d=True)
    w = 1.7
    Fd = StateSpace(*to_discrete(F.A, F.B, F.C, F.D, w), time="discrete")
    s = torch.tensor([0.3j, 2.0j, -0.5 + 1j], dtype=torch.complex128)
    z = (w + s) / (w - s)
    for sk, zk in zip(s, z):
        Fc = F.C.to(s.dtype) @ torch.linalg.solve(sk * torch.eye(8, dtype=s.dtype) - F.A.to(s.dtype), F.B.to(s.dtype))
        Fz = Fd.C.to(s.dtype) @ torch.linalg.solve(zk * torch.eye(8, dtype=s.dtype) - Fd.A.to(s.dtype), Fd.B.to(s.dtype))
        torch.testing.assert_close(Fz + Fd.D, Fc + F.D, rtol=1e-12, atol=1e-12)
    back = to_continuous(Fd.A, Fd.B, Fd.C, Fd.D, w)
    for X, Y in zip(back, (F.A, F.B, F.C, F.D)):
        torch.testing.assert_close(X, Y, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("discrete", [True, False])
def test_distance_by_markov_sums_matches_gramians(discrete):
    # a normal target: the Markov-sum H2 distance agrees with the Gramian one
    F = random_system(10, 2, 2, discrete=discrete, seed=5, with_d=discrete)
    R = Realization(F)
    H = balanced_truncation(F, 3)
    d2, tail = R.distance2(H)
    ref = float(h2_error(F, H, method="gramian"))
    assert math.sqrt(d2) == pytest.approx(ref, rel=1e-9)
    assert R.norm2 == pytest.approx(float(h2_norm(F)) ** 2, rel=1e-12)
    assert tail <= 1e-13 * math.sqrt(R.norm2)


def test_single_precision_far_from_normal_target():
    """float32: reduced in double precision (re-realized there), the model returned in float32. The
    power-of-two scaling commutes with rounding, so the float32 target is exactly the transfer
    function of the rounded normal realization: the yardstick."""
    F, G = scaled_pair(bits=40, discrete=True)
    f32 = [x.to(torch.float32) for x in (F.A, F.B, F.C, F.D)]
    g64 = [x.to(torch.float32).to(torch.float64) for x in (G.A, G.B, G.C, G.D)]
    res = rarl2(StateSpace(*f32, time="discrete"), 4)
    assert res.model.dtype == torch.float32 and res.details["realization"]["delta"] <= 1e-11
    G32 = StateSpace(*g64, time="discrete")
    H = StateSpace(*(x.to(torch.float64) for x in (res.model.A, res.model.B, res.model.C, res.model.D)),
                   time="discrete")
    # the reported error is that of the float64 model before its float32 rounding; at a stationary
    # point that rounding (6e-8 relative) moves the error only to second order (measured 1.2e-13)
    true = float(h2_error(G32, H, precise=True))
    assert abs(res.error - true) <= 1e-9 * float(h2_norm(G32))
