"""StateSpace validation, H2 norms and errors, Hankel singular values, frequency responses."""

import numpy as np
import pytest
import scipy.linalg as sl
import torch

from difflinalg import InputError, UnstableSystemError
from difflinalg.check import gradcheck
from difflinalg.control import (
    StateSpace,
    error_system,
    frequency_response,
    h2_error,
    h2_norm,
    hankel_singular_values,
    is_stable,
    stability_margin,
)

from _controlhelpers import random_system

DTYPES = (torch.float64, torch.complex128)


def _np(x):
    return x.detach().resolve_conj().numpy()


def _h2_scipy(F: StateSpace) -> float:
    A, B, C, D = (_np(x) for x in F.matrices())
    if F.discrete:
        Q = sl.solve_discrete_lyapunov(A.conj().T, C.conj().T @ C)
        return float(np.sqrt(np.trace(B.conj().T @ Q @ B).real + np.linalg.norm(D) ** 2))
    P = sl.solve_continuous_lyapunov(A, -B @ B.conj().T)
    return float(np.sqrt(np.trace(C @ P @ C.conj().T).real))


def _impulse_h2(F: StateSpace, K: int = 4000) -> float:
    """Discrete-time H2 norm from the impulse response (independent of any Gramian)."""
    A, B, C, D = (_np(x) for x in F.matrices())
    tot, X = np.linalg.norm(D) ** 2, B.copy()
    for _ in range(K):
        tot += np.linalg.norm(C @ X) ** 2
        X = A @ X
    return float(np.sqrt(tot))


# -- StateSpace ----------------------------------------------------------------------------------
def test_statespace_shapes_and_repr():
    F = random_system(5, 2, 3)
    assert (F.order, F.n_outputs, F.n_inputs) == (5, 2, 3)
    assert torch.equal(F.D, torch.zeros(2, 3, dtype=torch.float64))
    assert "order=5" in repr(F) and "continuous" in repr(F)
    Fc = F.to(torch.complex128)
    assert Fc.is_complex and Fc.dtype == torch.complex128


def test_statespace_accepts_numpy_and_sparse():
    import scipy.sparse as sp

    A = -np.eye(3)
    F = StateSpace(sp.csr_matrix(A), np.ones((3, 1)), np.ones((1, 3)))
    assert F.A.dtype == torch.float64 and float(h2_norm(F)) == pytest.approx(np.sqrt(9 / 2))


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((torch.eye(3), torch.ones(2, 1), torch.ones(1, 3)), {}, "B: expected 3 rows"),
        ((torch.eye(3), torch.ones(3, 1), torch.ones(1, 2)), {}, "C: expected 3 columns"),
        ((torch.ones(3, 2), torch.ones(3, 1), torch.ones(1, 3)), {}, "A: expected a square matrix"),
        ((torch.eye(3), torch.ones(3, 1), torch.ones(1, 3), torch.ones(2, 2)), {}, r"D: expected shape \(\.\.\., 1, 1\)"),
        ((torch.eye(3), torch.ones(3, 1), torch.ones(1, 3)), {"time": "sampled"}, "time: expected"),
        ((torch.eye(3, dtype=torch.float64), torch.ones(3, 1, dtype=torch.float32), torch.ones(1, 3)), {}, "one dtype"),
        ((torch.full((3, 3), float("nan")), torch.ones(3, 1), torch.ones(1, 3)), {}, "non-finite"),
        ((torch.eye(3, dtype=torch.int64), torch.ones(3, 1), torch.ones(1, 3)), {}, "dtype int64 is not supported"),
    ],
)
def test_statespace_bad_input(args, kwargs, match):
    with pytest.raises(InputError, match=match):
        StateSpace(*args, **kwargs)


def test_error_system_blocks():
    F, H = random_system(4, seed=1), random_system(2, seed=2)
    E = error_system(F, H)
    assert E.order == 6
    w = torch.tensor([0.3, 2.0], dtype=torch.float64)
    assert torch.allclose(frequency_response(E, w), frequency_response(F, w) - frequency_response(H, w))
    with pytest.raises(InputError, match="sizes differ"):
        error_system(F, random_system(2, p=1, seed=3))
    with pytest.raises(InputError, match="time domains differ"):
        error_system(F, random_system(2, discrete=True, seed=3))


