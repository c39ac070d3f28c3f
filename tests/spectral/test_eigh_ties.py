"""The tie checks of the eigh family (``_eigh_ties``): the issue's reproducers, the criteria and
their messages, the gauge of complex eigenvectors, torch.func, second order at ties, the
single-precision policy, conjugate views, and ``eigh_function`` (the exact path)."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.autograd.forward_ad as fwAD

import difflinalg._utils as dl_utils
from difflinalg import (
    DegenerateSpectrumError,
    GaugeError,
    GaugeWarning,
    InputError,
    PrecisionWarning,
    TransformCheckWarning,
    eigh,
    eigh_function,
    eigh_subspace,
    subspace_projector,
)
from difflinalg.check import gradcheck, randn
from difflinalg.spectral._cases_eigh import hermitian_with_spectrum
from difflinalg.spectral._eigh_gaps import eigh_gaps
from difflinalg.spectral._gaps import default_tol

from _helpers import assert_vmap_grad_and_jvp, gen

F32, F64, C64, C128 = torch.float32, torch.float64, torch.complex64, torch.complex128
ALL = ("vjp", "jvp", "hvp", "hvp_rev", "jvp2")


def sym(n: int, seed: int, dtype=F64) -> torch.Tensor:
    W = randn(dtype, gen(seed), n, n)
    return W + W.mH


def sin_series(B: torch.Tensor) -> torch.Tensor:
    term, F = B, B.clone()
    for k in range(1, 40):
        term = -(term @ B @ B) / ((2 * k) * (2 * k + 1))
        F = F + term
    return F


def test_default_tolerance_is_rounding_level():
    """None: ties up to 4 n eps max|w| (the SVD's constant; 80 eps here with max|w| = 5); a real
    gap a little above is resolved; 0.0: exact ties only."""
    e = torch.finfo(F64).eps
    assert default_tol(None, 4, F64) == 4 * 4 * e and default_tol(0.0, 4, F64) == 0.0
    for split, tied in ((0.0, True), (2 * e, True), (60 * e, True), (100 * e, False), (1e3 * e, False)):
        w = torch.tensor([1.0, 1.0 + split, 3.0, 5.0], dtype=F64)
        assert bool(eigh_gaps(w, default_tol(None, 4, F64)).cluster[0, 1]) == tied, split
    assert not bool(eigh_gaps(torch.tensor([1.0, 1.0 + 4 * e, 3.0], dtype=F64), 0.0).cluster[0, 1])


@pytest.mark.parametrize("rotated", [False, True])
def test_issue_reproducer_raises_and_eigh_function_is_exact(rotated):
    """<W, V sin(w) V^H> at diag(1, 1, 3, 5) (and rotated, the tie split at rounding level): a
    DegenerateSpectrumError pointing to eigh_function, whose gradient is cos-weighted exactly
    (against finite differences of the power series of sin)."""
    w0 = [1.0, 1.0, 3.0, 5.0]
    A = hermitian_with_spectrum(F64, gen(0), w0) if rotated else torch.diag(torch.tensor(w0, dtype=F64))
    W = sym(4, 1)
    A1 = A.clone().requires_grad_()
    w, V = eigh(A1)
    with pytest.raises(DegenerateSpectrumError, match="eigh_function"):
        torch.autograd.grad((W * ((V * torch.sin(w)) @ V.T)).sum(), A1)
    g, = torch.autograd.grad((W * eigh_function(A1, torch.sin, torch.cos)).sum(), A1)
    rep = gradcheck(lambda A: (W * sin_series(0.5 * (A + A.mT))).sum(), A)
    assert rep.passed
    h = 1e-6
    for i, j in ((0, 1), (0, 0), (2, 3)):
        E = torch.zeros(4, 4, dtype=F64)
        E[i, j] = 1.0
        fd = ((W * sin_series(0.5 * ((A + h * E) + (A + h * E).T))).sum()
              - (W * sin_series(0.5 * ((A - h * E) + (A - h * E).T))).sum()) / (2 * h)
        assert abs(float(g[i, j]) - float(fd)) < 1e-8
    if not rotated:  # the issue's number: d/dA_01 = cos(1) W_01
        assert abs(float(g[0, 1]) - float(torch.cos(torch.tensor(1.0, dtype=F64)) * W[0, 1])) < 1e-12


def test_message_names_batch_cluster_cotangent_and_fix():
    A = torch.stack([hermitian_with_spectrum(F64, gen(2), [0.0, 1.0, 3.0, 5.0]),
                     hermitian_with_spectrum(F64, gen(3), [1.0, 1.0, 3.0, 5.0])]).requires_grad_()
    W = sym(4, 4)
    w, V = eigh(A)
    with pytest.raises(DegenerateSpectrumError) as info:
        (W * ((V * torch.sin(w)[..., None, :]) @ V.mT)).sum().backward()
    msg = str(info.value)
    for part in ("batch index (1,)", "w[[0, 1]] ~ 1", "gw[[0, 1]] = [", "eigh_function",
                 "degeneracy_tol=0.0"):
        assert part in msg, (part, msg)


@pytest.mark.parametrize("dtype", [F64, C128])
def test_coupling_with_equal_value_cotangents(dtype):
    """A diagonal, W all ones: the eigenvalue cotangents of <W, V sin(w) V^H> are equal in the
    tie (criterion 2 is met); the coupling criterion raises."""
    A = torch.diag(torch.tensor([1.0, 1.0, 3.0, 5.0], dtype=F64)).to(dtype).requires_grad_()
    W = torch.ones(4, 4, dtype=dtype)
    w, V = eigh(A)
    with pytest.raises(DegenerateSpectrumError, match="both an eigenvalue cotangent"):
        (W * ((V * torch.sin(w).to(dtype)) @ V.mH)).real.sum().backward()


def test_value_and_vector_loss_of_one_cluster():
    """The documented false alarm: a symmetric eigenvalue loss and an eigenspace loss of one
    cluster from the same call raise; from two calls exact (gradcheck in every mode)."""
    A = hermitian_with_spectrum(F64, gen(5), [1.0, 1.0, 3.0, 5.0])
    W = sym(4, 6)

    def one_call(A):
        w, V = eigh(A)
        return w.square().sum() + (W * (V[:, :2] @ V[:, :2].T)).sum()

    def two_calls(A):
        V = eigh(A).eigenvectors
        return eigh(A).eigenvalues[:2].sum() + (W * (V[:, :2] @ V[:, :2].T)).sum()

    A1 = A.clone().requires_grad_()
    with pytest.raises(DegenerateSpectrumError, match="separate eigh calls"):
        one_call(A1).backward()
    assert gradcheck(two_calls, A, modes=ALL, max_step=1e-3).passed


def test_individual_eigenvalue_of_a_cluster_raises():
    """w[1] at a double eigenvalue is not differentiable (a max of the cluster); the sum is."""
    A = hermitian_with_spectrum(F64, gen(7), [1.0, 1.0, 3.0]).requires_grad_()
    with pytest.raises(DegenerateSpectrumError, match="different cotangents"):
        eigh(A).eigenvalues[1].backward()
    g, = torch.autograd.grad(eigh(A).eigenvalues[:2].sum(), A)
    P = eigh(A.detach()).eigenvectors[:, :2]
    assert torch.allclose(g, P @ P.T, atol=1e-12)


@pytest.mark.parametrize("op", ["eigh", "eigh_subspace"])
def test_complex_phase_dependence_is_a_gauge_error(op):
    """The issue's eigh(H)[1][1, 0].imag: depends on the phase of an eigenvector: GaugeError
    (torch raises too); inside torch.func NaN and TransformCheckWarning once; a phase-free loss
    of the same vector passes."""
    H = hermitian_with_spectrum(C128, gen(8), [0.0, 1.0, 3.0])

    def vec(A):
        return eigh(A)[1][:, 0] if op == "eigh" else eigh_subspace(A, 1)[1][:, 0]

    H1 = H.clone().requires_grad_()
    with pytest.raises(GaugeError, match="gauge|basis"):
        vec(H1)[1].imag.backward()
    torch.autograd.grad(vec(H1)[1].abs().square(), H1)
    dl_utils._warned.discard(f"{op}-ties")
    with pytest.warns(TransformCheckWarning, match="cannot raise"):
        g = torch.func.grad(lambda A: vec(A)[1].imag)(H)
    assert torch.isnan(g).all()


def test_subspace_basis_dependence_is_a_gauge_error():
    """eigh_subspace does not differentiate the basis: one column of a kept block of distinct
    eigenvalues raises (it used to return the rotation-invariant part silently); gauge='warn'
    warns, 'ignore' is silent; eigh gives the exact derivative of the same loss."""
    A = hermitian_with_spectrum(F64, gen(9), [0.0, 1.0, 3.0, 5.0])
    x = randn(F64, gen(10), 4)

    def loss(A, gauge="error"):
        return (eigh_subspace(A, 2, gauge=gauge)[1][:, 0] @ x).square()

    A1 = A.clone().requires_grad_()
    with pytest.raises(GaugeError, match="use difflinalg.eigh|Use difflinalg.eigh"):
        loss(A1).backward()
    with pytest.warns(GaugeWarning):
        torch.autograd.grad(loss(A1, "warn"), A1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        torch.autograd.grad(loss(A1, "ignore"), A1)
    assert gradcheck(lambda A: (eigh(A)[1][:, 0] @ x).square(), A).passed


def test_inside_torch_func_nan_per_matrix():
    """vmap(grad): the matrix with a coupled tie gets NaN, the other its exact gradient (equal to
    eigh_function's)."""
    A = torch.stack([hermitian_with_spectrum(F64, gen(11), [0.0, 1.0, 3.0, 5.0]),
                     hermitian_with_spectrum(F64, gen(12), [1.0, 1.0, 3.0, 5.0])])
    W = sym(4, 13)

    def f(A):
        w, V = eigh(A)
        return (W * ((V * torch.sin(w)) @ V.T)).sum()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TransformCheckWarning)
        g = torch.func.vmap(torch.func.grad(f))(A)
    assert torch.isnan(g[1]).all() and torch.isfinite(g[0]).all()
    g0 = torch.func.grad(lambda A: (W * eigh_function(A, torch.sin, torch.cos)).sum())(A[0])
    assert torch.allclose(g[0], g0, rtol=1e-10, atol=1e-12)


def _curved(A):
    return eigh(A).eigenvalues.square().sum()  # ||A||_F^2, curved in the values of the tie


def test_second_order_curved_loss_at_a_tie():
    """The issue's Hessian of sum(w**2) at an exact tie: first order exact (2 A), every second
    derivative raises (double backward, forward-over-reverse) or is NaN (torch.func.hessian);
    the exact forms it points to give 2 I; away from the tie the Hessian is 2 I."""
    A = torch.diag(torch.tensor([1.0, 1.0, 3.0, 5.0], dtype=F64))
    A1 = A.clone().requires_grad_()
    g, = torch.autograd.grad(_curved(A1), A1, create_graph=True)
    assert torch.allclose(g, 2 * A, atol=1e-12)
    with pytest.raises(DegenerateSpectrumError, match="curved"):
        torch.autograd.grad(g.sum(), A1)
    with pytest.raises(DegenerateSpectrumError, match="curved"):
        torch.autograd.functional.hessian(_curved, A)
    with fwAD.dual_level(), pytest.raises(DegenerateSpectrumError, match="curved"):
        Ad = fwAD.make_dual(A.clone().requires_grad_(), torch.eye(4, dtype=F64))
        torch.autograd.grad(_curved(Ad), Ad, create_graph=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TransformCheckWarning)
        assert torch.isnan(torch.func.hessian(_curved)(A)).any()
    H_exact = torch.func.hessian(
        lambda A: torch.diagonal(eigh_function(A, torch.square, lambda x: 2 * x)).sum())(A)
    # d^2/dA^2 tr(herm(A)^2): the Hessian of the symmetric part
    I4 = torch.eye(4, dtype=F64)
    ref = torch.einsum("ik,jl->ijkl", I4, I4) + torch.einsum("il,jk->ijkl", I4, I4)
    assert torch.allclose(H_exact, ref, atol=1e-10)
    B = hermitian_with_spectrum(F64, gen(14), [1.0, 1.0 + 1e-3, 3.0, 5.0])
    assert torch.allclose(torch.func.hessian(_curved)(B), ref, atol=1e-8)


def test_second_order_linear_losses_at_a_tie():
    """Losses of the class linear in the cluster's eigenvalues: the Hessians by
    forward-over-reverse, double backward and reverse-over-reverse agree and are symmetric."""
    A = hermitian_with_spectrum(F64, gen(15), [1.0, 1.0, 3.0, 5.0])

    def lin(A):
        V = eigh(A).eigenvectors
        return eigh(A).eigenvalues[:2].sum() + (V[:, :2] @ V[:, :2].T).diagonal().cumsum(0).sum()

    H1 = torch.func.hessian(lin)(A)
    H2 = torch.autograd.functional.hessian(lin, A)
    H3 = torch.func.jacrev(torch.func.jacrev(lin))(A)
    assert torch.isfinite(H1).all()
    assert torch.allclose(H1, H2, atol=1e-10) and torch.allclose(H1, H3, atol=1e-10)
    assert torch.allclose(H1.reshape(16, 16), H1.reshape(16, 16).T, atol=1e-10)


@pytest.mark.parametrize("dtype", [F32, C64])
def test_single_precision_policy(dtype):
    """float32 at the issue's gaps (<= 1e-8 gave O(1) errors): gaps below 4 n eps max|w| are
    ties (the pair's projector exact without warning, one of its vectors a GaugeError); gaps that
    single precision cannot resolve but that are not ties warn (PrecisionWarning) for the losses
    that use them, not for the eigenvalues."""
    hi = C128 if dtype.is_complex else F64
    W = sym(4, 16, hi)
    for gap, tie in ((1e-8, True), (1e-6, True), (3e-5, False)):
        A = hermitian_with_spectrum(hi, gen(17), [1.0, 1.0 + gap, 3.0, 5.0])
        A32 = A.to(dtype)

        def pair(A):
            V = eigh(A)[1][:, :2]
            return (W.to(A.dtype).conj() * (V @ V.mH)).real.sum()

        def one(A):
            V = eigh(A)[1][:, :1]
            return (W.to(A.dtype).conj() * (V @ V.mH)).real.sum()

        A1 = A32.clone().requires_grad_()
        if tie:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                g, = torch.autograd.grad(pair(A1), A1)
            g_ref = torch.func.grad(pair)(A)
            assert (g.to(hi) - g_ref).norm() <= 1e-4 * g_ref.norm()
            with pytest.raises(GaugeError):
                one(A1).backward()
        else:
            with pytest.warns(PrecisionWarning, match="float32|complex64"):
                torch.autograd.grad(one(A1), A1)
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                torch.autograd.grad(eigh(A1)[0].sum(), A1)
    # the subspace ops: a split gap single precision cannot resolve warns
    A = hermitian_with_spectrum(hi, gen(18), [1.0, 1.0 + 3e-5, 3.0, 5.0]).to(dtype).requires_grad_()
    with pytest.warns(PrecisionWarning, match="subspace_projector"):
        torch.autograd.grad((W.to(dtype).conj() * subspace_projector(A, 1)).real.sum(), A)


@pytest.mark.parametrize("view", ["mH", "conj"])
def test_conjugate_views(view):
    """eigh(Z.mH), eigh(H.conj()) and the subspace ops / eigh_function on such views (they
    failed in view_as_real): values and gradients equal those of the resolved tensor."""
    Z = randn(C128, gen(19), 4, 4)
    H = Z + Z.mH

    def as_view(Y):
        return Y.mH if view == "mH" else Y.conj()

    assert as_view(H).is_conj()
    for fn in (lambda A: eigh(A)[0].sum() + eigh(A)[1][:, -1].abs().square()[0],
               lambda A: eigh_subspace(A, 2)[0].sum(),
               lambda A: subspace_projector(A, 2).real.sum(),
               lambda A: eigh_function(A, torch.sin, torch.cos).real.sum()):
        Y = H.clone().requires_grad_()
        g, = torch.autograd.grad(fn(as_view(Y)), Y)
        g_ref, = torch.autograd.grad(fn(as_view(Y).resolve_conj()), Y)
        assert torch.allclose(fn(as_view(H)), fn(as_view(H).resolve_conj()))
        assert torch.allclose(g, g_ref)


@pytest.mark.parametrize("dtype", [F64, C128])
def test_eigh_function_all_modes_at_ties(dtype):
    """eigh_function at an exact and a rotated tie: every mode against finite differences,
    batched; vmap(grad) and jvp agree."""
    A = torch.stack([torch.diag(torch.tensor([1.0, 1.0, 3.0, 5.0], dtype=F64)).to(dtype),
                     hermitian_with_spectrum(dtype, gen(20), [1.0, 1.0, 1.0, 2.0])])
    W = sym(4, 21, dtype)

    def fn(A):
        return eigh_function(A, torch.sin, torch.cos)

    assert gradcheck(fn, A, modes=ALL).passed
    assert_vmap_grad_and_jvp(lambda A: (W.conj() * fn(A)).real.sum(), A, randn(dtype, gen(22), 4, 4))


def test_eigh_function_bad_input():
    with pytest.raises(InputError, match="f: expected a callable"):
        eigh_function(torch.eye(3, dtype=F64), 3.0, torch.cos)
    with pytest.raises(InputError, match="df: expected a callable"):
        eigh_function(torch.eye(3, dtype=F64), torch.sin, None)
    with pytest.raises(InputError, match="A: expected a square matrix"):
        eigh_function(torch.ones(3, 4, dtype=F64), torch.sin, torch.cos)
    with pytest.raises(InputError, match="A: contains 1 non-finite"):
        eigh_function(torch.tensor([[1.0, float("nan")], [0.0, 1.0]], dtype=F64), torch.sin, torch.cos)
