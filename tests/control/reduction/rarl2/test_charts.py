"""Output-normal coordinates, the gauge, the slice charts and the BFGS optimizer."""

import math

import pytest
import torch

from difflinalg.check import gradcheck
from difflinalg.control import StateSpace, h2_projection
from difflinalg.control.reduction._rarl2._bfgs import line_search, minimize
from difflinalg.control.reduction._rarl2._charts import OutputNormalSpace, output_normal_form, output_normal_residual

from _controlhelpers import random_system

SPACES = [(c, d) for c in (False, True) for d in (False, True)]


def _ids(s):
    return f"{'complex' if s[0] else 'real'}-{'discrete' if s[1] else 'continuous'}"


@pytest.mark.parametrize("kind", SPACES, ids=_ids)
def test_pair_is_output_normal_and_invertible(kind):
    cplx, disc = kind
    sp = OutputNormalSpace(5, 2, cplx, disc)
    assert sp.dim == (2 if cplx else 1) * 5 * 2
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        x = 2.0 * torch.randn(sp.dim_ambient, generator=g, dtype=torch.float64)
        C, A = sp.pair(x)
        assert output_normal_residual(C, A, disc) <= 1e-12
        ev = torch.linalg.eigvals(A)
        assert bool((ev.abs() < 1).all()) if disc else bool((ev.real < 0).all())
        assert torch.allclose(sp.from_pair(C, A, choose_sigma=False), x, atol=1e-10)


@pytest.mark.parametrize("kind", SPACES, ids=_ids)
def test_pullback_equals_autograd_and_gauge_is_vertical(kind):
    cplx, disc = kind
    sp = OutputNormalSpace(4, 2, cplx, disc)
    if disc:
        sp.sigma = complex(0.6, 0.8) if cplx else -1.0
    g = torch.Generator().manual_seed(1)
    x = torch.randn(sp.dim_ambient, generator=g, dtype=torch.float64)
    gA = torch.randn(4, 4, generator=g, dtype=torch.float64).to(sp.mdt)
    gC = torch.randn(2, 4, generator=g, dtype=torch.float64).to(sp.mdt)
    xr = x.clone().requires_grad_(True)
    C, A = sp.pair(xr)
    (ref,) = torch.autograd.grad((A, C), xr, (gA, gC))
    assert torch.allclose(sp.pullback(x, gC, gA), ref, rtol=1e-12, atol=1e-12)
    # bases: orthonormal, complementary; moving along the orbit changes the pair by a unitary
    # similarity, so a gauge-invariant criterion does not change to first order
    Bh, Bv = sp.bases(x)
    assert Bh.shape == (sp.dim_ambient, sp.dim) and Bv.shape == (sp.dim_ambient, sp.dim_gauge)
    assert torch.allclose(Bh.mT @ Bv, torch.zeros(sp.dim, sp.dim_gauge, dtype=torch.float64), atol=1e-12)
    F = random_system(6, 2, 2, discrete=disc, dtype=sp.mdt, seed=2)

    def psi(v):
        C, A = sp.pair(v)
        return h2_projection(F, C, A)[0]

    xr = x.clone().requires_grad_(True)
    (gx,) = torch.autograd.grad(psi(xr), xr)
    assert float((Bv.mT @ gx).abs().max()) <= 1e-10 * float(gx.abs().max())
    assert sp.transversality(Bh, x) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("kind", SPACES, ids=_ids)
def test_transversality_is_the_smallest_principal_cosine(kind):
    """``transversality`` (from the centre's horizontal basis, by a Cholesky factorization) is the
    smallest cosine of the principal angles between the vertical spaces at the centre and at ``x``
    (QR and SVD), at points near and far from the centre."""
    cplx, disc = kind
    sp = OutputNormalSpace(4, 2, cplx, disc)
    g = torch.Generator().manual_seed(12)
    x0 = torch.randn(sp.dim_ambient, generator=g, dtype=torch.float64)
    Bh0, Bv0 = sp.bases(x0)
    for scale in (1e-3, 0.3, 3.0):
        x = x0 + scale * torch.randn(sp.dim_ambient, generator=g, dtype=torch.float64)
        Q, _ = torch.linalg.qr(sp.vertical(x))
        ref = float(torch.linalg.svdvals(Bv0.mT @ Q).min())
        assert sp.transversality(Bh0, x) == pytest.approx(ref, abs=1e-8)


