r"""The regularized solve ``y = (rho I + D^H D)^{-1} x`` or ``y = (rho I + D D^H)^{-1} x`` (the ADMM /
sparse-coding update) with one Cholesky factorization shared by forward, backward and JVP: the
public ``regularized_solve`` and its autograd rule here, the factor and the (Woodbury) solves in
``_regularized_gram``.

Forward definition. ``D`` (..., m, n), ``rho > 0`` real, and with ``A`` the chosen operator::

    gram="DhD":  A = rho I_n + D^H D,  y = A^{-1} x,  x (..., n) or (..., n, r)
    gram="DDh":  A = rho I_m + D D^H,  y = A^{-1} x,  x (..., m) or (..., m, r)

Only one of the two Gram matrices is factorized, ``S = rho I_n + D^H D`` or
``T = rho I_m + D D^H`` (``method="auto"``: the smaller one); the other operator follows from the
Woodbury identity::

    (rho I_n + D^H D)^{-1} = (I_n - D^H T^{-1} D) / rho,   (rho I_m + D D^H)^{-1} = (I_m - D S^{-1} D^H) / rho

Rules, with ``z = A^{-1} g`` for the output gradient ``g`` (``A`` is Hermitian; PyTorch's complex
convention, ``dL = Re tr(g^H dy)``; the derivation of ``gD``, summed over the right-hand sides:
``docs/math/cholesky-solve.md``, "Derivatives")::

    forward:  dy = A^{-1} (dx - drho y - dG y),
              dG y = D^H (dD y) + dD^H (D y)   (DhD)   or   D (dD^H y) + dD (D^H y)   (DDh)
    reverse:  gx = z,   grho = -Re sum(conj(z) * y),
              gD = -D (y z^H + z y^H) = -(D [y, z]) [z, y]^H             (DhD, eq. 21)
              gD = -(z y^H + y z^H) D = -[z, y] (D^H [y, z])^H           (DDh, eq. 41)

In the Woodbury forms the inner solve of ``z`` already yields ``D z`` (``DhD``: ``D z = T^{-1} D g``)
or ``D^H z`` (``DDh``), which saves one of the thin products (``_woodbury_vjp``).

The backward costs one solve with the saved factor and two thin products; the autograd anchor
(``cholesky`` + ``cholesky_solve`` of the explicit Gram matrix) differentiates through the
factorization (triangular solves with n right-hand sides) and the Gram product instead.

Second order. The factor is an input of the autograd Function that the wrapper computes once
(without autograd): the Function's rules account for the dependence of ``A`` on ``(D, rho)``
analytically. ``z`` in the backward and the solve in the JVP are computed by the same Function with
the same factor, so the backward and the JVP are themselves differentiable (double backward,
forward-over-reverse as in ``torch.func.hessian``, reverse-over-forward) and never refactorize.
Nested forward mode (``jacfwd(jacfwd(...))``) works too: the JVP's solve goes through
``_nested.call`` (pytorch/pytorch#197867).

Numerics. The smaller Gram matrix is also the better conditioned one: when m < n,
``rho I_n + D^H D`` has n - m eigenvalues equal to rho, while ``rho I_m + D D^H`` has none (and the
converse for m > n). Measured in float32 (D 16 x 64 with unit-scale columns, error relative to
float64): rho = 1e-2: direct 1.8e-5, Woodbury 1.8e-7; rho = 1e-4: direct 1.8e-3, Woodbury 1.8e-7.
So ``method="auto"`` is both the faster and the more accurate choice. ``rho I + G`` is factorized
without pivoting; it fails (``NotPositiveDefiniteError``) only when rounding swamps ``rho``.

Single precision. The value and every derivative are solves with the factored matrix ``F``, so
their relative error is about ``kappa eps`` with ``kappa`` the condition number of the computation:
``kappa(F)`` after diagonal scaling (``_cholesky.factor_condition``) for the direct form, and
``max_i ||L[i, :]||^2 / rho`` for the Woodbury form (its subtraction ``b - D^H T^{-1} D b`` cancels
to the size of ``rho``-scaled terms; this is also the condition of the operator with the n - m
eigenvalues equal to rho). ``_cholesky.factor_condition`` computes both from the factor; the
wrapper warns ``PrecisionWarning`` ("use float64") when ``kappa eps > PRECISION_TOL``. Below it the
measured relative gradient error is at most ``4 kappa eps`` (complex64, D 8 x 16, 16 x 8, 12 x 12,
both grams and methods, rho 1e-1..1e-5; ``tests/factor/test_regularized_solve.py``).
"""

from __future__ import annotations

