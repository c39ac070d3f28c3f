"""Hard points of the matrix functions (issue 16 items 3-5): sqrtmh's derivative where it does
not exist (a named error, NaN inside torch.func) and the single-precision policy, expmh overflow
(a named error, never NaN), meta tensors (a named error)."""

import warnings

import pytest
import torch

import difflinalg as dl
import difflinalg._utils as utils
from difflinalg import InputError, NotPositiveDefiniteError

from _helpers import randn

F64 = torch.float64


def with_spectrum(w, dtype=F64, seed=0):
    Q, _ = torch.linalg.qr(randn(len(w), len(w), dtype=dtype, seed=seed))
    return Q @ torch.diag(torch.tensor(w, dtype=dtype)) @ Q.mH


@pytest.mark.parametrize("dtype", [F64, torch.complex128])
def test_sqrtmh_gradient_at_singular_psd_is_a_named_error(dtype):
    # the value exists (sqrt of a PSD matrix), the derivative does not: f'(0) = inf; before:
    # Inf, NaN or ~5e7 depending on the rounding of the zero eigenvalue
    A = with_spectrum([0.0, 1.0, 4.0], dtype).requires_grad_()
    S = dl.sqrtmh(A)
    assert torch.allclose(S @ S, A.detach(), atol=1e-14)
    with pytest.raises(NotPositiveDefiniteError, match="derivative of sqrtmh does not exist.*A \\+ delta I"):
        torch.autograd.grad(S.real.sum(), A)
    with pytest.raises(NotPositiveDefiniteError, match="does not exist"):
        with torch.autograd.forward_ad.dual_level():
            dl.sqrtmh(torch.autograd.forward_ad.make_dual(A.detach(), torch.ones_like(A)))


def test_sqrtmh_gradient_batched_names_batch_index():
    A = torch.stack([with_spectrum([1.0, 2.0, 3.0]), with_spectrum([1e-300, 1.0, 2.0])]).requires_grad_()
    with pytest.raises(NotPositiveDefiniteError, match=r"batch index \(1,\)"):
        torch.autograd.grad(dl.sqrtmh(A).sum(), A)


def test_sqrtmh_gradient_inside_torch_func_is_nan(monkeypatch):
    monkeypatch.setattr(utils, "_warned", set())
    A = torch.stack([with_spectrum([1.0, 2.0, 3.0]), with_spectrum([0.0, 1.0, 2.0])])
    with pytest.warns(dl.TransformCheckWarning, match="NaN"):
        g = torch.func.vmap(torch.func.grad(lambda X: dl.sqrtmh(X).sum()))(A)
    assert bool(torch.isnan(g[1]).all()) and bool(torch.isfinite(g[0]).all())
    ref = torch.func.grad(lambda X: dl.sqrtmh(X).sum())(A[0])
    torch.testing.assert_close(g[0], ref)


def test_sqrtmh_positive_definite_gradient_is_silent_and_right():
    # smallest eigenvalue 1e-6 (kappa ~ 2e6, kappa eps ~ 4e-10 in float64): exact, no warning
    A = with_spectrum([1e-6, 1.0, 4.0]).requires_grad_()
    with warnings.catch_warnings():
        warnings.simplefilter("error", dl.PrecisionWarning)
        (g,) = torch.autograd.grad(dl.sqrtmh(A).trace(), A)
    # d tr(sqrt(A)) = tr(A^{-1/2} dA) / 2
    expected = 0.5 * torch.linalg.inv(dl.sqrtmh(A.detach()))
    torch.testing.assert_close(g, expected, rtol=1e-9, atol=0)


def test_sqrtmh_float32_tiny_eigenvalue_warns():
    # float32 at l_min = 1e-6 l_max: kappa eps ~ 6e-2 > 1e-2 -> PrecisionWarning "double precision";
    # below n eps the derivative does not exist in float32: the named error
    A = with_spectrum([1e-6, 1.0, 1.0]).float().requires_grad_()
    with pytest.warns(dl.PrecisionWarning, match="double precision"):
        torch.autograd.grad(dl.sqrtmh(A).trace(), A)
    B = with_spectrum([1e-9, 1.0, 1.0]).float().requires_grad_()
    with pytest.raises(NotPositiveDefiniteError, match="does not exist"):
        torch.autograd.grad(dl.sqrtmh(B).trace(), B)


@pytest.mark.parametrize("dtype", [F64, torch.complex128])
def test_expmh_overflow_is_a_named_error(dtype):
    # exp(800) overflows float64: before, V diag(inf) V^H gave NaN
    A = with_spectrum([800.0, 1.0, 0.0], dtype)
    with pytest.raises(InputError, match=r"exp of eigenvalue 800 overflows float64.*expmh\(A - c I\)"):
        dl.expmh(A)
    E = dl.expmh(with_spectrum([700.0, 1.0, 0.0], dtype))  # representable: finite
    assert bool(torch.isfinite(E).all())
    with pytest.raises(InputError, match="overflows float32.*double precision"):
        dl.expmh(with_spectrum([100.0, 1.0, 0.0]).float())


META = torch.empty(3, 3, device="meta", dtype=F64)


@pytest.mark.parametrize("fn", [dl.sqrtm, dl.logm, dl.sqrtmh, dl.logmh, dl.expmh, lambda A: dl.powmh(A, 0.5),
                                lambda A: dl.hermitian_function(A, torch.exp, torch.exp)])
def test_meta_tensors_named_error(fn):
    with pytest.raises(InputError, match="A: meta tensors are not supported"):
        fn(META)


def test_reject_meta_helper():
    utils.reject_meta("X", torch.ones(2))  # data: no error
    with pytest.raises(InputError, match="X: meta tensors"):
        utils.reject_meta("X", torch.ones(2, device="meta"))
