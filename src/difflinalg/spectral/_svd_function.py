r"""Functions of the singular values, ``F = U f(S) V^H``, exact at repeated and zero singular values.

Definition. For ``A = U diag(S) V^H`` (thin SVD, ``k = min(m, n)``) and a real scalar function
``f`` on ``[0, inf)``, ``F = U diag(f(S)) V^H`` (m x n). With ``f`` extended oddly,
``f(-x) = -f(x)`` (so ``f(0) = 0``), ``F`` is the off-diagonal block of the Hermitian matrix
function of the dilation (Higham, "Functions of Matrices", Sec. 1.9 / Problem 1.36; the
"generalized matrix function" of Hawkins & Ben-Israel, Arrieta et al. 2016)::

    B = [[0, A], [A^H, 0]],        f(B) = [[0, F], [F^H, 0]]  (+ f(0) = 0 on the kernel)

``B`` has the eigenpairs ``(+-s_i, (u_i, +-v_i)/sqrt(2))`` and ``|m - n|`` zero eigenvalues with
eigenvectors ``(u_perp, 0)`` or ``(0, v_perp)`` (the complement columns of a full SVD), so its
eigendecomposition is assembled from ``torch.linalg.svd(A, full_matrices=True)`` without a
second factorization.

Derivatives: the Daleckii-Krein rules of ``difflinalg.hermitian_function`` on ``B``
(``matfun/_hermitian.py``, reused: ``_HermitianFrechet`` with the dilation's eigenpairs), with
``E = [[0, gF/2], [gF^H/2, 0]]`` = the Hermitian part of the cotangent of the block::

    forward mode:  dF = L(B)[[[0, dA], [dA^H, 0]]]_{12}
    reverse mode:  gA = 2 L(B)[E]_{12}            (L(B) self-adjoint, L(B)[X^H] = L(B)[X]^H)

In SVD terms (``dP = U^H dA V``, ``f[a, b]`` the divided difference) this is
``U (f[s_i, s_j] o herm(dP) + f[s_i, -s_j] o skew(dP)) V^H`` plus the complement terms with
``f[s_i, 0] = f(s_i)/s_i``: every division is a divided difference of ``f``, whose limits at
equal arguments are ``f'`` (``f[s, s] = f'(s)``, ``f[s, -s] = f(s)/s``, ``f[0, 0] = f'(0)``), so
the rules are exact at repeated singular values, at zero singular values (if ``f`` is smooth as
an odd function there) and for rectangular input. Second derivatives (forward-over-reverse,
double backward, forward-over-forward) use the second divided differences of ``_HermitianFrechet``
(``O((m + n)^3)`` memory); third and higher are not supported. Costs: one SVD with full
matrices and ``O((m + n)^3)`` per derivative.

This is the exact path for the losses that ``svd`` cannot differentiate at ties (``<W, U f(S)
V^H>``, see ``_svd_ties.py``). Where ``f(0) != 0`` the block is not continuous at a rank-deficient
``A`` (it pairs arbitrary null vectors): the forward raises there.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._errors import DegenerateSpectrumError, InputError
from .._nested import call
from .._utils import check_matrix, is_wrapped
from ..matfun._checks import check_overflow
from ..matfun._divided import ScalarFunction
from ..matfun._hermitian import _apply_scalar, _HermitianFrechet, _HermitianFunction
from ._svd_ties import resolve_tol


def odd_extension(fn: ScalarFunction) -> ScalarFunction:
    """``x -> sign(x) f(|x|)`` with its derivatives (``f'(|x|)``, ``sign(x) f''(|x|)``)."""
    f, df, d2f = fn.f, fn.df, fn.d2f
    return ScalarFunction(
        f=lambda x: torch.sign(x) * f(x.abs()),
        df=lambda x: df(x.abs()),
        d2f=None if d2f is None else (lambda x: torch.sign(x) * d2f(x.abs())),
        name=fn.name,
    )


def dilation(A: Tensor) -> Tensor:
    """``[[0, A], [A^H, 0]]`` (..., m + n, m + n), differentiable."""
    m, n = A.shape[-2:]
    top = torch.cat([torch.zeros(A.shape[:-2] + (m, m), dtype=A.dtype, device=A.device), A], -1)
    bottom = torch.cat([A.mH, torch.zeros(A.shape[:-2] + (n, n), dtype=A.dtype, device=A.device)], -1)
    return torch.cat([top, bottom], -2)


def dilation_eigh(U: Tensor, S: Tensor, Vh: Tensor) -> tuple[Tensor, Tensor]:
    """Eigenvalues ``[S, -S, 0...]`` and orthonormal eigenvectors of the dilation from a full SVD."""
    m, n, k = U.shape[-1], Vh.shape[-2], S.shape[-1]
    r = 1.0 / math.sqrt(2.0)
    Uk, Vk = U[..., :k] * r, Vh[..., :k, :].mH * r
    batch = S.shape[:-1]
    zU = torch.zeros(batch + (n, m - k), dtype=U.dtype, device=U.device)
    zV = torch.zeros(batch + (m, n - k), dtype=U.dtype, device=U.device)
    top = torch.cat([Uk, Uk, U[..., k:], zV], -1)
    bottom = torch.cat([Vk, -Vk, zU, Vh[..., k:, :].mH], -1)
    zeros = torch.zeros(batch + (m + n - 2 * k,), dtype=S.dtype, device=S.device)
    return torch.cat([S, -S, zeros], -1), torch.cat([top, bottom], -2)


def _check_zero(fn: ScalarFunction, S: Tensor, F: Tensor, m: int, n: int) -> Tensor:
    """Where ``f(0) != 0`` meets a zero singular value (up to rounding) ``F`` is not continuous
    (it pairs arbitrary null vectors): raise, or NaN for those matrices inside ``torch.func``."""
    if S.numel() == 0:
        return F
    f0 = fn.f(torch.zeros((), dtype=S.dtype, device=S.device))
    tol = resolve_tol(None, m, n, S.dtype) * S.amax(-1)
    bad = (S.amin(-1) <= tol) & (f0 != 0)
    if is_wrapped(S) or is_wrapped(f0):
        return torch.where(bad[..., None, None], torch.full_like(F, float("nan")), F)
    if bool(bad.any()):
        raise DegenerateSpectrumError(
            f"f: f(0) = {float(f0):.3e} != 0, but A has a zero singular value (up to rounding, "
            f"{float(S.amin()):.3e}): U f(S) V^H is not continuous there (it pairs arbitrary null "
            "vectors); use a function with f(0) = 0 (e.g. f(s) - f(0))"
        )
    return F


class _SVDFunction(_HermitianFunction):
    """``(A, odd f, f) -> (F, w, Q)`` with the dilation's eigenpairs ``(w, Q)``; ``save`` is
    ``_HermitianFunction``'s (``ctx.fn``: the odd extension), the hooks are the dilation's."""

    @staticmethod
    def forward(A: Tensor, odd: ScalarFunction, fn: ScalarFunction):
        U, S, Vh = torch.linalg.svd(A, full_matrices=True)
        k = S.shape[-1]
        fS = _apply_scalar(fn, S)
        check_overflow(fn, S, fS, "A", "singular value")  # else U diag(inf) V^H: NaN entries
        fS = fS.to(A.dtype)
        F = _check_zero(fn, S, (U[..., :k] * fS[..., None, :]) @ Vh[..., :k, :], *A.shape[-2:])
        w, Q = dilation_eigh(U, S, Vh)
        return F, w, Q

    @staticmethod
    def gradients(ctx, A: Tensor, w: Tensor, Q: Tensor, gF: Tensor, gw, gQ):
        m = A.shape[-2]
        G = _HermitianFrechet.apply(dilation(A), 0.5 * dilation(gF), w, Q, ctx.fn)
        return 2.0 * G[..., :m, m:]

    @staticmethod
    def tangents(ctx, A: Tensor, w: Tensor, Q: Tensor, dA: Tensor, *_):
        m = A.shape[-2]
        # The Frechet op and ``call`` (not plain arithmetic, whose outer tangents PyTorch drops
        # here): forward-over-forward stays exact.
        G = _HermitianFrechet.apply(call(dilation, A), call(dilation, dA), w, Q, ctx.fn)
        return call(lambda G: G[..., :m, m:], G)


def svd_function(A: Tensor, f, df, d2f=None) -> Tensor:
    """``U diag(f(S)) V^H`` for ``A = U diag(S) V^H``, with derivatives exact at repeated and zero
    singular values.

    The exact path for losses of the form ``<W, U f(S) V^H>``, whose gradient ``svd`` cannot
    give at (nearly) repeated singular values (it raises ``DegenerateSpectrumError`` there).
    Examples: ``f = torch.sin``; the polar factor-like ``f(s) = s / sqrt(s^2 + d)``; singular
    value soft-thresholding with a smooth ``f``.

    Args:
        A: (..., m, n) real or complex (float32/64, complex64/128), finite; any ``m``, ``n``.
        f: the scalar function on singular values, an elementwise callable mapping a real tensor
            (values ``>= 0``) to a real tensor of the same shape (e.g. ``torch.sin``). It is
            extended oddly (``f(-x) = -f(x)``) for the derivatives, which are exact at zero
            singular values where that extension is smooth (``f(0) = 0``, e.g. ``sin``, ``tanh``,
            ``x``, ``x^3``). Must be written in torch operations if ``d2f`` is not given.
        df: its derivative (elementwise callable), used at (nearly) equal singular values.
        d2f: its second derivative (second-order derivatives at ties); default: ``df``
            differentiated by forward-mode autodiff.

    Returns:
        ``F`` (..., m, n) in ``A``'s dtype.

    Raises:
        InputError: ``A`` not a (batched) matrix, of an unsupported dtype, or non-finite;
            ``f``/``df``/``d2f`` not callable, ``f`` not returning a real tensor of the
            singular values' shape, or ``f`` overflowing (non-finite at a singular value, e.g.
            ``exp`` of 100 in float32): scale the problem or compute in double precision.
        DegenerateSpectrumError: ``f(0) != 0`` and ``A`` has a zero singular value (up to
            rounding): ``F`` is not continuous there (inside ``torch.func``: NaN for that
            matrix).

    Derivatives: reverse, forward, forward-over-reverse, double backward and forward-over-forward
    (module notes); ``torch.func`` transforms (vmap, grad, jvp, hessian) work.

    Example::

        import math
        import torch
        import difflinalg

        A = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]], dtype=torch.float64, requires_grad=True)
        F = difflinalg.svd_function(A, torch.sin, torch.cos)   # s = (1, 1): a repeated singular value
        W = A.detach()                               # = U V^H, so <W, F> = sin(s_1) + sin(s_2)
        assert torch.allclose(F, math.sin(1.0) * W)
        (W * F).sum().backward()                     # gradient U cos(S) V^H, exact at the tie
        assert torch.allclose(A.grad, math.cos(1.0) * W)
    """
    for nm, g in (("f", f), ("df", df), ("d2f", d2f)):
        if not callable(g) and (g is not None or nm != "d2f"):
            raise InputError(f"{nm}: expected a callable on a real tensor of singular values, got "
                             f"{type(g).__name__}")
    A = check_matrix(A, "A")
    fn = ScalarFunction(f=f, df=df, d2f=d2f, name=getattr(f, "__name__", "f"))
    return _SVDFunction.apply(A, odd_extension(fn), fn)[0]