from functools import partial

import torch
import torch.autograd.forward_ad as _fwAD
from torch import Tensor
from torch.overrides import handle_torch_function, has_torch_function

from .._nested import call
from .._rule import Rule
from .._utils import is_wrapped
from ._regularized_gram import _minus_scaled, _other, factorize, gram_solve, gram_solve_aux
from ._regularized_inputs import check_gram_method, prepare_D_rho, prepare_rhs


def _sum_to(x: Tensor, like: Tensor) -> Tensor:
    return x if x.shape == like.shape else x.sum_to_size(like.shape)


class _RegSolve(Rule):
    """``y = (rho I + Gram)^{-1} x`` given the factor ``L``; x (..., k, r), rho (..., 1, 1) real."""

    @staticmethod
    def forward(D: Tensor, x: Tensor, rho: Tensor, L: Tensor, gram: str, factored: str) -> Tensor:
        return gram_solve(D, rho, L, x, gram, factored)

    @staticmethod
    def save(ctx, inputs, output):
        D, x, rho, L, gram, factored = inputs
        ctx.gram, ctx.factored = gram, factored
        ctx.x_shape = x.shape
        return D, rho, L, output

    @staticmethod
    def gradients(ctx, D: Tensor, rho: Tensor, L: Tensor, y: Tensor, *rest: Tensor):
        *image, g = rest  # image: the Woodbury inner solve saved by _RegSolveEager (first order)
        gD = gx = grho = None
        # The inner solves go through this Function when the backward itself may be differentiated
        # (double backward, forward-over-reverse, torch.func); otherwise plain solves with the factor
        # (the same values, without a second Function's bookkeeping per solve).
        nested = torch.is_grad_enabled() or _fwAD._current_level >= 0 or is_wrapped(g) or is_wrapped(D)
        if ctx.needs_input_grad[0] and ctx.factored != ctx.gram:
            image = image[0] if image and not nested else None  # not in the graph: first order only
            V, rinv = getattr(ctx, "woodbury_V", (None, None))  # _RegSolveEager's constants, first order only
            z, gD = _woodbury_vjp(D, rho, L, y, g, ctx.gram, nested, image, *((None, None) if nested else (V, rinv)))
            gD = _sum_to(gD, D)
        elif nested:
            z = _apply_solve(D, g, rho, L, ctx.gram, ctx.factored)  # differentiable: double backward
        else:
            z = gram_solve(D, rho, L, g, ctx.gram, ctx.factored)
        if ctx.needs_input_grad[0] and gD is None:
            yz, zy = torch.cat([y, z], dim=-1), torch.cat([z, y], dim=-1)
            if ctx.gram == "DhD":  # negate the thin factor, not the D-sized product
                gD = (-(D @ yz)) @ zy.mH
            else:
                gD = zy @ (-(D.mH @ yz)).mH
            gD = _sum_to(gD, D)
        if ctx.needs_input_grad[1]:
            gx = z if z.shape == ctx.x_shape else z.sum_to_size(ctx.x_shape)
        if ctx.needs_input_grad[2]:
            grho = _sum_to(-(z.conj() * y).real.sum(dim=(-2, -1), keepdim=True), rho)
        return gD, gx, grho

    @staticmethod
    def tangents(ctx, D, rho, L, y, dD, dx, drho, _dL, _g, _f):
        given = [t for t in (dD, dx, drho) if t is not None]
        if not given:
            return torch.zeros_like(y)
        # The right-hand side through ``call`` so that an outer forward level sees it (jvp of jvp);
        # the solve is this Function again (same factor).
        rhs = call(partial(_jvp_rhs, ctx.gram, dD is not None, dx is not None, drho is not None), D, y, *given)
        return _apply_solve(D, rhs, rho, L, ctx.gram, ctx.factored)


