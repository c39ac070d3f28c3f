"""Hermitian matrix functions (``hermitian_function``, ``sqrtmh``, ``logmh``, ``expmh``, ``powmh``):
derivatives in every mode, exactness at repeated eigenvalues (first and second order), values
against SciPy, torch.func transforms, and errors."""

import numpy as np
import pytest
import scipy.linalg
import torch

import difflinalg as dl
from difflinalg import InputError, NotPositiveDefiniteError
from difflinalg.check import gradcheck
from difflinalg.matfun._divided import (
    EXP,
    LOG,
    SQRT,
    ScalarFunction,
    first_divided_differences,
    power,
    second_divided_differences,
)

from _helpers import randn
from _mfhelpers import assert_hessian_matches_fd

F64, C128 = torch.float64, torch.complex128
ALL = ("vjp", "jvp", "hvp", "hvp_rev")


def hpd(n, batch=(), dtype=F64, seed=0):
    X = randn(*batch, n, n, dtype=dtype, seed=seed)
    return X @ X.mH / n + torch.eye(n, dtype=dtype)


def with_spectrum(w, dtype=F64, seed=0):
    Q, _ = torch.linalg.qr(randn(len(w), len(w), dtype=dtype, seed=seed))
    return Q @ torch.diag(torch.tensor(w, dtype=dtype)) @ Q.mH


def tanh_fn(A):
    return dl.hermitian_function(A, torch.tanh, lambda x: 1 - torch.tanh(x) ** 2)


FUNCS = {
    "sqrtmh": dl.sqrtmh,
    "logmh": dl.logmh,
    "expmh": dl.expmh,
    "powmh": lambda A: dl.powmh(A, -0.3),
    "tanh": tanh_fn,
}
REFS = {
    "sqrtmh": scipy.linalg.sqrtm,
    "logmh": scipy.linalg.logm,
    "expmh": scipy.linalg.expm,
    "powmh": lambda a: scipy.linalg.fractional_matrix_power(a, -0.3),
    "tanh": scipy.linalg.tanhm,
}


@pytest.mark.parametrize("name", list(FUNCS))
@pytest.mark.parametrize("dtype", [F64, C128])
def test_gradcheck_all_modes_batched(name, dtype):
    A = hpd(3, (2,), dtype)
    assert gradcheck(FUNCS[name], A, modes=ALL).passed


@pytest.mark.parametrize("name", list(FUNCS))
@pytest.mark.parametrize("dtype", [F64, C128])
def test_value_against_scipy(name, dtype):
    A = hpd(5, (2,), dtype, seed=1)
    F = FUNCS[name](A)
    ref = np.stack([REFS[name](a) for a in A.numpy()])
    assert F.dtype == dtype
    assert np.abs(F.numpy() - ref).max() <= 1e-12 * np.abs(ref).max()


@pytest.mark.parametrize("dtype", [F64, C128])
def test_sqrtmh_at_identity_gradient_is_exact_where_eigh_gives_nan(dtype):
    # PythonOT/POT#773: eigh-based sqrtm has a NaN gradient at the identity. d sqrt(I)[E] = E / 2.
    W = randn(4, 4, dtype=dtype, seed=3)
    I = torch.eye(4, dtype=dtype, requires_grad=True)
    (dl.sqrtmh(I) * W.conj()).real.sum().backward()
    expected = 0.25 * (W + W.mH)  # herm(W) / 2
    assert torch.allclose(I.grad, expected, atol=1e-15, rtol=0)
    # The bug being avoided, so this test keeps meaning something:
    I2 = torch.eye(4, dtype=dtype, requires_grad=True)
    w, V = torch.linalg.eigh(I2)
    ((V * w.sqrt().to(dtype)) @ V.mH * W.conj()).real.sum().backward()
    assert torch.isnan(I2.grad).all()


