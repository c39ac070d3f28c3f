r"""Solvers for the reduced (Schur-space) equations of Bartels-Stewart, without autograd.

With ``op(S)`` = ``S`` or ``S^H`` (``S`` the m x m Schur factor of the left coefficient) and
``op(T)`` likewise (n x n, right coefficient), solve for ``Y`` (m x n)

    Sylvester:  op(S) Y + Y op(T) = F
    Stein:      Y - op(S) Y op(T) = F

Two implementations:

* ``lapack_solve`` (CPU). Real quasi-triangular factors (real Schur form with 2 x 2 blocks):
  Sylvester is one LAPACK ``?trsyl`` call. Otherwise both equations run a column recurrence over
  the diagonal blocks (1 x 1, or 2 x 2 in the real form) of the smaller coefficient ``P = op(T)``:
  block ``K`` of columns satisfies ``op(S) Y_K + Y_K P_KK = R_K`` (Sylvester, with
  ``R_K = F_K - sum_{J done} Y_J P_JK``) or ``Y_K - op(S) Y_K P_KK = R_K`` (Stein, with
  ``R_K = F_K + op(S) sum_{J done} Y_J P_JK``). A 1 x 1 block with a triangular ``S`` is a BLAS
  ``?trsv`` with ``S``'s diagonal shifted in one work copy (``op(S) + p I``, or for Stein
  ``op(S) - I/p`` with right side ``-R_K/p``, and ``Y_K = R_K`` if ``p = 0``): row scaling keeps the
  triangular solve backward stable, and it is ~20x faster than ``?trsyl`` with one column (reference
  LAPACK ``?trsyl`` reads rows of ``S`` with stride), and than one complex ``?trsyl`` call overall.
  Other blocks go through ``?trsyl`` (Stein: ``op(S) Y_K - Y_K P_KK^{-1} = -R_K P_KK^{-1}``).
  Cost ``O(m^2 n + m n^2)`` for both equations. LAPACK is per matrix, so batches loop in Python.
* ``torch_solve`` (any device, complex triangular factors): the column recurrence of
  Bartels-Stewart over the smaller dimension, each step one batched triangular solve with the
  shifted large factor (``op(S) + t I`` or ``I - t op(S)``). Same complexity; Python loop over
  ``min(m, n)`` columns, batched over leading dimensions. This is what runs on GPUs (with host
  Schur factors, see ``_factor.py``); it runs on the CPU too (``method="schur-torch"``, tested).

If ``m < n`` both conjugate-transpose the equation (``Y^H`` solves the equation with the roles of
``S`` and ``T`` swapped and the ops flipped) so that the loop is over the smaller side.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import Tensor

from ._checks import broadcast
from ._factor import to_numpy

# ------------------------------------------------------------------------------------------------
# LAPACK (CPU)


def _diag_blocks(T: np.ndarray) -> list[slice]:
    """Diagonal blocks of a (quasi-)triangular Schur factor: 2 x 2 where the subdiagonal is set."""
    n = T.shape[-1]
    if np.iscomplexobj(T):
        return [slice(k, k + 1) for k in range(n)]
    sub = np.diagonal(T, -1)
    blocks, k = [], 0
    while k < n:
        if k + 1 < n and sub[k] != 0:
            blocks.append(slice(k, k + 2))
            k += 2
        else:
            blocks.append(slice(k, k + 1))
            k += 1
    return blocks


@functools.cache
def _lapack_trsyl(char: str):
    """LAPACK ?trsyl for a NumPy dtype character (scipy.linalg is imported on first use: it costs
    ~0.3 s, which ``import difflinalg`` should not pay)."""
    import scipy.linalg

    return scipy.linalg.get_lapack_funcs("trsyl", dtype=np.dtype(char))


def _trans(flag: bool, complex_: bool) -> str:
    return ("C" if complex_ else "T") if flag else "N"


def _trsyl(S, T, F, hs: bool, ht: bool, isgn: int) -> np.ndarray:
    trsyl = _lapack_trsyl(S.dtype.char)
    cx = np.iscomplexobj(S)
    y, scale, info = trsyl(S, T, F, trana=_trans(hs, cx), tranb=_trans(ht, cx), isgn=isgn)
    if info < 0:  # pragma: no cover - argument error would be a bug here
        raise RuntimeError(f"?trsyl: illegal argument {-info}")
    # LAPACK returns the solution of the equation with right side scale * F (scale <= 1 avoids
    # overflow): the solution for F is y / scale.
    return y / scale if scale != 1.0 else y


def _is_triangular(S: np.ndarray) -> bool:
    return np.iscomplexobj(S) or S.shape[-1] < 2 or not np.any(np.diagonal(S, -1))


def _recurrence_lapack(kind: str, S, T, F, hs: bool, ht: bool) -> np.ndarray:
    """Column recurrence over the diagonal blocks of the smaller coefficient (see module doc)."""
    m, n = F.shape
    if m < n:  # loop over the smaller side: the conjugate-transposed equation for Y^H
        return _recurrence_lapack(kind, T, S, F.conj().T.copy(), not ht, not hs).conj().T
    S = np.asfortranarray(S)  # no copy for the column-major factors of _factor.py
    P = T.conj().T if ht else T  # op(T): upper (quasi-)triangular, or lower if ht
    cx = np.iscomplexobj(S)
    trans = (2 if cx else 1) if hs else 0
    stein = kind == "stein"
    # A triangular S (complex form, or a real form without 2 x 2 blocks): a 1 x 1 column step is a
    # triangular solve with S's diagonal shifted (one work copy, O(m) per column):
    #   Sylvester (op(S) + p I) y = r;  Stein (I - p op(S)) y = r  <=>  (op(S) - I/p) y = -r/p.
    triangular = _is_triangular(S)
    if triangular:
        import scipy.linalg

        trsv, trmv = scipy.linalg.get_blas_funcs(("trsv", "trmv"), (S,))
        work = np.array(S, order="F")
        dS = np.diagonal(S).copy()
        diag = np.arange(m)
    elif stein:
        Sop = (S.T.conj() if cx else S.T) if hs else S  # a view for real S
    blocks = _diag_blocks(T)
    if ht:
        blocks = blocks[::-1]
    Y = np.zeros_like(F)
    for ks in blocks:
        W = Y @ P[:, ks]  # unsolved columns of Y are still zero
        if not stein:
            R = F[:, ks] - W
        elif triangular:
            R = F[:, ks] + np.stack([trmv(S, W[:, j], trans=trans) for j in range(W.shape[1])], axis=1)
        else:
            R = F[:, ks] + Sop @ W
        PK = P[ks, ks]
        if PK.shape[0] == 2:  # real 2 x 2 block: ?trsyl with a 2-column right side
            if stein:
                Minv = np.linalg.inv(PK)
                Y[:, ks] = _trsyl(S, Minv, -(R @ Minv), hs, False, -1)
            else:
                Y[:, ks] = _trsyl(S, PK, R, hs, False, 1)
            continue
        p = PK[0, 0]
        if stein and p == 0:
            Y[:, ks] = R
            continue
        shift = (1.0 / p if stein else -p)
        rhs = -R[:, 0] / p if stein else R[:, 0]
        if triangular:
            work[diag, diag] = dS - (np.conj(shift) if hs else shift)
            Y[:, ks.start] = trsv(work, rhs, trans=trans)
        else:
            Y[:, ks] = _trsyl(S, np.array([[-shift]], dtype=PK.dtype), rhs[:, None], hs, False, 1)
    return Y


def lapack_solve(kind: str, S: Tensor, T: Tensor, F: Tensor, hs: bool, ht: bool) -> Tensor:
    """Solve the reduced equation on the host with LAPACK; batch dimensions broadcast."""
    s, t, f = to_numpy(S), to_numpy(T), to_numpy(F)
    if np.iscomplexobj(s) and not np.iscomplexobj(f):
        f = f.astype(s.dtype)
    m, n = f.shape[-2], f.shape[-1]
    batch = np.broadcast_shapes(s.shape[:-2], t.shape[:-2], f.shape[:-2])
    out = np.empty(batch + (m, n), dtype=f.dtype)
    if m and n:
        sb = np.broadcast_to(s, batch + s.shape[-2:]).reshape(-1, m, m)
        tb = np.broadcast_to(t, batch + t.shape[-2:]).reshape(-1, n, n)
        fb = np.broadcast_to(f, batch + (m, n)).reshape(-1, m, n)
        ob = out.reshape(-1, m, n)
        # which factors are triangular (complex form, or real without 2 x 2 blocks), all at once
        tri_s = np.iscomplexobj(s) or m < 2 or ~np.diagonal(sb, -1, -2, -1).any(-1)
        tri_t = np.iscomplexobj(t) or n < 2 or ~np.diagonal(tb, -1, -2, -1).any(-1)
        one_call = np.broadcast_to(~(tri_s & tri_t), (ob.shape[0],))
        for i in range(ob.shape[0]):  # LAPACK is per matrix
            if kind == "sylvester" and one_call[i]:
                # real quasi-triangular factors: one ?trsyl call
                ob[i] = _trsyl(np.asfortranarray(sb[i]), np.asfortranarray(tb[i]), np.array(fb[i]), hs, ht, 1)
            else:
                ob[i] = _recurrence_lapack(kind, sb[i], tb[i], np.array(fb[i]), hs, ht)
    return torch.from_numpy(out).to(F.device)


# ------------------------------------------------------------------------------------------------
# torch (any device; complex triangular factors)


def torch_solve(kind: str, S: Tensor, T: Tensor, F: Tensor, hs: bool, ht: bool) -> Tensor:
    """Column recurrence of Bartels-Stewart in batched torch operations (triangular ``S``, ``T``)."""
    m, n = F.shape[-2], F.shape[-1]
    if m < n:
        return torch_solve(kind, T, S, F.mH, not ht, not hs).mH.resolve_conj()
    F = F.to(S.dtype)
    batch = broadcast(S.shape[:-2], T.shape[:-2], F.shape[:-2])
    S = S.expand(*batch, m, m)
    F = F.expand(*batch, m, n)
    P = (T.mH if ht else T).expand(*batch, n, n)
    Y = torch.zeros(*batch, m, n, dtype=S.dtype, device=S.device)
    eye = torch.eye(m, dtype=S.dtype, device=S.device)
    order = range(n - 1, -1, -1) if ht else range(n)
    Sop = S.mH if hs else S
    for k in order:
        w = (Y @ P[..., :, k:k + 1])  # (..., m, 1); unsolved columns are zero
        p = P[..., k, k][..., None, None]
        if kind == "sylvester":
            r = F[..., :, k:k + 1] - w
            # op(S) + p I; for op = ^H solve with (S + conj(p) I)^H (lower triangular)
            M = S + (p.conj() if hs else p) * eye
        else:
            r = F[..., :, k:k + 1] + Sop @ w
            M = eye - (p.conj() if hs else p) * S
        if hs:
            y = torch.linalg.solve_triangular(M.mH, r, upper=False)
        else:
            y = torch.linalg.solve_triangular(M, r, upper=True)
        Y[..., :, k:k + 1] = y
    return Y
