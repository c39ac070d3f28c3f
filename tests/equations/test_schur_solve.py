"""The reduced (Schur-space) solvers: LAPACK and torch recurrences, every op combination."""

import itertools

import numpy as np
import pytest
import scipy.linalg as sl
import torch
from _eqhelpers import real_with_complex_pairs

from difflinalg.equations._schur_solve import lapack_solve, torch_solve


def dense(kind, S, T, F, hs, ht):
    So = S.conj().T if hs else S
    To = T.conj().T if ht else T
    m, n = F.shape
    if kind == "sylvester":
        M = np.kron(So, np.eye(n)) + np.kron(np.eye(m), To.T)
    else:
        M = np.eye(m * n) - np.kron(So, To.T)
    return np.linalg.solve(M, F.reshape(-1)).reshape(m, n)


@pytest.mark.parametrize("kind", ["sylvester", "stein"])
@pytest.mark.parametrize("hs,ht", list(itertools.product([False, True], repeat=2)))
@pytest.mark.parametrize("m,n", [(6, 4), (3, 7), (5, 5)])
@pytest.mark.parametrize("form", ["real", "complex"])
def test_reduced_solvers(kind, hs, ht, m, n, form):
    g = torch.Generator().manual_seed(m * 10 + n)
    scale = 0.5 if kind == "stein" else 1.0
    A = real_with_complex_pairs(m, g, scale)
    B = real_with_complex_pairs(n, g, scale) + (2.5 * torch.eye(n, dtype=torch.float64) if kind == "sylvester" else 0)
    S = sl.schur(A.numpy(), output=form)[0]
    T = sl.schur(B.numpy(), output=form)[0]
    if form == "real":
        assert np.any(np.diagonal(S, -1) != 0)  # really has 2 x 2 blocks
    F = np.random.default_rng(m + n).standard_normal((m, n)).astype(S.dtype)
    ref = dense(kind, S, T, F, hs, ht)
    St, Tt, Ft = map(torch.from_numpy, (S, T, F))
    Y = lapack_solve(kind, St, Tt, Ft, hs, ht).numpy()
    assert np.abs(Y - ref).max() < 1e-12 * np.abs(ref).max()
    if form == "complex":
        Yt = torch_solve(kind, St, Tt, Ft, hs, ht).numpy()
        assert np.abs(Yt - ref).max() < 1e-12 * np.abs(ref).max()


def test_batched_broadcast_reduced():
    g = torch.Generator().manual_seed(0)
    S = torch.stack([torch.from_numpy(sl.schur(real_with_complex_pairs(4, g).numpy(), output="complex")[0])
                     for _ in range(2)])
    T = torch.from_numpy(sl.schur(real_with_complex_pairs(3, g).numpy() + 3 * np.eye(3), output="complex")[0])
    F = torch.randn(5, 1, 4, 3, dtype=torch.complex128, generator=g)
    for fn in (lapack_solve, torch_solve):
        Y = fn("sylvester", S, T, F, False, True)
        assert Y.shape == (5, 2, 4, 3)
        for i, j in itertools.product(range(5), range(2)):
            ref = dense("sylvester", S[j].numpy(), T.numpy(), F[i, 0].numpy(), False, True)
            assert np.abs(Y[i, j].numpy() - ref).max() < 1e-12 * np.abs(ref).max()
