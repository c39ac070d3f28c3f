r"""Cholesky factorization ``A = L L^H`` with reverse, forward and second-order rules.

This module is the reference pattern for a difflinalg rule (see ``docs/conventions.md``): one
``torch.autograd.Function`` with ``setup_context``, a ``backward`` written in differentiable torch
operations (so double backward and ``torch.func.hessian`` work), a ``jvp`` for forward mode, and
``generate_vmap_rule`` for ``torch.func.vmap``. The formulas live in plain functions next to it so
that other rules (the regularized solve) can reuse them.

The input is treated as Hermitian: the factorized matrix is ``herm(A) = (A + A^H) / 2``, so the
forward value, the JVP (which uses ``herm(dA)``) and the gradient (which is Hermitian) are three
views of one function. For a Hermitian ``A`` this is the usual Cholesky factor; PyTorch instead reads
the lower triangle; on Hermitian perturbations the two agree.

Rules (Murray 2016, "Differentiation of the Cholesky decomposition"; with
``Phi(X) = tril(X)`` with its diagonal halved)::

    forward mode:  dL = L Phi(L^{-1} herm(dA) L^{-H})
    reverse mode:  gA = L^{-H} herm(Phi(L^H gL)) L^{-1}

Both follow from ``L^{-1} dA L^{-H} = L^{-1} dL + (L^{-1} dL)^H`` with ``L^{-1} dL`` lower
triangular with a real diagonal. Complex gradients follow PyTorch's convention (conjugate
Wirtinger; see ``docs/conventions.md``).

Single precision. Both rules solve with ``L`` twice, so their relative error is about
``kappa eps`` with ``kappa`` the condition number of ``A`` after diagonal scaling
(``As = S^{-1} A S^{-1}``, ``S = diag(sqrt(A_ii))``: Cholesky and triangular solves are invariant
under that scaling, so a badly scaled but well-conditioned ``A`` loses nothing). The forward
computes cheap lower bounds (``factor_condition``; the factor of ``As`` is ``S^{-1} L``)::

    kappa(As) >= max_i ||L[i, :]||^2 / L[i, i]^2,   kappa(As) >= ||As^{-1} v||  (||v|| = 1)

(``lambda_max(As) >= max_i (As)_ii = 1`` and ``lambda_min(As) <= Ls_ii^2 = L_ii^2 / ||L[i, :]||^2``,
since ``Ls_ii^2 = 1 / ((As_{1:i, 1:i})^{-1})_ii >= lambda_min(As_{1:i, 1:i}) >= lambda_min(As)``;
the second with ``v`` after three inverse-iteration steps, six triangular solves, O(n^2) each)
and warns ``PrecisionWarning`` ("use float64") through ``_utils.check_precision`` when
``kappa eps`` exceeds ``PRECISION_TOL``. Below it the relative error of the gradient is at most
about ``4 kappa eps`` (float32, n = 3..64, condition 1e2..1e7: largest measured ratio 1.0;
``tests/factor/test_cholesky.py`` asserts the bound).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._errors import NotPositiveDefiniteError, TransformCheckWarning
from .._nested import call
from .._rule import Rule
from .._utils import (check_matrix, check_precision, eps, herm, is_wrapped, real_dtype, reject_meta,
                      warn_once)


def phi(x: Tensor) -> Tensor:
    """Lower triangle of ``x`` with the diagonal halved."""
    return x.tril() - 0.5 * torch.diag_embed(x.diagonal(dim1=-2, dim2=-1))


def factor_condition(L: Tensor, rho: Tensor | None = None, steps: int = 3) -> Tensor:
    """Lower bound on the condition number of ``A = L L^H`` after diagonal scaling, from its factor
    (batched, no host sync; module docstring): the larger of ``max_i ||L[i, :]||^2 / L[i, i]^2`` and
    ``||As^{-1} v||`` after ``steps`` inverse-iteration steps on the scaled matrix
    ``As = S^{-1} A S^{-1}`` (``S = diag(||L[i, :]||)``, so ``lambda_max(As) >= 1``) from a fixed unit
    ``v``: ``2 steps`` solves with ``L``, O(n^2) each. The diagonal bound alone can miss a
    small eigenvalue by orders of magnitude (measured 180x for a 32 x 32 Gram matrix). The
    iteration runs in single precision only, where the policy bites (``kappa > 8.4e4``); in double
    precision the warning needs ``kappa > 4.5e13``, beyond which the factorization itself
    usually fails, and the diagonal bound is kept (no extra solves in the common case).

    With ``rho`` (shape (..., 1, 1)): ``max_i ||L[i, :]||^2 / rho`` instead, the condition of a
    regularized solve's Woodbury form (``_regularized_solve``), whose subtraction cancels to the
    size of ``rho``.
    """
    n = L.shape[-1]
    if n == 0:
        return L.new_ones(L.shape[:-2], dtype=real_dtype(L.dtype))
    rows = L.abs().square().sum(dim=-1)
    if rho is not None:
        return rows.amax(dim=-1) / rho[..., 0, 0]
    diag_bound = (rows / L.diagonal(dim1=-2, dim2=-1).real.square()).amax(dim=-1)
    if eps(L.dtype) < 1e-10:
        return diag_bound
    S = rows.sqrt().unsqueeze(-1).to(L.dtype)  # (..., n, 1)
    i = torch.arange(n, dtype=rows.dtype, device=L.device)
    v = (1.0 + i / n) * torch.where(i % 2 == 0, 1.0, -1.0)  # fixed, no RNG state
    v = (v / torch.linalg.vector_norm(v)).to(L.dtype).unsqueeze(-1).expand(*L.shape[:-1], 1)
    norm = rows.new_zeros(L.shape[:-2])
    for _ in range(steps):
        w = S * torch.cholesky_solve(S * v, L)  # As^{-1} v = S A^{-1} S v
        norm = torch.linalg.vector_norm(w, dim=(-2, -1))
        v = w / norm[..., None, None].to(L.dtype)
    return torch.maximum(diag_bound, norm)


def poison_failed(L: Tensor, info: Tensor, op: str) -> Tensor:
    """Inside ``torch.func`` the positive-definiteness check cannot raise (no host sync): the
    factors of the failed matrices (``info > 0``) become NaN, and ``TransformCheckWarning`` is
    issued once (``docs/conventions.md``, "Checks inside torch.func"); ``cholesky_ex`` would
    otherwise return a finite, wrong partial factor."""
    warn_once(f"{op}-transform-pd",
              f"{op}: inside torch.func the positive-definiteness check cannot raise: the factor "
              "(and everything computed from it) of a matrix that is not positive definite is NaN "
              "instead of a NotPositiveDefiniteError", TransformCheckWarning)
    return torch.where((info > 0)[..., None, None], torch.full_like(L, float("nan")), L)


def cholesky_factor(A: Tensor, name: str = "A") -> Tensor:
    """Lower Cholesky factor of ``herm(A)`` (no autograd rule); raises if not positive definite and
    warns ``PrecisionWarning`` when its condition estimate is beyond the dtype's resolution."""
    L, info = torch.linalg.cholesky_ex(herm(A))
    if is_wrapped(info):
        return poison_failed(L, info, "cholesky")
    if bool((info > 0).any()):
        idx = tuple((info > 0).nonzero()[0].tolist())
        bad = int(info[idx])
        where = f" (batch index {idx})" if idx else ""
        raise NotPositiveDefiniteError(
            f"{name}: matrix is not Hermitian positive definite{where}: the leading minor of "
            f"order {bad} is not positive; regularize it (e.g. add eps * I) or use an "
            "indefinite solver"
        )
    check_precision("cholesky", factor_condition(L), L.dtype,
                    f"{name} (its factor and the derivative, which solve with it)")
    return L