@pytest.mark.parametrize("dtype", [F64, C128])
def test_second_order_exact_at_identity(dtype):
    # sqrt(I + tE + sF) = I + (tE + sF)/2 - (tE + sF)^2/8 + ...: the mixed second derivative is
    # -(EF + FE)/8, where second divided differences are all f''(1)/2 = -1/8.
    E, F = randn(3, 3, dtype=dtype, seed=1), randn(3, 3, dtype=dtype, seed=2)
    E, F = E + E.mH, F + F.mH
    I = torch.eye(3, dtype=dtype)
    second = torch.func.jvp(lambda X: torch.func.jvp(dl.sqrtmh, (X,), (E,))[1], (I,), (F,))[1]
    assert torch.allclose(second, -(E @ F + F @ E) / 8, atol=1e-14, rtol=0)
    # forward-over-reverse and double backward through the gradient at the same point
    W = randn(3, 3, dtype=dtype, seed=4)

    def grad(X):
        return torch.func.grad(lambda X: (dl.sqrtmh(X) * W.conj()).real.sum())(X)

    hvp = torch.func.jvp(grad, (I,), (F,))[1]
    Wh = 0.5 * (W + W.mH)
    assert torch.allclose(hvp, -(Wh @ F + F @ Wh) / 8, atol=1e-14, rtol=0)
    X = I.clone().requires_grad_(True)
    g = torch.autograd.grad((dl.sqrtmh(X) * W.conj()).real.sum(), X, create_graph=True)[0]
    hrev = torch.autograd.grad((g * F.conj()).real.sum(), X)[0]
    assert torch.allclose(hrev, hvp, atol=1e-14, rtol=0)


@pytest.mark.parametrize("name", list(FUNCS))
@pytest.mark.parametrize("dtype", [F64, C128])
def test_gradcheck_at_repeated_eigenvalues(name, dtype):
    A = with_spectrum([1.5, 1.5, 1.5, 3.0], dtype)
    assert gradcheck(FUNCS[name], A, modes=ALL, max_step=1e-2).passed
    assert gradcheck(FUNCS[name], torch.eye(3, dtype=dtype), modes=ALL, max_step=1e-2).passed


@pytest.mark.parametrize("gap", [0.0, 1e-13, 1e-9, 1e-6, 1e-3])
def test_derivatives_continuous_across_near_equal_eigenvalues(gap):
    # Gradient and Hessian-vector product at eigenvalues (2, 2 + gap, 5) are within O(gap) of
    # those at (2, 2, 5): no cancellation blow-up near the switch of the divided differences.
    W, E = randn(3, 3, seed=5), randn(3, 3, seed=6)
    for fn in (dl.logmh, tanh_fn, dl.sqrtmh):
        def grad(X):
            return torch.func.grad(lambda X: (fn(X) * W).sum())(X)

        def both(w):
            A = with_spectrum(w, seed=7)
            g, h = torch.func.jvp(grad, (A,), (E,))
            return g, h

        g0, h0 = both([2.0, 2.0, 5.0])
        g1, h1 = both([2.0, 2.0 + gap, 5.0])
        assert (g1 - g0).abs().max() <= 1e-12 + 2 * gap
        assert (h1 - h0).abs().max() <= 1e-10 + 2 * gap


def test_divided_differences_generic_vs_closed_forms():
    # The generic quotient/Simpson switch and the closed forms agree, including near-equal points.
    w = torch.tensor([0.5, 0.5 + 1e-12, 0.5 + 1e-7, 0.5 + 1e-4, 1.0, 3.0], dtype=F64)
    for spec in (SQRT, LOG, EXP, power(0.7)):
        generic = ScalarFunction(f=spec.f, df=spec.df, d2f=spec.d2f)
        D, Dg = first_divided_differences(spec, w), first_divided_differences(generic, w)
        assert torch.allclose(D, Dg, rtol=1e-10, atol=0)
        T, Tg = second_divided_differences(spec, w), second_divided_differences(generic, w)
        assert torch.allclose(T, Tg, rtol=1e-8, atol=0)
        # diagonal limits are the exact derivatives
        assert torch.equal(torch.diagonal(Dg, dim1=-2, dim2=-1), spec.df(w))
    # d2f obtained by autodiff when not given
    auto = ScalarFunction(f=torch.exp, df=torch.exp)
    assert torch.allclose(second_divided_differences(auto, w), second_divided_differences(EXP, w), rtol=1e-8)


