r"""Primary matrix functions of general square matrices (sqrtm, logm) through a triangular form.

Forward. ``A = Q T Q^{-1}`` with ``T`` upper (quasi-)triangular, then ``f(A) = Q f(T) Q^{-1}``
with the triangular algorithms of ``_sqrt_log_triangular``:

* ``method="schur"`` (CPU, SciPy/LAPACK): the Schur form, ``Q`` unitary. A real ``A`` keeps its
  real quasi-triangular form (``dgees``), so ``Q`` and all products with it are real, at every
  derivative order: the square root stays real (recursion between the 2 x 2 blocks, as SciPy
  does), the logarithm goes through the complex triangular form of the triangular factor (one
  2 x 2 rotation per complex-conjugate pair, all at once:
  ``_sqrt_log_triangular.to_complex_triangular``) and back. Tensors on other devices are copied
  to the CPU for this step.
* ``method="eig"`` (any device, torch only): the eigendecomposition ``A = W diag(l) W^{-1}``, for
  diagonalizable inputs; refused when ``cond(W) > 1 / (n sqrt(eps))``, where it loses too many
  digits (use the Schur path on the CPU then). A real ``A`` gives the real part of the result.
* ``method="auto"``: Schur on the CPU, eig elsewhere.

Triangular square roots: the LAPACK recursion for one large matrix on the CPU, otherwise the
batched torch superdiagonal recurrence (``_sqrt_log_triangular``). The principal square root and
logarithm of a real matrix without eigenvalues on the closed negative real axis are real.

Derivatives (Higham, "Functions of Matrices", Thm. 3.6 and 3.7; Mathias 1996). For the primary
function ``f`` and ``B = [[A, E], [0, A]]``,

    f(B) = [[f(A), L_f(A, E)], [0, f(A)]],

so the Frechet derivative is the upper-right block of the *same op* at twice the size, and for
real-coefficient ``f`` (``f(X^H) = f(X)^H``) the adjoint is ``L_f(A, .)^* G = L_f(A^H, G) =
L_f(A, G^H)^H``::

    forward mode:  dF = f([[A, dA], [0, A]])_{12}
    reverse mode:  gA = (f([[A, gF^H], [0, A]])_{12})^H

The block matrix is triangularized by the factorization already in hand,
``B = diag(Q, Q) [[T, Q^{-1} E Q], [0, T]] diag(Q, Q)^{-1}`` (again (quasi-)triangular), so
nothing is refactorized. Because each rule is the op itself (differentiable in ``A`` and ``E``),
derivatives of every order and every mix of forward and reverse mode are exact derivatives of the
computed function: the op takes ``2^k`` parts that it assembles into nested blocks (``_build``,
hyper-dual numbers), a forward-mode level appends the tangents of the parts, a reverse-mode level
starts a new block from the assembled matrix and the cotangent. Each order doubles the size (8x
the triangular work, and the two products with ``Q``). For the square root, the block recursion
solves exactly the Sylvester equation of its derivative: its top-level merge is
``R Y + Y R = Q^{-1} E Q`` (LAPACK ``trsyl``) with the square root ``R`` of the forward pass's
triangular factor. The logarithm keeps the number of square roots and the Pade degree of the
forward pass at every order, so its derivatives are the derivatives of one algorithm (Al-Mohy,
Higham and Relton 2013).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .._errors import InputError
from .._rule import Rule, or_zeros
from .._utils import eps
from ._sqrt_log_triangular import (
    from_complex_triangular,
    log_plan,
    log_triangular,
    quasi_eigvals,
    rotate_right_h,
    sqrt_quasi_triangular,
    sqrt_triangular,
    to_complex_triangular,
)

METHODS = ("auto", "schur", "eig")


@dataclass
class Plan:
    """What the forward pass decides once and every derivative order reuses."""

    kind: str  # "sqrt" or "log"
    method: str
    name: str = "A"
    log_params: tuple[int, int] | None = field(default=None)


# ----------------------------------------------------------------------------------------------
# Factorizations A = Q T Q^{-1} (no autograd: the rule below never differentiates them).


def schur_factor(A: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(Z, Z^H, T) with ``A = Z T Z^H``: Schur form by LAPACK through SciPy (CPU).

    A real ``A`` keeps its real (quasi-triangular) form: the square root stays real, and the
    products with ``Z`` (at every derivative order too) are real.
    """
    a = A.detach().cpu().resolve_conj().resolve_neg().numpy()
    import scipy.linalg  # on first use: import difflinalg stays light

    T, Z = scipy.linalg.schur(a, output="complex" if A.is_complex() else "real")
    T, Z = torch.from_numpy(T).to(A.device), torch.from_numpy(Z).to(A.device)
    return Z, Z.mH, T


