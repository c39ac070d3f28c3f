"""The concentrated criterion and its adjoint gradient (rarl2-math.md, sections 3-4).

Three computations of the gradient must agree: the closed-form adjoint formula that RARL2 uses
(``Target.criterion``, modal and Schur factorizations), automatic differentiation through
difflinalg's Sylvester/Stein solvers (``h2_projection``), and central finite differences of the
criterion (``difflinalg.check.derivative``)."""

import pytest
import torch

from difflinalg.check import derivative, gradcheck
from difflinalg.control import StateSpace, h2_error, h2_norm, h2_projection
from difflinalg.control.reduction._rarl2._target import Target

from _controlhelpers import KINDS, kind_id, random_pair, random_system

@pytest.mark.parametrize("case", KINDS, ids=kind_id)
def test_psi_is_the_error_of_the_projected_model(case):
    discrete, dtype = case
    F = random_system(9, 2, 2, discrete=discrete, dtype=dtype, seed=41)
    C, A = random_pair(3, 2, discrete=discrete, dtype=dtype, seed=42)
    psi, Bh = h2_projection(F, C, A)
    H = StateSpace(A, Bh, C, F.D, time=F.time)
    assert float(psi) == pytest.approx(float(h2_error(F, H, method="gramian")) ** 2, rel=1e-10)
    # any other B is worse (B_hat is an orthogonal projection)
    for k in range(3):
        dB = 1e-3 * torch.randn(Bh.shape, generator=torch.Generator().manual_seed(k), dtype=torch.float64).to(dtype)
        Hk = StateSpace(A, Bh + dB, C, F.D, time=F.time)
        assert float(h2_error(F, Hk, method="gramian")) ** 2 > float(psi)


@pytest.mark.parametrize("method", ["modal", "schur"])
@pytest.mark.parametrize("case", KINDS, ids=kind_id)
def test_adjoint_gradient_equals_autograd_and_finite_differences(case, method):
    discrete, dtype = case
    F = random_system(10, 2, 3, discrete=discrete, dtype=dtype, seed=43)
    C, A = random_pair(3, 2, discrete=discrete, dtype=dtype, seed=44)
    T = Target(F, method)
    assert T.method == method
    nF2 = float(h2_norm(F)) ** 2
    _, gA, gC, _ = T.criterion(C, A)
    gA, gC = gA * nF2, gC * nF2  # T works on the normalized target (||F|| = 1)
    # autograd through the solvers
    Cr, Ar = C.clone().requires_grad_(True), A.clone().requires_grad_(True)
    psi, _ = h2_projection(F, Cr, Ar)
    aA, aC = torch.autograd.grad(psi, (Ar, Cr))
    assert torch.allclose(gA, aA, rtol=1e-9, atol=1e-12 * float(aA.abs().max()))
    assert torch.allclose(gC, aC, rtol=1e-9, atol=1e-12 * float(aC.abs().max()))
    # central finite differences along random directions (real and, if complex, imaginary)
    g = torch.Generator().manual_seed(45)
    for k in range(2):
        dA = torch.randn(A.shape, generator=g, dtype=torch.float64).to(dtype)
        dC = torch.randn(C.shape, generator=g, dtype=torch.float64).to(dtype)
        if dtype.is_complex and k == 1:
            dA, dC = 1j * dA, 1j * dC

        def along(t):
            return h2_projection(F, C + t * dC, A + t * dA)[0].reshape(1)

        fd = derivative(along, torch.zeros((), dtype=torch.float64), max_step=1e-2)
        ad = float((gA.conj() * dA).real.sum() + (gC.conj() * dC).real.sum())
        assert ad == pytest.approx(float(fd.value), rel=1e-8)


def test_scalar_example_closed_form():
    """Seed note's scalar example: F(z) = 0.64 / (z - 0.6); with the output-normal pair
    (C, A) = (sqrt(1 - a^2), a): psi(a) = 0.64 - 0.4096 (1 - a^2) / (1 - 0.6 a)^2, zero at a = 0.6."""
    t = lambda v: torch.tensor([[v]], dtype=torch.float64)  # noqa: E731
    F = StateSpace(t(0.6), t(0.8), t(0.8), t(0.0), time="discrete")
    assert float(h2_norm(F)) ** 2 == pytest.approx(0.64, rel=1e-14)
    for a in (-0.5, 0.0, 0.3, 0.6, 0.9):
        C, A = t((1 - a * a) ** 0.5), t(a)
        psi, Bh = h2_projection(F, C, A)
        exact = 0.64 - 0.4096 * (1 - a * a) / (1 - 0.6 * a) ** 2
        assert float(psi) == pytest.approx(exact, abs=1e-15)
        assert float(Bh) == pytest.approx(0.64 * (1 - a * a) ** 0.5 / (1 - 0.6 * a), rel=1e-14)
    psi, _ = h2_projection(F, t(0.8), t(0.6))
    assert abs(float(psi)) < 1e-15


