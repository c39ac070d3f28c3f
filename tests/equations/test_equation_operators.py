"""Factored operators: factor reuse, adjoint solves, the RARL2 use, explicit gradient formulas."""

import numpy as np
import pytest
import scipy.linalg as sl
import torch
from _eqhelpers import DTYPES, contractive, randn, shifted

import difflinalg as dl
from difflinalg.equations import _operator
from difflinalg.equations._factor import _SchurFn


def rel(x, ref):
    x, ref = np.asarray(x.detach() if torch.is_tensor(x) else x), np.asarray(ref.detach() if torch.is_tensor(ref) else ref)
    return np.abs(x - ref).max() / np.abs(ref).max()


@pytest.fixture
def schur_calls(monkeypatch):
    """Records the shape of every host Schur factorization (each is LAPACK ?gees per matrix)."""
    calls = []
    orig = _SchurFn.forward

    def counting(A, complex_form):
        calls.append(tuple(A.shape))
        return orig(A, complex_form)

    monkeypatch.setattr(_SchurFn, "forward", staticmethod(counting))
    return calls


def test_backward_reuses_the_factors(schur_calls, gen):
    d = torch.float64
    A = shifted(d, 12, 1.0, gen=gen).requires_grad_()
    B = shifted(d, 9, 1.0, gen=gen).requires_grad_()
    C = randn(d, 12, 9, gen=gen).requires_grad_()
    X = dl.solve_sylvester(A, B, C)
    assert len(schur_calls) == 2
    g = torch.autograd.grad((X ** 2).sum(), (A, B, C), create_graph=True)
    torch.autograd.grad(sum((x ** 2).sum() for x in g), (A, B, C))  # double backward
    assert len(schur_calls) == 2  # no refactorization in backward nor double backward
    Q = randn(d, 12, 12, gen=gen)
    schur_calls.clear()
    Xl = dl.solve_continuous_lyapunov(A, Q)
    torch.autograd.grad(Xl.sum(), A)
    assert len(schur_calls) == 1  # one factorization serves A and A^H, forward and backward


def test_schur_form_is_shared_between_operators(schur_calls, gen):
    d = torch.float64
    AF = dl.SchurForm(shifted(d, 30, 1.0, gen=gen))
    assert len(schur_calls) == 1
    for _ in range(3):
        B = shifted(d, 4, 1.0, gen=gen)
        op = dl.SylvesterOperator(AF, B)
        assert op.method == "lapack"
        C = randn(d, 30, 4, gen=gen)
        assert rel(op.solve(C), sl.solve_sylvester(AF.matrix.numpy(), B.numpy(), C.numpy())) < 1e-12
        op2 = dl.SteinOperator(AF.mH, 0.01 * B)
        assert rel(op2(op2.solve(C)), C) < 1e-13
    assert len(schur_calls) == 1 + 3 + 3  # A_F once, then only the small coefficients


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls", [dl.SylvesterOperator, dl.SteinOperator])
@pytest.mark.parametrize("method", ["schur", "schur-torch", "eig", "kron"])
def test_solve_and_adjoint(dtype, cls, method, gen):
    A, B = contractive(dtype, 5, 0.7, gen=gen), contractive(dtype, 4, 0.8, gen=gen)
    if cls is dl.SylvesterOperator:
        A, B = A + 2 * torch.eye(5, dtype=dtype), B + 2 * torch.eye(4, dtype=dtype)
    op = cls(A, B, method=method)
    C = randn(dtype, 3, 5, 4, gen=gen)
    X, Y = op.solve(C), op.solve_adjoint(C)
    assert X.shape == Y.shape == (3, 5, 4)
    assert rel(op(X), C) < 1e-13
    assert rel(op.apply_adjoint(Y), C) < 1e-13
    # the adjoint operator is the operator of the conjugate-transposed coefficients
    Y2 = cls(A.mH, B.mH, method=method).solve(C)
    assert rel(Y, Y2) < 1e-13
    # and it is the adjoint: <Y, L(Z)> = <L^H(Y), Z>
    Z = randn(dtype, 5, 4, gen=gen)
    lhs = (Y[0].conj() * op(Z)).sum()
    rhs = (op.apply_adjoint(Y[0]).conj() * Z).sum()
    assert abs(complex(lhs - rhs)) < 1e-12 * abs(complex(lhs))


@pytest.mark.parametrize("dtype", DTYPES)
def test_gradient_explicit_conjugates(dtype, gen):
    """grad_C of Re<W, X> is L^{-H}(W) and grad_A = -G X^H, computed here with SciPy (catches a
    missing conjugate independently of finite differences)."""
    A, B = shifted(dtype, 6, 2.0, gen=gen), shifted(dtype, 4, 2.0, gen=gen)
    C, W = randn(dtype, 6, 4, gen=gen), randn(dtype, 6, 4, gen=gen)
    a, b, c = (x.clone().requires_grad_() for x in (A, B, C))
    X = dl.solve_sylvester(a, b, c, method="schur")
    (W.conj() * X).real.sum().backward()
    An, Bn, Wn = A.numpy(), B.numpy(), W.numpy()
    G = sl.solve_sylvester(An.conj().T, Bn.conj().T, Wn)
    Xn = X.detach().numpy()
    assert rel(c.grad, G) < 1e-12
    assert rel(a.grad, -G @ Xn.conj().T) < 1e-12
    assert rel(b.grad, -Xn.conj().T @ G) < 1e-12