def eig_factor(A: Tensor, name: str) -> tuple[Tensor, Tensor, Tensor]:
    """(W, W^{-1}, diag(l)) from ``torch.linalg.eig``, refused when W is ill-conditioned."""
    w, W = torch.linalg.eig(A)
    Wi = torch.linalg.inv(W)
    n = A.shape[-1]
    cond = torch.linalg.matrix_norm(W, ord=2) * torch.linalg.matrix_norm(Wi, ord=2)
    limit = 1.0 / (n * eps(A.dtype) ** 0.5)
    if n and bool((cond > limit).any()):
        raise InputError(
            f"{name}: the eigenvector matrix has condition number {float(cond.max()):.2e} "
            f"> {limit:.1e}: {name} is too close to a non-diagonalizable matrix for method='eig'; "
            "use method='schur' (CPU)"
        )
    return W, Wi, torch.diag_embed(w)


def check_principal(t: Tensor, kind: str, name: str) -> None:
    """Raise unless the eigenvalues ``t`` (..., n) avoid the closed negative real axis."""
    if t.numel() == 0:
        return
    n = t.shape[-1]
    tol = n * eps(t.dtype) * t.abs().amax(dim=-1, keepdim=True)
    singular = t.abs() <= tol
    negative = (t.real < 0) & (t.imag.abs() <= tol)
    bad = singular | negative
    if bool(bad.any()):
        pos = tuple(torch.nonzero(bad)[0].tolist())
        lam = complex(t[pos])
        where = f" (batch index {pos[:-1]})" if len(pos) > 1 else ""
        func = "square root" if kind == "sqrt" else "logarithm"
        what = "is (numerically) zero: the matrix is singular" if bool(singular[pos]) else \
            "lies on the negative real axis"
        raise InputError(
            f"{name}: has no differentiable principal {func}: eigenvalue {lam:.3e}{where} {what}; "
            f"the principal {func} needs eigenvalues off the closed negative real axis "
            "(shift the matrix, e.g. A + c * I with c > 0, or regularize a singular one)"
        )


def _factor(A: Tensor, plan: Plan) -> tuple[Tensor, Tensor, Tensor]:
    method = plan.method
    if method == "auto":
        method = "schur" if A.device.type == "cpu" else "eig"
    Q, Qi, T = schur_factor(A) if method == "schur" else eig_factor(A, plan.name)
    check_principal(quasi_eigvals(T), plan.kind, plan.name)
    return Q, Qi, T


def _triangular_function(T: Tensor, plan: Plan) -> Tensor:
    """f(T) for a triangular or (real) quasi-triangular ``T``."""
    if plan.kind == "sqrt":
        return sqrt_quasi_triangular(T) if not T.is_complex() else sqrt_triangular(T)
    if not T.is_complex():  # through the complex triangular form, back to real
        Tc, g = to_complex_triangular(T)
        return from_complex_triangular(_triangular_function(Tc, plan), g)
    if plan.log_params is None:
        plan.log_params = log_plan(T)
    return log_triangular(T, *plan.log_params)


# ----------------------------------------------------------------------------------------------
# The rule.


