"""``difflinalg.svd_function``: ``U f(S) V^H`` by Daleckii-Krein on the dilation. Values against
SciPy, every derivative mode against finite differences at generic points, ties and zero singular
values (registered cases: tests/check/test_registered_cases.py), torch.func transforms, the exact gradient where ``svd`` raises, and bad
input."""

import warnings

import numpy as np
import pytest
import scipy.linalg
import torch
from torch.func import grad, hessian, jacrev, vmap

from difflinalg import DegenerateSpectrumError, InputError, svd, svd_function
from difflinalg.check import gradcheck
from difflinalg.spectral._cases_svd import exact_tie, randn, sin_svd, with_spectrum

from _helpers import assert_vmap_grad_and_jvp, gen

F32, F64, C64, C128 = torch.float32, torch.float64, torch.complex64, torch.complex128
ALL = ("vjp", "jvp", "hvp", "hvp_rev", "jvp2")


@pytest.mark.parametrize("dtype", [F32, F64, C64, C128])
@pytest.mark.parametrize("shape", [(4, 4), (5, 3), (3, 5), (2, 3, 4, 2), (0, 3), (3, 0)])
def test_values_match_scipy(dtype, shape):
    A = randn(dtype, gen(1), *shape)
    F = svd_function(A, torch.sin, torch.cos)
    assert F.shape == A.shape and F.dtype == dtype
    if A.numel() == 0:
        assert F.numel() == 0
        return
    ref = []
    for x in A.reshape(-1, *shape[-2:]).numpy():
        u, s, vh = scipy.linalg.svd(x, full_matrices=False)
        ref.append((u * np.sin(s)) @ vh)
    ref = torch.from_numpy(np.stack(ref)).reshape(shape)
    tol = 1e-5 if dtype in (F32, C64) else 1e-13
    assert torch.allclose(F, ref, atol=tol * max(1.0, float(ref.abs().max())))


@pytest.mark.parametrize("dtype", [F64, C128])
def test_equals_svd_at_distinct_values(dtype):
    """Away from ties the gradient equals the one through ``svd`` (an independent rule)."""
    A = randn(dtype, gen(2), 5, 4)
    W = randn(dtype, gen(3), 5, 4)

    def by_svd(A):
        U, S, Vh = svd(A, full_matrices=False)
        return (W.conj() * ((U * torch.sin(S).to(U.dtype)) @ Vh)).real.sum()

    def by_fn(A):
        return (W.conj() * svd_function(A, torch.sin, torch.cos)).real.sum()

    assert torch.allclose(grad(by_fn)(A), grad(by_svd)(A), rtol=1e-10, atol=1e-12)


def _series_sin(A):
    """``U sin(S) V^H = sum_k (-1)^k A (A^H A)^k / (2k+1)!`` (no SVD)."""
    term, F = A, A.clone()
    for k in range(1, 40):
        term = -(term @ (A.mH @ A)) / ((2 * k) * (2 * k + 1))
        F = F + term
    return F


@pytest.mark.parametrize("dtype", [F64, C128])
def test_exact_where_svd_raises(dtype):
    """The coupled loss <W, U sin(S) V^H> at an exact tie (structured: A diagonal, W all ones,
    so even the value cotangents are equal): svd raises, svd_function is exact (against the
    series written without an SVD, all derivative modes)."""
    A = torch.diag(torch.tensor([5.0, 3.0, 1.0, 1.0], dtype=F64)).to(dtype)
    W = torch.ones(4, 4, dtype=dtype)
    A1 = A.clone().requires_grad_()
    U, S, Vh = svd(A1)
    with pytest.raises(DegenerateSpectrumError, match="svd_function"):
        (W * ((U * torch.sin(S).to(dtype)) @ Vh)).real.sum().backward()
    g = grad(lambda A: (W * svd_function(A, torch.sin, torch.cos)).real.sum())(A)
    g_ref = grad(lambda A: (W * _series_sin(A)).real.sum())(A)
    assert torch.allclose(g, g_ref, rtol=1e-12, atol=1e-12)
    assert gradcheck(lambda A: svd_function(A, torch.sin, torch.cos), A, modes=ALL).passed


