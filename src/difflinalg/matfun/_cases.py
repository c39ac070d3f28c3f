"""Verification cases of the matrix functions (run by ``difflinalg verify``).

Hermitian functions: generic, batched, and the degenerate points where eigh-based derivatives
are NaN (the identity, a repeated eigenvalue). General sqrtm/logm: generic real (with complex
eigenvalue pairs) and complex, batched, non-normal, near-repeated eigenvalues, the eig method.
"""

from __future__ import annotations

import torch

from ..check import randn, register_case
from ._hermitian import expmh, hermitian_function, logmh, powmh, sqrtmh
from ._logm import logm
from ._sqrtm import sqrtm


def _hpd(dtype, gen, n=4, batch=()):
    """Hermitian positive definite, well conditioned."""
    X = randn(dtype, gen, *batch, n, n)
    return X @ X.mH / n + torch.eye(n, dtype=dtype)


def _repeated(dtype, gen, n=4):
    """Hermitian positive definite with the eigenvalue 1.5 three times and 3.0 once."""
    Q, _ = torch.linalg.qr(randn(dtype, gen, n, n))
    w = torch.tensor([1.5] * (n - 1) + [3.0], dtype=dtype)
    return Q @ torch.diag_embed(w) @ Q.mH


def _identity(dtype, gen, n=4):
    return torch.eye(n, dtype=dtype)


def _general(dtype, gen, n=4, batch=()):
    """A non-symmetric matrix with eigenvalues well inside the right half-plane."""
    return randn(dtype, gen, *batch, n, n) / n**0.5 + 2.0 * torch.eye(n, dtype=dtype)


def _nonnormal(dtype, gen, n=4):
    """Upper triangular part 3x larger than the spectrum, similarity-transformed."""
    T = torch.diag(torch.tensor([1.0, 1.5, 2.0, 3.0][:n], dtype=dtype)) + 3.0 * randn(dtype, gen, n, n).triu(1)
    S = randn(dtype, gen, n, n) / n**0.5 + torch.eye(n, dtype=dtype) * 2
    return S @ T @ torch.linalg.inv(S)


def _near_repeated(dtype, gen, n=4):
    """Two eigenvalues 1e-6 apart (non-normal, diagonalizable)."""
    w = torch.tensor([2.0, 2.0 + 1e-6, 1.0, 3.0][:n], dtype=dtype)
    S = randn(dtype, gen, n, n) / n**0.5 + torch.eye(n, dtype=dtype) * 2
    return S @ torch.diag(w) @ torch.linalg.inv(S)


def _tanh(A):
    return hermitian_function(A, torch.tanh, lambda x: 1.0 - torch.tanh(x) ** 2)


def _powmh(A):
    return powmh(A, 0.7)


# Hermitian functions: the perturbed input leaves the Hermitian set (its Hermitian part is used) and
# must stay positive definite: max_step 1e-2 keeps the identity's eigenvalues above 0.9.
for _op, _fn in (("sqrtmh", sqrtmh), ("logmh", logmh), ("expmh", expmh), ("powmh", _powmh),
                 ("hermitian_function", _tanh)):
    register_case(_op, "generic", _fn, lambda dt, g: (_hpd(dt, g),))
    register_case(_op, "batched", _fn, lambda dt, g: (_hpd(dt, g, n=3, batch=(2,)),))
    register_case(_op, "identity", _fn, lambda dt, g: (_identity(dt, g),), hard=True, max_step=1e-2)
    register_case(_op, "repeated_eigenvalue", _fn, lambda dt, g: (_repeated(dt, g),), hard=True,
                  max_step=1e-2)

for _op, _fn in (("sqrtm", sqrtm), ("logm", logm)):
    register_case(_op, "generic", _fn, lambda dt, g: (_general(dt, g),))
    register_case(_op, "batched", _fn, lambda dt, g: (_general(dt, g, n=3, batch=(2,)),))
    register_case(_op, "method_eig", lambda A, f=_fn: f(A, method="eig"), lambda dt, g: (_general(dt, g),))
    register_case(_op, "nonnormal", _fn, lambda dt, g: (_nonnormal(dt, g),), hard=True, max_step=1e-2)
    register_case(_op, "near_repeated_eigenvalue", _fn, lambda dt, g: (_near_repeated(dt, g),),
                  hard=True, max_step=1e-3)
