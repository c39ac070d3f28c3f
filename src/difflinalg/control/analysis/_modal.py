r"""H2 errors and norms from poles and residues, in the modal coordinates of ``_modal_form``.

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

Without N x N matrices (the setup of a RARL2 target): ``||F||`` from the sums ``F(-conj lam_i)``
(``mirror_sums``, O(N^2 p m) in chunks), and low-rank factors of the modal Gramians, which are
Cauchy-like (``P_ij = -b_i^T conj(b_j) / (lam_i + conj lam_j)`` in continuous time), by a pivoted
Cholesky factorization that generates each pivot column from ``lam`` and ``b`` when it is needed
(``_cauchy.cauchy_pivoted_cholesky``, O(N k (m + k)) for k columns).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ..._utils import eps
from ._modal_form import cached_modal_form, modal_form
from ._precise import Residues, error_resolution, ext_work, rayleigh_hermitian, refine_modal, squared_error
from ..system._statespace import StateSpace


#: Hermitian targets above this order get ``eigh``'s vectors with Rayleigh quotients in long double
#: (``_precise.rayleigh_hermitian``) instead of ``eig``, its inverse and Newton steps
REFINE_MAX_ORDER = 400
#: most extended-precision operations (``_precise.ext_work``) spent on Newton refinement of a
#: non-Hermitian target's modal data: a dense N = 500 (~1 s), a sparse-patterned one with 5 non-zeros
#: per row up to REFINE_NEWTON_MAX_ORDER (the residual products cost O(nnz N); the rest is BLAS)
REFINE_MAX_WORK = 500 ** 3
#: largest non-Hermitian order refined: the Newton steps hold ~5 N x N complex arrays (0.6 GB here)
REFINE_NEWTON_MAX_ORDER = 2000


def precise_residues(sys: StateSpace, refine: bool = True) -> Residues:
    """The poles and residues of ``sys`` for ``_precise.squared_error`` (cached). With ``refine``:
    a Hermitian ``A`` up to order REFINE_MAX_ORDER, and a non-Hermitian one whose extended-precision
    residuals cost at most REFINE_MAX_WORK (up to REFINE_NEWTON_MAX_ORDER), get Newton steps in extended precision
    (``_precise.refine_modal``); a larger Hermitian one ``eigh``'s vectors with Rayleigh quotients in
    long double (``_precise.rayleigh_hermitian``). Otherwise those of the double-precision modal form
    (whose eigenvalues carry errors of ``eps ||A||``; the resolution says so). The accuracy goes with
    them (``data_eps``, ``residue_eps``, ``kappa``, the eigenvalue condition numbers ``mode_cond``,
    ``||A||``: ``_precise.data_error``)."""
    want = refine

    def make() -> Residues:
        refined = False
        A = sys.A.detach().cpu().resolve_conj().numpy()
        herm = np.abs(A - A.conj().T).max(initial=0.0) <= 10 * np.finfo(A.dtype).eps * np.abs(A).max(initial=0.0)
        res_eps = None
        big = sys.order > REFINE_MAX_ORDER
        refine = want and ((herm and not big) or (not herm and sys.order <= REFINE_NEWTON_MAX_ORDER
                                                    and ext_work(A) <= REFINE_MAX_WORK))
        if want and big and herm:  # eig and its inverse not needed: Rayleigh quotients in long double
            B, C = (x.detach().cpu().resolve_conj().numpy() for x in (sys.B, sys.C))
            data = rayleigh_hermitian(A, B, C)
            kappa, mode_cond, refined = 1.0, None, True
            res_eps = float(np.finfo(np.float64).eps)  # eigh's vectors: residues to double precision
        elif refine:
            B, C = (x.detach().cpu().resolve_conj().numpy() for x in (sys.B, sys.C))
            # LAPACK through torch (MKL): ~10x NumPy's eig and inverse at N ~ 400 on this machine
            lam, V = torch.linalg.eig(torch.from_numpy(A))
            Vi = torch.linalg.inv(V).numpy()
            lam, V = lam.numpy(), V.numpy()
            *data, refined = refine_modal(A, B, C, lam, V, report=True, Vi=Vi)
            # Hermitian A: eigenvalue errors eps ||A|| whatever ``eig``'s basis of a repeated
            # eigenspace (the 2-D heat equation's, cond 200) -- the condition number is 1
            if herm or not V.size:
                kappa, mode_cond = 1.0, np.ones(V.shape[1])
            else:  # unit columns: s_k = ||row k of V^{-1}|| (the eigenvalue condition numbers)
                nrm = np.linalg.norm(V, axis=0)
                V, Vi = V / nrm, Vi * nrm[:, None]
                kappa = float(np.linalg.norm(V, 1) * np.linalg.norm(Vi, 1))
                mode_cond = np.linalg.norm(Vi, axis=1)
        else:  # cached modal data (no inverse at hand): each mode as ill-conditioned as the basis
            *data, kappa, _ = cached_modal_form(sys)
            data = tuple(x.detach().cpu().resolve_conj().numpy() for x in data)
            mode_cond = None
        u = np.finfo(np.longdouble if refined else np.float64).eps
        # sqrt(||A||_1 ||A||_inf) bounds the 2-norm in the eigenvalue errors of ``_precise.data_error``
        anorm = math.sqrt(float(np.linalg.norm(A, 1)) * float(np.linalg.norm(A, np.inf))) if A.size else 0.0
        return Residues(*data, sys.discrete, data_eps=float(u), kappa=kappa, anorm=anorm, mode_cond=mode_cond,
                        residue_eps=res_eps)

    return sys.cached(("precise_residues", want), make, values_only=True)


def recip_(x: Tensor) -> Tensor:
    """``1 / x`` elementwise, in place (``x`` a temporary): through NumPy for CPU tensors without
    autograd, where a complex reciprocal is measured 1.5-2x faster than ``torch.reciprocal`` (itself
    faster than ``1.0 / x``)."""
    if x.device.type == "cpu" and not x.requires_grad:
        x = x.resolve_conj()  # a lazily conjugated view would be copied by .numpy(): work on the copy
        xn = x.numpy()
        np.reciprocal(xn, out=xn)
        return x
    return x.reciprocal_()


def _residue_rows(Bt: Tensor, Ct: Tensor) -> Tensor:
    """The rank-one residues flattened to rows, ``R[i] = vec(c_i b_i^T)`` (N, p m)."""
    return (Ct.mT[:, :, None] * Bt[:, None, :]).reshape(Bt.shape[0], -1)


def transfer_at(lam: Tensor, Bt: Tensor, Ct: Tensor, s: Tensor, chunk: int = 4096,
                max_elements: float = 4e6) -> Tensor:
    """``sum_i c_i b_i^T / (s_k - lam_i)`` for each point ``s_k``: (K, p, m). One matrix product per
    chunk of points (at most ``chunk`` points and about ``max_elements`` kernel entries) with the
    flattened residues ``R[i] = vec(c_i b_i^T)`` (``p m <= 64``; an einsum for wider systems)."""
    p, m, N = Ct.shape[0], Bt.shape[1], lam.shape[0]
    chunk = max(1, min(chunk, int(max_elements // max(N, 1))))
    R = _residue_rows(Bt, Ct) if p * m <= 64 else None
    out = []
    for k in range(0, s.shape[0], chunk):
        G = recip_(s[k:k + chunk, None] - lam[None, :])
        out.append((G @ R).reshape(-1, p, m) if R is not None
                   else torch.einsum("pn,kn,nm->kpm", Ct, G, Bt))
    return torch.cat(out) if out else torch.zeros(0, p, m, dtype=Ct.dtype)


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


def error_residues(lamF: Tensor, BtF: Tensor, CtF: Tensor, lamH: Tensor, BtH: Tensor, CtH: Tensor):
    """``(poles, cols, rows)`` of ``E = F - H`` from the modal data of ``F`` and ``H``: the poles of
    both, residues ``c_k b_k^T`` with ``c`` from ``C~_F`` and ``-C~_H`` (``residue_sum``'s layout)."""
    return torch.cat([lamF, lamH]), torch.cat([CtF, -CtH], 1), torch.cat([BtF, BtH])


def squared_h2_error_residues(F: StateSpace, H: StateSpace, max_cond: float = 1e8, precise: bool = False,
                              bound: bool = False, refine: bool = True, resolution: bool = False):
    """``||F - H||_2^2`` by residues, or None if a modal form is too ill-conditioned (or, in discrete
    time, a pole is at 0, where the formula divides by it). ``precise``: refined poles and residues
    (``precise_residues``) summed in double-double arithmetic (``_precise.squared_error``).
    ``bound`` (not ``precise``): ``(value, rounding bound, absolute sum)`` (``_rounding_bound``).
    ``refine`` (``precise``): False keeps ``F``'s double-precision modal data (``precise_residues``).
    ``resolution`` (``precise``): ``(value, uncertainty of its square root)``
    (``_precise.error_resolution``: the modal data's accuracy and the sums' rounding)."""
    lamF, BtF, CtF, condF, _ = cached_modal_form(F)
    lamH, BtH, CtH, condH, _ = modal_form(H.A, H.B, H.C)
    if lamF is None or lamH is None or not (condF <= max_cond and condH <= max_cond):
        return None
    poles, cols, rows = error_residues(lamF, BtF, CtF, lamH, BtH, CtH)
    if F.discrete and float(poles.abs().min()) <= 1e3 * eps(F.dtype):
        return None
    cdt = lamF.dtype
    DE = (F.D - H.D).to(cdt)
    if precise:
        RF, RH = precise_residues(F, refine), precise_residues(H)
        val = squared_error(RF, RH, DE.detach().cpu().resolve_conj().numpy(), bound=resolution)
        return (val[0], error_resolution(RF, RH, *val)) if resolution else val

    def E_at(s):
        return transfer_at(lamF, BtF, CtF, s) - transfer_at(lamH, BtH, CtH, s)

    val, _ = residue_sum(poles, cols, rows, E_at, F.discrete, DE)
    if not bound:
        return float(val.real)
    est, absum = _rounding_bound(poles, cols, rows, (lamF, BtF, CtF, condF), (lamH, BtH, CtH, condH), F.discrete)
    return float(val.real), est, absum


def _rounding_bound(poles: Tensor, cols: Tensor, rows: Tensor, modalF, modalH, discrete: bool,
                    max_elements: float = 4e6):
    """``(bound, absolute sum)``: the estimated rounding error of ``residue_sum`` for ``E = F - H``,
    and the same sum without the condition numbers. Each modal term ``c_i b_i^T / (s - lam_i)`` of a
    system carries a relative error of about ``eps kappa`` (``kappa`` its eigenvector basis'
    condition number: the errors of the eigenpairs), so ``E(s)`` one of
    ``eps sum_sys kappa sum_i |c_i| |b_i|^T / |s - lam_i|``; the sum over the poles ``nu_k`` weights it by
    ``|c_k| |b_k|^T`` (``/ |nu_k|`` in discrete time). The absolute sum (kappa = 1) times
    ``(N + n) eps`` is the matching bound of the Gramian formula, whose terms are the same sums
    (Gramian entries) with rounding errors growing with the order. O((N + n)^2 p m), in chunks of
    about ``max_elements`` kernel entries."""
    pts = 1.0 / poles.conj() if discrete else -poles.conj()
    K = pts.shape[0]
    chunk = max(1, int(max_elements // max(K, 1)))
    tot = torch.zeros(2, dtype=torch.float64)
    for k in range(0, K, chunk):
        sl = slice(k, k + chunk)
        S, S1 = 0.0, 0.0
        for lam, Bt, Ct, cond in (modalF, modalH):
            G = 1.0 / (pts[sl, None] - lam[None, :]).abs()  # (chunk, N_sys)
            T = torch.einsum("kn,pn,nm->kpm", G, Ct.abs(), Bt.abs())
            S, S1 = S + cond * T, S1 + T
        w = torch.stack([torch.einsum("pk,kpm,km->k", cols[:, sl].abs(), X, rows[sl].abs()) for X in (S, S1)])
        if discrete:
            w = w / poles[sl].abs()
        tot += w.sum(1)
    e = eps(torch.float64)
    return float(e * tot[0]), float(e * tot[1])


def mirror_sums(lam: Tensor, Bt: Tensor, Ct: Tensor, discrete: bool,
                pairs: tuple[Tensor, Tensor] | None = None, max_elements: float = 4e6) -> Tensor:
    """``M`` (N, p, m), ``M_i = sum_j c_j b_j^T k(lam_i, lam_j)`` for ``F = sum_j c_j b_j^T / (s - lam_j)``::

        continuous:  k = -1 / (conj lam_i + lam_j),     M_i = F(-conj lam_i)
        discrete:    k = 1 / (1 - conj lam_i lam_j),    M_i = F(1 / conj lam_i) / conj lam_i

    (``F`` at the mirror image of its pole ``i``; the discrete form is finite at ``lam_i = 0``), so that
    ``||F - D||_2^2 = sum_i c_i^H M_i conj(b_i)`` (``modal_h2_norm2``). A (rows x N) Cauchy matrix
    times the flattened residues, in chunks of about ``max_elements`` entries: O(N^2 p m), no N x N
    matrix. With ``pairs = (pi, pj)`` of exactly conjugate modes of a real system (``lam``, ``b``,
    ``c`` conjugate) the rows ``pj`` are ``conj(M_pi)`` and are not computed: half the work for
    oscillatory targets."""
    N, p, m = lam.shape[0], Ct.shape[0], Bt.shape[1]
    R = _residue_rows(Bt, Ct)
    if not discrete:
        R = -R
    rows = torch.arange(N)
    if pairs is not None and pairs[1].numel():
        keep = torch.ones(N, dtype=torch.bool)
        keep[pairs[1]] = False
        rows = rows[keep]
    M = torch.empty(N, p * m, dtype=R.dtype)
    chunk = max(1, int(max_elements // max(N, 1)))
    for k in range(0, rows.numel(), chunk):
        r = rows[k:k + chunk]
        lc = lam[r].conj()[:, None]
        M[r] = recip_((1.0 - lc * lam[None, :]) if discrete else (lc + lam[None, :])) @ R
    if pairs is not None and pairs[1].numel():
        M[pairs[1]] = M[pairs[0]].conj()
    return M.reshape(N, p, m)


def modal_h2_norm2(Bt: Tensor, Ct: Tensor, M: Tensor) -> float:
    """``||F - D||_2^2 = sum_i c_i^H M_i conj(b_i)`` from ``M = mirror_sums(...)``; the same terms as
    ``sum_ij Q_ij conj(b_i)^T b_j`` with the modal Gramian ``Q`` (continuous:
    ``Q_ij = -c_i^H c_j / (conj lam_i + lam_j)``), summed in another order."""
    return float((M.flatten(1) * _residue_rows(Bt, Ct).conj()).sum().real)
