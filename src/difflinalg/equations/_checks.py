"""Validation of matrix-equation arguments, and the singularity and stability checks.

Shape and dtype checks always run. Value checks (finiteness, the eigenvalue-gap test that detects a
singular equation, stability of a Lyapunov coefficient) need a host synchronisation and are skipped
inside ``torch.func`` transforms, as everywhere in difflinalg (``docs/conventions.md``).

When is an equation singular? ``A X + X B = C`` has a unique solution iff no eigenvalue of ``A`` is
an eigenvalue of ``-B``; ``X - A X B = C`` iff no product ``lambda_i(A) mu_j(B)`` equals 1. Computed
eigenvalues carry errors of order ``eps * ||A||``, so the test is against a tolerance:

    Sylvester:  min |lambda_i + mu_j|      <= tol = 4 max(m, n) * eps * (||A||_F + ||B||_F)
    Stein:      min |1 - lambda_i mu_j|    <= tol = 4 max(m, n) * eps * (1 + ||A||_F ||B||_F)

(the QR algorithm's eigenvalues are exact for coefficients perturbed by about ``n eps ||A||``, which
moves a normal matrix's eigenvalues as much; a Stein gap collects the errors of both factors of
the product, and issue 16's reproducer, an exactly singular normal case, computes a gap of
``1.2 max(m, n) eps scale``: hence the factor ``SINGULAR_FACTOR = 4``)

raises ``SingularEquationError`` naming the closest pair. Gaps above ``tol`` are solved (see the
package docstring for what accuracy to expect). ``tol`` is the condition-number threshold
``scale / min gap >= 1 / (4 max(m, n) eps)`` (``singular_limit``); for non-normal coefficients the
gap overestimates the separation, so every solve also checks the a posteriori estimate
``kappa >= ||L|| ||X|| / ||C||`` against the same limit (``_operator.py``). Every path (Kronecker
LU, Schur, eig, operators, Lyapunov) runs both.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .._errors import InputError, SingularEquationError, UnstableSystemError
from .._utils import check_matrix, check_same_dtype, eps, is_wrapped, reject_meta


def validate_equation(A: Tensor, B: Tensor, C: Tensor, names=("A", "B", "C")) -> tuple[Tensor, Tensor, Tensor]:
    """Check coefficient shapes (square), right-hand side shape, dtype, device, batch broadcast."""
    na, nb, nc = names
    for nm, t in zip(names, (A, B, C)):
        reject_meta(nm, t)
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
    reject_meta(na, A)
    reject_meta(nb, B)
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


def separation(kind: str, eig_a: Tensor, eig_b: Tensor, A: Tensor, B: Tensor) -> tuple[Tensor, Tensor]:
    """The eigenvalue gaps ``gap`` (..., m, n) and the coefficient scale (...), float64, detached.

    Sylvester: ``gap_ij = |lambda_i + mu_j|``, ``scale = ||A||_F + ||B||_F``; Stein:
    ``gap_ij = |1 - lambda_i mu_j|``, ``scale = 1 + ||A||_F ||B||_F``. ``scale / min gap`` is the
    separation estimate of the condition number of the equation (exact up to a factor ~n for normal
    coefficients, a lower bound otherwise). Torch operations only: runs inside ``torch.func``.
    """
    ea = eig_a.detach().to(torch.complex128)
    eb = eig_b.detach().to(torch.complex128)
    if kind == "sylvester":
        return (ea[..., :, None] + eb[..., None, :]).abs(), equation_scale(kind, A, B)
    return (1 - ea[..., :, None] * eb[..., None, :]).abs(), equation_scale(kind, A, B)


def equation_scale(kind: str, A: Tensor, B: Tensor) -> Tensor:
    """The estimate of ``||L||`` (...), float64: ``||A||_F + ||B||_F`` (Sylvester) or
    ``1 + ||A||_F ||B||_F`` (Stein), an upper bound of the operator's 2-norm."""
    fa = torch.linalg.matrix_norm(A.detach()).to(torch.float64)
    fb = torch.linalg.matrix_norm(B.detach()).to(torch.float64)
    return fa + fb if kind == "sylvester" else 1 + fa * fb


