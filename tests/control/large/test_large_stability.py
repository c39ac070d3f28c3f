"""Unstable sparse targets are named by the sparse eigensolver."""

import re

import numpy as np
import pytest
import scipy.sparse as sps

from difflinalg import UnstableSystemError
from difflinalg.control.large import SparseSystem, check_stable_sparse, heat_2d, leading_poles, msd_descriptor, rarl2_large


def test_stable_models_pass_and_leading_pole():
    s = heat_2d(15)
    check_stable_sparse(s)
    # the slowest heat mode: -2 (n+1)^2 (2 - 2 cos(pi / (n+1))) = -19.67...
    h = 1 / 16
    slow = -2 * (2 - 2 * np.cos(np.pi * h)) / h**2
    assert np.max(leading_poles(s).real) == pytest.approx(slow, rel=1e-6)
    check_stable_sparse(msd_descriptor(50))


@pytest.mark.parametrize("shift", [0.7, 500.0])
def test_unstable_pole_named(shift):
    s = heat_2d(15)
    slow = float(np.max(leading_poles(s).real))
    A = (s.A + (shift - slow) * sps.identity(s.order)).tocsc()  # slowest mode moved to +shift
    bad = SparseSystem(A, s.B, s.C)
    with pytest.raises(UnstableSystemError, match=r"pole .* sparse eigensolver") as exc:
        check_stable_sparse(bad)
    # the named pole is a true unstable eigenvalue (with several, the one nearest the Cayley shift)
    named = float(re.search(r"pole ([-0-9.e+]+)", str(exc.value)).group(1))
    ev = np.linalg.eigvals(A.toarray())
    assert named >= 0 and np.min(np.abs(ev - named)) <= 1e-5 * abs(named)
    with pytest.raises(UnstableSystemError, match="sys: the sparse continuous-time system is unstable"):
        rarl2_large(bad, 3)


def test_unstable_discrete_descriptor():
    N = 60
    A = sps.diags(np.r_[np.linspace(-0.5, 0.5, N - 1), 1.2], format="csc")
    E = sps.diags(np.full(N, 1.1), format="csc")
    s = SparseSystem(A, np.ones((N, 1)), np.ones((1, N)), E=E, time="discrete")
    with pytest.raises(UnstableSystemError, match=r"pole 1.09091.*\|z\| = 1.09091 >= 1"):
        check_stable_sparse(s)


def test_unverified_stability_warns_and_says_why():
    """A lightly damped chain (N = 10^4): its poles crowd at |c| ~ 1, ARPACK converges none within the
    restart limit; the warning says so, and what to do, instead of claiming stability."""
    import warnings

    from difflinalg.control.large import check_stable_sparse, msd_descriptor

    F = msd_descriptor(5000)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        check_stable_sparse(F)
    msg = " ".join(str(x.message) for x in w if issubclass(x.category, UserWarning))
    assert "not verified" in msg and "lightly damped" in msg and "leading_poles" in msg
