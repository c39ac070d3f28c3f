"""Shared input builders for the matrix-equation tests."""

from __future__ import annotations

import torch


def randn(dtype, *shape, gen=None):
    rdt = torch.empty((), dtype=dtype).real.dtype
    x = torch.randn(*shape, dtype=rdt, generator=gen)
    if dtype.is_complex:
        x = torch.complex(x, torch.randn(*shape, dtype=rdt, generator=gen))
    return x


def shifted(dtype, n, shift, *batch, gen=None):
    """Spectrum in a disk of radius ~1 around ``shift``: a well-conditioned coefficient."""
    return randn(dtype, *batch, n, n, gen=gen) / n ** 0.5 + shift * torch.eye(n, dtype=dtype)


def contractive(dtype, n, rho=0.6, *batch, gen=None):
    A = randn(dtype, *batch, n, n, gen=gen)
    return rho * A / torch.linalg.eigvals(A).abs().amax(-1)[..., None, None].to(A.dtype)


def real_with_complex_pairs(n, gen=None, scale=1.0):
    """A real matrix whose real Schur form has 2 x 2 blocks (complex-conjugate eigenvalues)."""
    blocks = []
    k = 0
    while k < n:
        if k + 1 < n:
            a, b = torch.randn(2, generator=gen, dtype=torch.float64)
            blocks.append(torch.tensor([[a, b.abs() + 0.5], [-(b.abs() + 0.5), a]], dtype=torch.float64))
            k += 2
        else:
            blocks.append(torch.randn(1, 1, generator=gen, dtype=torch.float64))
            k += 1
    D = torch.block_diag(*blocks)
    S = torch.randn(n, n, generator=gen, dtype=torch.float64) / n + torch.eye(n, dtype=torch.float64)
    return scale * S @ D @ torch.linalg.inv(S)


DTYPES = [torch.float64, torch.complex128]
METHODS = ["schur", "schur-torch", "eig", "kron"]
