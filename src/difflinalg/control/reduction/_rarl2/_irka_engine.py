r"""IRKA for RARL2's starts and polish: the iterative rational Krylov algorithm (Gugercin, Antoulas,
Beattie, "H2 model reduction for large-scale linear dynamical systems", SIAM J. Matrix Anal. Appl. 30
(2008)) in the target's working coordinates, batched: several runs in lock-step, one batched
operation per step.

* ``irka``: interpolation at the mirrored poles ``sigma_i = -conj(mu_i)`` (continuous) or
  ``1 / conj(mu_i)`` (discrete) with tangential directions from the residues, Petrov-Galerkin
  projection (``_project``, real bases for a real target: ``_realify``); started from given models
  and/or shifts with all-ones directions.
* ``irka_models``: its iterates as real models (``real_modal_form``).
* ``default_shifts`` (spread over the target's band) and ``fixed_shifts`` (``logspace(-1, 1, r)`` in
  the target's frequency units, pyMOR's ``IRKAReductor`` default; continuous time only).
"""

from __future__ import annotations

import math
import time as _time

import numpy as np
import torch
from torch import Tensor

from ._target import Target, small_eig


def _realify(X: Tensor, r: int, sigma: Tensor | None = None) -> Tensor:
    """Orthonormal real bases (..., N, r) of the spans of the real and imaginary parts of ``X``
    (..., N, r) (batched).

    With conjugate-closed shifts ``sigma`` (..., r) the columns of a conjugate pair are conjugate
    and span the same real plane as the real and imaginary parts of one of them: the basis is the QR
    factor of those ``r`` real columns (one N x r QR instead of an N x 2r SVD, measured 3-5x
    cheaper per IRKA iteration on the large SLICOT targets). Otherwise (unpaired shifts) the
    dominant r left singular vectors of ``[Re X, Im X]``."""
    Y = torch.cat([X.real, X.imag], -1)  # (..., N, 2r)
    if sigma is not None:
        tol = 1e-8 * sigma.abs().amax(-1, keepdim=True).clamp_min(1e-300)
        up, low = (sigma.imag > tol).reshape(-1, r).tolist(), (sigma.imag < -tol).reshape(-1, r).tolist()
        # per problem: real parts of the real shifts' and the upper members' columns, imaginary
        # parts of the upper members' (a gather: the pairs sit at different places per problem)
        cols = [[j for j in range(r) if not u[j] and not lo[j]] + [j for j in range(r) if u[j]]
                + [r + j for j in range(r) if u[j]] for u, lo in zip(up, low)]
        if all(sum(u) == sum(lo) for u, lo in zip(up, low)) and all(len(c) == r for c in cols):
            idx = torch.tensor(cols, device=X.device).reshape(*X.shape[:-2], 1, r).expand(*X.shape[:-1], r)
            return torch.linalg.qr(torch.gather(Y, -1, idx))[0]
    U, _, _ = torch.linalg.svd(Y, full_matrices=False)
    return U[..., :r]


def _interpolation_data(T: Target, Ar: Tensor, Br: Tensor, Cr: Tensor):
    """``(sigma, bdir, cdir, ok)`` of the models ``(Ar, Br, Cr)`` (K, r, r), (K, r, m), (K, p, r):
    the mirror images of their poles (IRKA's next shifts) and the residue directions ``conj(b_i)``
    (K, r, m) and ``c_i`` (K, p, r); ``ok`` False where the eigenvector basis is singular."""
    mu, X = torch.linalg.eig(Ar.to(T.cdt))
    Y, info = torch.linalg.inv_ex(X)
    bdir = (Y @ Br.to(T.cdt)).conj()
    cdir = Cr.to(T.cdt) @ X
    sigma = 1.0 / mu.conj() if T.discrete else -mu.conj()
    ok = (info == 0) & torch.isfinite(sigma).all(-1) & torch.isfinite(bdir).flatten(1).all(1)
    return sigma, bdir, cdir, ok


