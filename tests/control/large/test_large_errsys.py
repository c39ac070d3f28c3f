"""h2_error_sparse on the error system: no cancellation, relative errors 1e-3 .. 1e-12 resolved."""

import math

import numpy as np
import pytest
import scipy.sparse as sps
import scipy.sparse.linalg as spla
import torch

from difflinalg.control import StateSpace, balanced_truncation, h2_error
from difflinalg.control.large import (SparseSystem, convection_diffusion_2d, h2_error_sparse, h2_norm_sparse,
                                      heat_2d, msd_descriptor)
from difflinalg.control.large._errsys import ROUND_EPS, error_norm
from difflinalg.control.large._gramians import _small

from _injected import injected_heat  # noqa: E402


def _bt_ladder(d, orders):
    return {r: balanced_truncation(d, r) for r in orders}


@pytest.mark.slow
@pytest.mark.parametrize("make,orders", [(lambda: heat_2d(22), (2, 6, 10, 14, 18, 22)),
                                         (lambda: msd_descriptor(250), (2, 8, 16))], ids=["heat484", "msd500"])
def test_matches_precise_dense_over_error_range(make, orders):
    """Against the extended-precision dense yardstick at N ~ 500, errors from 1e-1 down to 1e-12."""
    s = make()
    d = s.to_dense()
    errs = []
    for r, H in _bt_ladder(d, orders).items():
        ref = float(h2_error(d, H, relative=True, precise=True))
        en = error_norm(s, *_small(H), 1e-15)
        ours = h2_error_sparse(s, H, relative=True)
        # the error model: rounding ROUND_EPS sqrt(||F||^2 + ||H||^2) plus the truncation tail
        # (en.resolution), the reference's own double-double rounding far below it
        assert abs(ours - ref) <= en.resolution / en.target_norm + 1e-9 * ref, (r, ours, ref)
        errs.append(ref)
    assert max(errs) > 1e-3 and (min(errs) < 2e-12 or len(orders) == 3)


def test_small_error_resolved_where_the_old_formula_read_zero():
    """heat N = 484, order 16: relative error 4.5e-10, below the old formula's ~3e-7 floor."""
    s = heat_2d(22)
    d = s.to_dense()
    H = balanced_truncation(d, 16)
    ref = float(h2_error(d, H, relative=True, precise=True))
    assert ref < 1e-9
    assert h2_error_sparse(s, H, relative=True) == pytest.approx(ref, rel=1e-5)


def _quadrature_error(s, H):
    """``||F - H||_2`` by Gauss-Legendre on log-spaced frequency panels (an independent yardstick:
    each point's difference cancels only to eps ||F(i w)||)."""
    Ah, Bh, Ch, _ = _small(H)
    x, w = np.polynomial.legendre.leggauss(20)
    I = sps.identity(s.order, format="csc")
    tot = 0.0
    edges = np.log(np.logspace(-3, 7, 61))
    for la, lb in zip(edges[:-1], edges[1:]):
        for t, wt in zip(0.5 * (lb - la) * x + 0.5 * (lb + la), 0.5 * (lb - la) * w):
            om = math.exp(t)
            g = s.C @ spla.spsolve((1j * om * I - s.A).tocsc(), s.B) - Ch @ np.linalg.solve(
                1j * om * np.eye(Ah.shape[0]) - Ah, Bh)
            tot += wt * om * float(np.sum(np.abs(g) ** 2))
    return math.sqrt(tot / math.pi)


def test_nonnormal_against_frequency_quadrature():
    """convection-diffusion (non-normal), relative error ~1e-10: the dense residue yardstick's own
    error (eigenvector conditioning) is larger here, so the reference is a frequency-domain quadrature."""
    s = convection_diffusion_2d(14)
    d = s.to_dense()
    H = balanced_truncation(d, 12)
    ref = _quadrature_error(s, H)
    ours = h2_error_sparse(s, H)
    assert ref / h2_norm_sparse(s) < 1e-8
    # quadrature: 1200 nodes of a smooth integrand, ~1e-6 relative
    assert ours == pytest.approx(ref, rel=1e-5)