def test_torch_func_transforms():
    A = randn(C128, gen(4), 3, 4, 3)
    W = randn(C128, gen(5), 4, 3)

    def f(A):
        return (W.conj() * svd_function(A, torch.tanh, lambda s: 1 - torch.tanh(s) ** 2)).real.sum()

    assert_vmap_grad_and_jvp(f, A, randn(C128, gen(6), 4, 3))
    Ar = A[0].real.contiguous()
    fr = lambda A: (W.real * svd_function(A, torch.sin, torch.cos)).sum()  # noqa: E731
    H = hessian(fr)(Ar)
    assert torch.allclose(H, torch.autograd.functional.hessian(fr, Ar), rtol=1e-9, atol=1e-11)
    assert torch.allclose(H, jacrev(jacrev(fr))(Ar), rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("dtype", [F32, C64])
def test_single_precision_at_a_tie(dtype):
    """float32 at an exact tie and a zero singular value: the divided differences keep single
    precision accuracy (no 1/gap anywhere)."""
    hi = C128 if dtype.is_complex else F64
    A = with_spectrum(hi, gen(7), [3.0, 1.0, 1.0, 0.0], 4, 4)
    W = randn(hi, gen(8), 4, 4)
    g32 = grad(lambda A: (W.to(dtype).conj() * sin_svd(A)).real.sum())(A.to(dtype))
    g64 = grad(lambda A: (W.conj() * sin_svd(A)).real.sum())(A)
    assert g32.dtype == dtype
    assert (g32.to(hi) - g64).norm() <= 1e-5 * g64.norm()


def test_f0_nonzero_needs_full_rank():
    A = with_spectrum(F64, gen(9), [2.0, 1.0], 3, 3)  # rank 2
    with pytest.raises(DegenerateSpectrumError, match="f\\(0\\)"):
        svd_function(A, torch.cos, lambda s: -torch.sin(s))
    both = torch.stack([A, randn(F64, gen(10), 3, 3)])  # inside vmap: NaN for the singular one
    F = vmap(lambda A: svd_function(A, torch.cos, lambda s: -torch.sin(s)))(both)
    assert torch.isnan(F[0]).all() and torch.isfinite(F[1]).all()
    B = randn(F64, gen(10), 3, 3)  # full rank: defined and differentiable
    assert gradcheck(lambda B: svd_function(B, torch.cos, lambda s: -torch.sin(s)), B).passed
    # rectangular full-rank input never evaluates f at 0
    C = randn(F64, gen(11), 4, 2)
    assert gradcheck(lambda C: svd_function(C, torch.cos, lambda s: -torch.sin(s)), C).passed


def test_matches_exact_tie_helper_and_default_d2f():
    """``d2f`` omitted (forward-mode derivative of ``df``) and given agree at second order."""
    A = exact_tie(F64, gen(12), [2.0, 1.0, 1.0], 3, 3)
    v = randn(F64, gen(13), 3, 3)
    f1 = lambda A: (v * svd_function(A, torch.sin, torch.cos)).sum()  # noqa: E731
    f2 = lambda A: (v * svd_function(A, torch.sin, torch.cos, lambda s: -torch.sin(s))).sum()  # noqa: E731
    assert torch.allclose(hessian(f1)(A), hessian(f2)(A), rtol=1e-12, atol=1e-13)


def test_bad_input():
    A = randn(F64, gen(), 3, 3)
    with pytest.raises(InputError, match="f: expected a callable"):
        svd_function(A, 1.0, torch.cos)
    with pytest.raises(InputError, match="df: expected a callable"):
        svd_function(A, torch.sin, None)
    with pytest.raises(InputError, match="f: expected a real tensor"):
        svd_function(A, lambda s: s.to(C128), torch.cos)
    with pytest.raises(InputError, match="A: dtype int64"):
        svd_function(torch.ones(3, 3, dtype=torch.int64), torch.sin, torch.cos)
    bad = A.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(InputError, match="non-finite"):
        svd_function(bad, torch.sin, torch.cos)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        svd_function(A, torch.sin, torch.cos)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.complex64], ids=str)
def test_overflow_is_a_named_error(dtype):
    """f overflowing at a singular value (exp(100) in float32, exp(800) in float64) is an
    InputError naming the value, before a U diag(inf) V^H of NaN; in range it is not."""
    big = 800.0 if dtype == torch.float64 else 100.0
    A = torch.diag(torch.tensor([big, 1.0], dtype=torch.float64)).to(dtype)
    name = str(A.real.dtype).replace("torch.", "")
    with pytest.raises(InputError, match=rf"A: exp of singular value {big:g} overflows {name}"):
        svd_function(A, torch.exp, torch.exp)
    F = svd_function(A / big, torch.exp, torch.exp)
    assert torch.isfinite(F).all()