def _project(T: Target, sigma: Tensor, bdir: Tensor, cdir: Tensor, diagonal: bool):
    """IRKA's Petrov-Galerkin step at the shifts ``sigma`` (K, r) with the tangential directions
    ``bdir`` (K, r, m) and ``cdir`` (K, p, r), batched: ``(Ar, Br, Cr, ok)`` with
    ``V = [(sigma_k I - A)^{-1} B bdir_k]``, ``W = [(sigma_k I - A)^{-H} C^H cdir_k]`` orthonormalized
    and ``Ar = (W^H V)^{-1} W^H A V``, ``Br = (W^H V)^{-1} W^H B``, ``Cr = C V``. ``diagonal``: in the
    complex modal coordinates (complex bases; the models' transfer functions are those of the real
    projection when the target is real and the shifts conjugate-closed); otherwise in the working
    coordinates, with real bases for a real target (``_realify``), so that real models come out."""
    Bw, Cw = T.work_BC(diagonal)
    cdt = T.cdt
    r = sigma.shape[-1]
    Vc = T.work_shifted_solve(sigma, Bw.to(cdt) @ bdir.mT, diagonal=diagonal)
    Wc = T.work_shifted_solve(sigma, Cw.to(cdt).mH @ cdir, adjoint=True, diagonal=diagonal)
    VW = torch.cat([Vc, Wc])  # one batched orthonormalization for both bases
    if Bw.is_complex():
        VW = torch.linalg.qr(VW)[0]
    else:
        VW = _realify(VW, r, torch.cat([sigma, sigma]))
    V, W = VW[:sigma.shape[0]], VW[sigma.shape[0]:]
    LU, piv, info = torch.linalg.lu_factor_ex(W.mH @ V)
    Ar = torch.linalg.lu_solve(LU, piv, W.mH @ T.work_apply_A(V, diagonal))
    Br = torch.linalg.lu_solve(LU, piv, W.mH @ Bw.to(W.dtype))
    Cr = Cw.to(V.dtype) @ V
    ok = (info == 0) & torch.isfinite(Ar).flatten(1).all(1) & torch.isfinite(Br).flatten(1).all(1)
    return Ar, Br, Cr, ok


def irka(T: Target, models: tuple[Tensor, Tensor, Tensor] | None = None, shifts: Tensor | None = None,
         max_iter: int = 20, tol: float = 1e-3, deadline=None) -> list[list[tuple]]:
    """IRKA runs in lock-step (batched), from the models ``(Ar, Br, Cr)`` (K, r, r), (K, r, m),
    (K, p, r) and from the shift vectors ``shifts`` (K', r) with all-ones directions. Returns, for
    each run (the models' runs first), its iterates ``(A, B, C, sigma, bdir, cdir)``: the complex
    model and the interpolation data (shifts and directions) it was projected at; ``irka_models``
    gives them in working coordinates (real for a real target).

    The iteration only needs the poles and residue directions of each iterate, which do not depend
    on the coordinates of the target: it runs in the complex modal coordinates, where the shifted
    solves are divisions (about 60% fewer operations per step than in the real working coordinates);
    only the iterates kept are projected in the working coordinates. Every step of every run is one
    batched operation: at the small orders the runs cost their call overheads, not their flops,
    and two runs cost about as much as one. The result is a start that BFGS then optimizes, so IRKA
    stops early: a run ends when its shifts converged to ``tol`` (relative) or after ``max_iter``
    iterations (1e-3 and 20 instead of 1e-7 and 40 halved the IRKA time on the SLICOT benchmark and
    changed none of its results)."""
    Bw, Cw = T.work_BC()
    cdt = T.cdt
    sig, bdirs, cdirs, live = [], [], [], []
    if models is not None:
        s, bd, cd, ok = _interpolation_data(T, *models)
        sig.append(s), bdirs.append(bd), cdirs.append(cd), live.append(ok)
    if shifts is not None:
        K, r = shifts.shape
        sig.append(shifts.to(cdt))
        bdirs.append(torch.ones(K, r, Bw.shape[1], dtype=cdt))
        cdirs.append(torch.ones(K, Cw.shape[0], r, dtype=cdt))
        live.append(torch.isfinite(sig[-1]).all(-1))
    if not sig:
        return []
    sigma, bdir, cdir, ok = torch.cat(sig), torch.cat(bdirs), torch.cat(cdirs), torch.cat(live)
    out: list[list] = [[] for _ in range(sigma.shape[0])]
    runs = torch.arange(sigma.shape[0])  # the run of each row of the batch
    prev = Ar = Br = Cr = None  # bound by the first iteration, read from the second on
    for it in range(max_iter):
        if it > 0:
            sigma, bdir, cdir, ok = _interpolation_data(T, Ar, Br, Cr)
            # convergence of the (sorted) shifts
            a = torch.sort(sigma.real + 1e-3 * sigma.imag, -1).values
            b = torch.sort(prev.real + 1e-3 * prev.imag, -1).values
            ok &= ~((a - b).abs().amax(-1) <= tol * b.abs().amax(-1))
        if not bool(ok.all()):
            if not bool(ok.any()):
                break
            sigma, bdir, cdir, runs = sigma[ok], bdir[ok], cdir[ok], runs[ok]
        prev = sigma
        Ar, Br, Cr, good = _project(T, sigma, bdir, cdir, diagonal=True)
        for k, run in enumerate(runs.tolist()):
            if bool(good[k]):
                out[run].append((Ar[k], Br[k], Cr[k], sigma[k], bdir[k], cdir[k]))
        if not bool(good.all()):
            if not bool(good.any()):
                break
            Ar, Br, Cr, runs, prev = Ar[good], Br[good], Cr[good], runs[good], prev[good]
        if deadline is not None and _time.perf_counter() > deadline:
            break
    return out