def cholesky_jvp(L: Tensor, dA: Tensor) -> Tensor:
    """Tangent of ``L`` for a tangent ``dA`` (uses its Hermitian part)."""
    X = torch.linalg.solve_triangular(L, herm(dA), upper=False, left=True)
    X = torch.linalg.solve_triangular(L.mH, X, upper=True, left=False)  # L^{-1} dA L^{-H}
    return L @ phi(X)


def cholesky_vjp(L: Tensor, gL: Tensor) -> Tensor:
    """Gradient with respect to ``A`` given the gradient ``gL`` of the lower factor."""
    P = herm(phi(L.mH @ gL))
    X = torch.linalg.solve_triangular(L.mH, P, upper=True, left=True)
    X = torch.linalg.solve_triangular(L, X, upper=False, left=False)  # L^{-H} P L^{-1}
    return herm(X)


class _Cholesky(Rule):
    @staticmethod
    def forward(A: Tensor) -> Tensor:
        return cholesky_factor(A)

    @staticmethod
    def save(ctx, inputs, L):
        return (L,)

    @staticmethod
    def gradients(ctx, L: Tensor, gL: Tensor) -> Tensor:
        return cholesky_vjp(L, gL)

    @staticmethod
    def tangents(ctx, L: Tensor, dA: Tensor) -> Tensor:
        # Through ``call`` so that an outer forward level sees this rule's arithmetic (jvp of jvp).
        return call(cholesky_jvp, L, dA)