def separation_kappa(kind: str, eig_a: Tensor, eig_b: Tensor, A: Tensor, B: Tensor) -> tuple[Tensor, Tensor]:
    """``(scale / min gap, scale)`` per batch element (``inf`` for a zero gap, 0 for an empty
    equation)."""
    gap, scale = separation(kind, eig_a, eig_b, A, B)
    if gap.shape[-1] == 0 or gap.shape[-2] == 0:
        return torch.zeros(gap.shape[:-2], dtype=torch.float64, device=gap.device), scale
    return scale / gap.flatten(-2).amin(-1), scale


SINGULAR_FACTOR = 4


def singular_limit(m: int, n: int, dtype: torch.dtype) -> float:
    """The condition number from which an equation counts as numerically singular:
    ``1 / (4 max(m, n) eps)`` (equivalently ``min gap <= 4 max(m, n) eps scale``)."""
    return 1.0 / (SINGULAR_FACTOR * max(m, n, 1) * eps(dtype))


def worst(kappa: Tensor) -> float:
    """The largest condition estimate (``inf`` if any is NaN): one host synchronisation."""
    k = kappa.detach().amax()
    return float(torch.where(torch.isnan(k), torch.full_like(k, float("inf")), k))


def singular_error(kind: str, eig_a: Tensor, eig_b: Tensor, A: Tensor, B: Tensor, kappa: Tensor,
                   names=("A", "B"), hint: str = "", growth: Tensor | None = None) -> SingularEquationError | None:
    """The ``SingularEquationError`` for the worst batch element of ``kappa`` (condition estimate per
    batch element, broadcast batch shape) if it reaches ``singular_limit``, else None. Names the
    closest eigenvalue pair of that element; ``growth`` (same shape as ``kappa``, or None) is the a
    posteriori estimate ``||L|| ||X|| / ||C||`` when it, not the eigenvalue gap, found it singular.
    One host synchronisation; not for wrapped tensors."""
    m, n = eig_a.shape[-1], eig_b.shape[-1]
    limit = singular_limit(m, n, A.dtype)
    k = kappa.detach().to(torch.float64).cpu().numpy()
    bad = ~(k < limit)  # NaN (an overflowed solution) counts as singular
    if not bad.any():
        return None
    batch = k.shape
    flat = int(np.argmax(np.where(bad, np.nan_to_num(k, nan=np.inf), -1.0).reshape(-1))) if batch else 0
    bidx = tuple(int(i) for i in np.unravel_index(flat, batch)) if batch else ()
    gap, scale = separation(kind, eig_a, eig_b, A, B)
    gap = np.broadcast_to(gap.cpu().numpy(), batch + (m, n)).reshape(-1, m * n)[flat]
    scale = float(np.broadcast_to(scale.cpu().numpy(), batch).reshape(-1)[flat])
    ea = np.broadcast_to(eig_a.detach().resolve_conj().cpu().numpy(), batch + (m,)).reshape(-1, m)[flat]
    eb = np.broadcast_to(eig_b.detach().resolve_conj().cpu().numpy(), batch + (n,)).reshape(-1, n)[flat]
    j = int(gap.argmin())
    i, j = divmod(j, n)
    la, lb, g = complex(ea[i]), complex(eb[j]), float(gap[i * n + j])
    na, nb = names
    where = f" (batch index {bidx})" if bidx else ""
    if kind == "sylvester":
        pair = (f"closest pair lambda_{na}[{i}] = {_fmt(la)}, -lambda_{nb}[{j}] = {_fmt(-lb)}, "
                f"|lambda_{na} + lambda_{nb}| = {g:.3e}")
        what = f"{na} and -{nb} share an eigenvalue"
        fix = (f"shift one coefficient (e.g. {nb} + delta * I) so that the spectra of {na} and -{nb} "
               "are disjoint")
    else:
        pair = (f"closest pair lambda_{na}[{i}] = {_fmt(la)}, lambda_{nb}[{j}] = {_fmt(lb)}, "
                f"|1 - lambda_{na} lambda_{nb}| = {g:.3e}")
        what = f"an eigenvalue of {na} times an eigenvalue of {nb} equals 1"
        fix = f"scale one coefficient (e.g. (1 - delta) * {na}) so that no product of eigenvalues is 1"
    tol = scale / limit
    gr = None if growth is None else np.broadcast_to(growth.detach().cpu().numpy(), batch).reshape(-1)[flat]
    if gr is not None and not g <= tol:
        # Found by the solution's growth, not by an eigenvalue pair: the coefficients are far from
        # normal, so the operator is much closer to singular than the eigenvalue gap suggests.
        what = (f"its condition number is at least {float(gr):.3e} (the solution grew to scale "
                f"||X|| / ||C|| = {float(gr):.3e} >= 1 / (4 max(m, n) eps) = {limit:.3e}), although no "
                f"eigenvalue pair is that close ({pair}): the coefficients are far from normal "
                "(transient growth), and the solution would carry no reliable digits")
        fix = _REALIZATION_FIX
        if A.dtype in (torch.float32, torch.complex64):
            fix += "; or compute in double precision (.to(torch.float64) / torch.complex128)"
        return SingularEquationError(
            f"{equation_text(kind, na, nb)} is numerically singular (ill-conditioned){where}: {what}; {fix}"
        )
    if g > _RESOLVED * SINGULAR_FACTOR * max(m, n, 1) * float(eps(A.dtype)) * max(1.0, abs(la), abs(lb)):
        # The pair is far from singular at the eigenvalues' own scale: the tolerance is large because
        # the coefficients' norms are (eigenvalues carry errors of eps ||A||), i.e. they are far from
        # normal or badly scaled -- not because this pair is singular.
        return SingularEquationError(
            f"{equation_text(kind, na, nb)} is numerically singular (ill-conditioned){where}: the "
            f"coefficients' scale {scale:.3e} (||{na}||_F, ||{nb}||_F) is far above their spectra, so "
            f"their eigenvalues carry errors up to eps scale and the closest pair ({pair}) is within "
            f"the tolerance {tol:.3e} = 4 max(m, n) eps scale: the coefficients are far from normal "
            f"(or badly scaled), and the solution would carry no reliable digits; {_REALIZATION_FIX}")
    what = f"{what}: {pair} <= tolerance {tol:.3e} = 4 max(m, n) eps scale"
    if A.dtype in (torch.float32, torch.complex64):
        fix += "; or compute in double precision (.to(torch.float64) / torch.complex128), where it may be resolvable"
    return SingularEquationError(
        f"{equation_text(kind, na, nb)} is singular (no unique solution){where}: {what}{hint}; {fix}"
    )


