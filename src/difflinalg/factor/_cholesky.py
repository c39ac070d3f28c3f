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
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._errors import NotPositiveDefiniteError
from .._nested import call
from .._utils import check_matrix, herm, is_wrapped


def phi(x: Tensor) -> Tensor:
    """Lower triangle of ``x`` with the diagonal halved."""
    return x.tril() - 0.5 * torch.diag_embed(x.diagonal(dim1=-2, dim2=-1))


def cholesky_factor(A: Tensor, name: str = "A") -> Tensor:
    """Lower Cholesky factor of ``herm(A)`` (no autograd rule); raises if not positive definite."""
    L, info = torch.linalg.cholesky_ex(herm(A))
    if not is_wrapped(info) and bool((info > 0).any()):
        idx = tuple((info > 0).nonzero()[0].tolist())
        bad = int(info[idx])
        where = f" (batch index {idx})" if idx else ""
        raise NotPositiveDefiniteError(
            f"{name}: matrix is not Hermitian positive definite{where}: the leading minor of "
            f"order {bad} is not positive; regularize it (e.g. add eps * I) or use an "
            "indefinite solver"
        )
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


class _Cholesky(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(A: Tensor) -> Tensor:
        return cholesky_factor(A)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output)
        ctx.save_for_forward(output)

    @staticmethod
    def backward(ctx, gL: Tensor) -> Tensor:
        (L,) = ctx.saved_tensors
        return cholesky_vjp(L, gL)

    @staticmethod
    def jvp(ctx, dA: Tensor) -> Tensor:
        (L,) = ctx.saved_tensors
        # Through ``call`` so that an outer forward level sees this rule's arithmetic (jvp of jvp).
        return call(cholesky_jvp, L, dA)


def cholesky(A: Tensor, upper: bool = False) -> Tensor:
    """Cholesky factor of a Hermitian positive-definite matrix, batched over leading dimensions.

    Args:
        A: (..., n, n) real or complex; treated as Hermitian (its Hermitian part is factorized).
        upper: return the upper factor ``U = L^H`` (``A = U^H U``) instead of ``L``.

    Returns:
        ``L`` with ``A = L L^H`` (lower, positive real diagonal), or ``L^H`` if ``upper``.

    Raises:
        NotPositiveDefiniteError: naming the failing leading minor, if ``A`` is not positive definite.
    """
    A = check_matrix(A, "A", square=True)
    L = _Cholesky.apply(A)
    return L.mH if upper else L
