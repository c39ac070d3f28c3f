"""Hankel singular values (``analysis/_hankel.py``): accurate to ``eps ||L_Q|| ||L_P||`` against
40-digit values, unchanged by an uncontrollable or unobservable mode, exact derivatives of the
values above the rounding level, and a named error for a derivative that reaches one at it."""

from __future__ import annotations

import math

import mpmath as mp
import pytest
import torch

import difflinalg._utils
from difflinalg import DegenerateSpectrumError, TransformCheckWarning
from difflinalg.check import gradcheck
from difflinalg.control import StateSpace, hankel_singular_values
from difflinalg.control.analysis._hankel import gramian_factor
from difflinalg.control.analysis._norms import controllability_gramian_of, observability_gramian_of
from difflinalg.control.reduction._balanced import minimal_order

EPS = torch.finfo(torch.float64).eps


def graded_system(n: int, discrete: bool, seed: int) -> StateSpace:
    """Real poles, spread over two decades (continuous) or in (0.05, 0.95) (discrete), one input
    and one output: the Hankel singular values fall to 1e-17 of the first by ``n = 22``
    (continuous; discrete: 1e-22 by ``n = 18``), through the range ``sqrt(eps) sigma_1`` where squaring them loses every digit."""
    g = torch.Generator().manual_seed(seed)
    lam = (-torch.logspace(-1, 1, n, dtype=torch.float64) if not discrete
           else torch.linspace(0.05, 0.95, n, dtype=torch.float64))
    B = torch.randn(n, 1, generator=g, dtype=torch.float64)
    C = torch.randn(1, n, generator=g, dtype=torch.float64)
    # a random similarity, so that neither Gramian is diagonal or a Cauchy matrix in the coordinates
    # the computation sees (condition ~10)
    T = torch.eye(n, dtype=torch.float64) + 0.3 * torch.randn(n, n, generator=g, dtype=torch.float64) / math.sqrt(n)
    Ti = torch.linalg.inv(T)
    return StateSpace(T @ torch.diag(lam) @ Ti, T @ B, C @ Ti, time="discrete" if discrete else "continuous")


def reference_hsv(F: StateSpace, dps: int = 40) -> torch.Tensor:
    """Hankel singular values to ``dps`` digits: the Gramians of the diagonalized system (Cauchy
    matrices, entrywise exact to working precision) and the eigenvalues of ``P Q`` in mpmath."""
    mp.mp.dps = dps
    A, B, C, _ = (x.tolist() for x in F.matrices())
    E, V = mp.eig(mp.matrix(A))
    Vi = mp.inverse(V)
    Bt, Ct = Vi * mp.matrix(B), mp.matrix(C) * V
    n = len(E)

    def kern(a, b):
        return 1 / (1 - a * mp.conj(b)) if F.discrete else -1 / (a + mp.conj(b))

    P = mp.matrix(n, n)
    Q = mp.matrix(n, n)
    for i in range(n):
        for j in range(n):
            P[i, j] = Bt[i, 0] * mp.conj(Bt[j, 0]) * kern(E[i], E[j])
            Q[i, j] = mp.conj(Ct[0, i]) * Ct[0, j] * kern(mp.conj(E[i]), mp.conj(E[j]))
    ev = mp.eig(P * Q, left=False, right=False)
    return torch.tensor(sorted((float(mp.sqrt(abs(mp.re(e)))) for e in ev), reverse=True), dtype=torch.float64)


def accuracy_bound(F: StateSpace) -> float:
    """The error model of the singular values of ``L_Q^H L_P``: ``10 n eps kappa ||L_Q|| ||L_P||``,
    the factors' and the product's rounding amplified by the condition ``kappa`` of the Lyapunov
    (Stein) operator that gave the Gramians: ``max |lambda| / min |Re lambda|`` (continuous),
    ``1 / (1 - max |lambda|^2)`` (discrete)."""
    Lp = gramian_factor(controllability_gramian_of(F))
    Lq = gramian_factor(observability_gramian_of(F))
    lam = torch.linalg.eigvals(F.A)
    kappa = (1 / (1 - float(lam.abs().max()) ** 2) if F.discrete
             else float(lam.abs().max() / lam.real.abs().min()))
    return 10 * F.order * EPS * kappa * float(torch.linalg.matrix_norm(Lp, 2) * torch.linalg.matrix_norm(Lq, 2))


@pytest.mark.parametrize("discrete", [False, True])
def test_values_match_40_digits(discrete):
    """Every value within ``accuracy_bound`` of the 40-digit ones, a bound far below
    ``sqrt(eps) sigma_1``, the error model of the squared computation ``sqrt(eig(L_Q^H P L_Q))``
    (which on this machine missed the 40-digit values by 3.7e-9 (continuous) and 1.4e-9
    (discrete); by how much varies with the LAPACK path, so it is not asserted)."""
    F = graded_system(18 if discrete else 22, discrete, seed=3)
    ref = reference_hsv(F)
    hsv = hankel_singular_values(F)
    bound = accuracy_bound(F)
    assert float(ref[-1]) < math.sqrt(EPS) * float(ref[0])  # the regime where squaring fails
    assert bound < 1e-2 * math.sqrt(EPS) * float(ref[0])
    assert float((hsv - ref).abs().max()) <= bound