def test_auto_method_selection(gen):
    d = torch.float64
    assert dl.SylvesterOperator(randn(d, 8, 8, gen=gen), randn(d, 8, 8, gen=gen)).method == "kron"
    assert dl.SylvesterOperator(randn(d, 9, 9, gen=gen), randn(d, 8, 8, gen=gen)).method == "lapack"
    assert dl.SteinOperator(dl.SchurForm(randn(d, 3, 3, gen=gen)), randn(d, 2, 2, gen=gen)).method == "lapack"
    assert dl.SylvesterOperator(randn(d, 3, 3, gen=gen), randn(d, 3, 3, gen=gen), method="schur-torch").method == "torch"
    # batches: the Kronecker LU only for the tinier sizes on the CPU (measured crossover)
    assert dl.SylvesterOperator(randn(d, 100, 8, 8, gen=gen), randn(d, 8, 8, gen=gen)).method == "lapack"
    assert dl.SylvesterOperator(randn(d, 100, 6, 6, gen=gen), randn(d, 6, 6, gen=gen)).method == "kron"
    assert _operator.resolve_method("auto", 8, 8, torch.device("cuda"), False, 1000) == "kron"
    assert _operator.resolve_method("schur", 8, 8, torch.device("cuda"), False) == "torch"


def test_schur_form(gen):
    d = torch.float64
    A = randn(d, 7, 7, gen=gen)
    f = dl.SchurForm(A)
    assert not f.complex_form and f.T.dtype == d
    ev = torch.linalg.eigvals(A)
    key = lambda z: sorted(np.round(z.numpy(), 8), key=lambda w: (w.real, w.imag))  # noqa: E731
    assert np.allclose(key(f.eigvals), key(ev))
    assert np.allclose(key(f.mH.eigvals), key(ev.conj().resolve_conj()))
    assert torch.equal(f.mH.matrix, A.mH)
    fc = f.to_complex()
    assert fc.complex_form and rel(fc.U @ fc.T @ fc.U.mH, A) < 1e-13
    assert rel(f.U @ f.T @ f.U.mH, A) < 1e-13
    with pytest.raises(dl.InputError, match="complex_form"):
        dl.SchurForm(A.to(torch.complex128), complex_form=False)


def test_gradient_through_schur_form(gen):
    d = torch.complex128
    A, B, C = shifted(d, 6, 2.0, gen=gen), shifted(d, 3, 2.0, gen=gen), randn(d, 6, 3, gen=gen)
    a1 = A.clone().requires_grad_()
    dl.SylvesterOperator(dl.SchurForm(a1), B).solve(C).abs().sum().backward()
    a2 = A.clone().requires_grad_()
    dl.solve_sylvester(a2, B, C, method="kron").abs().sum().backward()
    assert rel(a1.grad, a2.grad) < 1e-12


@pytest.mark.parametrize("dtype", DTYPES)
def test_rarl2_discrete_gradient_formula(dtype, gen):
    """The consumer: rarl2-math.md section 4. Autograd through SteinOperator with a shared
    SchurForm of A_F^H must give grad_A = -2 (P12 A_F^H Q12)^H and grad_C = -2 (P12 C_F^H)^H."""
    N, n, p, m = 12, 3, 2, 2
    AF = contractive(dtype, N, 0.8, gen=gen)
    BF, CF = randn(dtype, N, m, gen=gen), randn(dtype, p, N, gen=gen)
    # an output-normal pair (A^H A + C^H C = I): orthonormal columns of [A; C]
    Qn = torch.linalg.qr(randn(dtype, n + p, n, gen=gen))[0]
    A0, C0 = Qn[:n], Qn[n:]
    AFh = dl.SchurForm(AF.mH)
    QF = dl.solve_discrete_lyapunov(AF.mH, CF.mH @ CF)

    def psi(A, C):
        Q12 = dl.SteinOperator(AFh, A).solve(CF.mH @ C)  # Q12 = A_F^H Q12 A + C_F^H C
        Bhat = Q12.mH @ BF
        return torch.trace(BF.mH @ QF @ BF).real - (Bhat.abs() ** 2).sum(), Q12, Bhat

    A, C = A0.clone().requires_grad_(), C0.clone().requires_grad_()
    val, Q12, Bhat = psi(A, C)
    gA, gC = torch.autograd.grad(val, (A, C))
    with torch.no_grad():
        P12 = dl.solve_stein(A0, AF.mH, Bhat @ BF.mH)  # P12 = A P12 A_F^H + B_hat B_F^H
        assert rel(gA, -2 * (P12 @ AF.mH @ Q12).mH) < 1e-12
        assert rel(gC, -2 * (P12 @ CF.mH).mH) < 1e-12
        assert float(val) >= 0


def test_operator_rhs_errors(gen):
    d = torch.float64
    op = dl.SylvesterOperator(randn(d, 4, 4, gen=gen), randn(d, 3, 3, gen=gen))
    with pytest.raises(dl.InputError, match=r"C: expected shape \(\.\.\., 4, 3\)"):
        op.solve(torch.zeros(3, 4, dtype=d))
    with pytest.raises(dl.InputError, match="dtype"):
        op.solve(torch.zeros(4, 3, dtype=torch.float32))
    with pytest.raises(dl.InputError, match="non-finite"):
        op.solve_adjoint(torch.full((4, 3), float("inf"), dtype=d))
    opb = dl.SylvesterOperator(randn(d, 2, 4, 4, gen=gen), randn(d, 3, 3, gen=gen))
    with pytest.raises(dl.InputError, match="does not broadcast"):
        opb.solve(torch.zeros(5, 4, 3, dtype=d))
