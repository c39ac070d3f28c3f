"""SparseSystem validation, to_dense, generated models."""

import numpy as np
import pytest
import scipy.sparse as sps
import torch

from difflinalg import InputError
from difflinalg.control import h2_norm
from difflinalg.control.large import SparseSystem, convection_diffusion_2d, heat_2d, msd_descriptor


def _small(N=5):
    A = sps.diags([np.ones(N - 1), -3 * np.ones(N), np.ones(N - 1)], [-1, 0, 1], format="csr")
    return A, np.ones((N, 1)), np.ones((1, N))


def test_valid_and_dense():
    A, B, C = _small()
    E = sps.diags(np.arange(1.0, 6.0), format="csc")
    s = SparseSystem(A, B, C, E=E)
    d = s.to_dense()
    assert isinstance(s.A, sps.csc_matrix) and s.order == 5 and d.order == 5
    torch.testing.assert_close(d.A, torch.tensor(np.linalg.solve(E.toarray(), A.toarray())))
    torch.testing.assert_close(d.B, torch.tensor(np.linalg.solve(E.toarray(), B)))


@pytest.mark.parametrize("case, match", [
    ("nonsquare A", "A: expected a square"),
    ("nan A", "A: contains 1 non-finite"),
    ("nan E", "E: contains 1 non-finite"),
    ("singular E", "E: the mass matrix is singular"),
    ("near-singular E", "E: the mass matrix is numerically singular"),
    ("E shape", r"E: expected shape \(5, 5\)"),
    ("B rows", "B: expected 5 rows"),
    ("C cols", "C: expected 5 columns"),
    ("D shape", r"D: expected shape \(1, 1\)"),
    ("float32", "A: dtype float32 is not supported"),
    ("int", "B: dtype int64 is not supported"),
    ("1-D B", "B: expected a 2-D array"),
    ("nan B", "B: contains non-finite"),
])
def test_bad_input(case, match):
    A, B, C = _small()
    kw = {}
    if case == "nonsquare A":
        A = sps.csr_matrix(np.ones((5, 4)))
    elif case == "nan A":
        A = A.tocsc(copy=True)
        A.data[2] = np.nan
    elif case == "nan E":
        E = sps.identity(5, format="csc")
        E.data[1] = np.nan
        kw["E"] = E
    elif case == "singular E":
        kw["E"] = sps.diags([1.0, 1.0, 0.0, 1.0, 1.0], format="csc")
    elif case == "near-singular E":
        kw["E"] = sps.diags([1.0, 1.0, 1e-300, 1.0, 1.0], format="csc")
    elif case == "E shape":
        kw["E"] = sps.identity(4, format="csc")
    elif case == "B rows":
        B = np.ones((4, 1))
    elif case == "C cols":
        C = np.ones((1, 4))
    elif case == "D shape":
        kw["D"] = np.ones((2, 1))
    elif case == "float32":
        A = A.astype(np.float32)
    elif case == "int":
        B = np.ones((5, 1), dtype=np.int64)
    elif case == "1-D B":
        B = np.ones(5)
    elif case == "nan B":
        B = B.copy()
        B[0, 0] = np.nan
    with pytest.raises(InputError, match=match):
        SparseSystem(A, B, C, **kw)


def test_to_dense_refuses_large():
    with pytest.raises(InputError, match="max_order=10"):
        heat_2d(4).to_dense(max_order=10)


@pytest.mark.parametrize("make", [lambda: heat_2d(6), lambda: convection_diffusion_2d(6, (30.0, -10.0)),
                                  lambda: msd_descriptor(20)], ids=["heat", "convdiff", "msd"])
def test_models_stable_and_finite(make):
    s = make()
    d = s.to_dense()
    ev = torch.linalg.eigvals(d.A)
    assert float(ev.real.max()) < 0
    assert 0 < float(h2_norm(d)) < np.inf


def test_models_structure():
    cd = convection_diffusion_2d(5)
    assert abs(cd.A - cd.A.T).max() > 0  # non-symmetric
    sym = (cd.A + cd.A.T).toarray()
    assert np.linalg.eigvalsh(sym).max() < 0  # upwind: dissipative
    m = msd_descriptor(7)
    assert m.E is not None and m.order == 14 and abs(m.E - m.E.T).max() == 0
    assert np.linalg.eigvalsh(m.E.toarray()).min() > 0  # mass matrix SPD, not diagonal
    assert m.E[8, 7] != 0
    with pytest.raises(InputError, match="velocity"):
        convection_diffusion_2d(5, velocity=(1.0,))
    with pytest.raises(InputError, match="n: expected an integer >= 2"):
        heat_2d(1)