@pytest.mark.parametrize("discrete", [False, True])
def test_non_minimal_modes_change_nothing(discrete):
    """An uncontrollable mode and an unobservable one added: the values are the minimal system's
    (to the error bound) followed by two at the rounding level; the leading ones' gradient is
    finite and equal to the minimal system's (it was NaN: the square root at a zero eigenvalue)."""
    F = graded_system(8, discrete, seed=5)
    A, B, C, _ = F.matrices()
    lam = torch.tensor([0.3, 0.6] if discrete else [-0.7, -2.0], dtype=torch.float64)
    A2 = torch.block_diag(A, torch.diag(lam))
    B2 = torch.cat([B, torch.tensor([[0.0], [1.0]], dtype=torch.float64)])  # mode 1: uncontrollable
    C2 = torch.cat([C, torch.tensor([[1.0, 0.0]], dtype=torch.float64)], 1)  # mode 2: unobservable
    time = "discrete" if discrete else "continuous"
    h = hankel_singular_values(F)
    h2 = hankel_singular_values(StateSpace(A2, B2, C2, time=time))
    assert float((h2[:8] - h).abs().max()) <= accuracy_bound(F)
    assert float(h2[8:].max()) <= 10 * EPS * float(h2[0])
    assert minimal_order(h2, torch.float64, 10) == 8

    def lead(A_):
        return hankel_singular_values(StateSpace(A_, B, C, time=time), 4)

    def lead2(A_):
        return hankel_singular_values(StateSpace(A_, B2, C2, time=time), 4)

    a1, a2 = A.clone().requires_grad_(), A2.clone().requires_grad_()
    w = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    g1, = torch.autograd.grad((w * lead(a1)).sum(), a1)
    g2, = torch.autograd.grad((w * lead2(a2)).sum(), a2)
    assert torch.isfinite(g2).all()
    assert torch.allclose(g2[:8, :8], g1, rtol=1e-7, atol=1e-9 * float(g1.abs().max()))


def test_non_minimal_gradient_matches_finite_differences(monkeypatch):
    """The eigh-factor path (a numerically singular controllability Gramian) against
    ``difflinalg.check``, reverse and forward, for the leading values; a second derivative, which
    misses the null block's curvature (5.9 times the finite-difference allowance here), raises."""
    F = graded_system(5, False, seed=7)
    A, B, C, _ = F.matrices()
    A2 = torch.block_diag(A, torch.tensor([[-1.5]], dtype=torch.float64))
    B2 = torch.cat([B, torch.zeros(1, 1, dtype=torch.float64)])
    C2 = torch.cat([C, torch.ones(1, 1, dtype=torch.float64)], 1)
    assert torch.linalg.cholesky_ex(controllability_gramian_of(StateSpace(A2, B2, C2)))[1] > 0
    gradcheck(lambda A_, C_: hankel_singular_values(StateSpace(A_, B2, C_), 3), A2, C2,
              modes=("vjp", "jvp"), max_step=1e-4)
    a = A2.clone().requires_grad_()
    g, = torch.autograd.grad(hankel_singular_values(StateSpace(a, B2, C2), 3).sum(), a, create_graph=True)
    assert torch.isfinite(g).all()
    with pytest.raises(DegenerateSpectrumError, match="second derivative"):
        torch.autograd.grad(g.sum(), a)
    # inside torch.func (no raising on data): NaN, warned
    monkeypatch.setattr(difflinalg._utils, "_warned", set())
    with pytest.warns(TransformCheckWarning, match="second derivative"):
        H = torch.func.hessian(lambda A_: hankel_singular_values(StateSpace(A_, B2, C2), 3).sum())(A2)
    assert torch.isnan(H).any()


def _non_minimal():
    F = graded_system(6, False, seed=9)
    A, B, C, _ = F.matrices()
    A2 = torch.block_diag(A, torch.tensor([[-1.5]], dtype=torch.float64))
    B2 = torch.cat([B, torch.zeros(1, 1, dtype=torch.float64)])
    C2 = torch.cat([C, torch.ones(1, 1, dtype=torch.float64)], 1)
    return A2, B2, C2


def test_loss_on_rounding_level_values_raises():
    """``h.sum()`` of a non-minimal system weighs its rounding-level value: a named error in
    backward and in forward mode; the leading values alone (``k`` = the minimal order, or a loss
    that leaves the last one out) are differentiable both ways."""
    A2, B2, C2 = _non_minimal()
    a = A2.clone().requires_grad_()
    h = hankel_singular_values(StateSpace(a, B2, C2))
    with pytest.raises(DegenerateSpectrumError, match=r"k <= 6"):
        torch.autograd.grad(h.sum(), a)
    h = hankel_singular_values(StateSpace(a, B2, C2))
    g, = torch.autograd.grad(h[:6].sum(), a)
    assert torch.isfinite(g).all()
    import torch.autograd.forward_ad as fwAD

    dA = torch.randn_like(A2)
    with fwAD.dual_level():
        with pytest.raises(DegenerateSpectrumError, match="rounding level"):
            hankel_singular_values(StateSpace(fwAD.make_dual(A2, dA), B2, C2))
        t = fwAD.unpack_dual(hankel_singular_values(StateSpace(fwAD.make_dual(A2, dA), B2, C2), 6)).tangent
    assert t is not None and torch.isfinite(t).all()
