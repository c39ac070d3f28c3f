"""The extended-precision yardstick: double-double arithmetic, refined modal data, H2 errors at
tiny relative errors (``_precise``, ``h2_error(..., precise=True)``)."""

import math
from fractions import Fraction

import mpmath
import numpy as np
import pytest
import torch

import difflinalg.control.analysis._precise as P
from difflinalg.control import StateSpace, h2_error, h2_norm

from _controlhelpers import random_system


def _exact(x) -> Fraction:
    return Fraction(float(x[0])) + Fraction(float(x[1]))


def _dd(rng, n):
    hi = rng.standard_normal(n) * 10.0 ** rng.integers(-8, 8, n)
    return hi, hi * 1e-17 * rng.standard_normal(n)


def test_double_double_arithmetic_is_exact_to_32_digits():
    rng = np.random.default_rng(0)
    x, y = _dd(rng, 200), _dd(rng, 200)
    for k in range(200):
        xk, yk = (x[0][k], x[1][k]), (y[0][k], y[1][k])
        X, Y = _exact(xk), _exact(yk)
        for op, ref in ((P.dd_add, X + Y), (P.dd_mul, X * Y), (P.dd_div, X / Y)):
            got = _exact(op(xk, yk))
            assert abs(got - ref) <= 1e-31 * abs(ref) + Fraction(1, 10 ** 300), (op.__name__, k)
    # a sum that cancels 20 digits: float64 keeps none of them, double-double all that remain
    a = np.array([1e20, 3.0, -1e20, 1e-5])
    parts = (a, np.zeros_like(a))
    assert _exact(P.dd_sum(parts)) == Fraction(3) + Fraction(1e-5)
    assert float(a.sum()) != 3.00001


def test_complex_double_double_reciprocal_and_product():
    rng = np.random.default_rng(1)
    z = rng.standard_normal(50) + 1j * rng.standard_normal(50)
    w = rng.standard_normal(50) + 1j * rng.standard_normal(50)
    mpmath.mp.dps = 40
    r = P.cdd_recip(P.cdd(z))
    m = P.cdd_mul(P.cdd(z), P.cdd(w))
    for k in range(50):
        ref_r = 1 / mpmath.mpc(z[k].real, z[k].imag)
        ref_m = mpmath.mpc(z[k].real, z[k].imag) * mpmath.mpc(w[k].real, w[k].imag)
        for got, ref in (((r[0][0][k], r[0][1][k]), ref_r.real), ((r[1][0][k], r[1][1][k]), ref_r.imag),
                         ((m[0][0][k], m[0][1][k]), ref_m.real), ((m[1][0][k], m[1][1][k]), ref_m.imag)):
            val = mpmath.mpf(float(got[0])) + mpmath.mpf(float(got[1]))
            assert abs(val - ref) <= 1e-30 * abs(ref_r if ref in (ref_r.real, ref_r.imag) else ref_m)


def test_refine_modal_reaches_extended_precision_eigenvalues():
    """A non-normal matrix with eigenvalues over four decades: LAPACK's are off by ~eps ||A||
    (relative 1e-13 for the smallest), the refined ones by ~eps_ld ||A|| (a 40-digit mpmath
    eigendecomposition as reference)."""
    rng = np.random.default_rng(2)
    n = 8
    lam0 = -np.logspace(-2, 2, n)
    V0 = np.eye(n) + 0.3 * rng.standard_normal((n, n))
    A = V0 @ np.diag(lam0) @ np.linalg.inv(V0)
    B, C = rng.standard_normal((n, 2)), rng.standard_normal((1, n))
    lam, V = np.linalg.eig(A)
    lr, Br, Cr = P.refine_modal(A, B, C, lam, V)
    mpmath.mp.dps = 40
    ev, ER = mpmath.eig(mpmath.matrix(A.tolist()))
    ref = sorted((ev[k] for k in range(n)), key=lambda z: float(mpmath.re(z)))
    order = np.argsort(lr.real.astype(float))
    lr, Br, Cr = lr[order], Br[order], Cr[:, order]
    nrm = float(np.linalg.norm(A, 2))
    err_ld = max(float(abs(mpmath.mpf(str(lr[k].real)) - ref[k])) for k in range(n)) / nrm
    err_d = max(float(abs(sorted(lam.real)[k] - ref[k])) for k in range(n)) / nrm
    assert err_ld <= 1e-18 and err_ld <= 1e-2 * err_d, (err_ld, err_d)
    # the residues c_k b_k^T agree with mpmath's (scale-free products)
    Vi = ER ** -1
    Bm, Cm = Vi * mpmath.matrix(B.tolist()), mpmath.matrix(C.tolist()) * ER
    idx = sorted(range(n), key=lambda k: float(mpmath.re(ev[k])))
    for j, k in enumerate(idx):
        for q in range(2):
            want = Cm[0, k] * Bm[k, q]
            got = mpmath.mpc(str(Cr[0, j].real), str(Cr[0, j].imag)) * mpmath.mpc(str(Br[j, q].real), str(Br[j, q].imag))
            assert abs(got - want) <= 1e-15 * abs(want)


