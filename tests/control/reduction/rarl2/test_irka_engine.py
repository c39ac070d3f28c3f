"""The batched lock-step IRKA of RARL2 (``_rarl2._irka_engine``): real bases of the projections,
lock-step runs equal to separate ones, iterates in modal and working coordinates, the real modal
form of its models, and its shift sets."""

import pytest
import torch

from difflinalg.control.reduction._rarl2._irka_engine import _realify, default_shifts, irka, irka_models
from difflinalg.control.reduction._rarl2._starts import balanced_start, modal_start
from difflinalg.control.reduction._rarl2._target import Target

from _controlhelpers import random_system


def test_realify_paired_shifts_span_the_same_space():
    """With conjugate-closed shifts the real basis of an IRKA step comes from one QR of the real
    and imaginary parts of the upper members (``_starts._realify``): the same space as the SVD of
    all real and imaginary parts, and orthonormal."""
    g = torch.Generator().manual_seed(71)
    N = 12
    z = torch.complex(torch.randn(N, 2, generator=g, dtype=torch.float64), torch.randn(N, 2, generator=g, dtype=torch.float64))
    xr = torch.randn(N, 1, generator=g, dtype=torch.float64).to(torch.complex128)
    X = torch.cat([z[:, :1], z[:, :1].conj(), xr, z[:, 1:], z[:, 1:].conj()], 1)  # r = 5
    sigma = torch.tensor([1 + 2j, 1 - 2j, 3 + 0j, 0.5 + 1j, 0.5 - 1j], dtype=torch.complex128)
    Q1 = _realify(X, 5, sigma)
    Q2 = _realify(X, 5)
    assert Q1.shape == (N, 5) and not Q1.is_complex()
    assert torch.allclose(Q1.mT @ Q1, torch.eye(5, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(Q1 @ Q1.mT, Q2 @ Q2.mT, atol=1e-10)


def test_realify_batched_equals_each_problem():
    """A batch of IRKA problems whose conjugate pairs sit at different places gives each problem's
    basis (the per-problem gather of the real and imaginary parts)."""
    g = torch.Generator().manual_seed(72)
    N = 10
    z = torch.complex(torch.randn(N, 1, generator=g, dtype=torch.float64), torch.randn(N, 1, generator=g, dtype=torch.float64))
    x = torch.randn(N, 1, generator=g, dtype=torch.float64).to(torch.complex128)
    X = torch.stack([torch.cat([z, z.conj(), x], 1), torch.cat([x, z, z.conj()], 1)])
    sigma = torch.tensor([[1 + 2j, 1 - 2j, 3], [3, 1 + 2j, 1 - 2j]], dtype=torch.complex128)
    Q = _realify(X, 3, sigma)
    for k in range(2):
        assert torch.allclose(Q[k], _realify(X[k], 3, sigma[k]), atol=1e-14)
        assert torch.allclose(Q[k] @ Q[k].mT, Q[0] @ Q[0].mT, atol=1e-12)  # the same space


@pytest.mark.parametrize("discrete", [False, True])
def test_irka_lockstep_equals_separate_runs(discrete):
    """IRKA from a model and from spread shifts, run in one batch, gives each run's iterates (models
    and interpolation data; ``irka_models`` makes them real for a real target); a run that
    converged ends while the other goes on."""
    F = random_system(12, 2, 2, discrete=discrete, seed=75)
    T = Target(F)
    Ar, Br, Cr, _ = balanced_start(T, 4)
    shifts = default_shifts(T, 4)[None]
    both = irka(T, models=(Ar[None], Br[None], Cr[None]), shifts=shifts)
    alone = irka(T, models=(Ar[None], Br[None], Cr[None]))[0], irka(T, shifts=shifts)[0]
    assert len(both) == 2
    for run, ref in zip(both, alone):
        assert 1 <= len(run) == len(ref) <= 20
        for d, dref in zip(run, ref):
            for t, tref in zip(d, dref):
                assert torch.allclose(t, tref, rtol=1e-9, atol=1e-11)
        A, B, C, ok = irka_models(T, run)
        assert bool(ok.all()) and not A.is_complex() and A.shape == (len(run), 4, 4)


def test_irka_candidates_from_modal_truncation_in_the_same_batch():
    """``_irka_candidates``: the "irka-modal" run (IRKA from ``modal_start``) goes in lock-step with
    the runs from balanced truncation and from spread shifts, and its candidates are those of the
    run alone (the first iterate and the last IRKA_CANDIDATES)."""
    from difflinalg.control.reduction._rarl2._policy import POLICY
    from difflinalg.control.reduction._rarl2._run import _Run
    from difflinalg.control.reduction._rarl2._search import _irka_candidates

    IRKA_CANDIDATES = POLICY.irka_candidates

    F = random_system(12, 2, 2, seed=80)
    T = Target(F)
    run = _Run(T, 4, 1e-9, 100, None)
    bt = balanced_start(T, 4)[:3]
    modal = modal_start(T, 4)
    cands = _irka_candidates(run, ["bt", "irka-bt", "irka", "irka-modal"], bt, modal)
    assert set(cands) == {"irka-bt", "irka", "irka-modal"}
    its = irka(T, models=tuple(t[None] for t in modal))[0]
    keep = its[:1] + its[1:][-IRKA_CANDIDATES:]
    A, _, C, ok = irka_models(T, keep)
    assert bool(ok.all()) and cands["irka-modal"][0].shape == A.shape
    assert torch.allclose(cands["irka-modal"][0], A, atol=1e-9) and torch.allclose(cands["irka-modal"][1], C, atol=1e-9)
    # without a modal start (no modal form) the run is left out, the others are kept
    assert set(_irka_candidates(run, ["irka-bt", "irka-modal"], bt, None)) == {"irka-bt"}


def _tf(A, B, C, s):
    I = torch.eye(A.shape[-1], dtype=torch.complex128)
    return C.to(torch.complex128) @ torch.linalg.solve(s * I - A.to(torch.complex128), B.to(torch.complex128))


def test_irka_iterates_in_modal_coordinates_are_the_working_coordinate_iterates():
    """The iteration runs in the complex modal coordinates; each iterate has the transfer function
    of the real projection in the working coordinates at the same data, and ``irka_models`` gives
    it as a real model (real modal form)."""
    from difflinalg.control.reduction._rarl2._irka_engine import _project

    F = random_system(10, 2, 2, seed=79)
    T = Target(F)
    its = irka(T, shifts=default_shifts(T, 4)[None])[0]
    Ad, Bd, Cd, sigma, bdir, cdir = (torch.stack(t) for t in zip(*its))
    Ap, Bp, Cp, ok1 = _project(T, sigma, bdir, cdir, diagonal=False)
    Aw, Bw, Cw, ok2 = irka_models(T, its)
    assert bool(ok1.all()) and bool(ok2.all()) and Ad.is_complex() and not Aw.is_complex() and not Ap.is_complex()
    for z in (0.5j, 2.0 + 1j):
        Hd = _tf(Ad, Bd, Cd, z)
        assert torch.allclose(_tf(Ap, Bp, Cp, z), Hd, atol=1e-9)
        assert torch.allclose(_tf(Aw, Bw, Cw, z), Hd, atol=1e-9)
    # an iterate without a real modal form (poles not conjugate-closed) is projected again
    bad = [(its[0][0] + 0.5j * torch.eye(4, dtype=its[0][0].dtype), *its[0][1:])] + its[1:]
    A2, _, C2, ok = irka_models(T, bad)
    assert bool(ok.all()) and torch.allclose(A2[0], Ap[0]) and torch.allclose(C2[0], Cp[0])


def test_real_modal_form():
    """Complex realizations of real models (a random complex similarity) back in real modal form:
    the same transfer function, real, with 2 x 2 blocks for the pairs; not conjugate-closed poles
    are reported (``ok`` False)."""
    from difflinalg.control.reduction._rarl2._irka_engine import real_modal_form

    g = torch.Generator().manual_seed(80)
    A = torch.randn(3, 5, 5, generator=g, dtype=torch.float64) - 2 * torch.eye(5, dtype=torch.float64)
    A[2] = torch.diag(torch.tensor([-1.0, -2.0, -3.0, -4.0, -5.0], dtype=torch.float64))  # real poles only
    B = torch.randn(3, 5, 2, generator=g, dtype=torch.float64)
    C = torch.randn(3, 3, 5, generator=g, dtype=torch.float64)
    S = torch.complex(torch.randn(3, 5, 5, generator=g, dtype=torch.float64), torch.randn(3, 5, 5, generator=g, dtype=torch.float64))
    Si = torch.linalg.inv(S)
    Ac, Bc, Cc = Si @ A.to(S.dtype) @ S, Si @ B.to(S.dtype), C.to(S.dtype) @ S
    Ar, Br, Cr, ok = real_modal_form(Ac, Bc, Cc)
    assert bool(ok.all()) and not Ar.is_complex()
    assert bool((torch.linalg.eigvals(A).imag.abs() > 1e-6).any())  # the random ones have pairs
    for z in (0.3j, 1.0 - 2j):
        assert torch.allclose(_tf(Ar, Br, Cr, z), _tf(A, B, C, z), rtol=1e-9, atol=1e-10)
    Ac2 = Ac.clone()
    Ac2[0] = Ac2[0] + 0.5j * torch.eye(5, dtype=Ac.dtype)  # poles no longer conjugate-closed
    assert real_modal_form(Ac2, Bc, Cc)[3].tolist() == [False, True, True]


def test_irka_recovers_an_exact_order_target():
    """On a target of order r, IRKA of order r interpolates it: its transfer function is the target's."""
    F = random_system(4, 2, 2, seed=76)
    T = Target(F)
    its = irka(T, shifts=default_shifts(T, 4)[None])[0]
    A, B, C, _ = irka_models(T, its[-1:])
    A, B, C = A[0], B[0], C[0]
    Bw, Cw = T.work_BC()
    s = torch.tensor([0.3j, 1.0 + 2j], dtype=torch.complex128)
    for z in s:
        Hr = C.to(T.cdt) @ torch.linalg.solve(z * torch.eye(4, dtype=T.cdt) - A.to(T.cdt), B.to(T.cdt))
        Hf = Cw.to(T.cdt) @ T.work_shifted_solve(z.expand(2), Bw.to(T.cdt))
        assert torch.allclose(Hr, Hf, atol=1e-8)


@pytest.mark.parametrize("discrete", [False, True])
def test_fixed_shifts_are_in_the_targets_own_frequency_units(discrete):
    """``fixed_shifts``: ``logspace(-1, 1, r)`` of the original frequency axis, whatever the working
    frequency scale ``omega`` (continuous time); none in discrete time."""
    from difflinalg.control.reduction._rarl2._irka_engine import fixed_shifts

    T = Target(random_system(8, 2, 1, discrete=discrete, seed=2), "auto")
    if discrete:
        assert fixed_shifts(T, 4) is None
        return
    want = torch.logspace(-1, 1, 4, dtype=torch.float64)
    for omega in (1.0, 7.5):
        T.rescale(omega)
        s = fixed_shifts(T, 4)
        assert s.dtype == T.cdt and torch.all(s.imag == 0)
        torch.testing.assert_close(s.real * omega, want, rtol=1e-14, atol=0)
