"""Balanced truncation (square-root method), also for non-normal A; order validation."""

import numpy as np
import pytest
import scipy.linalg as sl
import torch

from difflinalg import InputError, UnstableSystemError
from difflinalg.control import StateSpace, balanced_truncation, frequency_response, h2_error
from difflinalg.control.analysis._norms import controllability_gramian_of, observability_gramian_of

from _controlhelpers import embedded, random_system


def _bt_reference(F: StateSpace, r: int):
    """Balanced truncation by explicit balancing (Laub's algorithm with SciPy), for comparison."""
    A, B, C = (x.numpy() for x in (F.A, F.B, F.C))
    if F.discrete:
        P = sl.solve_discrete_lyapunov(A, B @ B.T)
        Q = sl.solve_discrete_lyapunov(A.T, C.T @ C)
    else:
        P = sl.solve_continuous_lyapunov(A, -B @ B.T)
        Q = sl.solve_continuous_lyapunov(A.T, -C.T @ C)
    Lp, Lq = np.linalg.cholesky(P), np.linalg.cholesky(Q)
    U, s, Vt = np.linalg.svd(Lq.T @ Lp)
    T = Lp @ Vt.T / np.sqrt(s)
    Ti = (U / np.sqrt(s)).T @ Lq.T
    return Ti[:r] @ A @ T[:, :r], Ti[:r] @ B, C @ T[:, :r], s


@pytest.mark.parametrize("discrete", [False, True])
def test_bt_matches_explicit_balancing(discrete):
    F = random_system(8, 2, 2, discrete=discrete, seed=21)
    H, hsv = balanced_truncation(F, 3, return_hsv=True)
    Ar, Br, Cr, s = _bt_reference(F, 3)
    assert np.allclose(hsv.numpy(), s, rtol=1e-8)
    w = torch.tensor([0.1, 1.0, 2.5], dtype=torch.float64)
    ref = StateSpace(torch.tensor(Ar), torch.tensor(Br), torch.tensor(Cr), F.D, time=F.time)
    assert torch.allclose(frequency_response(H, w), frequency_response(ref, w), rtol=1e-8)
    if discrete:
        return  # truncating a discrete-time balanced realization does not keep it balanced
    # continuous time: the reduced model is balanced, both Gramians equal diag(s_1..s_r)
    Pr, Qr = controllability_gramian_of(H), observability_gramian_of(H)
    S = torch.diag(hsv[:3])
    assert torch.allclose(Pr, S, atol=1e-10 * float(hsv[0])) and torch.allclose(Qr, S, atol=1e-10 * float(hsv[0]))


def test_bt_nonnormal_error_bound():
    """Strongly non-normal A (large Jordan-like coupling): the continuous-time error bound
    ||F - H||_inf <= 2 sum_{k>r} s_k holds on a frequency grid, and BT beats the trivial model."""
    n = 10
    A = -torch.eye(n, dtype=torch.float64) * torch.linspace(0.5, 3.0, n, dtype=torch.float64) \
        + torch.diag(torch.full((n - 1,), 8.0, dtype=torch.float64), 1)
    g = torch.Generator().manual_seed(0)
    F = StateSpace(A, torch.randn(n, 1, generator=g, dtype=torch.float64), torch.randn(1, n, generator=g, dtype=torch.float64))
    H, s = balanced_truncation(F, 4, return_hsv=True)
    w = torch.logspace(-3, 3, 400, dtype=torch.float64)
    err = (frequency_response(F, w) - frequency_response(H, w)).abs().max()
    assert float(err) <= 2 * float(s[4:].sum()) * (1 + 1e-8)
    assert float(h2_error(F, H, relative=True)) < 0.5


def test_bt_complex():
    F = random_system(6, 2, 1, dtype=torch.complex128, seed=22)
    H, s = balanced_truncation(F, 3, return_hsv=True)
    assert H.dtype == torch.complex128 and H.is_stable()
    # BT's bound ||F - H||_inf <= 2 sum_{k>r} s_k (0.67 here; the zero model's error is 4.3), on a
    # frequency grid in the spectral norm (the grid can only underestimate the H-inf norm).
    w = torch.logspace(-3, 3, 400, dtype=torch.float64)
    err = torch.linalg.matrix_norm(frequency_response(F, w) - frequency_response(H, w), ord=2).max()
    assert float(err) <= 2 * float(s[3:].sum()) * (1 + 1e-8)


def test_bt_order_errors():
    F = random_system(5, seed=23)
    with pytest.raises(InputError, match="not below the target's order 5"):
        balanced_truncation(F, 5)
    with pytest.raises(InputError, match="expected a positive integer"):
        balanced_truncation(F, 0)
    # decoupled uncontrollable modes: Hankel singular values exactly 0 beyond the minimal order 2
    A = torch.diag(torch.tensor([-1.0, -2.0, -3.0, -4.0], dtype=torch.float64))
    Fz = StateSpace(A, torch.tensor([[1.0], [1.0], [0.0], [0.0]], dtype=torch.float64),
                    torch.ones(1, 4, dtype=torch.float64))
    with pytest.raises(InputError, match="exceeds the target's minimal order 2"):
        balanced_truncation(Fz, 3)
    # a degree-2 system hidden in 6 states: order 2 is its minimal realization (exact)
    Fe, _ = embedded(2, 6, seed=1)
    H = balanced_truncation(Fe, 2)
    assert float(h2_error(Fe, H, relative=True)) < 1e-7


def test_bt_unstable():
    F = StateSpace(torch.eye(2, dtype=torch.float64), torch.ones(2, 1, dtype=torch.float64), torch.ones(1, 2, dtype=torch.float64))
    with pytest.raises(UnstableSystemError, match="pole 1 has real part 1"):
        balanced_truncation(F, 1)
