"""torch.linalg's conventions where the names coincide (issue 21, item 2): ``svd``, ``svdvals``,
``eigh``, ``eigvalsh`` take torch.linalg's parameters (names, order, kinds, defaults; extras only
keyword-only), return its result types (named fields, shapes, dtypes) and its values up to the
gauge, for real and complex, batched and empty input (for eigh: Hermitian input, the domain torch
defines it on); the derivatives are torch's where torch's are exact (for eigh: its Hermitian
gradient, also on a leaf), exact in every direction, and louder where torch's are not."""

from __future__ import annotations

import inspect

import pytest
import torch

import difflinalg
from difflinalg import EighResult, GaugeError, InputError, SVDResult
from difflinalg.check import gradcheck
from difflinalg.spectral._cases_eigh import hermitian_with_spectrum, randn
from difflinalg.spectral._cases_svd import with_spectrum

from _helpers import gen, torch_parameters

pytestmark = pytest.mark.usefixtures("one_thread")

F32, F64, C64, C128 = torch.float32, torch.float64, torch.complex64, torch.complex128
NAMES = ("svd", "svdvals", "eigh", "eigvalsh")
# torch.linalg parameters that difflinalg does not take: out= cannot carry a graph (torch refuses
# out= for inputs that require grad); documented in docs/conventions.md.
NOT_TAKEN = {"out"}
RESULT = {"svd": (SVDResult, torch.return_types.linalg_svd),
          "eigh": (EighResult, torch.return_types.linalg_eigh)}
SHAPES = [(4, 4), (5, 3), (3, 5), (2, 3, 4, 3), (0, 3, 3)]


@pytest.mark.parametrize("name", NAMES)
def test_signature_matches_torch(name):
    """Same names, order, kinds and defaults as torch's documented signature; the extras
    (degeneracy_tol, gauge) are keyword-only."""
    ours = list(inspect.signature(getattr(difflinalg, name)).parameters.values())
    theirs = [p for p in torch_parameters(name) if p.name not in NOT_TAKEN]
    assert len(theirs) >= 1 and ours[0].name == "A"
    by_name = {p.name: p for p in ours}
    for p in theirs:
        assert p.name in by_name, f"{name}: torch's parameter {p.name!r} is missing"
        q = by_name[p.name]
        assert (q.kind, q.default) == (p.kind, p.default), f"{name}.{p.name}: {q} vs torch's {p}"
    positional = [p.name for p in ours if p.kind != inspect.Parameter.KEYWORD_ONLY]
    assert positional == [p.name for p in theirs if p.kind != inspect.Parameter.KEYWORD_ONLY]
    extras = [p for p in ours if p.name not in {t.name for t in theirs}]
    assert {p.name for p in extras} == {"degeneracy_tol", "gauge"}
    assert all(p.kind == inspect.Parameter.KEYWORD_ONLY for p in extras)
    assert not NOT_TAKEN & set(by_name)


@pytest.mark.parametrize("name", ["svd", "eigh"])
def test_result_type_has_torch_fields(name):
    ours, theirs = RESULT[name]
    assert ours._fields == theirs.__match_args__
    assert issubclass(ours, tuple)


def _close(dtype) -> dict:
    """Tolerances of a backward-stable decomposition of an O(1) matrix of size <= 5."""
    eps = torch.finfo(dtype).eps
    return dict(rtol=0.0, atol=200 * eps)