def _block(A: Tensor, E: Tensor) -> Tensor:
    """[[A, E], [0, A]]."""
    top = torch.cat([A, E], dim=-1)
    bottom = torch.cat([torch.zeros_like(A), A], dim=-1)
    return torch.cat([top, bottom], dim=-2)


def _build(parts) -> Tensor:
    """The nested block matrix of ``2^k`` parts: ``build(P1 + P2) = [[build(P1), build(P2)], [0, build(P1)]]``.

    It represents ``A`` with k independent nilpotent perturbations (hyper-dual numbers), so that
    ``f(build(parts))`` holds every mixed derivative of order <= k in its upper-right corners.
    """
    if len(parts) == 1:
        return parts[0]
    h = len(parts) // 2
    return _block(_build(parts[:h]), _build(parts[h:]))


def _build_adjoint(G: Tensor, count: int) -> list[Tensor]:
    """Adjoint of ``_build`` (``count`` parts): the gradients of the parts."""
    if count == 1:
        return [G]
    N = G.shape[-1] // 2
    h = count // 2
    return _build_adjoint(G[..., :N, :N] + G[..., N:, N:], h) + _build_adjoint(G[..., :N, N:], h)


def _hint(Q: Tensor, Qi: Tensor, T: Tensor, parts) -> tuple[Tensor, Tensor, Tensor]:
    """Triangular form of ``build(parts)`` from that of ``parts[0]`` (no refactorization)."""
    if len(parts) == 1:
        return Q, Qi, T
    if not T.is_complex() and any(p.is_complex() for p in parts):
        # A real quasi-triangular form cannot carry complex blocks: use the complex one.
        Tc, g = to_complex_triangular(T)
        Q = rotate_right_h(g, Q.to(Tc.dtype))
        Q, Qi, T = Q, Q.mH, Tc
    z = [torch.zeros_like(Q)] * (len(parts) - 1)
    Ts = [T] + [(Qi @ p.to(Q.dtype) @ Q).detach() for p in parts[1:]]
    return _build([Q] + z).detach(), _build([Qi] + z).detach(), _build(Ts)


class _PrimaryFunction(Rule):
    """``parts -> f(build(parts))``; ``(Q, Qi, T)``: the triangular form of ``parts[0]`` (None: computed).

    The parts are separate inputs, rather than one block matrix, so that the forward-mode rule can
    pass its saved inputs straight through to the nested call: tangents of an outer forward-mode
    level reach it only through its inputs (operations inside a ``jvp`` staticmethod are not
    themselves forward-differentiated). Every combination of forward and reverse levels is exact.
    """

    generate_vmap_rule = False  # its own ``vmap`` below: the forward is batched already

    @staticmethod
    def forward(plan: Plan, Q: Tensor | None, Qi: Tensor | None, T: Tensor | None, *parts: Tensor):
        if Q is None:
            Q, Qi, T = _factor(parts[0], plan)
        else:  # returned and saved: must be views, not the inputs themselves
            Q, Qi, T = Q.view_as(Q), Qi.view_as(Qi), T.view_as(T)
        QM, QiM, TM = _hint(Q, Qi, T, parts)
        F = QM @ _triangular_function(TM, plan) @ QiM
        if F.is_complex() and not any(p.is_complex() for p in parts):
            F = F.real  # the eig path of a real matrix
        return F.contiguous(), Q, Qi, T

    @staticmethod
    def save(ctx, inputs, output):
        _, Q, Qi, T = output
        ctx.plan, ctx.n_parts = inputs[0], len(inputs) - 4
        ctx.mark_non_differentiable(Q, Qi, T)
        return Q, Qi, T, *inputs[4:]

    @staticmethod
    def gradients(ctx, Q: Tensor, Qi: Tensor, T: Tensor, *rest: Tensor):
        # With M = build(parts): gM = L_f(M, gF^H)^H = (f([[M, gF^H], [0, M]])_{12})^H.
        parts, gF = rest[:ctx.n_parts], rest[ctx.n_parts]
        M = _build(parts)
        N = M.shape[-1]
        hint = _hint(Q, Qi, T, parts)
        gM = _PrimaryFunction.apply(ctx.plan, *hint, M, gF.mH)[0][..., :N, N:].mH
        return (None, None, None, None, *_build_adjoint(gM, len(parts)))

    @staticmethod
    def tangents(ctx, Q: Tensor, Qi: Tensor, T: Tensor, *rest):
        # f(build(parts + dparts)) = [[f(M), L_f(M, build(dparts))], [0, f(M)]].
        parts, dparts = rest[:ctx.n_parts], rest[ctx.n_parts + 4:]
        dparts = [or_zeros(d, p) for p, d in zip(parts, dparts)]
        N = parts[0].shape[-1] * len(parts)
        return _PrimaryFunction.apply(ctx.plan, Q, Qi, T, *parts, *dparts)[0][..., :N, N:]

    @staticmethod
    def vmap(info, in_dims, plan, Q, Qi, T, *parts):
        # The forward is batched over leading dimensions already: move vmap's dimension there.
        def front(x, d):
            if x is None:
                return None
            return x.movedim(d, 0) if d is not None else x.expand(info.batch_size, *x.shape)

        args = [front(x, d) for x, d in zip((Q, Qi, T, *parts), in_dims[1:])]
        return _PrimaryFunction.apply(plan, *args), (0, 0, 0, 0)


