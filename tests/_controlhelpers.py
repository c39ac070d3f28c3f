"""Random test systems for the control tests."""

from __future__ import annotations

from pathlib import Path

import torch

from difflinalg.control import StateSpace

SLICOT = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "slicot"
BEST_KNOWN = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "rarl2" / "best_known.json"


#: (discrete, dtype) combinations the control tests run over, and their test ids
KINDS = [(d, dt) for d in (False, True) for dt in (torch.float64, torch.complex128)]


def kind_id(kind) -> str:
    return f"{'discrete' if kind[0] else 'continuous'}-{'complex' if kind[1].is_complex else 'real'}"


def randn(*shape, dtype=torch.float64, gen=None):
    if dtype.is_complex:
        rdt = torch.empty((), dtype=dtype).real.dtype
        return torch.complex(torch.randn(*shape, generator=gen, dtype=rdt), torch.randn(*shape, generator=gen, dtype=rdt))
    return torch.randn(*shape, generator=gen, dtype=dtype)


def stable(M: torch.Tensor, discrete: bool, margin: float = 0.5, radius: float = 0.8) -> torch.Tensor:
    """Shift (continuous) or scale (discrete) a square matrix (or batch) to make it stable."""
    ev = torch.linalg.eigvals(M)
    eye = torch.eye(M.shape[-1], dtype=M.dtype)
    if discrete:
        return radius * M / ev.abs().amax(-1)[..., None, None].to(M.dtype)
    return M - (ev.real.amax(-1) + margin)[..., None, None].to(M.dtype) * eye


def random_system(n=6, p=2, m=2, *, discrete=False, dtype=torch.float64, seed=0, batch=(), with_d=None):
    g = torch.Generator().manual_seed(seed)
    A = stable(randn(*batch, n, n, dtype=dtype, gen=g), discrete)
    B = randn(*batch, n, m, dtype=dtype, gen=g)
    C = randn(*batch, p, n, dtype=dtype, gen=g)
    D = randn(*batch, p, m, dtype=dtype, gen=g) if (discrete if with_d is None else with_d) else None
    return StateSpace(A, B, C, D, time="discrete" if discrete else "continuous")


def random_pair(n, p, *, discrete, dtype=torch.float64, seed=0):
    """A random output-normal pair (C, A)."""
    g = torch.Generator().manual_seed(seed)
    if discrete:
        W, _ = torch.linalg.qr(randn(n + p, n, dtype=dtype, gen=g))
        return W[n:], W[:n]
    C = randn(p, n, dtype=dtype, gen=g)
    K = randn(n, n, dtype=dtype, gen=g)
    return C, 0.5 * (K - K.mH) - C.mH @ C / 2


def embedded(r, N, p=2, m=2, *, discrete=False, dtype=torch.float64, seed=0):
    """A system of McMillan degree r realized with N > r states (N - r uncontrollable states,
    coupled into the others, and a random orthogonal change of basis)."""
    g = torch.Generator().manual_seed(seed)
    A0 = stable(randn(r, r, dtype=dtype, gen=g), discrete)
    A1 = stable(randn(N - r, N - r, dtype=dtype, gen=g), discrete, margin=1.0)
    A = torch.block_diag(A0, A1)
    A[:r, r:] = randn(r, N - r, dtype=dtype, gen=g)
    B = torch.cat([randn(r, m, dtype=dtype, gen=g), torch.zeros(N - r, m, dtype=dtype)])
    C = randn(p, N, dtype=dtype, gen=g)
    Q, _ = torch.linalg.qr(randn(N, N, dtype=dtype, gen=g))
    D = randn(p, m, dtype=dtype, gen=g) if discrete else None
    F = StateSpace(Q.mH @ A @ Q, Q.mH @ B, C @ Q, D, time="discrete" if discrete else "continuous")
    H0 = StateSpace(A0, B[:r], C[:, :r], D, time=F.time)
    return F, H0
