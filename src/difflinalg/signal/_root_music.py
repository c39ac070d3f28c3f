r"""Root-MUSIC for uniform linear arrays: the DOAs from the roots of the null-spectrum polynomial.

With ``C = E_n E_n^H = I - U_s U_s^H`` the noise projector and the ULA steering vector
``a_m = z^m``, ``z = exp(2j pi d sin(theta))`` (``ula_steering``), the null spectrum is a Laurent
polynomial in ``z`` on the unit circle::

    a^H C a = sum_{p = -(n-1)}^{n-1} b_p z^p,        b_p = sum_{l - m = p} C_{m l}

(``b_p`` the sum of the p-th diagonal of ``C``). ``z^{n-1} a^H C a`` is a polynomial of degree
``2n - 2`` whose roots come in pairs ``(z, 1 / z^*)``; the ``k`` roots inside the unit circle
closest to it give the DOAs ``theta = arcsin(angle(z) / (2 pi d))``. Unlike a grid search there is
no grid bias: root-MUSIC's accuracy is that of the MUSIC null spectrum itself. The roots are the
eigenvalues of the companion matrix (batched), the diagonal sums one ``index_add`` (no loop over
the batch).

Reference: A. J. Barabell, Improving the resolution performance of eigenstructure-based
direction-finding algorithms, Proc. ICASSP 1983, 336-339; B. D. Rao and K. V. S. Hari,
Performance analysis of root-MUSIC, IEEE Trans. ASSP 37 (1989) 1939-1949.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._errors import InputError
from ._decomposition import as_decomposition, check_sources, check_split
from ._steering import _spacing


def root_music(R, k: int, *, spacing: float = 0.5) -> Tensor:
    """DOAs (radians from broadside) of ``k`` sources from a ULA covariance by root-MUSIC.

    Args:
        R: (..., n, n) complex64 or complex128 covariance of an n-element ULA (``ula_steering``
            convention), finite (Hermitian part used), or its ``SpectralDecomposition``.
        k: number of sources (int), ``1 <= k <= n - 1``.
        spacing: element spacing in wavelengths, a positive finite number (<= 0.5 for
            unambiguous DOAs over [-pi/2, pi/2]).

    Returns:
        (..., k) in the real dtype of ``R``, the DOAs in radians in ascending order (the roots
        are eigenvalues of a companion matrix: differentiable with respect to ``R`` where they
        are simple).

    Raises:
        InputError: ``R`` not a (batched) square matrix, real, or non-finite, or a
            ``SpectralDecomposition`` with inconsistent shapes; ``k`` not an int in
            ``1 .. n - 1``; ``spacing`` not a positive finite number.
        DegenerateSpectrumError: ``lambda_k == lambda_{k+1}`` up to rounding (the noise subspace
            is not defined; inside ``torch.func`` the affected samples are NaN instead).

    Example::

        import torch
        from difflinalg import signal

        theta = torch.tensor([-0.3, 0.4], dtype=torch.float64)
        A = signal.ula_steering(8, theta)
        R = A @ A.mH + 0.1 * torch.eye(8, dtype=torch.complex128)
        assert torch.allclose(signal.root_music(R, 2), theta)          # no grid
    """
    d = as_decomposition(R)
    w, V = d
    n = V.shape[-1]
    if not V.is_complex():
        raise InputError("R: root-MUSIC needs a complex covariance (ULA data), got a real one; use R.to(torch.complex128)")
    if not isinstance(k, int) or isinstance(k, bool):
        raise InputError(f"k: root-MUSIC takes an int number of sources (the output has k columns), got {k!r}")
    k = check_sources(k, tuple(V.shape[:-2]), n, V.device)
    sp = _spacing(spacing, "spacing")
    Us = V[..., n - k:]
    C = torch.eye(n, dtype=V.dtype, device=V.device) - Us @ Us.mH
    C = check_split(w, k, C.flatten(-2)).unflatten(-1, (n, n))
    # b_p at position p + n - 1: entry (m, l) belongs to diagonal p = l - m
    i = torch.arange(n, device=V.device)
    pos = (i[None, :] - i[:, None] + n - 1).flatten()
    b = torch.zeros(*C.shape[:-2], 2 * n - 1, dtype=C.dtype, device=C.device).index_add_(-1, pos, C.flatten(-2))
    coef = b.flip(-1)  # descending powers: z^{2n-2} has coefficient b_{n-1}
    D = 2 * n - 2
    comp = torch.zeros(*C.shape[:-2], D, D, dtype=C.dtype, device=C.device)
    comp[..., 0, :] = -coef[..., 1:] / coef[..., :1]
    comp[..., 1:, :-1] = torch.eye(D - 1, dtype=C.dtype, device=C.device)
    roots = torch.linalg.eigvals(comp)
    # the n - 1 roots inside the unit circle (one of each pair z, 1/z^*); the k closest to it
    order = roots.abs().argsort(dim=-1)
    inside = roots.gather(-1, order[..., n - 1 - k: n - 1])
    s = torch.angle(inside) / (2 * math.pi * sp)
    return torch.asin(s.clamp(-1.0, 1.0)).sort(dim=-1).values
