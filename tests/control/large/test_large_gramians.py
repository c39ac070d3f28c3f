"""Low-rank Gramians, sparse H2 norm and H2 error against the dense implementation (N <= 500)."""

import numpy as np
import pytest
import scipy.linalg as sla
import scipy.sparse as sps
import torch

from difflinalg import InputError, UnstableSystemError
from difflinalg.control import StateSpace, balanced_truncation, h2_error, h2_norm
from difflinalg.control.large import (SparseSystem, convection_diffusion_2d, h2_error_sparse, h2_norm_sparse,
                                      heat_2d, lr_gramian, msd_descriptor)


def _discrete(N=120, seed=1, complex_=False):
    rng = np.random.default_rng(seed)
    A = sps.random(N, N, density=0.05, random_state=seed, dtype=float)
    if complex_:
        A = A + 1j * sps.random(N, N, density=0.02, random_state=seed + 1)
    A = A / (1.4 * np.abs(np.linalg.eigvals(A.toarray())).max())
    E = sps.identity(N) + sps.diags(0.2 * rng.random(N))
    B, C, D = rng.standard_normal((N, 2)), rng.standard_normal((2, N)), rng.standard_normal((2, 2))
    return SparseSystem(A.tocsc(), B, C, D, E=E.tocsc(), time="discrete")


CASES = {
    "heat": lambda: heat_2d(12),
    "convdiff": lambda: convection_diffusion_2d(12, (50.0, 30.0)),
    "msd": lambda: msd_descriptor(100),
    "discrete": lambda: _discrete(),
    "discrete-complex": lambda: _discrete(complex_=True),
}


@pytest.mark.parametrize("name", CASES)
def test_gramian_residual(name):
    s = CASES[name]()
    d = s.to_dense()
    Z, res = lr_gramian(s, "c")
    assert res <= 1e-12
    Ad, Bd = d.A.numpy(), d.B.numpy()
    P = (sla.solve_discrete_lyapunov(Ad, Bd @ Bd.conj().T) if s.discrete
         else sla.solve_continuous_lyapunov(Ad, -Bd @ Bd.conj().T))
    # ADI residual tol ~1e-13 relative, amplified by the Lyapunov operator's inverse (stiff: ~1e3)
    assert np.linalg.norm(Z @ Z.conj().T - P) <= 1e-9 * np.linalg.norm(P)


@pytest.mark.parametrize("name", CASES)
def test_h2_norm_matches_dense(name):
    s = CASES[name]()
    assert h2_norm_sparse(s) == pytest.approx(float(h2_norm(s.to_dense())), rel=1e-9)


@pytest.mark.parametrize("name", CASES)
def test_h2_error_matches_dense(name):
    s = CASES[name]()
    d = s.to_dense()
    H = balanced_truncation(d, 4)
    e0 = float(h2_error(d, H, method="gramian"))
    # ||F - H||^2 = ||F||^2 + ||H||^2 - 2 Re <F, H>: rounding and ADI truncation ~1e-12 ||F||^2
    tol = 1e-5 * float(h2_norm(d)) ** 2 / e0
    assert h2_error_sparse(s, H) == pytest.approx(e0, rel=max(tol, 1e-9))


def test_h2_error_schur_path_defective_model():
    """A defective small model (Jordan block): the Schur back substitution."""
    s = heat_2d(10)
    d = s.to_dense()
    A = torch.tensor([[-30.0, 1.0, 0.0], [0.0, -30.0, 1.0], [0.0, 0.0, -30.0]], dtype=torch.float64)
    H = StateSpace(A, torch.ones(3, 1, dtype=torch.float64), torch.ones(1, 3, dtype=torch.float64) * 1e-3)
    e0 = float(h2_error(d, H, method="gramian"))
    assert h2_error_sparse(s, H) == pytest.approx(e0, rel=1e-8)


@pytest.mark.slow
def test_h2_error_at_n500():
    """The brief's check: a 500-state descriptor target against dense h2_error (residues)."""
    s = msd_descriptor(250)
    d = s.to_dense()
    H = balanced_truncation(d, 10)
    assert h2_error_sparse(s, H, relative=True) == pytest.approx(float(h2_error(d, H, relative=True)), rel=1e-6)


def test_h2_bad_input():
    s = heat_2d(5)
    H = balanced_truncation(s.to_dense(), 2)
    with pytest.raises(InputError, match="H: F is continuous time but H is discrete"):
        h2_error_sparse(s, StateSpace(H.A * 0.01, H.B, H.C, time="discrete"))
    with pytest.raises(UnstableSystemError, match="H: "):
        h2_error_sparse(s, StateSpace(-H.A, H.B, H.C))  # unstable: the formula would be finite and wrong
    s2 = SparseSystem(s.A, s.B, s.C, np.ones((1, 1)))
    with pytest.raises(InputError, match="non-zero D has an infinite H2 norm"):
        h2_norm_sparse(s2)


def test_shifts_fit_the_factorization_cache():
    """A cycle of ADI shifts never exceeds what the cache holds (it would refactor at every step): with
    room for 3 factorizations, 3 shifts; the Gramian is as accurate, and each shift is factorized once."""
    from difflinalg.control.large import heat_2d
    from difflinalg.control.large._adi import N_SHIFTS, adi_shifts
    from difflinalg.control.large._solves import ShiftedSolver

    F, ref = heat_2d(14), heat_2d(14)
    S = ShiftedSolver(F)
    F.cache["solver"] = S
    S.slots(False)  # the estimate before any factorization
    S.solve(1.0, 0.0, F.B)  # one factorization: its size sets the budget
    S.cache_bytes = 3 * max(S.sizes.values()) + 1
    shifts = adi_shifts(F, False)
    assert len(shifts) == 3 < len(adi_shifts(ref, False)) <= N_SHIFTS
    f0 = S.factorizations
    Z, res = lr_gramian(F, "c", 1e-15)
    assert res <= 1e-15 and S.factorizations - f0 <= 3
    Zr, _ = lr_gramian(ref, "c", 1e-15)
    P, Pr = Z @ Z.T, Zr @ Zr.T
    assert np.linalg.norm(P - Pr) <= 1e-12 * np.linalg.norm(Pr)