class _RegSolveEager(torch.autograd.Function):
    """``_RegSolve`` in the old style (``forward(ctx, ...)``, the same rules) for plain tensors.

    The new style's ``apply`` binds the arguments with ``inspect.signature`` at every call
    (~35 us); an unrolled loop calls the solve once per iteration forward and once per backward,
    which at small sizes is a visible share. ``torch.func`` needs the new style (its vmap rule).
    The old style may also save an intermediate: the Woodbury inner solve (see ``_woodbury_vjp``),
    and take two more constant inputs, ``V`` (``woodbury_operator``; ``None`` for the direct
    forms or when the caller has none), which replaces the triangular solves of the first-order
    forward and backward by products, and ``rinv`` (``1 / rho`` as a Python number for a scalar
    ``rho``, or ``None``), which fuses their last steps (``_minus_scaled``).
    """

    @staticmethod
    def forward(ctx, D: Tensor, x: Tensor, rho: Tensor, L: Tensor, gram: str, factored: str,
                V: Tensor | None = None, rinv: float | None = None) -> Tensor:
        y, t = gram_solve_aux(D, rho, L, x, gram, factored, V, rinv)
        _RegSolve.setup_context(ctx, (D, x, rho, L, gram, factored), y)
        ctx.rule_arity = (8, 1)  # V, rinv: two more (non-differentiable) inputs than _RegSolve
        if t is not None:  # the Woodbury inner solve, D y or D^H y: saves the first-order backward a product
            ctx.save_for_backward(D, rho, L, y, t)
            if V is not None:  # constants without graph (like L): no saved-tensor bookkeeping needed
                ctx.woodbury_V = (V, rinv)
        return y

    # The scaffold's (classmethods bound to _RegSolve): the same hooks, the same padding.
    backward = staticmethod(_RegSolve.backward)
    jvp = staticmethod(_RegSolve.jvp)


def _apply_solve(D: Tensor, x: Tensor, rho: Tensor, L: Tensor, gram: str, factored: str,
                 V: Tensor | None = None, rinv: float | None = None) -> Tensor:
    """``_RegSolve``, or its old-style twin (which uses ``V`` and ``rinv`` if given) when no
    argument is wrapped by a torch.func transform."""
    if is_wrapped(D) or is_wrapped(x) or is_wrapped(rho) or is_wrapped(L):
        return _RegSolve.apply(D, x, rho, L, gram, factored)
    return _RegSolveEager.apply(D, x, rho, L, gram, factored, V, rinv)


def _woodbury_vjp(D: Tensor, rho: Tensor, L: Tensor, y: Tensor, g: Tensor, gram: str,
                  nested: bool, image: Tensor | None = None,
                  V: Tensor | None = None, rinv: float | None = None) -> tuple[Tensor, Tensor]:
    """``z = A^{-1} g`` and ``gD`` for the Woodbury forms, one or two thin products cheaper than the
    generic rule: for ``gram="DhD"`` (factor of ``T = rho I + D D^H``) ``D z = T^{-1} D g =: u`` is
    the inner solve of ``z = (g - D^H u) / rho`` itself, so ``gD = -(D y) z^H - u y^H``; for
    ``"DDh"`` (factor of ``S``) ``D^H z = S^{-1} D^H g =: u`` and ``gD = -z (D^H y)^H - y u^H``.
    ``image`` is ``D y`` (``D^H y``) saved by the forward, else recomputed. With ``nested`` (the
    backward will be differentiated), ``u`` comes from this Function (the direct form of the other
    Gram matrix, same factor) and ``image`` is recomputed, so the result is differentiable. With
    ``V = F^{-1} Dt`` (``woodbury_operator``, first order) and ``image`` given, ``u = V g``
    (``rinv``: see ``_minus_scaled``)."""
    r = y.shape[-1]
    Dh = D.mH if gram == "DhD" else D  # z = (g - Dh u) / rho
    Dt = D if gram == "DhD" else D.mH  # u = F^{-1} Dt g, image = Dt y
    if image is not None and V is not None:
        u = V @ g
    else:
        if image is None:
            P = Dt @ torch.cat([y, g], dim=-1)  # [Dt y, Dt g] in one product
            image, Dtg = P[..., :r], P[..., r:]
        else:
            Dtg = Dt @ g
        u = _apply_solve(D, Dtg, rho, L, _other(gram), _other(gram)) if nested else torch.cholesky_solve(Dtg, L)
    z = _minus_scaled(g, Dh, u, rho, rinv if V is not None else None)
    if gram == "DhD":
        return z, (-torch.cat([image, u], dim=-1)) @ torch.cat([z, y], dim=-1).mH
    return z, torch.cat([z, y], dim=-1) @ (-torch.cat([image, u], dim=-1)).mH


def _jvp_rhs(gram: str, has_dD: bool, has_dx: bool, has_drho: bool, D: Tensor, y: Tensor, *tangents: Tensor):
    """``dx - drho y - dG y`` (the tangents that are present, in the order dD, dx, drho)."""
    it = iter(tangents)
    dD = next(it) if has_dD else None
    rhs = torch.zeros_like(y)
    if has_dx:
        rhs = rhs + next(it)  # broadcasts a smaller batch of x to y's shape
    if has_drho:
        rhs = rhs - next(it) * y
    if dD is not None:
        if gram == "DhD":
            rhs = rhs - (D.mH @ (dD @ y) + dD.mH @ (D @ y))
        else:
            rhs = rhs - (D @ (dD.mH @ y) + dD @ (D.mH @ y))
    return rhs


