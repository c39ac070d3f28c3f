r"""The Gram-matrix linear algebra of the regularized solve (``_regularized_solve``), plain torch
without an autograd rule: the Cholesky factor of ``rho I + D^H D`` or ``rho I + D D^H`` (``gram_factor``;
``factorize`` picks which, ``method="auto"``: the smaller, and checks its precision), the solves
with it, direct or by the Woodbury identity::

    (rho I_n + D^H D)^{-1} b = (b - D^H T^{-1} D b) / rho,   T = rho I_m + D D^H

(``gram_solve``, ``gram_solve_aux``, which also returns the inner solve ``t``), and the Woodbury
inner solve as one matrix (``woodbury_operator``, for ``RegularizedSolver``). The rules of
``_regularized_solve`` call these inside their autograd Function, so that derivatives see
``(D, rho)`` analytically; the numerics (which form is better conditioned, the float32 error model)
are in ``_regularized_solve``'s module docstring.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._errors import NotPositiveDefiniteError
from .._utils import check_precision, is_wrapped
from ._cholesky import factor_condition, poison_failed


def _other(gram: str) -> str:
    return "DDh" if gram == "DhD" else "DhD"


def gram_factor(D: Tensor, rho: Tensor, which: str) -> Tensor:
    """Lower Cholesky factor of ``rho I + D^H D`` (which="DhD") or ``rho I + D D^H`` ("DDh").

    ``rho`` has shape (..., 1, 1) (real). No autograd rule: callers pass the factor to ``_RegSolve``.
    """
    G = D.mH @ D if which == "DhD" else D @ D.mH
    shape = torch.broadcast_shapes(G.shape[:-2], rho.shape[:-2]) + G.shape[-2:]
    if is_wrapped(rho) and not is_wrapped(G):
        # vmap over rho alone: an in-place add of a batched rho into an unbatched G is refused
        G = G + rho.to(G.dtype) * torch.eye(G.shape[-1], dtype=G.dtype, device=G.device)
    else:
        if G.shape != shape:
            G = G.expand(shape).clone()
        G.diagonal(dim1=-2, dim2=-1).add_(rho[..., 0].to(G.dtype))  # G is a fresh buffer: in place
    L, info = torch.linalg.cholesky_ex(G)
    if is_wrapped(info) or is_wrapped(rho):
        # the eager checks (rho > 0, positive definite) cannot raise inside torch.func
        bad = (info > 0) | (rho[..., 0, 0] <= 0).expand(info.shape)
        return poison_failed(L, bad.to(info.dtype), "regularized_solve")
    if bool((info > 0).any()):
        idx = (info > 0).nonzero()
        where = f" (batch index {tuple(idx[0].tolist())})" if info.ndim else ""
        form = "rho I + D^H D" if which == "DhD" else "rho I + D D^H"
        raise NotPositiveDefiniteError(
            f"rho: {form} is not numerically positive definite{where} (rounding swamps rho "
            f"relative to |D|^2); increase rho, scale D, or use a higher precision "
            f"(D.to(torch.float64))"
        )
    return L


def gram_solve(D: Tensor, rho: Tensor, L: Tensor, b: Tensor, gram: str, factored: str) -> Tensor:
    """``(rho I + Gram)^{-1} b`` for the Gram matrix ``gram`` from the factor ``L`` of ``factored``.

    Plain torch operations (differentiable, but through the factor only as a constant): the rules
    below call it inside ``_RegSolve`` so that derivatives see ``(D, rho)``.
    """
    return gram_solve_aux(D, rho, L, b, gram, factored)[0]


def gram_solve_aux(D: Tensor, rho: Tensor, L: Tensor, b: Tensor, gram: str, factored: str,
                   V: Tensor | None = None, rinv: float | None = None) -> tuple[Tensor, Tensor | None]:
    """``gram_solve`` and, for the Woodbury forms, its inner solve ``t``, which is ``D y``
    (``DhD``: ``t = T^{-1} D b`` and ``D y = (D b - (T - rho I) t) / rho = t``) or ``D^H y`` (``DDh``);
    ``None`` for the direct forms. ``V`` (optional, Woodbury forms only) is ``woodbury_operator``:
    then ``t = V b``, one product instead of a product and two triangular solves; ``rinv``
    (``1 / rho`` of a scalar ``rho``, with ``V``) lets the last step be one ``addmm``."""
    if gram == factored:
        return torch.cholesky_solve(b, L), None
    Dh = D.mH if gram == "DhD" else D  # (rho I + D^H D)^{-1} b = (b - D^H T^{-1} D b) / rho
    t = V @ b if V is not None else torch.cholesky_solve((D if gram == "DhD" else D.mH) @ b, L)
    return _minus_scaled(b, Dh, t, rho, rinv), t


def _minus_scaled(b: Tensor, Dh: Tensor, t: Tensor, rho: Tensor, rinv: float | None) -> Tensor:
    """``(b - Dh t) / rho``; with a Python ``rinv = 1 / rho`` and 2-D operands one fused
    ``addmm`` (the GEMM scales and subtracts: ~20 us less than the product, subtraction and
    scaling at 64 x 128 with 32 columns)."""
    if rinv is not None and b.ndim == 2 and Dh.ndim == 2:
        return torch.addmm(b, Dh, t, beta=rinv, alpha=-rinv)
    # (x * (1 / rho): a complex-by-real division is ~4x slower than the product on CPU)
    return (b - Dh @ t) * rho.reciprocal()


def woodbury_operator(D: Tensor, L: Tensor, gram: str) -> Tensor:
    """``V = T^{-1} D`` (``gram="DhD"``, ``L`` the factor of ``T = rho I + D D^H``; m x n) or
    ``S^{-1} D^H`` (``"DDh"``, ``L`` of ``S``; n x m): the Woodbury inner solve as one matrix.

    ``RegularizedSolver`` computes it once, so that each first-order solve and backward is a
    pair of thin products, ``t = V b`` then ``(b - D^H t) / rho``, with no triangular solve per
    call. Formed as ``(L L^H)^{-1}`` (``cholesky_inverse``) times ``D``: at 64 x 128 on one CPU
    thread about half the time of ``cholesky_solve`` with 128 right-hand sides (complex
    triangular solves with many right-hand sides are slow there). Error: the inverse from the
    Cholesky factor is accurate to ``kappa eps`` normwise, so ``V b`` carries a ``kappa eps``
    relative error in ``||T^{-1}|| ||D|| ||b||`` rather than in ``||T^{-1} D b||`` (a normwise,
    not a componentwise, bound); ``tests/factor/test_regularized_solve.py`` checks the
    single-precision gradients of the solver against the one-shot form's ``4 kappa eps`` bound
    (measured up to ``1.0 kappa eps``, the same as the one-shot form). No graph: like ``L``, a
    constant that the rules differentiate through analytically.
    """
    return torch.cholesky_inverse(L) @ (D if gram == "DhD" else D.mH)


def factorize(D: Tensor, r: Tensor, gram: str, method: str) -> tuple[Tensor, str]:
    """The Cholesky factor (no graph: a cache the rules differentiate through analytically) and
    which Gram matrix it factors; warns ``PrecisionWarning`` from its condition estimate."""
    m, n = D.shape[-2:]
    if method == "direct":
        factored = gram
    elif method == "woodbury":
        factored = _other(gram)
    else:
        factored = "DDh" if m < n else ("DhD" if n < m else gram)
    with torch.no_grad():
        L = gram_factor(D.detach(), r.detach(), factored)
        what = f"(rho I + {'D^H D' if gram == 'DhD' else 'D D^H'})^{{-1}} x and its derivative"
        check_precision("regularized_solve", factor_condition(L, None if factored == gram else r), D.dtype, what)
    return L, factored
