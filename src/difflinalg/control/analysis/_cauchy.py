"""Low-rank factors of the modal Gramians without forming them: a pivoted Cholesky factorization of
a Cauchy-like matrix that generates each pivot column from the poles and the input (or output)
directions when it is needed, O(N k (m + k)) for k columns (the setup of a RARL2 target; see
``_modal``'s module docstring)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor


def cauchy_pivoted_cholesky(x: Tensor, mu: Tensor, discrete: bool, tol: float, max_rank: int | None = None,
                            pairs: tuple[Tensor, Tensor] | None = None, scale: float = 1.0,
                            real: bool = False) -> Tensor:
    """``L`` (N x k) with ``W M W^H ~= L L^H`` for the Cauchy-like (modal Gramian) matrix::

        continuous:  M_ij = -(x_i . conj x_j) / (mu_i + conj mu_j)
        discrete:    M_ij =  (x_i . conj x_j) / (1 - mu_i conj mu_j)

    (controllability Gramian: ``x_i`` the rows of ``W^{-1} B``, ``mu = lam``; observability Gramian:
    ``x_i = conj(c_i)``, ``mu = conj lam``). ``real``: a real system (``x``, ``mu`` exactly conjugate
    on the ``pairs`` ``(pi, pj)``, real elsewhere) in its real working coordinates, ``W`` being the
    identity except on the pairs, where it is ``scale [[1, 1], [i, -i]]`` (``scale = 1`` for
    ``J^{-1}``, 1/2 for ``J^H``); ``W M W^H`` and ``L`` are real. Otherwise ``W = I``.

    Greedy diagonal pivoting as for the dense matrix (the same pivots), stopped when the remaining
    diagonal is below ``tol * max(diag)`` or at ``max_rank`` columns, but each pivot column is
    generated when it is needed: O(N (m + k)) per column, O(N k (m + k)) in all, no N x N matrix.
    For a real system ``y = M W^H e_j`` is only evaluated on the real modes and the first members
    ``a`` of the pairs (``y_a' = conj(y_a)``): column ``j`` of ``W M W^H`` is ``y`` there,
    ``2 scale Re y_a`` at ``a`` and ``-2 scale Im y_a`` at ``a'``. NumPy: a step is a few small
    vector operations, so their overhead matters."""
    xn = x.detach().cpu().resolve_conj().numpy()
    mun = mu.detach().cpu().resolve_conj().numpy()
    N = xn.shape[0]
    k_max = N if max_rank is None else min(N, max_rank)

    def kern(a: np.ndarray, bc: np.ndarray) -> np.ndarray:  # M_ab / (x_a . conj x_b), bc = conj(mu_b)
        return 1.0 / (1.0 - a * bc) if discrete else -1.0 / (a + bc)

    if real:
        pi = pairs[0].cpu().numpy() if pairs is not None else np.zeros(0, dtype=np.int64)
        pj = pairs[1].cpu().numpy() if pairs is not None else np.zeros(0, dtype=np.int64)
        is_real = np.ones(N, dtype=bool)
        is_real[pi] = is_real[pj] = False
        ri = np.flatnonzero(is_real)
        nr, npr = len(ri), len(pi)
        reps = np.concatenate([ri, pi])  # rows where y is evaluated
        inv = np.empty(N, dtype=np.int64)  # position of each row in the order (ri, pi, pj)
        inv[np.concatenate([ri, pi, pj])] = np.arange(N)
        xR, muR = xn[reps], mun[reps]
        if npr == 0:  # all modes real: real arithmetic
            xn, mun, xR, muR = xn.real.copy(), mun.real.copy(), xR.real.copy(), muR.real.copy()
        Mrr = ((xR * xR.conj()).sum(1) * kern(muR, muR.conj())).real  # M_cc
        Maa = (xR[nr:] * xR[nr:]).sum(1) * kern(muR[nr:], muR[nr:])  # M_aa' (x_a' = conj x_a)
        h2 = 2 * scale**2
        d = np.concatenate([Mrr[:nr], h2 * (Mrr[nr:] + Maa.real), h2 * (Mrr[nr:] - Maa.real)])[inv]
        us = (scale * np.array([1.0, 1.0]), scale * np.array([-1j, 1j]))  # W^H e_j on (a, a')
        XP = np.stack([xn[pi].conj(), xn[pi]], -1)  # columns a, a' of M: conj x_a, conj x_a' = x_a
        MPc = np.stack([mun[pi].conj(), mun[pi]], -1)[:, None, :]  # conj mu_a, conj mu_a'
        xc, muc = xn.conj(), mun.conj()
        buf = np.empty(N, dtype=d.dtype)

        def column(j: int) -> np.ndarray:
            q = inv[j]
            if q < nr:
                y = (xR @ xc[j]) * kern(muR, muc[j])
            else:
                t = (q - nr) % npr
                y = ((xR @ XP[t]) * kern(muR[:, None], MPc[t])) @ us[int(q >= nr + npr)]
            buf[:nr] = y[:nr].real
            buf[nr:nr + npr] = (2 * scale) * y[nr:].real
            buf[nr + npr:] = (-2 * scale) * y[nr:].imag
            return buf[inv]
    else:
        xc, muc = xn.conj(), mun.conj()
        d = ((xn * xc).sum(1) * kern(mun, muc)).real

        def column(j: int) -> np.ndarray:
            return (xn @ xc[j]) * kern(mun, muc[j])

    L = np.zeros((k_max, N), dtype=d.dtype if real else xn.dtype)
    dmax = float(d.max()) if N else 0.0
    k = 0
    while k < k_max:
        j = int(d.argmax())
        dj = float(d[j])
        if not dj > tol * dmax:
            break
        col = column(j)
        if k:
            col -= (L[:k, j] if real else L[:k, j].conj()) @ L[:k]
        col /= math.sqrt(dj)
        L[k] = col
        d -= col * col if real else col.real ** 2 + col.imag ** 2
        d[j] = 0.0
        k += 1
    return torch.from_numpy(np.ascontiguousarray(L[:k].T))
