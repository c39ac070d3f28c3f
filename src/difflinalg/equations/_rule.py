r"""The autograd rule of the linear matrix equations, shared by Sylvester, Stein and Lyapunov.

Write ``L(X) = A X + X B`` (Sylvester) or ``L(X) = X - A X B`` (Stein); the solve is
``X = L^{-1}(C)``, and the *adjoint* solve ``X = L^{-H}(C)`` solves the equation of the same kind
with conjugate-transposed coefficients, ``A^H X + X B^H = C`` or ``X - A^H X B^H = C``. Both are
computed from one set of factors of ``A`` and ``B`` (``_factor.py``), never refactorized.

Forward mode (differentiate ``L(X) = C``)::

    Sylvester:  dX = L^{-1}( dC - dA X - X dB )
    Stein:      dX = L^{-1}( dC + dA X B + A X dB )

Reverse mode, with ``G = L^{-H}(gX)`` (one adjoint solve) and PyTorch's complex convention
(``dL = Re tr(g^H dz)``, see ``docs/conventions.md``)::

    Sylvester:  gC = G,  gA = -G X^H,      gB = -X^H G
    Stein:      gC = G,  gA = G (X B)^H,   gB = (A X)^H G

(From ``<gX, dX> = <G, L(dX)>`` and ``L(dX) = dC - dL(X)``; for the adjoint solve the roles are
mirrored: Sylvester ``gA = -X G^H, gB = -G^H X``; Stein ``gA = X B^H G^H, gB = G^H A^H X``.)
References: R. H. Bartels and G. W. Stewart, "Solution of the matrix equation AX + XB = C",
CACM 15 (1972) for the Schur-based solve; the rules follow from differentiating the equation (the
adjoint argument above) and are the ones ChainRules.jl uses for ``sylvester``/``lyap``, derived
here independently and checked against finite differences (``_cases.py``).

Higher order: ``backward`` calls this same Function on the adjoint equation (with ``A``, ``B`` as
inputs and the kept factors), and the gradient products use ``X`` and ``A``, ``B``; so double
backward, ``torch.func.hessian`` and forward-over-reverse differentiate through the factor-reusing
solve. ``jvp`` likewise calls the Function, with its right side computed through
``difflinalg._nested.call`` so that forward-over-forward (``jacfwd(jacfwd)``) is right too. A custom ``vmap`` rule moves batch dimensions to the
front and calls the natively batched forward (the CPU path leaves torch for LAPACK, so the forward
itself cannot be vmapped).

Methods (``_Spec.method``): ``"lapack"`` and ``"torch"`` (Schur factors; reduced equation solved by
``_schur_solve.py``), ``"eig"`` (eigen-factors, elementwise division), ``"kron"`` (LU of the
Kronecker matrix; the adjoint solve is the conjugate-transposed LU solve).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

from .._nested import call
from .._rule import Rule
from ._checks import broadcast
from ._schur_solve import lapack_solve, torch_solve


@dataclass(frozen=True)
class _Spec:
    """What to solve and how (hashable, non-tensor argument of the Function).

    ``op_a``/``op_b``: the factors passed for A (B) are those of ``A^H`` (``B^H``), as in
    ``solve_continuous_lyapunov`` where ``B = A^H`` reuses ``A``'s factors.
    """

    kind: str  # "sylvester" | "stein"
    method: str  # "lapack" | "torch" | "eig" | "kron"
    op_a: bool = False
    op_b: bool = False
    adjoint: bool = False

    def flipped(self) -> "_Spec":
        return replace(self, adjoint=not self.adjoint)

    @property
    def cores(self) -> tuple[int, ...]:
        """Number of non-batch dimensions of each factor tensor (for the vmap rule)."""
        return {"lapack": (2, 2, 2, 2), "torch": (2, 2, 2, 2), "eig": (2, 2, 1, 2, 2, 1),
                "kron": (2, 1)}[self.method]


def _h(x: Tensor, flag: bool) -> Tensor:
    return x.mH if flag else x


def solve_raw(spec: _Spec, C: Tensor, factors: tuple[Tensor, ...]) -> Tensor:
    """``L^{-1}(C)`` (or ``L^{-H}(C)`` if ``spec.adjoint``) from the factors, without autograd."""
    real_out = not C.is_complex()
    if spec.method in ("lapack", "torch"):
        TA, UA, TB, UB = factors
        ha, hb = spec.op_a ^ spec.adjoint, spec.op_b ^ spec.adjoint
        F = UA.mH @ C.to(UA.dtype) @ UB
        tri = lapack_solve if spec.method == "lapack" else torch_solve
        Y = tri(spec.kind, TA, TB, F, ha, hb)
        X = UA @ Y @ UB.mH
    elif spec.method == "eig":
        VA, WA, lA, VB, WB, lB = factors
        if spec.op_a ^ spec.adjoint:
            VA, WA, lA = WA.mH, VA.mH, lA.conj()
        if spec.op_b ^ spec.adjoint:
            VB, WB, lB = WB.mH, VB.mH, lB.conj()
        D = lA[..., :, None] + lB[..., None, :] if spec.kind == "sylvester" else 1 - lA[..., :, None] * lB[..., None, :]
        X = VA @ ((WA @ C.to(VA.dtype) @ VB) / D) @ WB
    elif spec.method == "kron":
        LU, piv = factors
        m, n = C.shape[-2:]
        batch = broadcast(LU.shape[:-2], C.shape[:-2])
        x = torch.linalg.lu_solve(LU.expand(*batch, m * n, m * n), piv.expand(*batch, m * n),
                                  C.expand(*batch, m, n).reshape(*batch, m * n, 1), adjoint=spec.adjoint)
        X = x.reshape(*batch, m, n)
    else:  # pragma: no cover
        raise ValueError(spec.method)
    if real_out and X.is_complex():
        X = X.real
    return X.resolve_conj().contiguous()


def _sum_to(g: Tensor | None, shape: torch.Size) -> Tensor | None:
    """Sum a broadcast gradient back to an input's shape."""
    if g is None or g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    g = g.sum(dim=tuple(range(lead))) if lead > 0 else g
    dims = tuple(i for i, (a, b) in enumerate(zip(g.shape, shape)) if b == 1 and a != 1)
    return g.sum(dim=dims, keepdim=True) if dims else g


