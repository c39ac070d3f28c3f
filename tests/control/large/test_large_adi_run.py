"""The resumable ADI iteration (_adi_run): stopping and going on is the same iteration."""

import numpy as np
import pytest
import scipy.sparse as sps

from difflinalg.control.large import convection_diffusion_2d, heat_2d, msd_descriptor
from difflinalg.control.large import _adi_run
from difflinalg.control.large._adi_run import EXTENDED, AdiRun, DoubleDoubleCSR, ExtendedCSR, adi_run, recorded_run
from _injected import injected_heat  # noqa: E402  (tests/control/large on the path, as _blackbox)


@pytest.mark.parametrize("make", [lambda: msd_descriptor(60), lambda: convection_diffusion_2d(9)], ids=["msd", "convdiff"])
def test_resumed_run_equals_one_run(make):
    s = make()
    whole, parts = [], []
    adi_run(s, False, 1e-15, 600, whole.append)
    run = AdiRun(s)
    adi_run(s, False, 1e-6, 600, parts.append, run=run)
    first = len(parts)
    adi_run(s, False, 1e-15, 600, parts.append, run=run)
    assert 0 < first < len(parts) == len(whole)
    for a, b in zip(whole, parts):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13 * np.abs(a).max())


def test_record_holds_outputs_and_residuals():
    """Each recorded step: C times its blocks and W^H W after it (the residual the error system needs)."""
    s = msd_descriptor(40)
    blocks = []
    run = recorded_run(s, False)
    adi_run(s, False, 1e-12, 600, blocks.append, run=run)
    assert recorded_run(s, False) is run and recorded_run(s, True) is not run
    outs = [o for st in run.record for o in st.outputs]
    assert len(outs) == len(blocks)
    for o, b in zip(outs, blocks):
        np.testing.assert_allclose(o, s.C @ b, rtol=1e-14, atol=0)
    res = np.linalg.norm(run.record[-1].gram, 2) / run.res0
    assert res == pytest.approx(run.res, rel=1e-12) and res <= 1e-12
    assert run.record[0].cycle_start and sum(st.cycle_start for st in run.record) >= 1


def _dd_product(M, X):
    """``DoubleDoubleCSR(M)`` applied to the columns of ``X``, rounded to complex double."""
    D = DoubleDoubleCSR(M)
    cols = []
    for k in range(X.shape[1]):
        re, im = D.matvec(X[:, k])
        cols.append((re[0] + re[1]) + 1j * (im[0] + im[1]))
    return np.stack(cols, axis=1)


@pytest.mark.skipif(not EXTENDED, reason="np.longdouble is double on this platform")
def test_extended_matvec_keeps_what_double_cancels():
    """1e16 + 1 - 1e16: double sums to 0, the extended sum to 1 (real and complex vectors)."""
    M = sps.csr_matrix(np.array([[1e16, 1.0, -1e16]]))
    x = np.ones(3)
    assert (M @ x)[0] == 0.0
    assert float((ExtendedCSR(M) @ x)[0]) == 1.0
    z = ExtendedCSR(M) @ ((1 + 2j) * x[:, None])
    assert complex(z[0, 0]) == 1 + 2j


def test_double_double_matvec_keeps_what_double_cancels():
    """The same for the double-double products (any platform), with a complex matrix too:
    (1e16 + 1e16 i) + (1 - 2i) - (1e16 + 1e16 i) = 1 - 2i."""
    M = sps.csr_matrix(np.array([[1e16, 1.0, -1e16]]))
    x = np.ones(3)
    assert _dd_product(M, x[:, None])[0, 0] == 1.0
    assert _dd_product(M, (1 + 2j) * x[:, None])[0, 0] == 1 + 2j
    Mc = sps.csr_matrix(np.array([[1e16 + 1e16j, 1 - 2j, -1e16 - 1e16j]]))
    assert _dd_product(Mc, x[:, None])[0, 0] == 1 - 2j


@pytest.mark.parametrize("double_double", [False, True], ids=["longdouble", "double-double"])
def test_noise_measures_an_injected_solve_error(double_double, monkeypatch):
    """The twin's measure of the recorded outputs' rounding equals their actual deviation from a
    clean run's (the injected error and its propagation through the residual), within 2x; a clean
    run's measure is at the rounding level. Residuals in long double (where it is wider than
    double) or in double-double (the other platforms' path, forced here)."""
    if not double_double and not EXTENDED:
        pytest.skip("np.longdouble is double on this platform")
    monkeypatch.setattr(_adi_run._Refined.__init__, "__defaults__", (double_double,))
    clean, dirty = heat_2d(12), injected_heat(12, 1e-9)
    runs = [recorded_run(s, False) for s in (clean, dirty)]
    for s, run in zip((clean, dirty), runs):
        adi_run(s, False, 1e-20, 600, lambda blk: None, run=run)
        assert run.probes
    steps = min(len(r.record) for r in runs)
    pairs = zip(runs[0].record[:steps], runs[1].record[:steps])
    dev = np.sqrt(sum(float(np.linalg.norm(a - b) ** 2) for sc, sd in pairs for a, b in zip(sc.outputs, sd.outputs)))
    size = np.sqrt(sum(float(np.linalg.norm(y) ** 2) for st in runs[0].record for y in st.outputs))
    n_clean, n_dirty = (np.sqrt(r.noise(steps)) for r in runs)
    assert n_clean < 1e-13 * size < 1e-2 * dev
    assert 0.5 * dev < n_dirty < 2 * dev


@pytest.mark.skipif(not EXTENDED, reason="np.longdouble is double on this platform")
def test_extended_matvec_equals_the_product_with_empty_rows():
    """Rows without entries (first, inner, last) give 0; a random matrix the plain product."""
    rng = np.random.default_rng(0)
    M = sps.random(40, 30, density=0.05, random_state=1, format="lil")
    M[0, :], M[17, :], M[39, :] = 0, 0, 0
    M = sps.csr_matrix(M)
    X = rng.standard_normal((30, 3)) + 1j * rng.standard_normal((30, 3))
    got = (ExtendedCSR(M) @ X).astype(complex)
    np.testing.assert_allclose(got, M @ X, rtol=1e-14, atol=1e-14)
    assert not got[[0, 17, 39]].any()


def test_double_double_matvec_equals_the_product_with_empty_rows():
    """As above for ``DoubleDoubleCSR`` (rows of different lengths padded), real and complex
    matrices."""
    rng = np.random.default_rng(0)
    M = sps.random(40, 30, density=0.05, random_state=1, format="lil")
    M[0, :], M[17, :], M[39, :] = 0, 0, 0
    M = sps.csr_matrix(M)
    X = rng.standard_normal((30, 3)) + 1j * rng.standard_normal((30, 3))
    for A in (M, M + 1j * sps.csr_matrix(M.multiply(rng.standard_normal(M.shape)))):
        got = _dd_product(A, X)
        np.testing.assert_allclose(got, A @ X, rtol=1e-14, atol=1e-14)
        assert not got[[0, 17, 39]].any()
    assert not _dd_product(sps.csr_matrix((3, 4)), X[:4]).any()  # no entries at all
