"""Synthetic array data for the signal tests: uncorrelated (or coherent) narrowband sources in
white complex Gaussian noise, and the closed-form stochastic Cramer-Rao bound of a ULA."""

import math

import torch

from difflinalg.signal import ula_steering

C128, F64 = torch.complex128, torch.float64


def cgauss(g, *shape):
    """Circular complex Gaussian with unit variance."""
    return torch.complex(torch.randn(*shape, generator=g, dtype=F64), torch.randn(*shape, generator=g, dtype=F64)) / math.sqrt(2)


def snapshots(A, powers, noise_var, N, g, trials=(), coherent=False):
    """X = A s + noise, (trials..., n, N): sources of the given powers (one common waveform
    scaled per source when ``coherent``), noise of variance ``noise_var`` per element."""
    K, n = A.shape[-1], A.shape[-2]
    amp = torch.tensor(powers, dtype=F64).sqrt().to(C128)[:, None]
    if coherent:
        s = amp * cgauss(g, *trials, 1, N)
    else:
        s = amp * cgauss(g, *trials, K, N)
    return A @ s + math.sqrt(noise_var) * cgauss(g, *trials, n, N)


def sample_covariance(X):
    return X @ X.mH / X.shape[-1]


def ula_crb(n, doas, powers, noise_var, N, spacing=0.5):
    """Stochastic CRB of the DOAs (radians^2, diagonal) of uncorrelated sources on a ULA:
    ``CRB = sigma^2 / (2N) {Re[(D^H P_A^perp D) .* (P A^H R^-1 A P)^T]}^-1`` (Stoica & Nehorai,
    IEEE Trans. ASSP 38 (1990) 1783-1795)."""
    theta = torch.tensor(doas, dtype=F64)
    A = ula_steering(n, theta, spacing=spacing)
    m = torch.arange(n, dtype=F64)[:, None]
    D = A * (2j * math.pi * spacing * m * torch.cos(theta)[None, :])
    P = torch.diag(torch.tensor(powers, dtype=F64)).to(C128)
    R = A @ P @ A.mH + noise_var * torch.eye(n, dtype=C128)
    Pperp = torch.eye(n, dtype=C128) - A @ torch.linalg.solve(A.mH @ A, A.mH)
    H = (D.mH @ Pperp @ D) * (P @ A.mH @ torch.linalg.solve(R, A) @ P).T
    return torch.linalg.inv(H.real).diagonal() * noise_var / (2 * N)


def ura_crb(nx, ny, angles, powers, noise_var, N, spacing=(0.5, 0.5)):
    """Stochastic CRB (diagonal, radians^2) of (theta_1..theta_K, phi_1..phi_K) on a URA (layout
    of ``ura_steering``): ``CRB^-1 = (2N / sigma^2) Re[(D^H P_A^perp D) .* (1_{2x2} kron U^T)]``,
    ``U = P A^H R^-1 A P``, ``D = [dA/dtheta, dA/dphi]`` (P. Stoica, E. G. Larsson, A. B.
    Gershman, The stochastic CRB for array processing: a textbook derivation, IEEE SPL 8 (2001)
    148-150)."""
    from difflinalg.signal import ura_steering

    theta = torch.tensor([a[0] for a in angles], dtype=F64)
    phi = torch.tensor([a[1] for a in angles], dtype=F64)
    A = ura_steering(nx, ny, theta, phi, spacing=spacing)
    ix = torch.arange(nx, dtype=F64).repeat_interleave(ny)[:, None] * spacing[0]
    iy = torch.arange(ny, dtype=F64).repeat(nx)[:, None] * spacing[1]
    c, s = torch.cos, torch.sin
    d_theta = 2j * math.pi * (ix * c(theta) * c(phi) + iy * c(theta) * s(phi))
    d_phi = 2j * math.pi * (-ix * s(theta) * s(phi) + iy * s(theta) * c(phi))
    D = torch.cat([A * d_theta, A * d_phi], dim=-1)
    n = A.shape[0]
    P = torch.diag(torch.tensor(powers, dtype=F64)).to(C128)
    R = A @ P @ A.mH + noise_var * torch.eye(n, dtype=C128)
    Pperp = torch.eye(n, dtype=C128) - A @ torch.linalg.solve(A.mH @ A, A.mH)
    U = P @ A.mH @ torch.linalg.solve(R, A) @ P
    H = (D.mH @ Pperp @ D) * torch.kron(torch.ones(2, 2, dtype=C128), U.T.contiguous())
    return torch.linalg.inv(H.real).diagonal() * noise_var / (2 * N)