def irka_models(T: Target, its: list[tuple]):
    """The IRKA iterates ``its`` (``irka``) as models in working coordinates, batched:
    ``(Ar, Br, Cr, ok)``. A real target's iterates are complex models with real transfer functions:
    they are brought to real modal form (``real_modal_form``: O(r^3), not the O(N r^2) of a
    projection), and projected again in the real working coordinates (``_project``) where that fails."""
    A, B, C, sigma, bdir, cdir = (torch.stack(t) for t in zip(*its))
    if not (T.real and A.is_complex()):  # complex targets; real bases already (no modal form)
        return A, B, C, torch.ones(A.shape[0], dtype=torch.bool)
    Ar, Br, Cr, ok = real_modal_form(A, B, C)
    if not bool(ok.all()):
        i = torch.nonzero(~ok).reshape(-1)
        Ar, Br, Cr = Ar.clone(), Br.clone(), Cr.clone()
        Ar[i], Br[i], Cr[i], ok[i] = _project(T, sigma[i], bdir[i], cdir[i], diagonal=False)
    return Ar, Br, Cr, ok


#: real_modal_form: poles with |Im| <= REAL_POLE_RTOL max |pole| are real, and each of the others
#: needs a partner within PAIR_RTOL max |pole| of its conjugate
REAL_POLE_RTOL, PAIR_RTOL = 1e-8, 1e-6