# -- stability -----------------------------------------------------------------------------------
def test_stability_margin():
    A = torch.diag(torch.tensor([-1.0, -0.25, -3.0], dtype=torch.float64))
    F = StateSpace(A, torch.ones(3, 1, dtype=torch.float64), torch.ones(1, 3, dtype=torch.float64))
    assert stability_margin(F) == pytest.approx(0.25) and is_stable(F)
    Fd = StateSpace(A / 4, F.B, F.C, time="discrete")
    assert stability_margin(Fd) == pytest.approx(0.25)
    assert not is_stable(StateSpace(-A, F.B, F.C))


def test_unstable_target_names_the_pole():
    A = torch.diag(torch.tensor([-1.0, 0.5], dtype=torch.float64))
    F = StateSpace(A, torch.ones(2, 1, dtype=torch.float64), torch.ones(1, 2, dtype=torch.float64))
    with pytest.raises(UnstableSystemError, match="pole 0.5 has real part 0.5"):
        h2_norm(F)
    Fd = StateSpace(torch.diag(torch.tensor([0.5, -1.25], dtype=torch.float64)), F.B, F.C, time="discrete")
    with pytest.raises(UnstableSystemError, match="pole -1.25 has modulus 1.25"):
        h2_norm(Fd)


def test_continuous_nonzero_d_is_refused():
    F = random_system(3, with_d=True)
    with pytest.raises(InputError, match="non-zero feedthrough D has an infinite H2 norm"):
        h2_norm(F)


# -- H2 norm and error ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("discrete", [False, True])
def test_h2_norm_matches_scipy(dtype, discrete):
    F = random_system(7, 2, 3, discrete=discrete, dtype=dtype, seed=4)
    assert float(h2_norm(F)) == pytest.approx(_h2_scipy(F), rel=1e-12)
    if discrete:
        assert float(h2_norm(F)) == pytest.approx(_impulse_h2(F), rel=1e-10)


