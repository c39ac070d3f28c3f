"""Sparse IRKA and low-rank balanced truncation against the dense implementations."""

import numpy as np
import pytest
import scipy.sparse as sps
import torch

from difflinalg import InputError
from difflinalg.control import balanced_truncation, h2_error, hankel_singular_values
from difflinalg.control.large import (SparseSystem, convection_diffusion_2d, heat_2d, irka_sparse,
                                      lr_balanced_truncation, msd_descriptor)


@pytest.mark.parametrize("make", [lambda: heat_2d(12), lambda: convection_diffusion_2d(12, (50.0, 30.0)),
                                  lambda: msd_descriptor(80)], ids=["heat", "convdiff", "msd"])
def test_lr_bt_matches_dense_bt(make):
    s = make()
    d = s.to_dense()
    H, hsv = lr_balanced_truncation(s, 6, return_hsv=True)
    hd = hankel_singular_values(d).numpy()
    # absolute errors: the Gramians are accurate to ~1e-9 relative to their norm (test_gramians)
    np.testing.assert_allclose(hsv[:6], hd[:6], rtol=1e-7, atol=1e-8 * hd[0])
    e, e0 = (float(h2_error(d, M, relative=True)) for M in (H, balanced_truncation(d, 6)))
    assert e == pytest.approx(e0, rel=1e-4)


@pytest.mark.parametrize("make", [lambda: heat_2d(12), lambda: convection_diffusion_2d(12, (50.0, 30.0)),
                                  lambda: msd_descriptor(80)], ids=["heat", "convdiff", "msd"])
def test_irka_fixed_point(make):
    """At convergence the model's mirrored poles are the interpolation points: F and H agree there
    (tangentially; SISO here), and the error is no worse than 1.5 x balanced truncation's."""
    s = make()
    d = s.to_dense()
    H, info = irka_sparse(s, 6, start=lr_balanced_truncation(s, 6), tol=1e-8, max_iter=200, return_info=True)
    assert info.converged and info.factorizations <= 6 * info.iterations
    lam = torch.linalg.eigvals(H.A).numpy()
    for sig in -lam.conj():
        f = (d.C.numpy() @ np.linalg.solve(sig * np.eye(d.order) - d.A.numpy(), d.B.numpy()))[0, 0]
        h = (H.C.numpy() @ np.linalg.solve(sig * np.eye(6) - H.A.numpy(), H.B.numpy()))[0, 0]
        assert abs(f - h) <= 1e-5 * abs(f)
    e_bt = float(h2_error(d, balanced_truncation(d, 6), relative=True))
    assert float(h2_error(d, H, relative=True)) <= 1.5 * e_bt


def test_irka_discrete_mimo():
    rng = np.random.default_rng(3)
    N = 80
    A = sps.diags(rng.uniform(-0.9, 0.9, N)) + sps.random(N, N, density=0.02, random_state=3) * 0.05
    s = SparseSystem(A.tocsc(), rng.standard_normal((N, 2)), rng.standard_normal((2, N)), time="discrete")
    d = s.to_dense()
    H = irka_sparse(s, 6, tol=1e-8, max_iter=200)
    assert H.discrete and float(torch.linalg.eigvals(H.A).abs().max()) < 1
    assert float(h2_error(d, H)) <= 1.05 * float(h2_error(d, balanced_truncation(d, 6)))


def test_reduce_bad_order():
    s = heat_2d(4)
    for bad in (0, 16, 2.5):
        with pytest.raises(InputError, match="r: "):
            irka_sparse(s, bad)
    with pytest.raises(InputError, match="start: expected a model of order 3"):
        irka_sparse(s, 3, start=lr_balanced_truncation(s, 2))


def test_balanced_factors_tightened_only_above_the_rank(monkeypatch):
    """heat N = 441: r within the default factors' rank keeps them (cached, same object); r above
    it gets the tightened factors (more columns, higher rank, same leading Hankel singular values);
    where tight ADI does not converge, the default factors stand."""
    from difflinalg import ConvergenceError
    from difflinalg.control.large import _reduce, lr_gramian

    s = heat_2d(21)
    Z0 = lr_gramian(s, "c")[0]
    Z, Y, svd, tight = _reduce.balanced_factors(s, 10, 1e-15)
    assert not tight and Z is Z0
    Zt, Yt, svdt, tight = _reduce.balanced_factors(s, 18, 1e-15)
    assert tight and Zt.shape[1] > Z.shape[1] and svdt[3] > svd[3] >= 10
    # sigma_i^2 = eig(P Q): the default P and Q are each off by their ADI residual and compression
    # (1e-15 + 1e-15 of their norms), so the squares agree to 4e-15 ||P|| ||Q||
    scale = np.linalg.norm(Z, 2) ** 2 * np.linalg.norm(Y, 2) ** 2
    k = svd[3]
    assert np.abs(svdt[1][:k] ** 2 - svd[1][:k] ** 2).max() <= 4e-15 * scale

    def no_tight(sys, kind, tol, **kw):
        if tol < 1e-15:
            raise ConvergenceError("stalled")
        return lr_gramian(sys, kind, tol, **kw)

    monkeypatch.setattr(_reduce, "lr_gramian", no_tight)
    Z2, _, svd2, tight = _reduce.balanced_factors(heat_2d(21), 18, 1e-15)
    assert not tight and svd2[3] == svd[3]