def test_refine_modal_keeps_repeated_eigenvalues_finite():
    """A repeated eigenvalue (two identical modes): the vectors inside the cluster are left alone
    instead of divided by a zero gap."""
    A = np.diag([-1.0, -1.0, -3.0])
    B = np.array([[1.0], [2.0], [1.0]])
    C = np.array([[1.0, 1.0, 1.0]])
    lam, V = np.linalg.eig(A)
    lr, Br, Cr = P.refine_modal(A, B, C, lam, V)
    assert np.isfinite(lr).all() and np.isfinite(Br).all() and np.isfinite(Cr).all()
    assert np.allclose(np.sort(lr.real.astype(float)), [-3, -1, -1])


def _with_tiny_mode(H: StateSpace, g: float, a: float) -> StateSpace:
    """``F = H + g^2 / (s + a)`` (or ``g^2 / (z - a)``) as a block-diagonal realization: ``F - H`` is
    exactly the added mode, whatever the rounding of ``H``'s own digits."""
    n, m, p = H.order, H.n_inputs, H.n_outputs
    A = torch.zeros(n + 1, n + 1, dtype=H.dtype)
    A[:n, :n], A[n, n] = H.A, -a if not H.discrete else a
    B = torch.cat([H.B, torch.zeros(1, m, dtype=H.dtype)])
    C = torch.cat([H.C, torch.zeros(p, 1, dtype=H.dtype)], 1)
    B[n, 0], C[0, n] = g, g
    return StateSpace(A, B, C, H.D, time=H.time)


@pytest.mark.parametrize("discrete", [False, True])
def test_h2_error_precise_reads_tiny_errors(discrete):
    """``F = H + (tiny mode)`` with ``||F - H|| = 1e-9 ||F||`` known in closed form: the precise
    yardstick gives it to 1e-8 relative; in double precision the value is lost (rounding of
    ``eps ||F||^2`` against ``1e-18 ||F||^2``)."""
    H = random_system(20, 2, 2, discrete=discrete, seed=31)
    a = 0.5
    exact2_unit = 1 / (2 * a) if not discrete else 1 / (1 - a * a)  # ||1 / (s + a)||^2, ||1 / (z - a)||^2
    g = math.sqrt(1e-9 * float(h2_norm(H)) / math.sqrt(exact2_unit))
    F = _with_tiny_mode(H, g, a)
    exact = g * g * math.sqrt(exact2_unit)
    got = float(h2_error(F, H, precise=True))
    assert got == pytest.approx(exact, rel=1e-8)
    assert float(h2_error(F, H, method="gramian")) != pytest.approx(exact, rel=1e-2)


def test_squared_error_long_double_and_double_double_paths_agree(monkeypatch):
    """At a moderate error the target's norm is taken in long double; forcing double-double
    changes the result by rounding only."""
    F = random_system(30, 2, 1, seed=32)
    H = random_system(4, 2, 1, seed=33)
    RF, RH = P.Residues(*_modal(F), False), P.Residues(*_modal(H), False)
    v_ld = P.squared_error(RF, RH)
    monkeypatch.setattr(P, "SUM_RTOL", 0.0)
    v_dd = P.squared_error(P.Residues(*_modal(F), False), P.Residues(*_modal(H), False))
    assert v_ld == pytest.approx(v_dd, rel=1e-14)
    assert v_ld == pytest.approx(float(h2_error(F, H, method="gramian")) ** 2, rel=1e-9)