@pytest.mark.parametrize("case", KINDS, ids=kind_id)
def test_h2_projection_gradcheck_all_modes(case):
    discrete, dtype = case
    F = random_system(5, 1, 2, discrete=discrete, dtype=dtype, seed=46)
    C, A = random_pair(2, 1, discrete=discrete, dtype=dtype, seed=47)
    gradcheck(lambda C, A: h2_projection(F, C, A), C, A, modes=("vjp", "jvp", "hvp", "hvp_rev"), max_step=1e-3)
    # also with respect to the target's matrices
    gradcheck(lambda AF, BF: h2_projection(StateSpace(AF, BF, F.C, F.D, time=F.time), C, A)[0],
              F.A, F.B, modes=("vjp", "jvp"), max_step=1e-3)


def test_h2_projection_batched_and_vmap():
    F = random_system(6, 2, 2, seed=48)
    pairs = [random_pair(3, 2, discrete=False, seed=s) for s in range(3)]
    Cs = torch.stack([c for c, _ in pairs])
    As = torch.stack([a for _, a in pairs])
    psi, Bh = h2_projection(F, Cs, As)
    assert psi.shape == (3,) and Bh.shape == (3, 3, 2)
    for i in range(3):
        assert float(psi[i]) == pytest.approx(float(h2_projection(F, Cs[i], As[i])[0]), rel=1e-12)
    out = torch.func.vmap(lambda c, a: h2_projection(F, c, a)[0])(Cs, As)
    assert torch.allclose(out, psi, rtol=1e-12)


@pytest.mark.parametrize("method", ["modal", "schur"])
@pytest.mark.parametrize("case", KINDS, ids=kind_id)
def test_batched_criterion_and_fd_hessian_equal_the_single_ones(case, method):
    """``_Run.fg_batch`` (one batched evaluation, used by the finite-difference Hessian) equals
    ``fg`` row by row (psi by residues and by ``1 - ||B_hat||^2`` too), and so does
    ``Target.criterion_batch`` when a member of the batch has a defective ``A`` (that member is
    evaluated on its own by the dense-solve path); the batched finite-difference Hessian equals
    the one from single evaluations."""
    from difflinalg.control.reduction._rarl2._bfgs import fd_inverse_hessian
    from difflinalg.control.reduction._rarl2._api import _Run

    discrete, dtype = case
    F = random_system(10, 2, 3, discrete=discrete, dtype=dtype, seed=46)
    T = Target(F, method)
    run = _Run(T, 3, 1e-9, 10, None)
    X = 0.5 * torch.randn(4, run.space.dim_ambient, generator=torch.Generator().manual_seed(47), dtype=torch.float64)
    for psi in (True, False):
        f, G = run.fg_batch(X, psi=psi)
        for b in range(X.shape[0]):
            fb, gb = run.fg(X[b])
            assert float(f[b]) == pytest.approx(fb, abs=1e-13)
            assert torch.allclose(G[b], gb, rtol=1e-10, atol=1e-13)
    C, A = run.space.pair(X)
    J = torch.tensor([[0.5, 1.0, 0.0], [0.0, 0.5, 1.0], [0.0, 0.0, 0.5]], dtype=torch.float64)
    A[0] = (-J if not discrete else J).to(A.dtype)  # a Jordan block: no eigenvector basis
    f, gA, gC = T.criterion_batch(C, A)
    for b in range(A.shape[0]):
        fb, gAb, gCb, _ = T.criterion(C[b], A[b])
        assert float(f[b]) == pytest.approx(fb, rel=1e-12, abs=1e-13)
        assert torch.allclose(gA[b], gAb, rtol=1e-10, atol=1e-13) and torch.allclose(gC[b], gCb, rtol=1e-10, atol=1e-13)
    Bh, _ = run.space.bases(X[0])
    g0 = Bh.mT @ run.fg(X[0])[1]
    H1, n1 = fd_inverse_hessian(run.fg, X[0], Bh, g0)
    H2, n2 = fd_inverse_hessian(run.fg, X[0], Bh, g0, fg_batch=run.fg_batch)
    d = Bh.shape[1]
    assert n1 == n2 == d  # forward differences: one gradient per chart direction
    # the batched and the single gradients agree to rounding, which the difference quotient
    # amplifies by 1 / h (h = 1e-7 |x|)
    assert torch.allclose(H1, H2, rtol=1e-5, atol=1e-7 * float(H1.abs().max()))
    # the forward-difference Hessian is the Hessian to O(h): compare with central differences
    h = 1e-4
    cols = [(Bh.mT @ (run.fg(X[0] + h * Bh[:, j])[1] - run.fg(X[0] - h * Bh[:, j])[1])) / (2 * h) for j in range(d)]
    Hc = torch.stack(cols, 1)
    w, V = torch.linalg.eigh(0.5 * (Hc + Hc.mT))
    w = w.abs().clamp_min(1e-10 * float(w.abs().max()))
    assert torch.allclose(torch.linalg.inv(H1), (V * w) @ V.mT, rtol=0, atol=1e-3 * float(w.max()))


