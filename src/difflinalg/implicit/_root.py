r"""Implicit differentiation of a root ``x*(p)`` of ``F(x, p) = 0``: ``root`` and ``custom_root``.

Given ``x*`` from any solver (its iterations are not differentiated), ``root`` returns ``x*``
attached to the graph of the parameters ``p`` with the derivatives of the implicit function
theorem (Krantz & Parks, *The Implicit Function Theorem*; Blondel et al., "Efficient and modular
implicit differentiation", NeurIPS 2022)::

    forward mode:  dx = -(dF/dx)^{-1} (dF/dp . dp)
    reverse mode:  (dF/dx)^H lambda = gx,   gp = -(dF/dp)^H lambda

``dF/dx`` is never formed by autograd through a solver: it is applied with ``torch.func.jvp`` /
``torch.func.vjp`` of ``F`` (matrix-free, for CG/GMRES) or built from ``N`` Jacobian-vector products
and LU-factorized (dense, for small systems). The linear solves are themselves implicit ops
(``_linear_solve``), and the backward and jvp are written with differentiable operations on the
saved root (whose own derivative is this rule), so second and higher derivatives are exact:
double backward, ``torch.func.jvp(torch.func.grad(...))``, ``torch.func.hessian``, nested
``jacfwd`` (the jvp rule's arithmetic goes through ``difflinalg._nested.call``, see there why).

Complex unknowns: the solves run on the realified system (``_space``), so ``F`` need not be
holomorphic in ``x`` (its Jacobian may be only real-linear); gradients follow PyTorch's
convention. Batching: ``torch.func.vmap`` works (a vmapped call becomes one problem with an extra
batch dim, solved at once), or pass ``batch_dims=k`` when ``F`` acts independently on the leading
``k`` dims of ``x``. ``x`` and the parameters may be tensors or pytrees (tuples, lists, dicts).

Diagnostics: the relative residual of ``F`` at ``x*``,
``||F(x*)|| / (||J x*|| + ||F(x*) - J x*||)`` (invariant to the scaling of ``x`` and of ``F``; for
an affine ``F = A x - b`` it is the usual ``||A x - b|| / (||A x|| + ||b||)``), and the relative
residual ``||A y - b|| / ||b||`` of every linear solve are checked; past the tolerance a
``ConvergenceError`` is raised (or an ``ImplicitDiffWarning`` warned, per ``on_failure``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch
import torch.utils._pytree as pytree
from torch import Tensor

from .._errors import InputError
from .._utils import real_dtype
from ._args import is_diff, jvp_wrt, solve_options, substitute, vjp_wrt
from ._diagnostics import Options, relative, report
from ._linear_solve import LinearOp, solve
from .._nested import call
from ._space import RealSpace

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._args import RootOptions


def _dt(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


@dataclass(frozen=True)
class _Problem:
    """A root problem on flat leaves: ``F(xs, ps) -> tuple`` shaped like ``xs``."""

    F: Callable[[tuple, tuple], tuple]
    n_x: int
    space: RealSpace
    options: Options
    name: str  # the public function, for messages
    residual: str  # what must vanish, e.g. "F(x_star, *params)"

    def jacobian(self, method: str) -> LinearOp:
        """``dF/dx`` at ``theta = (*x, *p)`` as a linear operator on realified vectors."""
        n_x, space, F = self.n_x, self.space, self.F

        def matvec(v, *theta):
            x, p = theta[:n_x], theta[n_x:]
            _, jv = torch.func.jvp(lambda *xs: F(xs, p), tuple(x), space.unflatten(v))
            return space.flatten(jv)

        def rmatvec(w, *theta):
            x, p = theta[:n_x], theta[n_x:]
            _, vjp_fn = torch.func.vjp(lambda *xs: F(xs, p), *x)
            return space.flatten(vjp_fn(space.unflatten(w)))

        return LinearOp(
            matvec, rmatvec, space.dim, self.options.batch_dims, method, self.options,
            label=f"{self.name}: linear solve with dF/dx at x_star",
            fix=("dF/dx may be singular or badly conditioned at x_star (is x_star a regular, "
                 "isolated solution?); with an iterative solve raise maxiter or loosen tol, or use "
                 "solve='dense'"),
        )


class _Root(torch.autograd.Function):
    @staticmethod
    def forward(problem: _Problem, *leaves):
        n_x, opts, space = problem.n_x, problem.options, problem.space
        x, p = leaves[:n_x], leaves[n_x:]
        if opts.on_failure == "ignore":
            problem.F(x, p)  # still validates the structure, shapes and dtypes
        else:
            Fx, Jx = torch.func.jvp(lambda *xs: problem.F(xs, p), tuple(x), tuple(x))
            f, jx = space.flatten(Fx), space.flatten(Jx)
            norm = lambda v: torch.linalg.vector_norm(v, dim=-1)  # noqa: E731
            rel = relative(norm(f), norm(jx) + norm(f - jx))
            report(
                rel, opts.check_tol(f.dtype), opts.on_failure,
                f"{problem.name}: {problem.residual} is not zero at x_star",
                "the implicit derivatives are only as accurate as x_star: solve to a tighter "
                "tolerance, or accept it with residual_tol=... or on_failure='warn'",
            )
        return tuple(t.clone() for t in x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        problem, *leaves = inputs
        ctx.problem = problem
        ctx.save_for_backward(*output, *leaves[problem.n_x :])
        ctx.save_for_forward(*output, *leaves[problem.n_x :])

    @staticmethod
    def backward(ctx, *gx):
        problem = ctx.problem
        n_x, space = problem.n_x, problem.space
        saved = ctx.saved_tensors
        x, p = saved[:n_x], saved[n_x:]
        g = [torch.zeros_like(xi) if gi is None else gi for xi, gi in zip(x, gx)]
        op = problem.jacobian(problem.options.method(space.dim)).T
        lam = space.unflatten(solve(op, space.flatten(g), (*x, *p)))
        gp = vjp_wrt(lambda *pp: problem.F(x, pp), p, lam)
        return (None, *([None] * n_x), *(None if gi is None else -gi for gi in gp))

    @staticmethod
    def jvp(ctx, _dproblem, *tangents):
        problem = ctx.problem
        n_x, space = problem.n_x, problem.space
        saved = ctx.saved_tensors
        x, p = saved[:n_x], saved[n_x:]
        dp = tangents[n_x:]  # tangents of x_star are ignored: x* is a function of p alone
        diff = [i for i, t in enumerate(p) if is_diff(t)]
        moving = [i for i in diff if dp[i] is not None]
        if not moving:
            return tuple(torch.zeros_like(xi) for xi in x)
        nd = len(diff)

        # All arithmetic through ``call`` (see _nested): x and every p enter as arguments.
        def rhs(*a):
            xs, pd, dpd = a[:n_x], a[n_x : n_x + nd], a[n_x + nd :]
            pp = substitute(p, diff, pd)
            dpp = substitute((None,) * len(p), moving, dpd)
            return -space.flatten(jvp_wrt(lambda *q: problem.F(tuple(xs), q), pp, dpp))

        b = call(rhs, *x, *[p[i] for i in diff], *[dp[i] for i in moving])
        op = problem.jacobian(problem.options.method(space.dim))
        dx = solve(op, b, (*x, *p))
        return call(lambda v: tuple(space.unflatten(v)), dx)

    @staticmethod
    def vmap(info, in_dims, problem: _Problem, *leaves):
        # The vmapped problems become one problem with a leading batch dim: F is vmapped, the
        # residual checks and the solves (dense factorizations, Krylov stopping) see the batch.
        n_x, nv = problem.n_x, info.batch_size
        x_dims, p_dims = in_dims[1 : 1 + n_x], tuple(in_dims[1 + n_x :])
        x = [t.movedim(d, 0) if d is not None else t.expand(nv, *t.shape)
             for t, d in zip(leaves[:n_x], x_dims)]
        F2 = torch.func.vmap(problem.F, in_dims=((0,) * n_x, p_dims))
        opts = replace(problem.options, batch_dims=problem.options.batch_dims + 1)
        out = _Root.apply(replace(problem, F=F2, options=opts), *x, *leaves[n_x:])
        return out, (0,) * n_x


def _root(F: Callable, x_star, params: tuple, opts: Options, *, name: str, residual: str):
    """Shared body of ``root``, ``fixed_point``, ``argmin``."""
    opts.validate()
    if not callable(F):
        raise InputError(f"{name}: the function argument must be callable, got {type(F).__name__}")
    x_leaves, x_def = pytree.tree_flatten(x_star)
    if not x_leaves:
        raise InputError("x_star: expected a tensor or a pytree of tensors, got no tensor")
    bd = opts.batch_dims
    for i, t in enumerate(x_leaves):
        nm = "x_star" if len(x_leaves) == 1 else f"x_star leaf {i}"
        if not isinstance(t, Tensor):
            raise InputError(f"{nm}: expected a tensor, got {type(t).__name__}")
        if not (t.is_floating_point() or t.is_complex()):
            raise InputError(f"{nm}: dtype {_dt(t.dtype)} is not differentiable; convert it with "
                             ".to(torch.float64) (or a complex dtype)")
        if t.ndim < bd or t.shape[:bd] != x_leaves[0].shape[:bd]:
            raise InputError(f"{nm}: shape {tuple(t.shape)} does not start with the batch shape "
                             f"{tuple(x_leaves[0].shape[:bd])} (batch_dims={bd}); every leaf of "
                             "x_star needs the same leading batch dims")
    reals = {_dt(real_dtype(t.dtype)) for t in x_leaves}
    if len(reals) > 1:
        raise InputError(f"x_star: leaves mix precisions {sorted(reals)}; convert them to one")
    space = RealSpace.of(x_leaves, bd)
    p_all, p_def = pytree.tree_flatten(tuple(params))
    t_idx = [i for i, leaf in enumerate(p_all) if isinstance(leaf, Tensor)]

    def F_flat(xs: tuple, ps: tuple) -> tuple:
        pl = list(p_all)
        for i, t in zip(t_idx, ps):
            pl[i] = t
        out = F(pytree.tree_unflatten(list(xs), x_def), *pytree.tree_unflatten(pl, p_def))
        o_leaves, o_def = pytree.tree_flatten(out)
        if o_def != x_def:
            raise InputError(f"{name}: {residual} returned the structure {o_def}, expected that of "
                             f"x_star ({x_def}): one equation per unknown, shaped like x")
        for k, (o, xi) in enumerate(zip(o_leaves, xs)):
            where = "" if len(xs) == 1 else f" (leaf {k})"
            if not isinstance(o, Tensor) or o.shape != xi.shape:
                got = tuple(o.shape) if isinstance(o, Tensor) else type(o).__name__
                raise InputError(f"{name}: {residual} returned shape {got}{where} for x of shape "
                                 f"{tuple(xi.shape)}; it must return one equation per unknown, "
                                 "shaped like x")
            if o.dtype != xi.dtype:
                raise InputError(f"{name}: {residual} returned dtype {_dt(o.dtype)}{where} for x of "
                                 f"dtype {_dt(xi.dtype)}; make it return x's dtype (e.g. convert "
                                 "the parameters with .to(x.dtype))")
        return tuple(o_leaves)

    problem = _Problem(F_flat, len(x_leaves), space, opts, name, residual)
    out = _Root.apply(problem, *[t.detach() for t in x_leaves], *[p_all[i] for i in t_idx])
    return pytree.tree_unflatten(list(out), x_def)


def root(F: Callable, x_star, *params, **options: Unpack[RootOptions]):
    """Attach a root ``x*`` of ``F(x, *params) = 0`` to the graph of ``params`` (implicit function
    theorem), for reverse mode, forward mode and higher derivatives.

    Args:
        F: ``F(x, *params)`` returning a tensor (pytree) shaped like ``x``, differentiable in
            ``x`` and the params in forward and reverse mode (plain torch operations are). Every
            tensor ``F`` depends on and that needs a derivative must be passed in ``params``
            (tensors captured by a closure are treated as constants).
        x_star: the solution (tensor or pytree of tensors; real or complex) from any solver; it
            receives no gradient itself.
        params: tensors or pytrees of tensors (non-tensor leaves are passed through as constants).

    Keyword options are shared by ``fixed_point``, ``argmin`` and ``custom_root``.

    Keyword Args:
        solve: linear solver for ``dF/dx``: ``"dense"`` (build the Jacobian with ``N`` jvps and
            LU-factorize it, reused by all derivative solves at this point), ``"gmres"``,
            ``"cg"`` (``dF/dx`` symmetric positive definite, realified), or ``"auto"`` (dense up to
            400 real unknowns per problem, else CG if ``symmetric`` else GMRES; the default).
        tol: relative residual the Krylov solvers aim for (default ``10 eps^(3/4)``).
        maxiter, restart: Krylov limits (defaults ``max(10 N, 100)`` mat-vecs, restart 50).
        residual_tol: largest accepted relative residual of ``F`` at ``x_star`` and of the linear
            solves (default ``sqrt(eps)``; the linear solves accept at least ``10 tol``).
        on_failure: ``"raise"`` (``ConvergenceError``, the default), ``"warn"``
            (``ImplicitDiffWarning``) or ``"ignore"`` (skip the checks and their cost) when a
            residual exceeds its tolerance.
        batch_dims: the leading ``batch_dims`` dims of every leaf of ``x`` index independent
            problems (``F`` acts on each separately), so ``dF/dx`` is block diagonal and solved
            per problem (default 0). Under ``torch.func.vmap`` this is handled automatically.
        symmetric: ``dF/dx`` is symmetric (e.g. a Hessian), so "auto" may pick CG (default
            False; set by ``argmin`` and ``fixed_point`` themselves, not a keyword of theirs).

    An unknown keyword is a ``TypeError``, as for any Python function.

    Returns:
        ``x_star`` (same structure), differentiable with respect to ``params``.

    Raises:
        InputError: bad arguments (``F`` not callable, ``x_star`` without tensors, of an integer
            dtype, leaves mixing precisions or batch shapes, invalid option values), or ``F``'s
            output not shaped like ``x`` (structure, shape, dtype).
        ConvergenceError: a residual check failed (with ``on_failure="raise"``): ``F(x_star)`` in
            this call, or a linear solve with ``dF/dx`` when the derivatives are computed (in
            backward or forward mode).
        TypeError: an unknown keyword.

    Warns:
        ImplicitDiffWarning: instead of ``ConvergenceError`` with ``on_failure="warn"``.

    Example::

        import torch
        from difflinalg.implicit import root

        a = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
        x_star = a.detach() ** (1 / 3)              # from any solver: the root of x^3 - a
        x = root(lambda x, a: x**3 - a, x_star, a)
        x.backward()                                # dx/da = 1 / (3 x^2)
        assert torch.allclose(a.grad, 1 / (3 * x_star**2))
    """
    opts = solve_options("root", options)
    return _root(F, x_star, params, opts, name="root", residual="F(x_star, *params)")


def _detach(tree):
    return pytree.tree_map(lambda t: t.detach() if isinstance(t, Tensor) else t, tree)


def custom_root(F: Callable, **options: Unpack[RootOptions]):
    """Decorator: make ``solver(x0, *params, **kwargs)`` differentiable by the implicit function
    theorem applied to ``F(x, *params, **kwargs) = 0``.

    The solver runs without autograd on detached inputs (its iterations are never differentiated);
    its result is passed through ``root(F, x_star, *params, **options)``. ``x0`` gets no gradient;
    keyword arguments are passed to both functions as constants.

    Args:
        F: the optimality condition ``F(x, *params, **kwargs)``, returning a tensor (pytree)
            shaped like ``x``, as in ``root``.
        options: the keyword options of ``root`` (``solve``, ``tol``, ``maxiter``, ``restart``,
            ``residual_tol``, ``on_failure``, ``batch_dims``, ``symmetric``), used at every call.

    Returns:
        A decorator: ``solver`` -> ``wrapped(x0, *params, **kwargs)``, which returns the solver's
        ``x_star`` (same structure), differentiable with respect to ``params`` (reverse, forward,
        higher order).

    Raises:
        InputError: at decoration, an unknown option or an invalid option value; at each call,
            the errors of ``root``.
        ConvergenceError: at each call, as in ``root`` (e.g. the solver's result does not satisfy
            ``F = 0`` to ``residual_tol``).

    Example::

        import torch
        from difflinalg.implicit import custom_root

        @custom_root(lambda x, A, b: A @ x - b)
        def linsolve(x0, A, b):
            return torch.linalg.solve(A, b)  # any solver; its steps are not differentiated

        A = torch.tensor([[3.0, 1.0], [1.0, 2.0]], dtype=torch.float64, requires_grad=True)
        b = torch.tensor([1.0, 0.0], dtype=torch.float64, requires_grad=True)
        x = linsolve(torch.zeros(2, dtype=torch.float64), A, b)
        x.sum().backward()                   # b.grad = A^{-T} 1, A.grad = -(A^{-T} 1) x^T
        ones = torch.ones(2, dtype=torch.float64)
        assert torch.allclose(b.grad, torch.linalg.solve(A.detach().mT, ones))
    """
    try:
        Options(**options).validate()
    except TypeError as exc:
        raise InputError(f"custom_root: unknown option ({exc}); the options are those of root") from exc

    def decorator(solver: Callable) -> Callable:
        @functools.wraps(solver)
        def wrapped(x0, *params, **kwargs):
            with torch.no_grad():
                x_star = solver(_detach(x0), *_detach(params), **kwargs)
            Fk = functools.partial(F, **kwargs) if kwargs else F
            return root(Fk, x_star, *params, **options)

        return wrapped

    return decorator
