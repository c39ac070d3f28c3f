r"""Functions of Hermitian matrices, ``f(A) = V diag(f(l)) V^H``, by the Daleckii-Krein rule.

For ``A = V diag(l) V^H`` (``eigh`` of the Hermitian part ``herm(A)``) and a real scalar function
``f``, with the divided-difference matrix ``D[i, j] = f[l_i, l_j]`` and, for a matrix ``X``, its
eigenbasis form ``X~ = V^H X V`` (Daleckii and Krein 1965; Bhatia, "Matrix Analysis", Thm. V.3.3;
Higham, "Functions of Matrices", Thm. 3.11)::

    forward:        F  = V diag(f(l)) V^H
    forward mode:   dF = L(A)[herm(dA)],        L(A)[E] = V (D o E~) V^H
    reverse mode:   gA = L(A)[herm(gF)]         (D is real symmetric: L(A) is self-adjoint)

``D`` has ``f'(l_i)`` on its diagonal and stays finite at repeated eigenvalues, where the usual
``eigh`` backward divides by ``l_i - l_j`` (NaN; PythonOT/POT#773 for ``sqrtm`` at the identity).
Nothing is differentiated through the eigenvectors: the reverse rule is itself the differentiable
op ``L(A)[E]`` of ``(A, E)`` (``_HermitianFrechet``), whose own derivatives are exact at repeated
eigenvalues through second divided differences ``T[i, k, j] = f[l_i, l_k, l_j]``::

    d(L(A)[E]) = L(A)[dE] + L2(A)[E, herm(dA)],
    L2(A)[P, Q] = V (sum_k T[i, k, j] (P~_ik Q~_kj + Q~_ik P~_kj)) V^H       (Higham, Thm. 3.33)

and, by the symmetry of ``T``, its adjoint with respect to ``A`` at a cotangent ``H`` is
``herm(L2(A)[E^H, H])``; with respect to ``E`` it is ``L(A)[H]``. So forward mode, reverse mode,
forward-over-reverse and double backward are exact; third and higher derivatives treat the
eigenbasis of the second-order terms as constant and are not supported. The second-order terms
cost O(n^3) memory for ``T``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._errors import InputError
from .._rule import Rule
from .._utils import check_matrix, herm, is_wrapped, reject_meta
from ._checks import check_derivative, check_overflow
from ._divided import (
    EXP,
    LOG,
    SQRT,
    ScalarFunction,
    first_divided_differences,
    power,
    second_divided_differences,
)


def _to_eigenbasis(V: Tensor, X: Tensor) -> Tensor:
    return V.mH @ X @ V


def _from_eigenbasis(V: Tensor, X: Tensor) -> Tensor:
    return V @ X @ V.mH


def frechet_eigenbasis(V: Tensor, D: Tensor, E: Tensor) -> Tensor:
    """``L(A)[E] = V (D o V^H E V) V^H`` for a divided-difference matrix ``D``."""
    return _from_eigenbasis(V, D.to(E.dtype) * _to_eigenbasis(V, E))


def second_frechet_eigenbasis(V: Tensor, T: Tensor, P: Tensor, Q: Tensor) -> Tensor:
    """``L2(A)[P, Q] = V (sum_k T_ikj (P~_ik Q~_kj + Q~_ik P~_kj)) V^H``."""
    Pt, Qt = _to_eigenbasis(V, P), _to_eigenbasis(V, Q)
    Tc = T.to(Pt.dtype)
    S = torch.einsum("...ikj,...ik,...kj->...ij", Tc, Pt, Qt) + torch.einsum(
        "...ikj,...ik,...kj->...ij", Tc, Qt, Pt
    )
    return _from_eigenbasis(V, S)


def _apply_scalar(fn: ScalarFunction, w: Tensor) -> Tensor:
    fw = fn.f(w)
    if not isinstance(fw, Tensor) or fw.shape != w.shape or fw.is_complex():
        got = f"shape {tuple(fw.shape)} dtype {fw.dtype}" if isinstance(fw, Tensor) else type(fw).__name__
        raise InputError(
            f"f: expected a real tensor of the eigenvalues' shape {tuple(w.shape)}, got {got}; "
            "f must act elementwise on a real tensor of eigenvalues (e.g. torch.sqrt)"
        )
    return fw.to(w.dtype)


class _HermitianFunction(Rule):
    @staticmethod
    def forward(A: Tensor, fn: ScalarFunction, name: str):
        w, V = torch.linalg.eigh(herm(A))
        if fn.domain is not None and not is_wrapped(w):
            fn.domain(w, name)
        fw = _apply_scalar(fn, w)
        check_overflow(fn, w, fw, name)
        F = V @ (fw.to(V.dtype)[..., :, None] * V.mH)
        return F, w, V

    @staticmethod
    def save(ctx, inputs, output):
        A, fn, name = inputs
        _, w, V = output
        ctx.fn, ctx.name = fn, name
        ctx.mark_non_differentiable(w, V)
        return A, w, V

    @staticmethod
    def gradients(ctx, A: Tensor, w: Tensor, V: Tensor, gF: Tensor, gw, gV):
        gA = _HermitianFrechet.apply(A, herm(gF), w, V, ctx.fn)
        return check_derivative(ctx.fn, w, gA, ctx.name)

    @staticmethod
    def tangents(ctx, A: Tensor, w: Tensor, V: Tensor, dA: Tensor, *_):
        # The op itself, not plain operations: forward-over-forward stays exact too.
        dF = _HermitianFrechet.apply(A, herm(dA), w, V, ctx.fn)
        return check_derivative(ctx.fn, w, dF, ctx.name)


class _HermitianFrechet(Rule):
    """``(A, E) -> L(A)[E]`` with ``A``'s eigendecomposition ``(w, V)`` given (not recomputed)."""

    @staticmethod
    def forward(A: Tensor, E: Tensor, w: Tensor, V: Tensor, fn: ScalarFunction) -> Tensor:
        return frechet_eigenbasis(V, first_divided_differences(fn, w), E)

    @staticmethod
    def save(ctx, inputs, output):
        ctx.fn = inputs[4]
        return inputs[1:4]  # E, w, V

    @staticmethod
    def gradients(ctx, E: Tensor, w: Tensor, V: Tensor, H: Tensor):
        D = first_divided_differences(ctx.fn, w)
        gE = frechet_eigenbasis(V, D, H) if ctx.needs_input_grad[1] else None
        gA = None
        if ctx.needs_input_grad[0]:
            T = second_divided_differences(ctx.fn, w, D)
            gA = herm(second_frechet_eigenbasis(V, T, E.mH, H))
        return gA, gE

    @staticmethod
    def tangents(ctx, E: Tensor, w: Tensor, V: Tensor, dA, dE, dw, dV, dfn):
        D = first_divided_differences(ctx.fn, w)
        out = frechet_eigenbasis(V, D, dE) if dE is not None else None
        if dA is not None:
            T = second_divided_differences(ctx.fn, w, D)
            second = second_frechet_eigenbasis(V, T, E, herm(dA))
            out = second if out is None else out + second
        return out