def test_generic_d2f_default_matches_given():
    A = with_spectrum([1.0, 1.0, 2.0])
    E = randn(3, 3, seed=2)

    def hvp(fn):
        grad = torch.func.grad(lambda X: fn(X).sum())
        return torch.func.jvp(grad, (A,), (E,))[1]

    f, df = torch.sin, torch.cos
    given = hvp(lambda X: dl.hermitian_function(X, f, df, lambda x: -torch.sin(x)))
    auto = hvp(lambda X: dl.hermitian_function(X, f, df))
    assert torch.allclose(given, auto, atol=1e-14)


def test_complex_gradient_convention():
    # PyTorch's convention: for real L, grad = dL/dRe + i dL/dIm. Check one entry by hand.
    A = hpd(3, dtype=C128, seed=2)
    W = randn(3, 3, dtype=C128, seed=3)

    def loss(X):
        return (dl.logmh(X) * W).real.sum()

    X = A.clone().requires_grad_(True)
    g = torch.autograd.grad(loss(X), X)[0]
    h = 1e-6
    for i, j in ((0, 1), (2, 0), (1, 1)):
        e = torch.zeros_like(A)
        e[i, j] = 1
        d_re = (loss(A + h * e) - loss(A - h * e)) / (2 * h)
        d_im = (loss(A + 1j * h * e) - loss(A - 1j * h * e)) / (2 * h)
        assert abs(complex(g[i, j]) - complex(d_re + 1j * d_im)) < 1e-8


def test_vmap_jvp_hessian_float32():
    A = hpd(3, (4,), F64)
    for fn in FUNCS.values():
        assert torch.allclose(torch.func.vmap(fn)(A), fn(A), atol=1e-14)
        # a cubic loss: ||sqrtmh(X)||_F^2 = tr(X) would have a zero Hessian
        f = lambda X, fn=fn: (fn(X) ** 3).sum()  # noqa: E731
        assert_hessian_matches_fd(f, A[0])
        g = torch.func.vmap(torch.func.grad(f))(A)
        assert torch.allclose(g, torch.stack([torch.func.grad(f)(a) for a in A]), atol=1e-13)
    A32 = hpd(4, dtype=torch.float32)
    S = dl.sqrtmh(A32)
    assert S.dtype == torch.float32 and torch.allclose(S @ S, A32, atol=1e-5)
    assert gradcheck(dl.sqrtmh, A32, modes=("vjp", "jvp")).passed


def test_sqrtmh_semidefinite_and_indefinite():
    A = with_spectrum([0.0, 1.0, 4.0])
    S = dl.sqrtmh(A)
    assert torch.allclose(S @ S, A, atol=1e-14)
    with pytest.raises(NotPositiveDefiniteError, match=r"A: sqrtmh .* smallest eigenvalue is -1"):
        dl.sqrtmh(with_spectrum([-1.0, 1.0, 4.0]))
    with pytest.raises(NotPositiveDefiniteError, match="logmh"):
        dl.logmh(with_spectrum([0.0, 1.0, 4.0]))
    with pytest.raises(NotPositiveDefiniteError, match="powmh"):
        dl.powmh(with_spectrum([-0.5, 1.0, 4.0]), 0.5)


def test_bad_input():
    A = hpd(3)
    with pytest.raises(InputError, match="square"):
        dl.sqrtmh(torch.ones(2, 3, dtype=F64))
    with pytest.raises(InputError, match="non-finite"):
        dl.expmh(torch.full((2, 2), float("nan"), dtype=F64))
    with pytest.raises(InputError, match="dtype int64"):
        dl.expmh(torch.eye(2, dtype=torch.int64))
    with pytest.raises(InputError, match="f: expected a real tensor"):
        dl.hermitian_function(A, lambda w: w.sum(), torch.ones_like)
    with pytest.raises(InputError, match="df: expected a callable"):
        dl.hermitian_function(A, torch.exp, 3.0)
    with pytest.raises(InputError, match="p: expected a finite"):
        dl.powmh(A, float("nan"))
