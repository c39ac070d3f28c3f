"""Helpers shared by the test modules (``from _helpers import ...``; see ``conftest.py``)."""

import ast
import inspect

import torch

from difflinalg.check import Case, GradcheckReport, gradcheck
from difflinalg.check import randn as _randn


def gen(seed: int = 0) -> torch.Generator:
    """A fresh CPU generator seeded with ``seed``."""
    return torch.Generator().manual_seed(seed)


def randn(*shape: int, dtype: torch.dtype = torch.float64, seed: int = 0) -> torch.Tensor:
    """Standard normal tensor from ``gen(seed)`` (complex: independent real and imaginary parts)."""
    return _randn(dtype, gen(seed), *shape)


def gradcheck_case(case: Case, dtype: torch.dtype, seed: int = 0) -> GradcheckReport:
    """A registered case in one dtype, checked as ``difflinalg verify`` checks it (inputs from
    ``gen(seed)``, the case's modes, tolerances and options); raises ``GradcheckError`` naming the
    failing input and mode."""
    return gradcheck(case.fn, *case.make_inputs(dtype, gen(seed)), modes=case.modes, rtol=case.rtol,
                     atol=case.atol, seed=seed, **dict(case.gradcheck_kwargs))


def assert_vmap_grad_and_jvp(f, A: torch.Tensor, d: torch.Tensor, rtol: float = 1e-10) -> torch.Tensor:
    """For a real loss ``f`` of one matrix and a batch ``A``: ``vmap(grad(f))`` equals the loop of
    ``grad(f)``, and ``jvp(f)`` at ``A[0]`` along ``d`` equals ``Re <grad, d>`` (adjointness in
    PyTorch's complex convention). Returns the gradients."""
    g_vmap = torch.func.vmap(torch.func.grad(f))(A)
    g_loop = torch.stack([torch.func.grad(f)(a) for a in A])
    assert torch.allclose(g_vmap, g_loop, rtol=1e-12, atol=1e-12)
    _, t = torch.func.jvp(f, (A[0],), (d,))
    assert torch.allclose(t, (g_loop[0].conj() * d).real.sum(), rtol=rtol)
    return g_loop


def fd_gradient(f, A: torch.Tensor, h: float = 1e-5) -> torch.Tensor:
    """Central differences of a real scalar ``f`` in PyTorch's complex convention (the derivative
    along the real part plus ``1j`` times the one along the imaginary part)."""
    g = torch.zeros_like(A)
    units = (1.0, 1j) if A.is_complex() else (1.0,)
    for idx in range(A.numel()):
        for u in units:
            E = torch.zeros_like(A).reshape(-1)
            E[idx] = u
            E = E.reshape(A.shape)
            g.reshape(-1)[idx] += (f(A + h * E) - f(A - h * E)) / (2 * h) * u
    return g


def run_table_cell(loss_via_op, loss_smooth, A: torch.Tensor) -> tuple[str, float]:
    """One cell of a ties table (docs/ties*.md): ``("exact", relative error)`` of the autograd
    gradient of ``loss_via_op`` against central differences of the same loss written without the
    op (``loss_smooth``, in double precision), or ``(error class name, nan)`` if backward raised."""
    import math

    A1 = A.clone().requires_grad_()
    try:
        g, = torch.autograd.grad(loss_via_op(A1), A1)
    except Exception as exc:  # noqa: BLE001 - the table records which error
        return type(exc).__name__, math.nan
    hi = torch.complex128 if A.dtype.is_complex else torch.float64
    ref = fd_gradient(loss_smooth, A.to(hi))
    return "exact", float((g.to(hi) - ref).norm() / ref.norm())


def table_cell_id(cell) -> str:
    """Test id of a ties-table cell ``(op, loss, point, dtype)``."""
    op, loss, point, dt = cell
    return f"{op}-{loss}-{point.replace(' ', '_')}-{str(dt).replace('torch.', '')}"


def torch_parameters(name: str) -> list[inspect.Parameter]:
    """The parameters of ``torch.linalg.<name>`` as its documentation writes them (builtins have no
    ``inspect.signature``): the first line ``linalg.svd(A, full_matrices=True, *, ...) -> ...``."""
    line = getattr(torch.linalg, name).__doc__.strip().splitlines()[0]
    line = line.removeprefix("linalg.")  # torch.linalg.qr's documentation omits the prefix
    assert line.startswith(f"{name}("), line
    head = line[:line.rindex(")") + 1]
    args = ast.parse(f"def {head}: pass").body[0].args
    pos, kw = args.args, args.kwonlyargs
    pos_defaults = [None] * (len(pos) - len(args.defaults)) + list(args.defaults)
    out = [inspect.Parameter(a.arg, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                             default=inspect.Parameter.empty if d is None else ast.literal_eval(d))
           for a, d in zip(pos, pos_defaults)]
    out += [inspect.Parameter(a.arg, inspect.Parameter.KEYWORD_ONLY, default=ast.literal_eval(d))
            for a, d in zip(kw, args.kw_defaults)]
    return out