def _hermitian_apply(A: Tensor, fn: ScalarFunction, name: str) -> Tensor:
    reject_meta(name, A)
    A = check_matrix(A, name, square=True)
    return _HermitianFunction.apply(A, fn, name)[0]


def hermitian_function(A: Tensor, f, df, d2f=None) -> Tensor:
    """``f(A)`` for a Hermitian (real symmetric) matrix, with derivatives exact at repeated eigenvalues.

    Args:
        A: (..., n, n) real or complex; its Hermitian part ``(A + A^H) / 2`` is used.
        f: the scalar function, an elementwise callable mapping a real tensor of eigenvalues to a
            real tensor of the same shape (e.g. ``torch.sqrt``). It must be written in torch
            operations if ``d2f`` is not given.
        df: its derivative (elementwise callable), used on the diagonal of the divided differences
            and for near-equal eigenvalues.
        d2f: its second derivative, used by second-order derivatives at (near-)repeated
            eigenvalues; default: ``df`` differentiated by forward-mode autodiff.

    Returns:
        ``V diag(f(l)) V^H`` (..., n, n), in ``A``'s dtype, with ``herm(A) = V diag(l) V^H``.

    Raises:
        InputError: ``f``, ``df`` or ``d2f`` not callable; ``f`` returning something other than a
            real tensor of the eigenvalues' shape; ``f`` overflowing (non-finite at a finite
            eigenvalue); a non-square, non-finite or meta ``A``, an unsupported dtype.

    Derivatives: reverse, forward, forward-over-reverse and double backward, exact at repeated
    eigenvalues (Daleckii-Krein; Higham, "Functions of Matrices", Thm. 3.11 and 3.33; see the
    module docstring); vmap, ``torch.func.jvp`` and ``torch.func.hessian`` work.

    Example::

        import torch
        from difflinalg import hermitian_function

        A = torch.eye(3, dtype=torch.float64, requires_grad=True)  # a triple eigenvalue
        S = hermitian_function(A, torch.sin, torch.cos)
        S.trace().backward()  # finite where the eigh backward divides by zero
        assert torch.allclose(A.grad, torch.cos(torch.tensor(1.0, dtype=torch.float64)) * torch.eye(3, dtype=torch.float64))
    """
    for nm, g in (("f", f), ("df", df), ("d2f", d2f)):
        if g is not None and not callable(g):
            raise InputError(f"{nm}: expected a callable on a real tensor of eigenvalues, got {type(g).__name__}")
    return _hermitian_apply(A, ScalarFunction(f=f, df=df, d2f=d2f, name=getattr(f, "__name__", "f")), "A")