def _align(X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """The phases ``d`` with ``Y ~ X d`` for matching columns of two bases of simple spectra."""
    d = (X.conj() * Y).sum(-2)
    return d / d.abs()


@pytest.mark.parametrize("dtype", [F32, F64, C64, C128])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("full", [None, True, False])
def test_svd_matches_torch(dtype, shape, full):
    """Default call (full_matrices=True), positional and keyword flags: the same type, field
    shapes and dtypes, the same values, the same vectors up to a phase per triplet (and the same
    complement spans)."""
    A = randn(dtype, gen(1), *shape)
    args = () if full is None else (full,)
    out, ref = difflinalg.svd(A, *args), torch.linalg.svd(A, *args)
    assert isinstance(out, SVDResult)
    U, S, Vh = out  # unpacks like a tuple
    for f in SVDResult._fields:
        a, b = getattr(out, f), getattr(ref, f)
        assert (a.shape, a.dtype, a.device) == (b.shape, b.dtype, b.device), f
    if A.numel() == 0:
        return
    tol = _close(dtype)
    k = S.shape[-1]
    torch.testing.assert_close(S, ref.S, **tol)
    d = _align(ref.U[..., :k], U[..., :k])
    torch.testing.assert_close(U[..., :k], ref.U[..., :k] * d[..., None, :], **tol)
    torch.testing.assert_close(Vh[..., :k, :], d.conj()[..., :, None] * ref.Vh[..., :k, :], **tol)
    for X, Y in ((U[..., k:], ref.U[..., k:]), (Vh[..., k:, :].mH, ref.Vh[..., k:, :].mH)):
        torch.testing.assert_close(X @ X.mH, Y @ Y.mH, **tol)


@pytest.mark.parametrize("dtype", [F32, F64, C64, C128])
@pytest.mark.parametrize("shape", [s for s in SHAPES if s[-1] == s[-2]], ids=str)
@pytest.mark.parametrize("uplo", [None, "L", "U", "u"])
def test_eigh_matches_torch(dtype, shape, uplo):
    """Hermitian input (torch's domain: "A is assumed Hermitian"), any UPLO: same fields, shapes,
    dtypes, values and eigenvectors up to a phase."""
    B = randn(dtype, gen(2), *shape)
    A = B + B.mH
    args = () if uplo is None else (uplo,)
    out, ref = difflinalg.eigh(A, *args), torch.linalg.eigh(A, *args)
    assert isinstance(out, EighResult)
    w, V = out
    for f in EighResult._fields:
        a, b = getattr(out, f), getattr(ref, f)
        assert (a.shape, a.dtype, a.device) == (b.shape, b.dtype, b.device), f
    if A.numel() == 0:
        return
    tol = _close(dtype)
    torch.testing.assert_close(w, ref.eigenvalues, **tol)
    d = _align(ref.eigenvectors, V)
    torch.testing.assert_close(V, ref.eigenvectors * d[..., None, :], **tol)
    torch.testing.assert_close(difflinalg.eigvalsh(A, *args), torch.linalg.eigvalsh(A, *args), **tol)


@pytest.mark.parametrize("dtype", [F32, F64, C64, C128])
@pytest.mark.parametrize("uplo", ["L", "U"])
def test_eigh_of_non_hermitian_input_is_that_of_the_hermitian_part(dtype, uplo):
    """The documented difference: torch reads the UPLO triangle of a non-Hermitian input, difflinalg
    decomposes (A + A^H)/2 whatever UPLO says (the imaginary part of the diagonal dropped, as by
    torch); so the result is torch's on the Hermitian part."""
    A = randn(dtype, gen(15), 2, 4, 4)
    H = 0.5 * (A + A.mH)
    w, V = difflinalg.eigh(A, uplo)
    ref = torch.linalg.eigh(H, uplo)
    tol = _close(dtype)
    torch.testing.assert_close(w, ref.eigenvalues, **tol)
    torch.testing.assert_close(V, ref.eigenvectors * _align(ref.eigenvectors, V)[..., None, :], **tol)
    torch.testing.assert_close(difflinalg.eigvalsh(A, uplo), ref.eigenvalues, **tol)


@pytest.mark.parametrize("dtype", [F32, F64, C64, C128])
def test_svdvals_matches_torch(dtype):
    A = randn(dtype, gen(3), 2, 5, 3)
    S, ref = difflinalg.svdvals(A), torch.linalg.svdvals(A)
    assert (S.shape, S.dtype) == (ref.shape, ref.dtype)
    torch.testing.assert_close(S, ref, **_close(dtype))


@pytest.mark.parametrize("dtype", [F64, C128])
def test_gradients_match_torch_for_hermitian_parameters(dtype):
    """For A built Hermitian from a parameter (A = B + B^H) the parameter's gradient equals
    torch's, and so does the gradient of a Hermitian leaf A (Hermitian, for either UPLO): a
    gradient step keeps a Hermitian parameter Hermitian."""
    B = randn(dtype, gen(4), 2, 5, 5)
    W = randn(dtype, gen(5), 5, 5)

    def loss(eig):
        def f(A):
            w, V = eig(A)
            return (w * torch.arange(5.0, dtype=w.dtype)).sum() + (W * (V[..., :2] @ V[..., :2].mH)).real.sum()
        return f

    def param(eig):
        return lambda B: loss(eig)(B + B.mH)

    g = torch.func.grad(param(difflinalg.eigh))(B)
    torch.testing.assert_close(g, torch.func.grad(param(torch.linalg.eigh))(B), rtol=1e-10, atol=1e-10)
    H = B + B.mH
    for uplo in ("L", "U"):
        g_leaf = torch.func.grad(loss(lambda A: difflinalg.eigh(A, uplo)))(H)
        g_torch = torch.func.grad(loss(lambda A: torch.linalg.eigh(A, uplo)))(H)
        torch.testing.assert_close(g_leaf, g_torch, rtol=1e-10, atol=1e-10)
        assert torch.equal(g_leaf, g_leaf.mH)


@pytest.mark.parametrize("dtype", [F64, C128])
@pytest.mark.parametrize("uplo", ["L", "U"])
def test_eigh_derivatives_in_every_direction_against_finite_differences(dtype, uplo):
    """The Hermitian part is linear, so the derivatives are exact in every direction (also
    non-Hermitian ones, and at a non-Hermitian point), in every mode, whatever UPLO says."""
    A = randn(dtype, gen(6), 2, 4, 4)
    W = randn(dtype, gen(7), 4, 4)

    def f(A):
        w, V = difflinalg.eigh(A, uplo)
        return w, (W * (V[..., :1] @ V[..., :1].mH)).real.sum((-2, -1))

    rep = gradcheck(f, A, modes=("vjp", "jvp", "hvp"))
    assert rep.passed and len(rep.records) >= 3
    assert gradcheck(lambda A: difflinalg.eigvalsh(A, uplo), A, modes=("vjp", "jvp")).passed


@pytest.mark.parametrize("dtype", [F64, C128])
def test_svd_gradients_match_torch_thin_and_full(dtype):
    """Losses of the thin factors: the same gradient from the default (full) and the thin call,
    equal to torch's thin one; values only: svdvals."""
    A = randn(dtype, gen(8), 2, 5, 3)
    W = randn(dtype, gen(9), 5, 5)

    def loss(svd):
        def f(A):
            U, S, Vh = svd(A)
            return (S**2 * torch.arange(1.0, 4.0, dtype=S.dtype)).sum() \
                + (W * (U[..., :2] @ U[..., :2].mH)).real.sum()
        return f

    g_ref = torch.func.grad(loss(lambda A: torch.linalg.svd(A, full_matrices=False)))(A)
    for svd in (difflinalg.svd, lambda A: difflinalg.svd(A, False)):
        torch.testing.assert_close(torch.func.grad(loss(svd))(A), g_ref, rtol=1e-10, atol=1e-10)
    gv = torch.func.grad(lambda A: (difflinalg.svdvals(A) ** 3).sum())(A)
    gv_ref = torch.func.grad(lambda A: (torch.linalg.svdvals(A) ** 3).sum())(A)
    torch.testing.assert_close(gv, gv_ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", [F64, C128])
def test_svd_default_and_svdvals_against_finite_differences(dtype):
    """The default (full) call on a batched tall matrix, losses of the thin factors and of the
    complement's span; svdvals: every mode against finite differences."""
    A = randn(dtype, gen(13), 2, 5, 3)

    def f(A):
        U, S, Vh = difflinalg.svd(A)
        Ue = U[..., 3:]
        return S, U[..., :1] @ Vh[..., :1, :], Ue @ Ue.mH

    assert gradcheck(f, A, modes=("vjp", "jvp", "hvp")).passed
    assert gradcheck(difflinalg.svdvals, A, modes=("vjp", "jvp", "hvp")).passed


def test_full_matrices_default_is_loud_on_the_complement_basis():
    """The default returns the square U: a loss on a single extra column (an arbitrary basis
    vector of the complement) raises GaugeError instead of a silent zero gradient."""
    A = randn(C128, gen(10), 5, 3).requires_grad_()
    U, _, _ = difflinalg.svd(A)
    assert U.shape == (5, 5)
    with pytest.raises(GaugeError, match="svd"):
        U[..., 4].abs().sum().backward()


@pytest.mark.parametrize("dtype", [F64, C128])
def test_values_only_are_exact_or_loud_at_ties(dtype):
    """svdvals / eigvalsh at an exact tie: symmetric losses of the tied values are exact (equal to
    torch's gradient), asymmetric ones raise DegenerateSpectrumError; at a
    zero singular value, even functions are exact and |s| raises."""
    H = hermitian_with_spectrum(dtype, gen(11), [1.0, 1.0, 3.0])
    g = torch.func.grad(lambda A: (difflinalg.eigvalsh(A) ** 2).sum())(H)
    torch.testing.assert_close(g, torch.func.grad(lambda A: (torch.linalg.eigvalsh(A) ** 2).sum())(H),
                               rtol=1e-10, atol=1e-10)
    A = H.clone().requires_grad_()
    with pytest.raises(difflinalg.DegenerateSpectrumError):
        difflinalg.eigvalsh(A)[0].backward()
    with pytest.raises(difflinalg.DegenerateSpectrumError):
        difflinalg.svdvals(A)[1].backward()
    # a zero singular value: sum(S**2) = ||A||_F^2 is exact (2 A), the nuclear norm sum(S) raises
    R = with_spectrum(dtype, gen(14), [3.0, 1.0], 5, 3)
    torch.testing.assert_close(torch.func.grad(lambda A: difflinalg.svdvals(A).square().sum())(R), 2 * R,
                               rtol=1e-12, atol=1e-12)
    R1 = R.clone().requires_grad_()
    with pytest.raises(difflinalg.DegenerateSpectrumError):
        difflinalg.svdvals(R1).sum().backward()


def test_bad_options_name_the_argument():
    A = torch.eye(3, dtype=F64)
    for bad in ("x", "Lower", 1):
        with pytest.raises(InputError, match="UPLO"):
            difflinalg.eigvalsh(A, bad)
    with pytest.raises(InputError, match="driver: expected None or one of"):
        difflinalg.svd(A, driver="gesvdx")
    # torch.linalg.svd's driver selects a cuSOLVER method: CUDA tensors only (torch raises too)
    with pytest.raises(InputError, match="driver: 'gesvdj' selects a cuSOLVER method"):
        difflinalg.svdvals(A, driver="gesvdj")
    with pytest.raises(InputError, match="full_matrices"):
        difflinalg.svd(A, "yes")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("driver", [None, "gesvd", "gesvdj", "gesva"])
def test_svd_driver_on_cuda(driver):
    A = randn(F64, gen(12), 2, 5, 3).cuda()
    out, ref = difflinalg.svd(A, False, driver=driver), torch.linalg.svd(A, False, driver=driver)
    torch.testing.assert_close(out.S, ref.S, rtol=0, atol=1e-12)  # the same call
    # grad of ||A||_F^2 = sum(S^2) is 2 U S Vh: 2 A up to the driver's own reconstruction error
    g = torch.func.grad(lambda A: difflinalg.svdvals(A, driver=driver).square().sum())(A)
    res = (out.U * out.S[..., None, :]) @ out.Vh - A
    assert (g - 2 * A).abs().max() <= 2 * res.abs().max() + 1e-12