def cholesky(A: Tensor, *, upper: bool = False) -> Tensor:
    """Cholesky factor of a Hermitian positive-definite matrix, batched over leading dimensions.

    Args:
        A: (..., n, n) float32, float64, complex64 or complex128, finite; treated as Hermitian
            (its Hermitian part ``(A + A^H) / 2`` is factorized).
        upper: return the upper factor ``U = L^H`` (``A = U^H U``) instead of ``L``.

    Returns:
        ``L`` (..., n, n) in ``A``'s dtype with ``A = L L^H`` (lower triangular, positive real
        diagonal), or ``L^H`` (upper) if ``upper``. Differentiable: reverse, forward, second order,
        ``torch.func`` transforms.

    Raises:
        NotPositiveDefiniteError: ``A`` is not numerically positive definite; the message names
            the failing leading minor (and batch index). Eager mode only: the check reads values,
            so inside ``torch.func`` transforms it is skipped.
        InputError: ``A`` not a (batched) square matrix, an unsupported dtype, non-finite
            entries, or a meta tensor.

    Warns:
        PrecisionWarning: when a lower bound of the condition number of ``A`` after diagonal
            scaling (from ``L``: ``max_i ||L[i, :]||^2 / L_ii^2``, and in single precision also
            three steps of inverse iteration) times ``eps`` exceeds ``PRECISION_TOL`` (float32:
            beyond ~8.4e4): compute in float64. Below it the gradient's relative error is at most
            about ``4 kappa eps``.

    Example::

        import torch
        import difflinalg

        A = torch.tensor([[4.0, 2.0], [2.0, 3.0]], dtype=torch.float64, requires_grad=True)
        L = difflinalg.cholesky(A)
        assert torch.allclose(L @ L.mT, A)
        L.diagonal().log().sum().backward()          # log det(A) / 2: gradient A^{-1} / 2
        assert torch.allclose(A.grad, torch.linalg.inv(A.detach()) / 2)
    """
    reject_meta("A", A)
    A = check_matrix(A, "A", square=True)
    # A lazily conjugated input trips a torch assert on forward-mode views in the nested jvp.
    L = _Cholesky.apply(A.resolve_conj().resolve_neg())
    # A physical conjugate, not a conj view: the view's .imag is a neg view, which has no vmap rule.
    return L.mH.resolve_conj() if upper else L