def sqrtmh(A: Tensor) -> Tensor:
    """Square root of a Hermitian positive semidefinite matrix (gradient finite at repeated
    eigenvalues, e.g. at the identity; infinite at zero eigenvalues, where sqrt is not differentiable).

    Args:
        A: (..., n, n) real or complex (float32/64, complex64/128), finite; its Hermitian part
            ``(A + A^H) / 2`` is used.

    Returns:
        ``X = V diag(sqrt(l)) V^H`` (..., n, n), Hermitian positive semidefinite, ``X @ X = herm(A)``;
        differentiable as ``hermitian_function`` (exact at repeated eigenvalues).

    Raises:
        NotPositiveDefiniteError: if an eigenvalue is negative beyond rounding (``-n eps max|l|``);
            eigenvalues inside that tolerance are treated as zero. In backward or forward mode:
            at a zero eigenvalue (``<= n eps max|l|``), where the derivative does not exist.
        InputError: a non-square, non-finite or meta ``A``, an unsupported dtype.

    Warns:
        PrecisionWarning: the derivative's condition ``max|l| / (2 l_min)`` predicts fewer than
            two correct digits in the dtype (``docs/conventions.md``).
        TransformCheckWarning: inside ``torch.func`` the derivative check cannot raise: the
            derivative at a zero eigenvalue is NaN instead (the domain check is skipped there).

    Example::

        import torch
        from difflinalg import sqrtmh

        A = torch.eye(3, dtype=torch.float64, requires_grad=True)
        X = sqrtmh(A)
        X.sum().backward()  # finite where the eigh backward divides by l_i - l_j = 0
        assert torch.allclose(A.grad, torch.full((3, 3), 0.5, dtype=torch.float64))
    """
    return _hermitian_apply(A, SQRT, "A")


def logmh(A: Tensor) -> Tensor:
    """Logarithm of a Hermitian positive definite matrix.

    Args:
        A: (..., n, n) real or complex (float32/64, complex64/128), finite; its Hermitian part
            ``(A + A^H) / 2`` is used.

    Returns:
        ``V diag(log(l)) V^H`` (..., n, n), Hermitian; differentiable as ``hermitian_function``
        (exact at repeated eigenvalues).

    Raises:
        NotPositiveDefiniteError: if an eigenvalue is not positive (``<= n eps max|l|``; the check
            is skipped inside ``torch.func``).
        InputError: a non-square, non-finite or meta ``A``, an unsupported dtype.

    Example::

        import math
        import torch
        from difflinalg import logmh

        A = torch.diag(torch.tensor([1.0, math.e], dtype=torch.float64))
        assert torch.allclose(logmh(A), torch.diag(torch.tensor([0.0, 1.0], dtype=torch.float64)))
    """
    return _hermitian_apply(A, LOG, "A")


def expmh(A: Tensor) -> Tensor:
    """Exponential of a Hermitian matrix (its Hermitian part).

    Args:
        A: (..., n, n) real or complex (float32/64, complex64/128), finite; its Hermitian part
            ``(A + A^H) / 2`` is used.

    Returns:
        ``V diag(exp(l)) V^H`` (..., n, n), Hermitian positive definite; differentiable as
        ``hermitian_function`` (exact at repeated eigenvalues).

    Raises:
        InputError: ``exp`` of an eigenvalue overflows the dtype (e.g. above ~709 in float64, ~88
            in float32; shift: ``expmh(A - c I) = exp(-c) expmh(A)``); a non-square, non-finite or
            meta ``A``, an unsupported dtype.

    Example::

        import torch
        from difflinalg import expmh

        A = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
        assert torch.allclose(expmh(A), torch.linalg.matrix_exp(A))
    """
    return _hermitian_apply(A, EXP, "A")


def powmh(A: Tensor, p: float) -> Tensor:
    """``A^p`` for a Hermitian positive definite matrix and a real exponent ``p``.

    Args:
        A: (..., n, n) real or complex (float32/64, complex64/128), finite; its Hermitian part
            ``(A + A^H) / 2`` is used.
        p: the exponent, a finite Python ``int`` or ``float`` (not a tensor: no derivative in
            ``p``).

    Returns:
        ``V diag(l^p) V^H`` (..., n, n), Hermitian; differentiable in ``A`` as
        ``hermitian_function`` (exact at repeated eigenvalues).

    Raises:
        NotPositiveDefiniteError: if an eigenvalue is not positive (``<= n eps max|l|``; the check
            is skipped inside ``torch.func``).
        InputError: if ``p`` is not a finite Python number; if ``l^p`` overflows the dtype; a
            non-square, non-finite or meta ``A``, an unsupported dtype.

    Example::

        import torch
        from difflinalg import powmh

        A = torch.tensor([[2.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
        assert torch.allclose(powmh(A, -1), torch.linalg.inv(A))
    """
    return _hermitian_apply(A, power(p), "A")