#: a gap larger than this many times the unit-scale tolerance is resolved by the eigenvalues themselves
_RESOLVED = 1e3
#: what to do about far-from-normal coefficients: a diagonal balancing does not remove a departure
#: from normality (python-control's drss(300, 1, 1), seed 1001: ||A|| 1.8e4 -> 1.3e4 by
#: scipy.linalg.matrix_balance, growth still 1.3e14)
_REALIZATION_FIX = ("use a better-conditioned realization of the same system: a balanced one (e.g. ERA / "
                    "Ho-Kalman from its Markov parameters, or balanced truncation computed another way) "
                    "or a modal one; a diagonal balancing rarely removes a departure from normality. "
                    "If the coefficients are close to the stability boundary, that is the cause instead")


def check_nonsingular(kind: str, eig_a: Tensor, eig_b: Tensor, A: Tensor, B: Tensor,
                      names=("A", "B"), hint: str = "") -> Tensor:
    """Raise ``SingularEquationError`` if an eigenvalue pair makes the equation (numerically)
    singular (``min gap <= 4 max(m, n) eps scale``, see ``separation``), naming the closest pair.

    Returns the separation estimate ``scale / min gap`` per batch element (the condition estimate
    of the precision policy) and ``scale``. Inside ``torch.func`` nothing is raised (no host synchronisation):
    the caller poisons singular batch elements (``_operator._apply``)."""
    kappa, scale = separation_kappa(kind, eig_a, eig_b, A, B)
    if any(is_wrapped(t) for t in (eig_a, eig_b, A, B)) or kappa.device.type == "meta":
        return kappa, scale
    if kappa.numel() == 0 or worst(kappa) < singular_limit(eig_a.shape[-1], eig_b.shape[-1], A.dtype):
        return kappa, scale  # the usual case: one host synchronisation
    err = singular_error(kind, eig_a, eig_b, A, B, kappa, names, hint)
    if err is not None:
        raise err
    return kappa, scale


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
