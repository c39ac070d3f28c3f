"""Validation of matrix-equation arguments, and the singularity and stability checks.

Shape and dtype checks always run. Value checks (finiteness, the eigenvalue-gap test that detects a
singular equation, stability of a Lyapunov coefficient) need a host synchronisation and are skipped
inside ``torch.func`` transforms, as everywhere in difflinalg (``docs/conventions.md``).

When is an equation singular? ``A X + X B = C`` has a unique solution iff no eigenvalue of ``A`` is
an eigenvalue of ``-B``; ``X - A X B = C`` iff no product ``lambda_i(A) mu_j(B)`` equals 1. Computed
eigenvalues carry errors of order ``eps * ||A||``, so the test is against a tolerance:

    Sylvester:  min |lambda_i + mu_j|      <= tol = max(m, n) * eps * (||A||_F + ||B||_F)
    Stein:      min |1 - lambda_i mu_j|    <= tol = max(m, n) * eps * (1 + ||A||_F ||B||_F)

raises ``SingularEquationError`` naming the closest pair. Gaps above ``tol`` are solved (see the
package docstring for what accuracy to expect).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .._errors import InputError, SingularEquationError, UnstableSystemError
from .._utils import check_matrix, check_same_dtype, eps, is_wrapped


def validate_equation(A: Tensor, B: Tensor, C: Tensor, names=("A", "B", "C")) -> tuple[Tensor, Tensor, Tensor]:
    """Check coefficient shapes (square), right-hand side shape, dtype, device, batch broadcast."""
    na, nb, nc = names
    A = check_matrix(A, na, square=True)
    B = check_matrix(B, nb, square=True)
    C = check_matrix(C, nc)
    check_same_dtype(**{na: A, nb: B, nc: C})
    check_same_device(**{na: A, nb: B, nc: C})
    m, n = A.shape[-1], B.shape[-1]
    if tuple(C.shape[-2:]) != (m, n):
        raise InputError(
            f"{nc}: expected shape (..., {m}, {n}) to match {na} ({m} x {m}) and {nb} ({n} x {n}), "
            f"got {tuple(C.shape)}"
        )
    batch_shape(**{na: A, nb: B, nc: C})
    return A, B, C


def validate_coefficients(A: Tensor, B: Tensor, names=("A", "B")) -> tuple[Tensor, Tensor]:
    na, nb = names
    A = check_matrix(A, na, square=True)
    B = check_matrix(B, nb, square=True)
    check_same_dtype(**{na: A, nb: B})
    check_same_device(**{na: A, nb: B})
    batch_shape(**{na: A, nb: B})
    return A, B


def check_same_device(**tensors: Tensor) -> None:
    devs = {k: v.device for k, v in tensors.items()}
    if len(set(devs.values())) > 1:
        desc = ", ".join(f"{k}: {d}" for k, d in devs.items())
        raise InputError(f"arguments must be on one device, got {desc}; move them with .to(device)")


def broadcast(*shapes) -> tuple[int, ...]:
    """Broadcast shape of several shapes (plain Python: cheaper than ``torch.broadcast_shapes``
    for the few short shapes of every call); raises ``ValueError`` if they do not broadcast."""
    nd = max((len(s) for s in shapes), default=0)
    out = [1] * nd
    for s in shapes:
        for i, d in enumerate(s, nd - len(s)):
            if d != 1:
                if out[i] not in (1, d):
                    raise ValueError("shapes do not broadcast")
                out[i] = d
    return tuple(out)


def batch_shape(**tensors: Tensor) -> tuple[int, ...]:
    """Broadcast batch shape of matrices (all but the last two dimensions)."""
    try:
        return broadcast(*(tuple(t.shape[:-2]) for t in tensors.values()))
    except ValueError:
        desc = ", ".join(f"{k}: {tuple(t.shape)}" for k, t in tensors.items())
        raise InputError(
            f"batch dimensions do not broadcast ({desc}); leading dimensions must be equal or 1"
        ) from None


def _fmt(z: complex) -> str:
    z = complex(z)
    return f"{z.real:.6g}{z.imag:+.6g}j"


def equation_text(kind: str, na: str = "A", nb: str = "B") -> str:
    if kind == "sylvester":
        return f"Sylvester equation {na} X + X {nb} = C"
    return f"Stein equation X - {na} X {nb} = C"


def check_nonsingular(kind: str, eig_a: Tensor, eig_b: Tensor, A: Tensor, B: Tensor,
                      names=("A", "B"), hint: str = "") -> None:
    """Raise ``SingularEquationError`` if an eigenvalue pair makes the equation (numerically)
    singular. ``eig_a`` (..., m) and ``eig_b`` (..., n) are the eigenvalues of A and B. Runs on the
    host (a few numbers per matrix), skipped inside torch.func transforms."""
    if any(is_wrapped(t) for t in (eig_a, eig_b, A, B)):
        return
    m, n = eig_a.shape[-1], eig_b.shape[-1]
    if m == 0 or n == 0:
        return
    ea = eig_a.detach().resolve_conj().cpu().numpy().astype(np.complex128)
    eb = eig_b.detach().resolve_conj().cpu().numpy().astype(np.complex128)
    fa = torch.linalg.matrix_norm(A.detach()).cpu().numpy().astype(np.float64)
    fb = torch.linalg.matrix_norm(B.detach()).cpu().numpy().astype(np.float64)
    batch = np.broadcast_shapes(ea.shape[:-1], eb.shape[:-1], fa.shape, fb.shape)
    ea, eb = np.broadcast_to(ea, batch + (m,)), np.broadcast_to(eb, batch + (n,))
    fa, fb = np.broadcast_to(fa, batch), np.broadcast_to(fb, batch)
    e = eps(A.dtype)
    if kind == "sylvester":
        gap = np.abs(ea[..., :, None] + eb[..., None, :])
        tol = max(m, n) * e * (fa + fb)
    else:
        gap = np.abs(1 - ea[..., :, None] * eb[..., None, :])
        tol = max(m, n) * e * (1 + fa * fb)
    gmin = gap.reshape(batch + (m * n,)).min(-1)
    bad = gmin <= tol
    if not bad.any():
        return
    # Worst offender: the smallest gap relative to its tolerance.
    ratio = np.where(bad, gmin / np.maximum(tol, 1e-300), np.inf).reshape(-1)
    flat = int(ratio.argmin())
    bidx = tuple(int(i) for i in np.unravel_index(flat, batch)) if batch else ()
    g = gap.reshape(-1, m * n)[flat]
    k = int(g.argmin())
    i, j = divmod(k, n)
    la, lb = ea.reshape(-1, m)[flat][i], eb.reshape(-1, n)[flat][j]
    na, nb = names
    where = f" (batch index {bidx})" if bidx else ""
    if kind == "sylvester":
        what = (f"{na} and -{nb} share an eigenvalue: closest pair lambda_{na}[{i}] = {_fmt(la)}, "
                f"-lambda_{nb}[{j}] = {_fmt(-lb)}, |lambda_{na} + lambda_{nb}| = {g[k]:.3e}")
        fix = (f"shift one coefficient (e.g. {nb} + delta * I) so that the spectra of {na} and -{nb} "
               "are disjoint")
    else:
        what = (f"an eigenvalue of {na} times an eigenvalue of {nb} equals 1: closest pair "
                f"lambda_{na}[{i}] = {_fmt(la)}, lambda_{nb}[{j}] = {_fmt(lb)}, "
                f"|1 - lambda_{na} lambda_{nb}| = {g[k]:.3e}")
        fix = f"scale one coefficient (e.g. (1 - delta) * {na}) so that no product of eigenvalues is 1"
    raise SingularEquationError(
        f"{equation_text(kind, na, nb)} is singular (no unique solution){where}: {what} "
        f"<= tolerance {float(tol.reshape(-1)[flat]):.3e}{hint}; {fix}"
    )


def check_stable(eigvals: Tensor, discrete: bool, name: str = "A") -> None:
    """Raise ``UnstableSystemError`` unless every eigenvalue is in the open left half-plane
    (continuous time) or the open unit disk (discrete time); names the worst eigenvalue."""
    if is_wrapped(eigvals) or eigvals.numel() == 0:
        return
    ev = eigvals.detach().to(torch.complex128)
    score = ev.abs() if discrete else ev.real
    limit = 1.0 if discrete else 0.0
    worst = score.reshape(-1, ev.shape[-1]).amax(-1)
    if not bool((worst >= limit).any()):
        return
    flat = int(worst.argmax())
    batch = ev.shape[:-1]
    bidx = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), batch)) if batch else ()
    row = ev.reshape(-1, ev.shape[-1])[flat]
    k = int(score.reshape(-1, ev.shape[-1])[flat].argmax())
    where = f" (batch index {bidx})" if bidx else ""
    if discrete:
        raise UnstableSystemError(
            f"{name}: expected a Schur-stable matrix (spectral radius < 1) for a discrete-time Gramian, "
            f"but eigenvalue {k} = {_fmt(row[k])} has modulus {float(row[k].abs()):.6g}{where}; the "
            "Gramian (an infinite sum) does not exist: stabilize the system or call "
            "solve_discrete_lyapunov without require_stable to get the (indefinite) equation solution"
        )
    raise UnstableSystemError(
        f"{name}: expected a Hurwitz-stable matrix (all eigenvalues with negative real part) for a "
        f"continuous-time Gramian, but eigenvalue {k} = {_fmt(row[k])} has real part "
        f"{float(row[k].real):.6g}{where}; the Gramian (an integral) does not exist: stabilize the "
        "system or call solve_continuous_lyapunov without require_stable to get the (indefinite) "
        "equation solution"
    )