def real_modal_form(A: Tensor, B: Tensor, C: Tensor):
    """Real realizations ``(Ar, Br, Cr, ok)`` of complex models ``A`` (K, r, r), ``B`` (K, r, m),
    ``C`` (K, p, r) whose transfer functions are real (conjugate-closed poles and residues):
    with ``A = X diag(mu) X^{-1}``, ``b_i`` the rows of ``X^{-1} B`` and ``c_i`` the columns of
    ``C X``, a real pole gives a 1 x 1 block with its residue ``c_i b_i^T`` rotated to real, and a
    conjugate pair (upper member ``mu``) the block ``[[Re mu, Im mu], [-Im mu, Re mu]]`` with
    columns ``[Re c, Im c]`` of ``Cr`` and rows ``[2 Re b, -2 Im b]`` of ``Br``: then
    ``c b^T / (s - mu) + conj(c b^T) / (s - conj mu)`` is the block's transfer function. ``ok`` is
    False where the poles are not conjugate-closed (``REAL_POLE_RTOL``, ``PAIR_RTOL``) or the
    eigenvector basis is singular or worse conditioned than 1e6 (then the modal form loses digits).
    The pairing is a few comparisons per model in NumPy (r is small); the rest is batched."""
    mu, X, Xi, ok = small_eig(A)
    b, c = Xi @ B.to(X.dtype), C.to(X.dtype) @ X
    K, r = mu.shape
    mn = mu.detach().cpu().numpy()
    ok = ok.cpu().numpy()
    src = np.tile(np.arange(r), (K, 1))  # slot -> pole (upper member for a pair)
    kind = np.zeros((K, r), dtype=np.int64)  # 0: real pole, 1 and 2: first and second state of a pair
    for k in range(K):
        m = mn[k]
        scale = max(float(np.abs(m).max()), 1e-300)
        real = np.flatnonzero(np.abs(m.imag) <= REAL_POLE_RTOL * scale)
        up = np.flatnonzero(m.imag > REAL_POLE_RTOL * scale)
        low = np.flatnonzero(m.imag < -REAL_POLE_RTOL * scale)
        if len(up) != len(low) or not np.isfinite(m).all():
            ok[k] = False
            continue
        if len(up):  # each upper pole's conjugate is a lower pole, one to one
            near = np.abs(m[low][None, :] - m[up].conj()[:, None]).argmin(1)
            if len(set(near.tolist())) != len(up) or \
                    (np.abs(m[low][near] - m[up].conj()) > PAIR_RTOL * scale).any():
                ok[k] = False
                continue
        src[k] = np.concatenate([real, np.repeat(up, 2)])
        kind[k] = np.concatenate([np.zeros(len(real), dtype=np.int64), np.tile([1, 2], len(up))])
    srcT, kindT = torch.as_tensor(src, device=A.device), torch.as_tensor(kind, device=A.device)
    mus = torch.gather(mu, 1, srcT)
    cs = torch.gather(c, 2, srcT[:, None, :].expand(-1, c.shape[1], -1))
    bs = torch.gather(b, 1, srcT[:, :, None].expand(-1, -1, b.shape[2]))
    # a real pole's residue c b^T is real: rotate c (and b back) by the phase of c's largest entry
    cp = torch.gather(cs, 1, cs.abs().argmax(1, keepdim=True))  # (K, 1, r)
    ph = torch.where(cp.abs() > 0, cp.abs() / torch.where(cp.abs() > 0, cp, torch.ones_like(cp)),
                     torch.ones_like(cp))
    isr = kindT == 0
    cs = torch.where(isr[:, None, :], cs * ph, cs)
    bs = torch.where(isr[:, :, None], bs / ph.mT, bs)
    Cr = torch.where((kindT == 2)[:, None, :], cs.imag, cs.real)
    Br = torch.where((kindT == 1)[:, :, None], 2 * bs.real, torch.where((kindT == 2)[:, :, None], -2 * bs.imag, bs.real))
    off = torch.where(kindT[:, :-1] == 1, mus.imag[:, :-1], torch.zeros_like(mus.real[:, :-1]))
    Ar = torch.diag_embed(mus.real) + torch.diag_embed(off, 1) - torch.diag_embed(off, -1)
    ok = torch.as_tensor(ok, device=A.device)
    ok &= torch.isfinite(Ar).flatten(1).all(1) & torch.isfinite(Br).flatten(1).all(1) & torch.isfinite(Cr).flatten(1).all(1)
    return Ar, Br, Cr, ok


def default_shifts(T: Target, r: int) -> Tensor:
    """Shifts spread logarithmically over the target's band of pole magnitudes (continuous time),
    or inside the unit disk (discrete time); real for real targets."""
    if T.discrete:
        poles = torch.linspace(0.1, 0.9, r, dtype=torch.float64)
        return (1.0 / poles).to(T.cdt)  # mirror images of poles 0.1 .. 0.9
    if T.method == "modal":
        mags = T.lam.abs()
        lo, hi = float(mags.min()), float(mags.max())
    else:
        lo, hi = 0.1, 10.0
    lo = max(lo, 1e-6 * hi)
    return torch.logspace(math.log10(lo), math.log10(hi), r, dtype=torch.float64).to(T.cdt)


def fixed_shifts(T: Target, r: int) -> Tensor | None:
    """Real shifts ``logspace(-1, 1, r)`` in the target's own (unscaled) frequency units, in the
    working frequency scale: ``/ T.omega``. They do not depend on the target's poles: on pyMOR's
    mass-spring-damper systems IRKA from them reaches basins that IRKA from the poles' band, from
    balanced and from modal truncation all miss (``benchmarks/rarl2_generalization.py``, round 2).
    None in discrete time (no such common default there)."""
    if T.discrete:
        return None
    return (torch.logspace(-1.0, 1.0, r, dtype=torch.float64) / T.omega).to(T.cdt)