@pytest.mark.parametrize("kind", SPACES, ids=_ids)
def test_pair_gradcheck(kind):
    cplx, disc = kind
    sp = OutputNormalSpace(3, 2, cplx, disc)
    x = torch.randn(sp.dim_ambient, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    gradcheck(sp.pair, x, modes=("vjp", "jvp", "hvp", "hvp_rev"))


@pytest.mark.parametrize("disc", [False, True])
def test_output_normal_form(disc):
    F = random_system(5, 2, 1, discrete=disc, seed=4)
    A2, B2, C2 = output_normal_form(F.A, F.B, F.C, disc)
    assert output_normal_residual(C2, A2, disc) <= 1e-12
    w = torch.tensor([0.2, 1.3], dtype=torch.float64)
    from difflinalg.control import frequency_response

    G1 = frequency_response(F, w)
    G2 = frequency_response(StateSpace(A2, B2, C2, F.D, time=F.time), w)
    assert torch.allclose(G1, G2, rtol=1e-11)


def test_line_search_wolfe_on_a_quadratic():
    # f(a) = (a - 3)^2: from a1 = 1 the strong Wolfe conditions hold near the minimizer
    def phi(a):
        return (a - 3.0) ** 2, 2 * (a - 3.0), None

    a, f, g, _, n = line_search(phi, 9.0, -6.0, 1.0, eps_f=1e-15)
    assert abs(g) <= 0.9 * 6.0 and f <= 9.0 + 1e-4 * a * -6.0
    # noisy values: the approximate Wolfe conditions decide on the slope
    a, f, g, _, n = line_search(lambda a: (9.0 + 1e-13 * math.sin(1e6 * a), -6.0 + 0.5 * a, None), 9.0, -6.0, 1.0, eps_f=1e-12)
    assert a is not None and -0.9 * 6.0 <= g <= 6.0


def test_minimize_reaches_a_stationary_point():
    F = random_system(8, 1, 1, seed=5)
    sp = OutputNormalSpace(2, 1, False, False)

    def fg(x):
        xr = x.clone().requires_grad_(True)
        C, A = sp.pair(xr)
        psi = h2_projection(F, C, A)[0]
        (g,) = torch.autograd.grad(psi, xr)
        return float(psi.detach()), g

    x0 = torch.tensor([1.0, 0.5, 1.0], dtype=torch.float64)
    res = minimize(fg, sp, x0, gtol=1e-8, eps_f=1e-14)
    assert res.status in ("converged", "stationary")
    assert res.f < fg(x0)[0] and res.rel_grad < 1e-6


@pytest.mark.parametrize("kind", SPACES, ids=_ids)
def test_bases_batched(kind):
    """``vertical`` and ``bases`` of a batch of points are those of each point."""
    cplx, disc = kind
    sp = OutputNormalSpace(3, 2, cplx, disc)
    X = torch.randn(3, sp.dim_ambient, generator=torch.Generator().manual_seed(13), dtype=torch.float64)
    V = sp.vertical(X)
    Bh, Bv = sp.bases(X)
    assert V.shape == (3, sp.dim_ambient, sp.dim_gauge) and Bh.shape == (3, sp.dim_ambient, sp.dim)
    for k in range(3):
        assert torch.allclose(V[k], sp.vertical(X[k]), atol=1e-14)
        bh, bv = sp.bases(X[k])
        assert torch.allclose(Bh[k] @ Bh[k].mT, bh @ bh.mT, atol=1e-12)
        assert torch.allclose(Bv[k] @ Bv[k].mT, bv @ bv.mT, atol=1e-12)


class _FlatSpace:
    """A chart without gauge (``minimize`` on R^D): horizontal basis the identity."""

    discrete = False

    def __init__(self, D):
        self.D = D

    def bases(self, x):
        return torch.eye(self.D, dtype=x.dtype), torch.zeros(self.D, 0, dtype=x.dtype)

    def transversality(self, Bh, x):
        return 1.0


def test_minimize_trusts_a_young_hessian_for_the_newton_decrement():
    """``f = 1 + x^T Q x / 2``: the finite-difference Newton step of the first iteration lands at the
    minimizer to the difference error; at the second iteration the predicted decrease of the
    (one update old) quasi-Newton step is below ``eps_f``: stop ("stationary"), with no further
    Hessian and no line search whose values could only be noise."""
    Q = torch.diag(torch.tensor([1e-3, 1.0, 30.0], dtype=torch.float64))
    calls = []

    def fg(x):
        calls.append(1)
        return 1.0 + 0.5 * float(x @ (Q @ x)), Q @ x

    x0 = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    res = minimize(fg, _FlatSpace(3), x0, gtol=1e-300, eps_f=1e-10)
    assert res.status == "stationary" and res.iterations == 1
    assert res.evaluations == len(calls) == 1 + 3 + 1  # start, Hessian (3 gradients), one step
    assert res.f == pytest.approx(1.0, abs=1e-10)