def test_exact_model_reports_resolution_not_zero():
    """H = F (zero error): the result is the resolution, positive and at the rounding level."""
    s = heat_2d(5)
    H = s.to_dense()
    err = h2_error_sparse(s, H, relative=True)
    assert 0 < err <= 2 * ROUND_EPS * math.sqrt(2)
    en = error_norm(s, *_small(H), 1e-15)
    assert en.error <= en.resolution


def test_norms_from_the_same_run():
    s = msd_descriptor(60)
    H = balanced_truncation(s.to_dense(), 4)
    en = error_norm(s, *_small(H), 1e-15)
    assert en.target_norm == pytest.approx(h2_norm_sparse(s), rel=1e-10)
    assert en.model_norm == pytest.approx(float(__import__("difflinalg").control.h2_norm(H)), rel=1e-10)


@pytest.mark.slow
def test_late_error_terms_counted():
    """heat N = 1024, order 18 (relative error 6.49e-13 by a quadrature with refined solves and
    mpmath for H): F and H agree on the modes the first shift cycles resolve, so stopping at the
    Gramian's residual tolerance read 1.4e-14. The error ADI runs to ERROR_TOL."""
    import warnings

    from difflinalg import PrecisionWarning
    from difflinalg.control.large import lr_balanced_truncation

    s = heat_2d(32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrecisionWarning)
        H = lr_balanced_truncation(s, 18, tol=1e-15)
    ref = _quadrature_error(s, H) / h2_norm_sparse(s)
    assert 5e-13 < ref < 8e-13
    en = error_norm(s, *_small(H), 1e-15)
    assert abs(en.reported / en.target_norm - ref) <= en.resolution / en.target_norm + 1e-3 * ref


@pytest.mark.parametrize("make", [lambda: heat_2d(12), lambda: msd_descriptor(60),
                                  lambda: convection_diffusion_2d(10)], ids=["heat", "msd", "convdiff"])
def test_models_share_the_target_run(make):
    """The F block of the error system's ADI does not depend on the model: a second model measured
    against the same target replays the recorded run (no sparse solve unless it needs more steps)
    and gets what a fresh target object gives."""
    from difflinalg.control.large._solves import solver_of

    s, fresh = make(), make()
    d = s.to_dense()
    H1, H2 = balanced_truncation(d, 2), balanced_truncation(d, 6)
    e1 = error_norm(s, *_small(H1), 1e-15)
    S = solver_of(s)
    solves, steps = S.solves, len(s.cache[("adi-record", False)].record)
    e2 = error_norm(s, *_small(H2), 1e-15)
    new_steps = len(s.cache[("adi-record", False)].record) - steps
    assert S.solves - solves == new_steps  # one solve per step the replay did not find
    ref = error_norm(fresh, *_small(H2), 1e-15)
    assert e2.error == pytest.approx(ref.error, rel=1e-12, abs=ref.resolution)
    assert e2.target_norm == pytest.approx(ref.target_norm, rel=1e-12)
    assert e1.error > e2.error


def test_complex_model_of_a_real_target():
    """A complex model against a real target: complex steps over both shifts of each pair, checked
    against the dense Gramian yardstick."""
    s = heat_2d(8)
    d = s.to_dense()
    H = balanced_truncation(d, 4)
    T = np.diag(np.exp(1j * np.arange(4.0)))  # a complex similarity: the same transfer function
    Ah, Bh, Ch, Dh = _small(H)
    Ti = np.linalg.inv(T)
    en = error_norm(s, Ti @ Ah @ T, Ti @ Bh, Ch @ T, Dh, 1e-15)
    ref = error_norm(heat_2d(8), Ah, Bh, Ch, Dh, 1e-15)
    assert en.error == pytest.approx(ref.error, rel=1e-9, abs=2 * ref.resolution)