#: Matrices whose largest entry lies outside ``[2^-SCALE_BAND, 2^SCALE_BAND]`` are scaled to unit
#: size first: the 2 x 2 block formulas and the Pade step form products of up to four entries,
#: which under/overflow (NaN at ``1e+-200 A``, 1e-3 error at ``1e-160 A``, issue 16 item 4);
#: inside the band no product of four entries leaves float32's range.
SCALE_BAND = 16


def unit_scale_exponent(A: Tensor) -> Tensor:
    """``e`` (..., 1, 1), real, with ``A / 4^e`` of unit size (largest entry in ``[1/2, 2]``);
    0 inside the band, for a zero or non-finite matrix. Torch operations only (no host
    synchronisation: runs inside ``torch.func``)."""
    m = A.detach().abs().amax(dim=(-2, -1), keepdim=True)
    e = torch.round(torch.log2(m) / 2)
    keep = ((m >= 2.0 ** -SCALE_BAND) & (m <= 2.0 ** SCALE_BAND)) | ~torch.isfinite(e)
    return torch.where(keep, torch.zeros_like(e), e)


def primary_function(A: Tensor, kind: str, method: str, name: str = "A") -> Tensor:
    """``f(A)`` for ``kind`` "sqrt" or "log", scaled by a power of 4 when ``A`` is tiny or huge:

        sqrtm(4^e B) = 2^e sqrtm(B),    logm(4^e B) = logm(B) + 2 e log(2) I

    (scaling by powers of 2 is exact in floating point, so values and derivatives obey the scaling
    laws to rounding; the derivatives of the scaled op are the chain rule through exact products)."""
    if method not in METHODS:
        raise InputError(f"method: expected one of {METHODS}, got {method!r}")
    # Lazy conjugate / negative views reach numpy (SciPy's Schur) in the forward pass.
    A = A.resolve_conj().resolve_neg()
    if A.numel() == 0:  # empty matrix or batch: nothing to factorize
        return A.clone()
    e = unit_scale_exponent(A)
    half = torch.exp2(-e)  # 4^-e as two factors 2^-e: 4^-e alone overflows for subnormal entries
    B = A * half * half
    F = _PrimaryFunction.apply(Plan(kind, method, name), None, None, None, B)[0]
    if kind == "sqrt":
        return F * torch.exp2(e).to(F.dtype)
    shift = (2.0 * math.log(2.0)) * e  # (..., 1, 1)
    eye = torch.eye(F.shape[-1], dtype=F.dtype, device=F.device)
    return F + shift.to(F.dtype) * eye