def test_h2_norm_batched():
    F = random_system(5, discrete=True, seed=5, batch=(3,))
    vals = h2_norm(F)
    assert vals.shape == (3,)
    for i in range(3):
        Fi = StateSpace(F.A[i], F.B[i], F.C[i], F.D[i], time="discrete")
        assert float(vals[i]) == pytest.approx(_h2_scipy(Fi), rel=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("discrete", [False, True])
def test_h2_error_methods_agree_with_error_system(dtype, discrete):
    F = random_system(8, 2, 2, discrete=discrete, dtype=dtype, seed=6)
    H = random_system(3, 2, 2, discrete=discrete, dtype=dtype, seed=7)
    ref = _h2_scipy(error_system(F, H))
    assert float(h2_error(F, H, method="gramian")) == pytest.approx(ref, rel=1e-11)
    assert float(h2_error(F, H, method="residues")) == pytest.approx(ref, rel=1e-11)
    assert float(h2_error(F, H)) == pytest.approx(ref, rel=1e-11)
    assert float(h2_error(F, H, relative=True)) == pytest.approx(ref / _h2_scipy(F), rel=1e-11)


def test_h2_error_residues_keeps_digits_of_small_errors():
    """A model that differs from the target by 1e-7 relative: the residue formula and the
    error system's Gramian both see it, but only the residues give it to 1e-6 relative."""
    F = random_system(6, 1, 1, seed=8)
    H = StateSpace(F.A, F.B * (1 + 1e-7), F.C)
    exact = 1e-7 * float(h2_norm(F))
    assert float(h2_error(F, H, method="residues")) == pytest.approx(exact, rel=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_h2_norm_gradcheck(dtype):
    F = random_system(4, 2, 2, dtype=dtype, seed=9)
    gradcheck(lambda A, B, C: h2_norm(StateSpace(A, B, C)), F.A, F.B, F.C,
              modes=("vjp", "jvp", "hvp", "hvp_rev"), max_step=1e-3)


@pytest.mark.parametrize("dtype", DTYPES)
def test_h2_error_gradcheck_discrete(dtype):
    F = random_system(4, 1, 2, discrete=True, dtype=dtype, seed=10)
    H = random_system(2, 1, 2, discrete=True, dtype=dtype, seed=11)
    gradcheck(lambda A, B, C, D: h2_error(F, StateSpace(A, B, C, D, time="discrete")),
              H.A, H.B, H.C, H.D, modes=("vjp", "jvp", "hvp"), max_step=1e-3)


# -- Hankel singular values, frequency response ----------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("discrete", [False, True])
def test_hankel_singular_values_match_scipy(dtype, discrete):
    F = random_system(6, 2, 2, discrete=discrete, dtype=dtype, seed=12)
    A, B, C, _ = (_np(x) for x in F.matrices())
    if discrete:
        P = sl.solve_discrete_lyapunov(A, B @ B.conj().T)
        Q = sl.solve_discrete_lyapunov(A.conj().T, C.conj().T @ C)
    else:
        P = sl.solve_continuous_lyapunov(A, -B @ B.conj().T)
        Q = sl.solve_continuous_lyapunov(A.conj().T, -C.conj().T @ C)
    ref = np.sort(np.sqrt(np.abs(np.linalg.eigvals(P @ Q))))[::-1]
    assert np.allclose(hankel_singular_values(F).numpy(), ref, rtol=1e-9)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("discrete", [False, True])
def test_frequency_response(dtype, discrete):
    F = random_system(5, 2, 3, discrete=discrete, dtype=dtype, seed=13)
    w = torch.tensor([0.0, 0.7, 3.0], dtype=torch.float64)
    G = frequency_response(F, w)
    assert G.shape == (3, 2, 3)
    A, B, C, D = (_np(x) for x in F.matrices())
    for k, wk in enumerate(w.tolist()):
        s = np.exp(1j * wk) if discrete else 1j * wk
        ref = C @ np.linalg.solve(s * np.eye(5) - A, B) + D
        assert np.allclose(G[k].numpy(), ref, rtol=1e-12)
    with pytest.raises(InputError, match="w: expected a real 1-D tensor"):
        frequency_response(F, torch.ones(2, 2))


def test_frequency_response_gradcheck():
    F = random_system(3, 1, 1, dtype=torch.complex128, seed=14)
    w = torch.tensor([0.5, 2.0], dtype=torch.float64)
    gradcheck(lambda A, B, C: frequency_response(StateSpace(A, B, C), w), F.A, F.B, F.C,
              modes=("vjp", "jvp", "hvp", "hvp_rev"))


def test_vmap_of_h2_norm():
    F = random_system(4, 1, 1, seed=15, batch=(3,))
    out = torch.func.vmap(lambda A, B, C: h2_norm(StateSpace(A, B, C)))(F.A, F.B, F.C)
    assert torch.allclose(out, h2_norm(F), rtol=1e-12)


@pytest.mark.parametrize("discrete", [False, True])
def test_h2_error_precise_agrees_and_resolves_tiny_errors(discrete):
    """``precise=True`` (residues in extended precision) agrees with the other methods on ordinary
    errors, and gives an error of 1e-9 ||F|| to 1e-4 (in double precision the residue sum's
    rounding, ~eps ||F||^2, is above its square: it reads 0 or 1e-8)."""
    import numpy as np

    F = random_system(8, 2, 2, discrete=discrete, seed=6)
    H = random_system(3, 2, 2, discrete=discrete, seed=7)
    ref = _h2_scipy(error_system(F, H))
    assert float(h2_error(F, H, precise=True)) == pytest.approx(ref, rel=1e-11)
    if np.finfo(np.longdouble).eps >= np.finfo(np.float64).eps:
        pytest.skip("no extended precision on this platform")
    G = random_system(6, 1, 1, discrete=discrete, seed=8)
    Hs = StateSpace(G.A, G.B * (1 + 1e-9), G.C, G.D, time=G.time)
    exact = 1e-9 * float(h2_norm(StateSpace(G.A, G.B, G.C, time=G.time)))
    assert float(h2_error(G, Hs, precise=True)) == pytest.approx(exact, rel=1e-4)


def test_h2_error_precise_bad_input():
    F = random_system(4, 1, 1, seed=1)
    with pytest.raises(InputError, match="precise"):
        h2_error(F, F, method="gramian", precise=True)
