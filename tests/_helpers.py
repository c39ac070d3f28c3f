"""Helpers shared by the test modules (``from _helpers import ...``; see ``conftest.py``)."""

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
