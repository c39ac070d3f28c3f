"""The RARL2 inner problem (shared/reference/rarl2-math.md, sections 3-4) through ``argmin``.

For an output-normal pair (C, A) the H2 error of H = D + C (zI - A)^{-1} B as a function of B is

    e(B) = ||F||^2 - 2 Re Tr(B^H Q12^H B_F) + ||B||_F^2,   Q12 = A_F^H Q12 A + C_F^H C,

(the observability Gramian of (C, A) is I; ||F||^2 here leaves out ||D_F||^2, which D = D_F
cancels), minimized by B_hat = Q12^H B_F; the concentrated criterion is
psi(C, A) = ||F||^2 - ||B_hat||^2. Implicit differentiation of B_hat = argmin e must
reproduce the closed-form adjoint gradient of section 4:

    P12 = A P12 A_F^H + B_hat B_F^H,   grad_A = -2 (P12 A_F^H Q12)^H,   grad_C = -2 (P12 C_F^H)^H

(continuous time: the Lyapunov analogues). The small Stein/Lyapunov equations of the test are
solved through Kronecker systems (sizes N n <= 30), which is fine for a test.
"""

import pytest
import torch

from difflinalg.check import gradcheck
from difflinalg.implicit import argmin

MODES = ("vjp", "jvp", "hvp", "hvp_rev")


def _randn(*s, dtype, g):
    if dtype.is_complex:
        return torch.complex(torch.randn(*s, generator=g, dtype=torch.float64),
                             torch.randn(*s, generator=g, dtype=torch.float64))
    return torch.randn(*s, generator=g, dtype=dtype)


def _vec_solve(K, R):
    """Solve K vec(X) = vec(R) (row-major vec)."""
    return torch.linalg.solve(K, R.reshape(-1)).reshape(R.shape)


def _kron(a, b):
    return torch.kron(a.contiguous(), b.contiguous())  # torch.kron rejects some strided views


def _eye(n, like):
    return torch.eye(n, dtype=like.dtype)


def stein(A1H, A2, R):
    """X = A1H X A2 + R (discrete), via (I - A1H kron A2^T) vec X = vec R."""
    n1, n2 = R.shape
    return _vec_solve(_eye(n1 * n2, R) - _kron(A1H, A2.mT), R)


def lyap(A1H, A2, R):
    """A1H X + X A2 + R = 0 (continuous)."""
    n1, n2 = R.shape
    return _vec_solve(_kron(A1H, _eye(n2, R)) + _kron(_eye(n1, R), A2.mT), -R)


def make_target(dtype, g, N=6, p=2, m=2, continuous=False):
    AF = _randn(N, N, dtype=dtype, g=g)
    if continuous:
        AF = AF / torch.linalg.eigvals(AF).abs().max() - 1.5 * torch.eye(N, dtype=dtype)
    else:
        AF = 0.8 * AF / torch.linalg.eigvals(AF).abs().max()
    return AF, _randn(N, m, dtype=dtype, g=g), _randn(p, N, dtype=dtype, g=g), _randn(p, m, dtype=dtype, g=g)


def output_normal(dtype, g, n=2, p=2, continuous=False):
    if continuous:
        C = _randn(p, n, dtype=dtype, g=g)
        S = _randn(n, n, dtype=dtype, g=g)
        return (S - S.mH) / 2 - C.mH @ C / 2, C
    Q, _ = torch.linalg.qr(_randn(n + p, n, dtype=dtype, g=g))
    return Q[:n], Q[n:]


