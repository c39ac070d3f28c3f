"""Bad input: every error names the argument, what was expected and the fix."""

import pytest
import torch
from _eqhelpers import randn

import difflinalg as dl

d = torch.float64
I3 = torch.eye(3, dtype=d)
ONES = torch.ones(3, 3, dtype=d)
FUNCS = [dl.solve_sylvester, dl.solve_stein]


@pytest.mark.parametrize("fn", FUNCS)
def test_shapes(fn):
    with pytest.raises(dl.InputError, match=r"A: expected a square matrix .* got shape \(3, 4\)"):
        fn(torch.zeros(3, 4, dtype=d), I3, ONES)
    with pytest.raises(dl.InputError, match=r"B: expected a square matrix"):
        fn(I3, torch.zeros(2, 3, dtype=d), ONES)
    with pytest.raises(dl.InputError, match=r"C: expected shape \(\.\.\., 3, 2\) to match A \(3 x 3\) and B \(2 x 2\)"):
        fn(I3, torch.eye(2, dtype=d), ONES)
    with pytest.raises(dl.InputError, match=r"C: expected a matrix"):
        fn(I3, I3, torch.ones(3, dtype=d))
    with pytest.raises(dl.InputError, match="do not broadcast"):
        fn(torch.zeros(2, 3, 3, dtype=d) + I3, I3, torch.ones(4, 3, 3, dtype=d))


@pytest.mark.parametrize("fn", FUNCS)
def test_dtypes_and_values(fn):
    with pytest.raises(dl.InputError, match="share one dtype.*C: float32"):
        fn(I3, I3, torch.ones(3, 3))
    with pytest.raises(dl.InputError, match="dtype int64 is not supported"):
        fn(torch.eye(3, dtype=torch.int64), I3, ONES)
    with pytest.raises(dl.InputError, match="A: contains 1 non-finite"):
        A = I3.clone()
        A[0, 1] = float("nan")
        fn(A, I3, ONES)
    with pytest.raises(dl.InputError, match="C: contains 9 non-finite"):
        fn(I3, I3, ONES * float("inf"))
    with pytest.raises(dl.InputError, match="method: unknown method 'lu'"):
        fn(I3, I3, ONES, method="lu")


def test_lyapunov_shapes():
    with pytest.raises(dl.InputError, match=r"Q: expected shape \(\.\.\., 3, 3\)"):
        dl.solve_continuous_lyapunov(I3, torch.ones(3, 2, dtype=d))
    with pytest.raises(dl.InputError, match="A: expected a square matrix"):
        dl.solve_discrete_lyapunov(torch.ones(3, 2, dtype=d), ONES)


def test_singular_batched_names_batch_index(gen):
    A = randn(d, 3, 2, 2, gen=gen)
    B = randn(d, 3, 2, 2, gen=gen)
    B[2] = -A[2]
    for method in ("schur", "eig", "kron"):
        with pytest.raises(dl.SingularEquationError, match=r"batch index \(2,\).*A and -B share an eigenvalue"):
            dl.solve_sylvester(A, B, torch.ones(2, 2, dtype=d), method=method)


def test_eig_method_refuses_ill_conditioned_eigenvectors(gen):
    J = torch.tensor([[1.0, 1e3, 0], [0, 1, 1e3], [0, 0, 1]], dtype=d) + 1e-9 * randn(d, 3, 3, gen=gen)
    with pytest.raises(dl.InputError, match="too ill-conditioned for method='eig'.*use method='schur'"):
        dl.solve_sylvester(J, I3, ONES, method="eig")
    dl.solve_sylvester(J, I3, ONES, method="schur")  # the stable method solves it


def test_schur_form_needs_schur_method():
    with pytest.raises(dl.InputError, match="SchurForm coefficient needs method 'schur'"):
        dl.SylvesterOperator(dl.SchurForm(I3), I3, method="kron")


def test_check_can_be_disabled():
    # the Kronecker LU of a singular equation with check=False: no eigenvalue test (non-finite X)
    op = dl.SylvesterOperator(I3, -I3, method="kron", check=False)
    assert not bool(torch.isfinite(op.solve(ONES)).all())