def _modal(S: StateSpace):
    A, B, C = (x.numpy() for x in (S.A, S.B, S.C))
    lam, V = np.linalg.eig(A)
    return P.refine_modal(A, B, C, lam, V)


@pytest.mark.parametrize("kind, n, r", [("heat", 16, 16), ("convdiff", 16, 14)])
def test_resolution_covers_an_independent_yardstick(kind, n, r):
    """Unrefined target data (as above REFINE_MAX_ORDER): the precise value of a tiny error is off
    (non-normal upwind convection-diffusion, eigenvector condition 3e6: 3.98e-11 against 5.41e-12 by
    the sparse error system's Gramian, a sum of positive terms, resolution ~1.6e-13 relative), and
    the reported resolution covers the difference."""
    import warnings

    from difflinalg import PrecisionWarning
    from difflinalg.control import h2_norm
    from difflinalg.control.analysis._modal import squared_h2_error_residues
    from difflinalg.control.large import (convection_diffusion_2d, h2_error_sparse, heat_2d,
                                          lr_balanced_truncation)

    s = heat_2d(n) if kind == "heat" else convection_diffusion_2d(n, velocity=(30.0, 15.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrecisionWarning)
        H = lr_balanced_truncation(s, r)
    F = s.to_dense()
    ref = h2_error_sparse(s, H, relative=True)
    val, res = squared_h2_error_residues(F, H, precise=True, refine=False, resolution=True)
    nF = float(h2_norm(F))
    err = math.sqrt(max(val, 0.0)) / nF
    assert ref < 1e-10
    assert abs(err - ref) <= res / nF + 2e-13  # + the sparse yardstick's own resolution
    assert res / nF < 1e-6  # and still a bound that says something


def test_precise_warns_where_unresolved():
    """Upwind convection-diffusion at N = 196 (eigenvector condition ~1e6), BT order 14: the precise
    value (5.19e-12 relative) is 14% above the error system's Gramian (4.53e-12), its residue sums
    rounding at ~1e11 ||F||^2 of cancelling terms: a PrecisionWarning says so and names the
    resolution, which covers the difference."""
    import warnings

    from difflinalg import PrecisionWarning
    from difflinalg.control.analysis._modal import squared_h2_error_residues
    from difflinalg.control.large import convection_diffusion_2d, h2_error_sparse, lr_balanced_truncation

    s = convection_diffusion_2d(14, velocity=(30.0, 15.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrecisionWarning)
        H = lr_balanced_truncation(s, 14)
    F = s.to_dense()
    with pytest.warns(PrecisionWarning, match="resolved only to"):
        err = float(h2_error(F, H, precise=True))
    res = squared_h2_error_residues(F, H, precise=True, resolution=True)[1]
    assert abs(err - h2_error_sparse(s, H)) <= res + 2e-13 * float(h2_norm(F))


def test_precise_resolved_error_does_not_warn():
    """A stiff but normal target at an ordinary small error: resolved, no warning."""
    import warnings

    from difflinalg import PrecisionWarning
    from difflinalg.control import balanced_truncation
    from difflinalg.control.large import heat_2d

    F = heat_2d(10).to_dense()
    H = balanced_truncation(F, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PrecisionWarning)
        err = float(h2_error(F, H, relative=True, precise=True))
    assert 0 < err < 1e-4


def test_rayleigh_quotients_above_the_refinement_order(monkeypatch):
    """A Hermitian target above REFINE_MAX_ORDER gets Rayleigh quotients in long double (the N = 1024
    heat model's order-18 error read 7.6e-13 with eigh's eigenvalues, 6.70e-13 with them, true 6.486e-13):
    here the order limit is lowered below a heat model's N = 144: the result agrees with the
    Newton-refined one within the resolution, and the eigenvalues to long double's roundoff."""
    import difflinalg.control.analysis._modal as M
    from difflinalg.control.large import heat_2d, lr_balanced_truncation

    s = heat_2d(12)
    H = lr_balanced_truncation(s, 10)
    ref = M.squared_h2_error_residues(s.to_dense(), H, precise=True)
    monkeypatch.setattr(M, "REFINE_MAX_ORDER", 100)
    F = s.to_dense()
    val, res = M.squared_h2_error_residues(F, H, precise=True, resolution=True)
    err, e_ref = (math.sqrt(max(v, 0.0)) for v in (val, ref))
    assert abs(err - e_ref) <= res
    # the eigenvalues themselves: to long double's roundoff times ||A|| (eigh's: double's)
    A = F.A.numpy()
    lam = np.sort(P.rayleigh_hermitian(A, F.B.numpy(), F.C.numpy())[0].real)
    lr = np.sort(P.refine_modal(A, F.B.numpy(), F.C.numpy(), *np.linalg.eig(A))[0].real)
    dev = float(np.abs(lam - lr).max())
    assert dev <= 1e3 * float(np.finfo(np.longdouble).eps) * np.abs(A).sum(1).max()
    assert float(np.abs(np.linalg.eigvalsh(A) - lr).max()) > 10 * dev


def test_ext_matmul_sparse_path_matches_the_long_double_product():
    """``ext_matmul`` from the non-zeros of a sparse-patterned ``A`` (5 per row) equals the plain long
    double product to long double's roundoff, real and complex ``V``; a dense ``A`` takes the product."""
    rng = np.random.default_rng(0)
    N = 60
    A = np.zeros((N, N))
    for k, off in enumerate((0, 1, -1, 7, -7)):
        A += np.diag(rng.standard_normal(N - abs(off)), off)
    assert P.ext_work(A) == np.count_nonzero(A) * N
    for V in (rng.standard_normal((N, 9)).astype(np.longdouble),
              (rng.standard_normal((N, 9)) + 1j * rng.standard_normal((N, 9))).astype(np.clongdouble)):
        got = P.ext_matmul(A, V, max_elements=500)  # several column chunks
        want = A.astype(np.longdouble) @ V
        bound = 8 * N * float(np.finfo(np.longdouble).eps) * (np.abs(A) @ np.abs(V)).astype(float)
        assert got.dtype == want.dtype and (np.abs(got - want).astype(float) <= bound).all()
    D = rng.standard_normal((N, N))
    assert P.ext_work(D) == N ** 3


def test_non_hermitian_target_above_the_order_limit_is_refined():
    """Upwind convection-diffusion (non-normal, N = 441 > REFINE_MAX_ORDER), BT order 12: its modal
    data get Newton steps with extended-precision residuals (BLAS for the rest), so the precise error
    is resolved to ~5e-14 relative instead of 8.6e-9 (LAPACK's data, coarser than the 8.1e-9 error
    itself), agrees with the sparse error system's Gramian within that, and does not warn."""
    import warnings

    from difflinalg import PrecisionWarning
    from difflinalg.control import h2_norm
    from difflinalg.control.analysis._modal import REFINE_MAX_ORDER, squared_h2_error_residues
    from difflinalg.control.large import convection_diffusion_2d, h2_error_sparse, lr_balanced_truncation

    s = convection_diffusion_2d(21, velocity=(20.0, 10.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrecisionWarning)
        H = lr_balanced_truncation(s, 12)
    F = s.to_dense()
    assert F.order > REFINE_MAX_ORDER
    ref = h2_error_sparse(s, H, relative=True)
    nF = float(h2_norm(F))
    with warnings.catch_warnings():
        warnings.simplefilter("error", PrecisionWarning)
        err = float(h2_error(F, H, relative=True, precise=True))
    val, res = squared_h2_error_residues(F, H, precise=True, resolution=True)
    coarse = squared_h2_error_residues(F, H, precise=True, refine=False, resolution=True)[1]
    assert abs(math.sqrt(val) / nF - err) <= 1e-15 * err
    assert abs(err - ref) <= res / nF + 2e-13  # + the sparse yardstick's own resolution
    assert res < 1e-3 * err * nF and res < 1e-3 * coarse
