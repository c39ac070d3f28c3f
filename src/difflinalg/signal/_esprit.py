r"""Unitary ESPRIT for uniform linear arrays: DOAs from the shift invariance, in real arithmetic.

A ULA's two maximally overlapping subarrays (elements ``0 .. n-2`` and ``1 .. n-1``, selection
matrices ``J1``, ``J2``) see each source with the phase ratio ``exp(j mu)``,
``mu = 2 pi d sin(theta)``. With the left Pi-real unitary matrices ``Q_n`` (``Pi_n Q_n^* = Q_n``)::

    Q_{2p}   = [[I, jI], [Pi, -jPi]] / sqrt(2),   Q_{2p+1} = [[I, 0, jI], [0, sqrt(2), 0], [Pi, 0, -jPi]] / sqrt(2)

the centred steering vectors map to real vectors ``Q_n^H a``, and the invariance becomes real
(Haardt & Nossek, their eq. (16))::

    tan(mu / 2) K1 d = K2 d,    K1 = Re(Q_{n-1}^H J2 Q_n),  K2 = Im(Q_{n-1}^H J2 Q_n)

The real signal subspace ``E_s`` (the k principal eigenvectors of ``Re(Q_n^H R Q_n)``, which is
``Q_n^H R_fb Q_n``: forward-backward averaging comes for free) satisfies ``K1 E_s Y = K2 E_s``
with ``Y`` similar to ``diag(tan(mu_i / 2))``. ``Y`` is the least-squares solution; its
eigenvalues give ``mu_i = 2 arctan(omega_i)``. Cost: one real ``n x n`` eigendecomposition and a
``k x k`` eigenproblem, batched. The subspace goes through ``eigh_subspace``, so the DOAs are
differentiable with respect to ``R`` (simple ``omega_i``).

Reference: M. Haardt and J. A. Nossek, Unitary ESPRIT: how to obtain increased estimation
accuracy with a reduced computational burden, IEEE Trans. Signal Process. 43 (1995) 1232-1242;
R. Roy and T. Kailath, ESPRIT, IEEE Trans. ASSP 37 (1989) 984-995.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._errors import InputError
from ..spectral import eigh_subspace
from ._decomposition import check_sources, covariance
from ._steering import _spacing


def unitary_matrix(n: int, dtype: torch.dtype = torch.complex128, device=None) -> Tensor:
    """The left Pi-real unitary ``Q_n`` of unitary ESPRIT (``Pi_n Q_n^* = Q_n``), (n, n)."""
    p = n // 2
    Q = torch.zeros(n, n, dtype=dtype, device=device)
    eye = torch.eye(p, dtype=dtype, device=device)
    Q[:p, :p] = eye
    Q[:p, n - p:] = 1j * eye
    Q[n - p:, :p] = eye.flip(0)
    Q[n - p:, n - p:] = -1j * eye.flip(0)
    if n % 2:
        Q[p, p] = math.sqrt(2)
    return Q / math.sqrt(2)


def unitary_esprit(R: Tensor, k: int, *, spacing: float = 0.5) -> Tensor:
    """DOAs (radians from broadside) of ``k`` sources from a ULA covariance by unitary ESPRIT.

    Args:
        R: (..., n, n) complex64 or complex128 covariance of an n-element ULA (``ula_steering``
            convention), n >= 3, finite (Hermitian part used; conjugate views accepted).
        k: number of sources (int), ``1 <= k <= n - 2`` (the subarrays have n - 1 elements).
        spacing: element spacing in wavelengths, a positive finite number.

    Returns:
        (..., k) in the real dtype of ``R``, the DOAs in radians in ascending order;
        differentiable with respect to ``R`` where the ``omega_i`` are simple.

    Raises:
        InputError: ``R`` not a (batched) square matrix, real, non-finite or with n < 3; ``k``
            not an int in ``1 .. n - 2``; ``spacing`` not a positive finite number.
        DegenerateSpectrumError: a zero gap between the k-th and (k+1)-th eigenvalue of the real
            transformed covariance (from ``eigh_subspace``; inside ``torch.func`` the affected
            samples are NaN instead).

    Example::

        import torch
        from difflinalg import signal

        theta = torch.tensor([-0.3, 0.4], dtype=torch.float64)
        A = signal.ula_steering(8, theta)
        R = (A @ A.mH + 0.1 * torch.eye(8, dtype=torch.complex128)).requires_grad_()
        doa = signal.unitary_esprit(R, 2)
        assert torch.allclose(doa, theta)
        doa.sum().backward()                         # differentiable with respect to R
        assert torch.isfinite(R.grad).all()
    """
    R = covariance(R)
    if not R.is_complex():
        raise InputError("R: unitary ESPRIT needs a complex covariance (ULA data), got a real one; use R.to(torch.complex128)")
    n = R.shape[-1]
    if n < 3:
        raise InputError(f"R: unitary ESPRIT needs n >= 3 elements, got {n}")
    if not isinstance(k, int) or isinstance(k, bool):
        raise InputError(f"k: unitary ESPRIT takes an int number of sources, got {k!r}")
    k = check_sources(k, tuple(R.shape[:-2]), n - 1, R.device)
    sp = _spacing(spacing, "spacing")
    Qn = unitary_matrix(n, R.dtype, R.device)
    Qm = unitary_matrix(n - 1, R.dtype, R.device)
    Cr = (Qn.mH @ R @ Qn).real
    Es = eigh_subspace(Cr, k, largest=True).eigenvectors  # (..., n, k) real
    M = Qm.mH @ Qn[1:, :]  # Q_{n-1}^H J2 Q_n (J2 selects rows 1 .. n-1)
    K1, K2 = M.real, M.imag
    Y = torch.linalg.lstsq(K1 @ Es, K2 @ Es).solution
    omega = torch.linalg.eigvals(Y).real
    mu = 2 * torch.atan(omega)
    return torch.asin((mu / (2 * math.pi * sp)).clamp(-1.0, 1.0)).sort(dim=-1).values
