"""Starting points of RARL2 (``_rarl2._starts``): output-normal conversion, the shifted solves in
working coordinates, and the scoring of all start candidates (the IRKA engine: test_irka_engine.py)."""

import pytest
import torch

from difflinalg.control.reduction._rarl2._starts import (EXTENSION_GRID, extension_models, extension_poles, to_pair,
                                                         to_pairs)
from difflinalg.control.reduction._rarl2._target import Target

from _controlhelpers import random_system


@pytest.mark.parametrize("discrete", [False, True])
def test_batched_to_pairs_equals_to_pair(discrete):
    F = random_system(8, 2, 2, discrete=discrete, seed=60)
    T = Target(F)
    g = torch.Generator().manual_seed(61)
    A = torch.randn(4, 3, 3, generator=g, dtype=torch.float64)
    A[:3] = A[:3] - 4 * torch.eye(3, dtype=torch.float64) if not discrete else 0.2 * A[:3]
    A[3] = 3 * torch.eye(3, dtype=torch.float64)  # unstable: rejected
    C = torch.randn(4, 2, 3, generator=g, dtype=torch.float64)
    C2, A2, ok = to_pairs(T, A, C)
    assert ok.tolist() == [True, True, True, False]
    for k in range(3):
        c, a = to_pair(T, A[k], C[k])
        assert torch.allclose(C2[k], c, atol=1e-12) and torch.allclose(A2[k], a, atol=1e-12)
    assert to_pair(T, A[3], C[3]) is None


def _work_A(T):
    Bw, _ = T.work_BC()
    return T.work_apply_A(torch.eye(T.N, dtype=Bw.dtype))


@pytest.mark.parametrize("case", ["modal-real", "modal-complex", "schur"])
def test_work_shifted_solve_batched(case):
    """``(sigma_k I - A_w)^{-1} x_k`` and the adjoint solve, batched over problems, in the working
    coordinates of each factorization."""
    dtype = torch.complex128 if case == "modal-complex" else torch.float64
    F = random_system(7, 2, 2, seed=73, dtype=dtype)
    T = Target(F, "schur" if case == "schur" else "modal")
    Aw = _work_A(T).to(T.cdt)
    g = torch.Generator().manual_seed(74)
    sigma = torch.complex(torch.rand(2, 3, generator=g, dtype=torch.float64) + 0.5,
                          torch.randn(2, 3, generator=g, dtype=torch.float64))
    X = torch.randn(2, T.N, 3, generator=g, dtype=torch.float64).to(T.cdt)
    I = torch.eye(T.N, dtype=T.cdt)
    for adjoint in (False, True):
        Y = T.work_shifted_solve(sigma, X, adjoint=adjoint)
        for b in range(2):
            assert torch.allclose(Y[b], T.work_shifted_solve(sigma[b], X[b], adjoint=adjoint), atol=1e-13)
            for k in range(3):
                M = sigma[b, k] * I - Aw
                M = M.mH if adjoint else M
                assert torch.allclose(M @ Y[b, :, k], X[b, :, k], atol=1e-10)
        if T.method == "modal":  # in the complex modal coordinates (A diagonal): divisions
            Yd = T.work_shifted_solve(sigma, X, adjoint=adjoint, diagonal=True)
            lam = T.lam.conj() if adjoint else T.lam
            s = sigma.conj() if adjoint else sigma
            assert torch.allclose(Yd, X / (s[:, None, :] - lam[:, None]), atol=1e-14)


def test_score_starts_keeps_each_starts_lowest_candidate():
    """``_Run.score_starts``: per start the candidate with the lowest criterion, its value and
    ambient gradients as the single evaluation gives them; unstable candidates are left out."""
    from difflinalg.control.reduction._rarl2._api import _Run

    F = random_system(10, 2, 2, seed=77)
    T = Target(F)
    run = _Run(T, 3, 1e-9, 100, None)
    g = torch.Generator().manual_seed(78)
    A = torch.randn(4, 3, 3, generator=g, dtype=torch.float64) - 3 * torch.eye(3, dtype=torch.float64)
    C = torch.randn(4, 2, 3, generator=g, dtype=torch.float64)
    A[2] = 2 * torch.eye(3, dtype=torch.float64)  # unstable
    made = [("a", A[:3], C[:3], False), ("b", A[3:], C[3:], False), ("c", A[2:3], C[2:3], False)]
    out = run.score_starts(made)
    assert [o[0] for o in out] == ["a", "b"]  # "c" has no stable candidate
    C2, A2, ok = to_pairs(T, A, C)
    psi = run.psi_of_pairs([(C2[k], A2[k]) for k in range(4) if ok[k]])
    assert out[0][2] == pytest.approx(min(psi[:2]), rel=1e-12)
    assert out[1][2] == pytest.approx(psi[2], rel=1e-12)
    for name, (c, a), f, (gA, gC) in out:
        f1, gA1, gC1, _ = T.criterion(c, a)
        assert f == pytest.approx(f1, rel=1e-10)
        assert torch.allclose(gA, gA1, atol=1e-10) and torch.allclose(gC, gC1, atol=1e-10)