def solve_with(D: Tensor, x: Tensor, r: Tensor, L: Tensor, gram: str, factored: str,
               V: Tensor | None = None, rinv: float | None = None) -> Tensor:
    """``_RegSolve`` on a block ``x``, dispatching ``__torch_function__`` first.

    ``torch.autograd.Function.apply`` does not dispatch torch-function modes, so a mode that
    substitutes tensors (``binomial_loop``'s ``Swap``, which cuts each taped step from the graph of
    the tensors it captures) would not see ``D`` and ``rho`` here; through
    ``handle_torch_function`` it sees them as any torch op's arguments.
    """
    if has_torch_function((D, x, r)):
        return handle_torch_function(solve_with, (D, x, r), D, x, r, L, gram, factored, V, rinv)
    return _apply_solve(D, x, r, L, gram, factored, V, rinv)


def regularized_solve(
    D: Tensor,
    x: Tensor,
    rho,
    *,
    gram: str = "DhD",
    method: str = "auto",
) -> Tensor:
    """Solve ``(rho I + D^H D) y = x`` (``gram="DhD"``) or ``(rho I + D D^H) y = x`` (``"DDh"``).

    The one-shot form of ``RegularizedSolver`` (which factorizes once for many solves).

    Args:
        D: (..., m, n) float32, float64, complex64 or complex128, finite.
        x: right-hand side(s), same dtype as ``D``, finite. A vector (..., k) or a block
            (..., k, r) with k = n for "DhD" and k = m for "DDh". As in ``torch.linalg.solve``,
            ``x`` is a vector iff ``x.ndim == 1`` or (``x.ndim == D.ndim - 1`` and
            ``x.shape[:-1] == D.shape[:-2]``); otherwise it is a block and its batch dimensions
            broadcast with D's.
        rho: positive real: a Python number, a 0-d tensor, or a real tensor whose shape broadcasts
            with the batch shape (one rho per problem), of D's real dtype.
        gram: which operator, "DhD" (n x n) or "DDh" (m x m).
        method: "direct" factorizes the operator's own Gram matrix, "woodbury" the other one and
            applies the Woodbury identity, "auto" (default) the smaller of the two (ties: direct).

    Returns:
        ``y`` in ``D``'s dtype, with the shape of ``x`` broadcast with the batch shapes of ``D``
        and ``rho``.

    Differentiable with respect to ``D``, ``x`` and ``rho`` (reverse, forward, second order,
    ``torch.func``); the Cholesky factor is computed once and reused by every derivative.

    Raises:
        InputError: an unknown ``gram`` or ``method``; ``D`` not a (batched) matrix or of an
            unsupported dtype; ``x`` of another dtype than ``D`` or of the wrong size; batch
            shapes of ``D``, ``x``, ``rho`` that do not broadcast; ``rho`` complex, of another
            real dtype than ``D``'s, or ``<= 0``; non-finite values; meta tensors. All checked
            before the factorization.
        NotPositiveDefiniteError: if rounding makes ``rho I + Gram`` numerically indefinite
            (``rho`` negligible beside ``|D|^2``; eager mode only).

    Warns:
        PrecisionWarning: when the factor's condition estimate (module docstring) times ``eps``
            exceeds ``PRECISION_TOL`` (float32: beyond ~8.4e4): compute in float64.

    Example::

        import torch
        import difflinalg

        g = torch.Generator().manual_seed(0)
        D = torch.randn(4, 6, dtype=torch.complex128, generator=g)
        x = torch.randn(6, dtype=torch.complex128, generator=g)
        rho = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
        y = difflinalg.regularized_solve(D, x, rho)  # factors rho I + D D^H (4 x 4, Woodbury)
        Ainv = torch.linalg.inv(0.5 * torch.eye(6, dtype=torch.complex128) + D.mH @ D)
        assert torch.allclose(y, Ainv @ x)
        y.abs().square().sum().backward()            # d||y||^2/drho = -2 Re(y^H A^{-1} y)
        assert torch.allclose(rho.grad, -2 * (y.detach().conj() @ Ainv @ y.detach()).real)
    """
    check_gram_method(gram, method)
    D, r = prepare_D_rho(D, rho)
    x, vector = prepare_rhs(D, x, r, gram)
    L, factored = factorize(D, r, gram, method)
    y = solve_with(D.resolve_conj().resolve_neg(), x, r, L, gram, factored)
    return y.squeeze(-1) if vector else y
