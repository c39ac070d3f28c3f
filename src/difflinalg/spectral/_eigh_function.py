r"""Functions of a Hermitian matrix through its eigendecomposition, ``F = V f(w) V^H``, exact at ties.

The exact path for the losses that ``eigh`` cannot differentiate at (nearly) repeated eigenvalues
(``<W, V f(w) V^H>``, ``x^H V g(w) V^H x``, ``sum(f(w)) = tr F`` at second order; see
``_eigh_ties.py``). ``F = f(herm(A))`` is the primary matrix function; its derivatives are the
Daleckii-Krein rules of ``difflinalg.hermitian_function`` (``matfun/_hermitian.py``, reused, not
copied), whose divided differences ``f[w_i, w_j]`` have the limit ``f'(w_i)`` at equal arguments
(Daleckii & Krein 1965; Bhatia, "Matrix Analysis", Thm. V.3.3; Higham, "Functions of Matrices",
Thm. 3.11 and 3.33 for the second order)::

    dF = V (f[w_i, w_j] o V^H herm(dA) V) V^H,        gA = V (f[w_i, w_j] o V^H herm(gF) V) V^H

so every mode (reverse, forward, forward-over-reverse, double backward, forward-over-forward) is
exact at any degeneracy and needs no tie tolerance. Cost: one eigendecomposition, ``O(n^3)`` per
first derivative, ``O(n^3)`` memory for the second divided differences of second derivatives.
"""

from __future__ import annotations

from torch import Tensor

from .._errors import InputError
from .._utils import check_matrix
from ..matfun._divided import ScalarFunction
from ..matfun._hermitian import _HermitianFunction
from ._hermitian_input import resolve_views


def eigh_function(A: Tensor, f, df, d2f=None) -> Tensor:
    """``V diag(f(w)) V^H`` for ``herm(A) = V diag(w) V^H``, with derivatives exact at repeated
    eigenvalues.

    The exact path for losses of the form ``<W, V f(w) V^H>``, whose gradient ``eigh`` cannot give
    at (nearly) repeated eigenvalues (it raises ``DegenerateSpectrumError`` there), and for
    second derivatives of ``sum(f(w)) = trace(eigh_function(A, f, df))``. The same function as
    ``difflinalg.hermitian_function``, under the name of the eigh family (conjugate views
    accepted).

    Args:
        A: (..., n, n) real or complex (float32/64, complex64/128), finite; its Hermitian part
            ``(A + A^H)/2`` is used.
        f: the scalar function, an elementwise callable mapping a real tensor of eigenvalues to a
            real tensor of the same shape (e.g. ``torch.sin``); written in torch operations if
            ``d2f`` is not given.
        df: its derivative (elementwise callable), used at (nearly) equal eigenvalues.
        d2f: its second derivative (second-order derivatives at ties); default: ``df``
            differentiated by forward-mode autodiff.

    Returns:
        ``F`` (..., n, n) in ``A``'s dtype, Hermitian.

    Raises:
        InputError: ``A`` not a (batched) square matrix, of an unsupported dtype, or non-finite;
            ``f``/``df``/``d2f`` not callable; ``f`` not returning a real tensor of the
            eigenvalues' shape, or overflowing (a non-finite value at a finite eigenvalue,
            checked outside ``torch.func``).

    Derivatives: reverse, forward, forward-over-reverse, double backward and forward-over-forward;
    ``torch.func`` transforms (vmap, grad, jvp, hessian) work.

    Example::

        import math
        import torch
        import difflinalg

        A = torch.eye(3, dtype=torch.float64, requires_grad=True)   # a triple eigenvalue
        F = difflinalg.eigh_function(A, torch.exp, torch.exp)
        assert torch.allclose(F, math.e * torch.eye(3, dtype=torch.float64))
        F.trace().backward()                         # d tr exp(A) / dA = exp(A), exact at the tie
        assert torch.allclose(A.grad, F.detach())
    """
    for nm, g in (("f", f), ("df", df), ("d2f", d2f)):
        if not callable(g) and (g is not None or nm != "d2f"):
            raise InputError(f"{nm}: expected a callable on a real tensor of eigenvalues, got "
                             f"{type(g).__name__}")
    A = resolve_views(check_matrix(A, "A", square=True))
    fn = ScalarFunction(f=f, df=df, d2f=d2f, name=getattr(f, "__name__", "f"))
    return _HermitianFunction.apply(A, fn, "A")[0]