def test_to_pairs_drops_a_model_too_far_from_normal_for_its_gramian():
    """A stable candidate model whose realization is too far from normal for a Gramian (diagonal
    similarity 2^40: eigenvector condition 1e12, ``SingularEquationError`` from the Gramian) is left
    out (``ok`` False), the others are converted: one bad start does not end the run (issue 17:
    ``rarl2`` on 1200 Markov parameters raised here at r = 4)."""
    from difflinalg.control.reduction._rarl2._starts import to_pairs
    from difflinalg.control.reduction._rarl2._target import Target

    g = torch.Generator().manual_seed(0)
    r = 6
    F = random_system(12, 1, 1, discrete=True, seed=2)
    T = Target(F)
    Q, _ = torch.linalg.qr(torch.randn(r, r, generator=g, dtype=torch.float64))
    A0 = Q @ torch.diag(torch.linspace(-0.9, 0.9, r, dtype=torch.float64)) @ Q.T
    d = 2.0 ** torch.linspace(0, 40, r, dtype=torch.float64).round()
    C0 = torch.randn(1, r, generator=g, dtype=torch.float64)
    A = torch.stack([d[:, None] * A0 / d[None, :], A0])
    C = torch.stack([C0 / d[None, :], C0])
    C2, A2, ok = to_pairs(T, A, C)
    assert ok.tolist() == [False, True]
    # the normal one is output normal: A^H A + C^H C = I
    torch.testing.assert_close(A2[1].mT @ A2[1] + C2[1].mT @ C2[1], torch.eye(r, dtype=torch.float64),
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("discrete", [False, True])
def test_extension_poles_cover_the_band(discrete):
    # continuous: -w for w log-spaced over the target's pole magnitudes; discrete: the bilinear image
    # of -w, w in [1e-3, 1e3], inside the unit disk from near 1 to near -1; logmag: log10 w
    T = Target(random_system(9, 2, 2, discrete=discrete, seed=62))
    poles, logmag = extension_poles(T)
    assert poles.shape == logmag.shape == (EXTENSION_GRID,) and not poles.is_complex()
    assert torch.all(logmag[1:] > logmag[:-1])
    w = 10.0 ** logmag
    if discrete:
        assert torch.allclose(poles, (1 - w) / (1 + w)) and float(poles.abs().max()) < 1
        assert float(logmag[0]) == -3.0 and float(logmag[-1]) == 3.0
    else:
        mags = T.lam.abs()
        assert torch.allclose(poles, -w)
        assert abs(float(w[0]) - float(mags.min())) <= 1e-12 * float(mags.min())
        assert abs(float(w[-1]) - float(mags.max())) <= 1e-12 * float(mags.max())


def test_extension_models_add_one_state_at_each_pole():
    # block diagonal [[A1, 0], [0, pole]], C = [C1, c]; for one output the model space, hence the
    # criterion, depends on the poles only, not on c
    T = Target(random_system(9, 1, 1, seed=63))
    g = torch.Generator().manual_seed(64)
    A1 = torch.randn(3, 3, generator=g, dtype=torch.float64) - 3 * torch.eye(3, dtype=torch.float64)
    C1 = torch.randn(1, 3, generator=g, dtype=torch.float64)
    poles = torch.tensor([-0.1, -1.0, -10.0], dtype=torch.float64)
    A, C = extension_models(C1, A1, poles, torch.tensor([[0.3]], dtype=torch.float64))
    assert A.shape == (3, 4, 4) and C.shape == (3, 1, 4)
    assert torch.equal(A[:, :3, :3], A1.expand(3, 3, 3)) and torch.equal(A[:, 3, 3], poles)
    assert not A[:, 3, :3].any() and not A[:, :3, 3].any() and torch.equal(C[:, :, :3], C1.expand(3, 1, 3))
    _, C_b = extension_models(C1, A1, poles, torch.tensor([[-2.0]], dtype=torch.float64))
    psi = [T.psi_batch(*to_pairs(T, A, CC)[:2]) for CC in (C, C_b)]
    assert torch.allclose(psi[0], psi[1], rtol=1e-10, atol=1e-14)
    assert float(psi[0].max() - psi[0].min()) > 1e-6  # and it does depend on the pole