def equation_jvp_rhs(kind: str, adjoint: bool, A: Tensor, B: Tensor, X: Tensor,
                     dA: Tensor | None, dB: Tensor | None, dC: Tensor | None) -> Tensor:
    """Right side ``dC - dL(X)`` whose solve is the tangent ``dX``."""
    r = dC if dC is not None else torch.zeros_like(X)
    if kind == "sylvester":
        if dA is not None:
            r = r - _h(dA, adjoint) @ X
        if dB is not None:
            r = r - X @ _h(dB, adjoint)
    else:
        if dA is not None:
            r = r + _h(dA, adjoint) @ (X @ _h(B, adjoint))
        if dB is not None:
            r = r + (_h(A, adjoint) @ X) @ _h(dB, adjoint)
    return r


def equation_vjp(kind: str, adjoint: bool, A: Tensor, B: Tensor, X: Tensor, G: Tensor,
                 need_a: bool, need_b: bool) -> tuple[Tensor | None, Tensor | None]:
    """Gradients of ``A`` and ``B`` from the adjoint solution ``G`` (see the module docstring)."""
    gA = gB = None
    if kind == "sylvester":
        if not adjoint:
            gA = -(G @ X.mH) if need_a else None
            gB = -(X.mH @ G) if need_b else None
        else:
            gA = -(X @ G.mH) if need_a else None
            gB = -(G.mH @ X) if need_b else None
    else:
        if not adjoint:
            gA = G @ (X @ B).mH if need_a else None
            gB = (A @ X).mH @ G if need_b else None
        else:
            gA = (X @ B.mH) @ G.mH if need_a else None
            gB = G.mH @ (A.mH @ X) if need_b else None
    return _sum_to(gA, A.shape), _sum_to(gB, B.shape)


