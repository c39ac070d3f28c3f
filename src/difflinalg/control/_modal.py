r"""Modal (eigenvector) coordinates of a system, and H2 errors from poles and residues.

Modal form. ``A = W diag(lambda) W^{-1}`` gives ``F(s) = D + sum_i c_i b_i^T / (s - lambda_i)`` with
``c_i`` the columns of ``C W`` and ``b_i^T`` the rows of ``W^{-1} B`` (eigenvectors normalized to unit
length, so that ``cond(W)`` measures how much the transformation amplifies rounding errors).
Block-diagonal ``A`` (modal-form models such as the SLICOT CD player and space-station models, whose
zero pattern splits into independent 2 x 2 blocks) are diagonalized block by block, batched over
blocks of equal size: O(N) instead of O(N^3).

H2 inner products by residues (no Gramian, no cancellation of large Gramian entries). For
``G(s) = c b^T / (s - nu)`` and a stable ``E`` (continuous time), closing the contour of
``<G, E> = (1/2 pi) int Tr(G(i w)^H E(i w)) dw`` in the right half-plane gives
``<G, E> = c^H E(-conj nu) conj(b)``; hence, with ``E = sum_k c_k b_k^T / (s - nu_k)``,

    ||E||_2^2 = sum_k c_k^H E(-conj nu_k) conj(b_k).

In discrete time (``z`` on the unit circle, residue at ``1 / conj nu`` and at infinity)::

    ||E||_2^2 = ||D_E||_F^2 + sum_k c_k^H (E(1 / conj nu_k) - D_E) conj(b_k) / conj(nu_k)    (nu_k != 0)

``E`` is evaluated pointwise as ``F(s) - H(s)``, so the result carries rounding errors of the size
``eps |F(s)| |E|`` instead of ``eps ||F||^2``: for an error ``||E|| = 1e-5 ||F||`` the Gramian formula
loses about 10 digits of ``||E||^2``, this one a few.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .._utils import eps
from ._statespace import StateSpace


def _blocks(A: np.ndarray) -> list[np.ndarray]:
    """Index sets of the diagonal blocks of ``A`` (connected components of its zero pattern)."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    n_comp, labels = connected_components(sp.csr_matrix(A != 0), directed=False)
    order = np.argsort(labels, kind="stable")
    return np.split(order, np.cumsum(np.bincount(labels, minlength=n_comp))[:-1])


def modal_form(A: Tensor, B: Tensor, C: Tensor) -> tuple[Tensor, Tensor, Tensor, float, Tensor]:
    """``(lam, Bt, Ct, cond, perm)``: eigenvalues (N,), ``W^{-1} B`` (N, m), ``C W`` (p, N) in the
    order of the permutation ``perm`` that groups the diagonal blocks of ``A``, and the largest
    1-norm condition number of the (unit-column) eigenvector blocks (inf if singular)."""
    cdt = torch.promote_types(A.dtype, torch.complex64)
    a = A.detach().cpu().numpy()
    by_size: dict[int, list[np.ndarray]] = {}
    for b in _blocks(a):
        by_size.setdefault(len(b), []).append(b)
    perm, lams, Bts, Cts = [], [], [], []
    cond = 1.0
    Bd, Cd = B.detach(), C.detach()
    for s in sorted(by_size):
        idx = torch.as_tensor(np.stack(by_size[s]))  # (nb, s)
        sub = A.detach()[idx[:, :, None], idx[:, None, :]]
        lam, V = torch.linalg.eig(sub)
        V = V / torch.linalg.vector_norm(V, dim=-2, keepdim=True)
        Vi, info = torch.linalg.inv_ex(V)
        if bool((info != 0).any()):  # defective (e.g. a shift matrix): no modal form
            return None, None, None, float("inf"), None
        if s > 1:
            c = torch.linalg.matrix_norm(V, 1) * torch.linalg.matrix_norm(Vi, 1)
            cond = max(cond, float(c.max()))
        Bb = Bd[idx].to(cdt)  # (nb, s, m)
        Cb = Cd[:, idx].to(cdt).permute(1, 0, 2)  # (nb, p, s)
        Bts.append((Vi @ Bb).reshape(-1, Bd.shape[-1]))
        Cts.append((Cb @ V).permute(1, 0, 2).reshape(Cd.shape[0], -1))
        perm.append(idx.reshape(-1))
        lams.append(lam.reshape(-1))
    if not np.isfinite(cond):
        cond = float("inf")
    return torch.cat(lams), torch.cat(Bts), torch.cat(Cts, 1), cond, torch.cat(perm)


def cached_modal_form(sys: StateSpace):
    key = "modal"
    if key not in sys._cache:
        sys._cache[key] = modal_form(sys.A, sys.B, sys.C)
    return sys._cache[key]


def transfer_at(lam: Tensor, Bt: Tensor, Ct: Tensor, s: Tensor, chunk: int = 4096) -> Tensor:
    """``sum_i c_i b_i^T / (s_k - lam_i)`` for each point ``s_k``: (K, p, m)."""
    out = []
    for k in range(0, s.shape[0], chunk):
        G = 1.0 / (s[k:k + chunk, None] - lam[None, :])
        out.append(torch.einsum("pn,kn,nm->kpm", Ct, G, Bt))
    return torch.cat(out) if out else torch.zeros(0, Ct.shape[0], Bt.shape[1], dtype=Ct.dtype)


def residue_sum(poles: Tensor, cols: Tensor, rows: Tensor, E_at, discrete: bool, DE: Tensor | None = None):
    """``||E||^2`` by residues (module docstring) for ``E`` with the given poles and rank-one residues
    ``cols[:, k] rows[k, :]``; ``E_at(s)`` evaluates the strictly proper part of ``E`` at points
    (K,) -> (K, p, m) (``D_E`` is never added and subtracted: that would cancel digits when the
    discrete-time mirror points ``1 / conj nu`` are large). Returns ``(value, terms)``."""
    if discrete:
        pts = 1.0 / poles.conj()
        Es = E_at(pts)
        terms = torch.einsum("pk,kpm,km->k", cols.conj(), Es, rows.conj()) / poles.conj()
    else:
        pts = -poles.conj()
        Es = E_at(pts)
        terms = torch.einsum("pk,kpm,km->k", cols.conj(), Es, rows.conj())
    val = terms.sum()
    if discrete:
        val = val + (DE.abs() ** 2).sum()
    return val, terms


def squared_h2_error_residues(F: StateSpace, H: StateSpace, max_cond: float = 1e8):
    """``||F - H||_2^2`` by residues, or None if a modal form is too ill-conditioned (or, in discrete
    time, a pole is at 0, where the formula divides by it)."""
    lamF, BtF, CtF, condF, _ = cached_modal_form(F)
    lamH, BtH, CtH, condH, _ = modal_form(H.A, H.B, H.C)
    if lamF is None or lamH is None or not (condF <= max_cond and condH <= max_cond):
        return None
    poles = torch.cat([lamF, lamH])
    if F.discrete and float(poles.abs().min()) <= 1e3 * eps(F.dtype):
        return None
    cols = torch.cat([CtF, -CtH], 1)
    rows = torch.cat([BtF, BtH])
    cdt = lamF.dtype
    DE = (F.D - H.D).to(cdt)

    def E_at(s):
        return transfer_at(lamF, BtF, CtF, s) - transfer_at(lamH, BtH, CtH, s)

    val, _ = residue_sum(poles, cols, rows, E_at, F.discrete, DE)
    return float(val.real)
