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