class MatrixEquation(Rule):
    """``X = L^{-1}(C)`` for ``L`` given by ``spec``, ``A``, ``B`` and their kept factors."""

    generate_vmap_rule = False  # its own ``vmap`` below: the factors have fixed core dimensions

    @staticmethod
    def forward(A: Tensor, B: Tensor, C: Tensor, spec: _Spec, *factors: Tensor) -> Tensor:
        return solve_raw(spec, C, factors)

    @staticmethod
    def save(ctx, inputs, output):
        A, B, C, spec, *factors = inputs
        ctx.spec = spec
        ctx.saved_c_shape = C.shape  # for the broadcast reduction of gC
        ctx.n_factors = len(factors)
        return A, B, output, *factors

    @staticmethod
    def gradients(ctx, A: Tensor, B: Tensor, X: Tensor, *rest: Tensor):
        *factors, gX = rest
        spec = ctx.spec
        need_a, need_b, need_c = ctx.needs_input_grad[:3]
        if not (need_a or need_b or need_c):
            return ()
        G = MatrixEquation.apply(A, B, gX, spec.flipped(), *factors)
        gA, gB = equation_vjp(spec.kind, spec.adjoint, A, B, X, G, need_a, need_b)
        gC = _sum_to(G, ctx.saved_c_shape) if need_c else None
        return gA, gB, gC

    @staticmethod
    def tangents(ctx, A: Tensor, B: Tensor, X: Tensor, *rest):
        factors = rest[:ctx.n_factors]
        dA, dB, dC = rest[ctx.n_factors:ctx.n_factors + 3]
        spec = ctx.spec
        present = [t is not None for t in (dA, dB, dC)]

        def rhs(A, B, X, *d):
            # Contiguous operands: a broadcasting matmul expands its inputs, and under nested
            # forward AD PyTorch asserts that a view's tangent has its primal's layout (which a
            # conjugate-transposed coefficient such as Lyapunov's A^H need not have).
            A, B, X, *d = (t.clone(memory_format=torch.contiguous_format) for t in (A, B, X, *d))
            it = iter(d)
            dA_, dB_, dC_ = [next(it) if p else None for p in present]
            return equation_jvp_rhs(spec.kind, spec.adjoint, A, B, X, dA_, dB_, dC_)

        # The right side goes through ``call`` so that an outer forward level sees this
        # arithmetic (jvp of jvp, pytorch/pytorch#197867); the solve is itself this Function.
        r = call(rhs, A, B, X, *[t for t in (dA, dB, dC) if t is not None])
        return MatrixEquation.apply(A, B, r, spec, *factors)

    @staticmethod
    def vmap(info, in_dims, A, B, C, spec, *factors):
        tensors = (A, B, C) + tuple(factors)
        dims = tuple(in_dims[:3]) + tuple(in_dims[4:])
        cores = (2, 2, 2) + spec.cores
        size = info.batch_size
        logical = [t.shape if d is None else t.shape[:d] + t.shape[d + 1:] for t, d in zip(tensors, dims)]
        batch = broadcast(*(s[:len(s) - c] for s, c in zip(logical, cores)))
        moved = []
        for t, d, c in zip(tensors, dims, cores):
            if d is None:
                t = t.expand(size, *batch, *t.shape[t.ndim - c:])
            else:
                t = t.movedim(d, 0)
                core, tb = t.shape[t.ndim - c:], t.shape[1:t.ndim - c]
                t = t.reshape(size, *([1] * (len(batch) - len(tb))), *tb, *core).expand(size, *batch, *core)
            moved.append(t)
        out = MatrixEquation.apply(moved[0], moved[1], moved[2], spec, *moved[3:])
        return out, 0