@pytest.mark.parametrize("discrete", [False, True])
def test_half_spectrum_criterion_equals_the_full_one(discrete):
    """A real model of a real target sums over half of the target's conjugate pairs
    (``Target._modal_data``); the same pair cast to complex takes the full sums: both agree."""
    F = random_system(10, 2, 3, discrete=discrete, seed=61)
    T = Target(F, "modal")
    assert T.pi.numel() > 0  # the target has conjugate pairs
    C, A = random_pair(4, 2, discrete=discrete, seed=62)
    psi_h, gA_h, gC_h, Bh_h = T.criterion(C, A)
    assert not (gA_h.is_complex() or gC_h.is_complex() or Bh_h.is_complex())
    psi_f, gA_f, gC_f, Bh_f = T.criterion(C.to(torch.complex128), A.to(torch.complex128))
    assert psi_h == pytest.approx(psi_f, rel=1e-12, abs=1e-15)
    for a, b in ((gA_h, gA_f), (gC_h, gC_f), (Bh_h, Bh_f)):
        assert torch.allclose(a.to(b.dtype), b, rtol=1e-11, atol=1e-13 * float(b.abs().max()))
    # and the extended-precision yardstick of the model agrees at this (ordinary) error
    from difflinalg.control.reduction._rarl2._selection import model_of, yardstick

    assert yardstick(T, model_of(T, C, A))[0] == pytest.approx(psi_h, rel=1e-10)


def test_fd_hessians_at_several_points_in_one_batch():
    """``fd_inverse_hessians`` (the first iteration's Hessians of all RARL2 starts in one batched
    evaluation) gives each point's ``fd_inverse_hessian``; ``minimize`` started with it (``start``)
    takes the same path as when it computes it itself."""
    from difflinalg.control.reduction._rarl2._bfgs import fd_inverse_hessian, fd_inverse_hessians, minimize
    from difflinalg.control.reduction._rarl2._api import _Run

    F = random_system(10, 2, 2, seed=48)
    T = Target(F)
    run = _Run(T, 3, 1e-9, 10, None)
    X = 0.5 * torch.randn(3, run.space.dim_ambient, generator=torch.Generator().manual_seed(49), dtype=torch.float64)
    bases = [run.space.bases(x) for x in X]
    G = torch.stack([Bh.mT @ run.fg(x)[1] for x, (Bh, _) in zip(X, bases)])
    H, ok = fd_inverse_hessians(run.fg_batch, X, torch.stack([b[0] for b in bases]), G)
    assert bool(ok.all()) and H.shape == (3, run.space.dim, run.space.dim)
    for k in range(3):
        Hk, _ = fd_inverse_hessian(run.fg, X[k], bases[k][0], G[k], fg_batch=run.fg_batch)
        assert torch.allclose(H[k], Hk, rtol=1e-6, atol=1e-8 * float(Hk.abs().max()))
    kw = dict(gtol=1e-9, max_iter=8, eps_f=run.eps_f, fg_batch=run.fg_batch)
    r1 = minimize(run.fg, run.space, X[0], **kw)
    r2 = minimize(run.fg, run.space, X[0], start=(*bases[0], H[0]), **kw)
    assert r1.iterations == r2.iterations and r2.f == pytest.approx(r1.f, rel=1e-8)
    assert r2.evaluations == r1.evaluations - run.space.dim  # the Hessian's gradients were given
