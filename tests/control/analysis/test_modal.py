"""Modal form (blocks, eigh for Hermitian blocks) and the Gramian-free setup of the RARL2 target:
the H2 norm from the mirror-image sums, low-rank Gramian factors by pivoted Cholesky with columns
generated from the Cauchy structure (compared with the dense Gramians), balanced-truncation start."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import connected_components

from difflinalg.control import StateSpace, balanced_truncation, h2_error, h2_norm
from difflinalg.control.system._models import builtin_model, heat1d
from difflinalg.control.analysis._cauchy import cauchy_pivoted_cholesky
from difflinalg.control.analysis._modal import mirror_sums, modal_h2_norm2, transfer_at
from difflinalg.control.analysis._modal_form import _block_groups, modal_form
from difflinalg.control.reduction._rarl2._starts import LOWRANK_EXTRA, LOWRANK_FACTOR, balanced_start
from difflinalg.control.reduction._rarl2._target import Target

from _controlhelpers import KINDS, kind_id, random_system

def _transfer_dense(F: StateSpace, s: torch.Tensor) -> torch.Tensor:
    cdt = torch.complex128
    I = torch.eye(F.order, dtype=cdt)
    A, B, C = (x.to(cdt) for x in (F.A, F.B, F.C))
    return torch.stack([C @ torch.linalg.solve(z * I - A, B) for z in s])


def _pivoted_cholesky_dense(P: torch.Tensor, tol: float, max_rank=None) -> torch.Tensor:
    """The dense greedy pivoted Cholesky (reference)."""
    N = P.shape[-1]
    k_max = N if max_rank is None else min(N, max_rank)
    d = P.diagonal().real.clone()
    dmax = float(d.max())
    L = torch.zeros(N, k_max, dtype=P.dtype)
    k = 0
    while k < k_max:
        j = int(d.argmax())
        dj = float(d[j])
        if not dj > tol * dmax:
            break
        col = (P[:, j] - L[:, :k] @ L[j, :k].conj()) / math.sqrt(dj)
        L[:, k] = col
        d = d - col.abs() ** 2
        d[j] = 0.0
        k += 1
    return L[:, :k]


def _work_gramians_dense(T: Target):
    """The Gramians of the normalized target in its working coordinates, formed densely."""
    lam, Bt, Ct = T.lam, T.Bt, T.Ct
    if T.discrete:
        P = (Bt @ Bt.mH) / (1 - lam[:, None] * lam.conj()[None, :])
        Q = (Ct.mH @ Ct) / (1 - lam.conj()[:, None] * lam[None, :])
    else:
        P = -(Bt @ Bt.mH) / (lam[:, None] + lam.conj()[None, :])
        Q = -(Ct.mH @ Ct) / (lam.conj()[:, None] + lam[None, :])
    if T.real:
        P = T._Jinv(T._Jinv(P).mH).real
        Q = T._JH(T._JH(Q).mH).real
    return 0.5 * (P + P.mH), 0.5 * (Q + Q.mH)


def test_block_groups_of_a_permuted_pattern():
    """Blocks of sizes 1, 2, 3, 5 and 70 (the last two searched by closure and by scipy) under a
    random permutation, and contiguous blocks: the same index sets as the connected components."""
    g = torch.Generator().manual_seed(0)
    sizes = [1, 2, 2, 3, 5, 1, 70, 2, 3]
    N = sum(sizes)
    A = torch.zeros(N, N, dtype=torch.float64)
    i = 0
    for s in sizes:
        A[i:i + s, i:i + s] = torch.randn(s, s, generator=g, dtype=torch.float64)
        i += s
    for perm in (torch.arange(N), torch.randperm(N, generator=g)):
        a = A[perm][:, perm].numpy()
        groups = _block_groups(a)
        n_comp, labels = connected_components(sp.csr_matrix(a != 0), directed=False)
        ref = sorted(tuple(np.flatnonzero(labels == c)) for c in range(n_comp))
        got = sorted(tuple(row) for ix in groups.values() for row in ix.tolist())
        assert got == ref
        for s, ix in groups.items():
            assert ix.shape[1] == s and bool((np.diff(ix[:, 0]) > 0).all())


def test_modal_form_hermitian_blocks_by_eigh():
    """A symmetric (or complex Hermitian) A is diagonalized by eigh: exactly real eigenvalues,
    condition number 1, and the same transfer function as a dense solve."""
    g = torch.Generator().manual_seed(1)
    F1 = heat1d(60)
    H = torch.randn(12, 12, generator=g, dtype=torch.complex128)
    F2 = StateSpace(H + H.mH - 30 * torch.eye(12, dtype=torch.complex128),
                    torch.randn(12, 2, generator=g, dtype=torch.complex128),
                    torch.randn(3, 12, generator=g, dtype=torch.complex128))
    s = 1j * torch.logspace(-1, 3, 9, dtype=torch.float64)
    for F in (F1, F2):
        lam, Bt, Ct, cond, perm = modal_form(F.A, F.B, F.C)
        assert cond == 1.0 and bool((lam.imag == 0).all())
        Hm = transfer_at(lam, Bt, Ct, s.to(lam.dtype))
        Hd = _transfer_dense(F, s)
        assert torch.allclose(Hm, Hd, rtol=1e-10, atol=1e-12 * float(Hd.abs().max()))
        assert sorted(perm.tolist()) == list(range(F.order))


def test_modal_form_mixed_blocks():
    """Blocks of one size, one symmetric and one not (eigh and eig paths in one group)."""
    g = torch.Generator().manual_seed(2)
    A = torch.zeros(8, 8, dtype=torch.float64)
    S = torch.randn(4, 4, generator=g, dtype=torch.float64)
    A[:4, :4] = S + S.T - 10 * torch.eye(4, dtype=torch.float64)
    A[4:, 4:] = torch.randn(4, 4, generator=g, dtype=torch.float64) - 4 * torch.eye(4, dtype=torch.float64)
    B = torch.randn(8, 2, generator=g, dtype=torch.float64)
    F = StateSpace(A, B, torch.randn(1, 8, generator=g, dtype=torch.float64))
    lam, Bt, Ct, cond, perm = modal_form(F.A, F.B, F.C)
    s = 1j * torch.logspace(-1, 2, 7, dtype=torch.float64)
    Hd = _transfer_dense(F, s)
    assert torch.allclose(transfer_at(lam, Bt, Ct, s.to(lam.dtype)), Hd, rtol=1e-11, atol=1e-13)
    assert sorted(perm.tolist()) == list(range(8)) and cond > 1.0


@pytest.mark.parametrize("kind", KINDS, ids=kind_id)
def test_h2_norm_from_mirror_sums(kind):
    """||F||^2 = ||D||^2 + sum_i c_i^H M_i conj(b_i) (the target's norm) equals the Gramian norm,
    also with the pair-halved sums of a real target; the sums, rescaled, are F at the mirror images."""
    discrete, dtype = kind
    F = random_system(9, 2, 3, discrete=discrete, dtype=dtype, seed=5)
    T = Target(F, "modal")
    assert T.norm == pytest.approx(float(h2_norm(F)), rel=1e-12)
    lam, Bt, Ct, _, _ = modal_form(F.A, F.B, F.C)
    nrm2 = modal_h2_norm2(Bt, Ct, mirror_sums(lam, Bt, Ct, discrete))
    if discrete:
        nrm2 += float((F.D.abs() ** 2).sum())
    assert math.sqrt(nrm2) == pytest.approx(float(h2_norm(F)), rel=1e-12)
    for omega in (1.0, 3.7):
        T.rescale(omega)
        ref = transfer_at(T.lam, T.Bt, T.Ct, T._mirror(T.lam))
        assert torch.allclose(T._mirror_values(), ref, rtol=1e-11, atol=1e-13 * float(ref.abs().max()))


@pytest.mark.parametrize("kind", KINDS, ids=kind_id)
def test_gramian_factors_match_the_dense_gramians(kind):
    """Full rank: ``L L^H`` equals the working-coordinate Gramian to rounding. Truncated
    (``max_rank``): the same factor as the dense pivoted Cholesky (same pivots)."""
    discrete, dtype = kind
    F = random_system(14, 2, 3, discrete=discrete, dtype=dtype, seed=8)
    T = Target(F, "modal")
    P, Q = _work_gramians_dense(T)
    Lp, Lq = T.work_gramian_factors()
    assert Lp.dtype == Lq.dtype == dtype
    for G, L in ((P, Lp), (Q, Lq)):
        assert float((L @ L.mH - G).abs().max()) <= 1e-13 * float(G.abs().max())
    Lp, Lq = T.work_gramian_factors(max_rank=5)
    for G, L in ((P, Lp), (Q, Lq)):
        R = _pivoted_cholesky_dense(G, 1e-15, 5)
        assert L.shape == R.shape == (14, 5)
        assert torch.allclose(L, R, rtol=1e-9, atol=1e-12 * float(R.abs().max()))


@pytest.mark.parametrize("name", ["heat1d:40", "msd:20", "msd2:20", "random"])
def test_balanced_start_is_balanced_truncation(name):
    """The start's Hankel singular values are those of ``F`` over ``||F||``, and its model has the
    transfer function of balanced truncation (normalized)."""
    F = builtin_model(name)
    T = Target(F)
    r = 4
    Ar, Br, Cr, hsv = balanced_start(T, r, exact=True)
    H, s_ref = balanced_truncation(F, r, return_hsv=True)
    k = r + 1
    assert torch.allclose(hsv[:k] * T.norm, s_ref[:k], rtol=1e-9)
    w = 1j * torch.logspace(-2, 3, 11, dtype=torch.float64)
    Hs = _transfer_dense(StateSpace(Ar, Br, Cr), w) * T.norm
    Hr = _transfer_dense(H, w)
    assert torch.allclose(Hs, Hr, rtol=1e-7, atol=1e-9 * float(Hr.abs().max()))


@pytest.mark.parametrize("name", ["heat1d:40", "msd:20", "msd:60", "msd2:20"])
def test_balanced_start_low_rank(name):
    """The default start (Gramian factors of rank 4 r + 10, below the order of these targets, whose
    Hankel singular values of the mass-spring chains decay slowly) is as good a model as balanced
    truncation: H2 errors within 1e-3 (relative)."""
    F = builtin_model(name)
    T = Target(F)
    for r in (2, 4):
        assert LOWRANK_FACTOR * r + LOWRANK_EXTRA < F.order
        Ar, Br, Cr, _ = balanced_start(T, r)
        e = float(h2_error(F, StateSpace(Ar, Br * T.norm, Cr), relative=True))
        e_bt = float(h2_error(F, balanced_truncation(F, r), relative=True))
        assert abs(e - e_bt) <= 1e-3 * e_bt


def test_cauchy_pivoted_cholesky_all_real_modes():
    """Real modes only (no pairs): real arithmetic, the dense factor of the Cauchy matrix."""
    g = torch.Generator().manual_seed(3)
    mu = -torch.rand(30, generator=g, dtype=torch.float64) * 10 - 0.1
    x = torch.randn(30, 2, generator=g, dtype=torch.float64)
    M = -(x @ x.T) / (mu[:, None] + mu[None, :])
    L = cauchy_pivoted_cholesky(x.to(torch.complex128), mu.to(torch.complex128), False, 1e-15, real=True,
                                pairs=(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)))
    assert L.dtype == torch.float64
    assert float((L @ L.T - M).abs().max()) <= 1e-14 * float(M.abs().max())