def test_error_run_continues_the_gramian_iteration():
    """The controllability Gramian's ADI is the first part of the target's recorded run: measuring a
    model afterwards solves only for the steps beyond it, and gives what a fresh target gives."""
    from difflinalg.control.large import lr_gramian
    from difflinalg.control.large._solves import solver_of

    s, fresh = msd_descriptor(80), msd_descriptor(80)
    H = balanced_truncation(s.to_dense(), 6)
    lr_gramian(s, "c", 1e-15)
    run = s.cache[("adi-record", False)]
    gram_steps, S = len(run.record), solver_of(s)
    assert gram_steps == run.steps > 0
    solves = S.solves
    en = error_norm(s, *_small(H), 1e-15)
    # the record's new steps, and the rounding probe's twin (two solves per step)
    assert S.solves - solves == len(run.record) - gram_steps + 2 * run.probe_steps
    assert 0 < run.probe_steps <= len(run.record)
    ref = error_norm(fresh, *_small(H), 1e-15)
    assert en.error == pytest.approx(ref.error, rel=1e-12, abs=ref.resolution)


@pytest.mark.parametrize("eta", [1e-9, 1e-10])
def test_resolution_covers_a_target_run_with_solve_errors(eta):
    """Recorded solves with a forward error (``_injected``: the rounding of an ill-conditioned pencil,
    made large): the measured error of each model moves by less than the reported resolution, which
    the twin run's probe raises above the fixed floor; a clean run keeps that floor."""
    d = heat_2d(12).to_dense()
    for r in (4, 8, 12):
        H = balanced_truncation(d, r)
        ec = error_norm(heat_2d(12), *_small(H), 1e-15)
        ed = error_norm(injected_heat(12, eta), *_small(H), 1e-15)
        assert abs(ed.error - ec.error) <= ed.resolution, (r, ec, ed)
        # a clean run keeps the fixed floor (ROUND_EPS of the norms) plus a tail far below its error
        assert ec.resolution < 2 * ROUND_EPS * ec.target_norm + 1e-8 * ec.error < ed.resolution / 2


def _discrete_target(N: int = 150, seed: int = 3) -> SparseSystem:
    """A random sparse discrete-time descriptor target (spectral radius 1/1.3)."""
    rng = np.random.default_rng(seed)
    A = sps.random(N, N, density=0.05, random_state=seed)
    A = A / (1.3 * np.abs(np.linalg.eigvals(A.toarray())).max())
    E = sps.identity(N) + sps.diags(0.2 * rng.random(N))
    return SparseSystem(A.tocsc(), rng.standard_normal((N, 2)), rng.standard_normal((2, N)),
                        rng.standard_normal((2, 2)), E=E.tocsc(), time="discrete")


def _with_foreign_mode(H, pole: complex, weight: float) -> StateSpace:
    """``H`` plus one lightly damped real mode pair at ``pole`` (its conjugate too), of input and
    output weight ``weight``: poles that the target's shifts do not cover (another reductor's)."""
    A, B, C, D = _small(H)
    R = np.array([[pole.real, pole.imag], [-pole.imag, pole.real]])
    n = A.shape[0]
    A2 = np.block([[A, np.zeros((n, 2))], [np.zeros((2, n)), R]])
    B2 = np.vstack([B, weight * np.ones((2, B.shape[1]))])
    C2 = np.hstack([C, weight * np.ones((C.shape[0], 2))])
    return StateSpace(torch.tensor(A2), torch.tensor(B2), torch.tensor(C2), torch.tensor(D),
                      time="discrete" if H.discrete else "continuous")


@pytest.mark.parametrize("case", ["continuous", "discrete"])
def test_model_poles_outside_the_target_shifts(case):
    """A model with a mode far from the target's spectrum: the rest of its block's residual is a
    small Lyapunov equation, so the value matches the dense extended-precision yardstick and the
    resolution stays at the rounding level (a residual model would make it the model's share of the
    squares: here 1e-6 .. 1e-5 of the error)."""
    if case == "continuous":
        s, pole = convection_diffusion_2d(12), complex(-0.5, 400.0)
    else:
        s, pole = _discrete_target(), complex(0.2, 0.97)
    d = s.to_dense()
    H = _with_foreign_mode(balanced_truncation(d, 6), pole, 1e-4)
    # the dense Gramian of the error system: no cancellation at this error size (~1e-4)
    ref = float(h2_error(d, H, relative=True, method="gramian"))
    en = error_norm(s, *_small(H), 1e-15)
    assert en.resolution < 1e-6 * en.error
    assert en.reported / en.target_norm == pytest.approx(ref, rel=1e-8)