class Inner:
    """The inner problem for a fixed target, discrete or continuous time."""

    def __init__(self, AF, BF, CF, DF, continuous=False):
        self.AF, self.BF, self.CF, self.DF, self.ct = AF, BF, CF, DF, continuous
        QF = (lyap(AF.mH, AF, CF.mH @ CF) if continuous else stein(AF.mH, AF, CF.mH @ CF))
        # ||F||^2 without the ||D_F||^2 term, which D = D_F cancels in the error (section 3)
        self.normF2 = torch.trace(BF.mH @ QF @ BF).real

    def Q12(self, A, C):
        R = self.CF.mH @ C
        return lyap(self.AF.mH, A, R) if self.ct else stein(self.AF.mH, A, R)

    def error(self, B, A, C):
        """H2 error as a function of B for output-normal (C, A) (D = D_F)."""
        cross = torch.trace(B.mH @ self.Q12(A, C).mH @ self.BF).real
        return self.normF2 - 2 * cross + (B.abs() ** 2).sum()

    def B_hat(self, A, C):
        return self.Q12(A, C).mH @ self.BF

    def psi(self, A, C):
        """Concentrated criterion through implicit differentiation of the argmin over B."""
        B = argmin(self.error, self.B_hat(A, C).detach(), A, C)
        return self.normF2 - (B.abs() ** 2).sum()

    def adjoint_gradient(self, A, C):
        """Closed-form gradients of psi (rarl2-math.md section 4)."""
        Q12, Bh = self.Q12(A, C), self.B_hat(A, C)
        R = Bh @ self.BF.mH
        if self.ct:
            P12 = lyap(A, self.AF.mH, R)
            return -2 * (P12 @ Q12).mH, -2 * (P12 @ self.CF.mH).mH
        P12 = stein(A, self.AF.mH, R)
        return -2 * (P12 @ self.AF.mH @ Q12).mH, -2 * (P12 @ self.CF.mH).mH

    def error_system_norm(self, A, C, B):
        """||F - H||^2 from the Gramian of the error system (independent of the formula)."""
        Ae = torch.block_diag(self.AF, A)
        Be = torch.cat([self.BF, B], 0)
        Ce = torch.cat([self.CF, -C], 1)
        Qe = lyap(Ae.mH, Ae, Ce.mH @ Ce) if self.ct else stein(Ae.mH, Ae, Ce.mH @ Ce)
        return torch.trace(Be.mH @ Qe @ Be).real


@pytest.mark.parametrize("continuous", [False, True], ids=["discrete", "continuous"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
def test_inner_problem_gradient_matches_adjoint(dtype, continuous):
    g = torch.Generator().manual_seed(11)
    prob = Inner(*make_target(dtype, g, continuous=continuous), continuous=continuous)
    A, C = output_normal(dtype, g, continuous=continuous)
    if continuous:
        assert torch.allclose(A + A.mH + C.mH @ C, torch.zeros_like(A), atol=1e-14)
    else:
        assert torch.allclose(A.mH @ A + C.mH @ C, torch.eye(2, dtype=dtype), atol=1e-14)
    # values: the formula equals the error system's Gramian, and B_hat is the minimizer
    Bh = prob.B_hat(A, C)
    psi = prob.psi(A, C)
    assert torch.allclose(psi, prob.error_system_norm(A, C, Bh), rtol=1e-10)
    assert torch.allclose(prob.error(Bh, A, C), psi, rtol=1e-12)
    dB = 1e-3 * _randn(*Bh.shape, dtype=dtype, g=g)
    assert prob.error_system_norm(A, C, Bh + dB) > psi
    # gradients: implicit differentiation == closed-form adjoint
    Ar, Cr = A.clone().requires_grad_(), C.clone().requires_grad_()
    gA, gC = torch.autograd.grad(prob.psi(Ar, Cr), (Ar, Cr))
    rA, rC = prob.adjoint_gradient(A, C)
    assert torch.allclose(gA, rA, rtol=1e-9, atol=1e-11)
    assert torch.allclose(gC, rC, rtol=1e-9, atol=1e-11)


def test_inner_problem_all_modes():
    g = torch.Generator().manual_seed(12)
    prob = Inner(*make_target(torch.complex128, g, N=5))
    A, C = output_normal(torch.complex128, g)
    # first and second derivatives of psi, through argmin, against finite differences
    gradcheck(prob.psi, A, C, modes=MODES)
