r"""Starting points for RARL2: reduced models of the normalized target, as output-normal pairs.

* ``balanced_start``: balanced truncation (square-root method) in the target's working
  coordinates, from low-rank Gramian factors (pivoted Cholesky of the modal Gramians).
* IRKA starts (from balanced truncation, from shifts spread over the target's band, from fixed
  shifts ``logspace(-1, 1, r)``, pyMOR's default) run in ``_irka``; their iterates are candidates,
  the best (by the criterion) is kept.
* ``modal_start``: modal truncation to the most dominant target modes.
* ``random_pair``: an output-normal pair with random coordinates.
* ``to_pairs``: models brought to output-normal form (batched); the lower-order extension start is
  ``_rarl2._extend_start``.

Real targets give real models (conjugate-closed shifts, real bases of the Krylov spaces).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ...._errors import SingularEquationError
from ...._utils import herm
from .._balanced import minimal_order, square_root_projection
from ....equations import observability_gramian
from ._charts import to_output_normal
from ._target import Target, small_eig


def to_pair(T: Target, A: Tensor, C: Tensor) -> tuple[Tensor, Tensor] | None:
    """Output-normal ``(C, A)`` of a reduced model of the normalized target (None if it is
    unstable or unobservable); ``to_pairs`` for one model."""
    C2, A2, ok = to_pairs(T, A[None], C[None])
    return (C2[0], A2[0]) if bool(ok[0]) else None


def _small_observability_gramian(A: Tensor, C: Tensor, discrete: bool) -> Tensor:
    """Observability Gramians of small models ``A`` (K, r, r), ``C`` (K, p, r) through the
    eigendecomposition ``A = V diag(mu) V^{-1}`` (batched; a Schur-based solve costs a few times
    more for these sizes): ``Q = V^{-H} X V^{-1}`` with ``X_ij = -(W^H W)_ij / (conj mu_i + mu_j)``
    (continuous) or ``(W^H W)_ij / (1 - conj mu_i mu_j)`` (discrete), ``W = C V``. Models whose
    eigenvector basis is worse conditioned than 1e6 (``small_eig``) are solved by ``observability_gramian``."""
    mu, V, Vi, ok = small_eig(A)
    W = C.to(V.dtype) @ V
    M = W.mH @ W
    mc = mu.conj()[..., :, None]
    X = M / (1 - mc * mu[..., None, :]) if discrete else -M / (mc + mu[..., None, :])
    Q = Vi.mH @ X @ Vi
    Q = Q if A.is_complex() else Q.real
    bad = ~ok | ~torch.isfinite(Q).flatten(1).all(1)
    if bool(bad.any()):
        i = torch.nonzero(bad).reshape(-1)
        Q = Q.clone()
        for k in i.tolist():  # one by one: a far-from-normal model is left out, not the batch
            try:
                Q[k] = observability_gramian(A[k], C[k], discrete=discrete).to(Q.dtype)
            except SingularEquationError:
                # its realization is too far from normal for a Gramian (e.g. an IRKA model of
                # 1200 Markov parameters with ||A||_F = 7.5e12): NaN makes ``to_pairs`` drop it
                Q[k] = math.nan
    return Q


def to_pairs(T: Target, A: Tensor, C: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Batched ``to_pair`` for models ``A`` (K, r, r), ``C`` (K, p, r): ``(C2, A2, ok)`` with the
    output-normal pairs of the models where ``ok`` (stable, observable, finite; the other entries
    are placeholders). One batched Gramian and Cholesky factorization instead of K."""
    ok = torch.isfinite(A).flatten(1).all(1) & torch.isfinite(C).flatten(1).all(1)
    A = torch.where(ok[:, None, None], A, torch.zeros_like(A))
    ev = torch.linalg.eigvals(A)
    ok &= (ev.abs() < 1).all(1) if T.discrete else (ev.real < 0).all(1)
    r = A.shape[-1]
    C2, A2 = torch.zeros_like(C), torch.zeros_like(A)
    if not bool(ok.any()):
        return C2, A2, ok
    idx = torch.nonzero(ok).reshape(-1)
    As, Cs = A[idx], C[idx]
    Q = _small_observability_gramian(As, Cs, T.discrete)
    L, info = torch.linalg.cholesky_ex(herm(Q))
    good = info == 0
    L = torch.where(good[:, None, None], L, torch.eye(r, dtype=L.dtype))
    A2s, C2s = to_output_normal(As, Cs, L)
    good &= torch.isfinite(A2s).flatten(1).all(1)
    ok[idx] = good
    A2[idx], C2[idx] = A2s, C2s
    return C2, A2, ok


#: rank of the Gramian factors of the balanced-truncation start: at most LOWRANK_FACTOR * r +
#: LOWRANK_EXTRA columns (exact balanced truncation for small targets; the low-rank square-root
#: method, O(N k^2), for large ones). It is a start: 4 r + 10 columns instead of 10 r + 20 changed no
#: result of the SLICOT benchmark and halved the setup at small orders
LOWRANK_FACTOR, LOWRANK_EXTRA = 4, 10


def balanced_start(T: Target, r: int, exact: bool = False, tol: float = 1e-15):
    """``(A_r, B_r, C_r, hsv)``: balanced truncation of the normalized target (working coordinates),
    from Gramian factors of rank at most ``LOWRANK_FACTOR r + LOWRANK_EXTRA`` (``exact``: no rank
    limit), pivoted to ``tol`` times the largest diagonal entry (``work_gramian_factors``)."""
    Lp, Lq = T.work_gramian_factors(tol, max_rank=None if exact else LOWRANK_FACTOR * r + LOWRANK_EXTRA)
    W, V, s = square_root_projection(Lp, Lq, r)
    Bw, Cw = T.work_BC()
    Ar = W.mH @ T.work_apply_A(V)
    return Ar, W.mH @ Bw.to(W.dtype), Cw.to(V.dtype) @ V, s


#: below this fraction of the first, the Hankel singular values of the low-rank factors (pivoted to
#: 1e-15 of the largest diagonal entry) are no longer resolved: 12% off at 2.6e-11 on a discrete
#: random target of 50 states (40 digits), 0.2% at 9e-11
LOWRANK_RESOLVED = 1e-10


def resolved_balanced_start(T: Target, r: int):
    """``balanced_start(T, r)`` whose Hankel singular values decide the numerical minimal order
    (``check_order``) and start the search. The low-rank factors stop where the remaining diagonal
    is ``1e-15`` of the largest; the singular values beyond their rank are then only bounded by about
    ``sqrt(1e-15)`` relative to the first, not zero (a discrete random target of 50 states: factors
    of rank 40 where the 41st to 44th are 7e-12 to 9e-14 of the first, above the 50 eps of
    ``minimal_order``), and those near their end are inaccurate (``LOWRANK_RESOLVED``). Where ``r``
    exceeds the order they show, or its value is below that, the factors are recomputed without a
    tolerance (still at most ``LOWRANK_FACTOR r + LOWRANK_EXTRA`` columns, so O(N r^2)) before the
    order is judged."""
    start = balanced_start(T, r)
    hsv = start[3]
    short = hsv.numel() < T.N and minimal_order(hsv, T.F.dtype, T.N) < r
    faint = hsv.numel() >= r and float(hsv[r - 1]) < LOWRANK_RESOLVED * float(hsv[0])
    if short or faint:
        start = balanced_start(T, r, tol=0.0)
    return start


def modal_start(T: Target, r: int):
    """``(A_r, B_r, C_r)``: modal truncation to the ``r`` most dominant target modes (working
    coordinates), dominance being the H2 norm of a mode, ``|c_i|^2 |b_i|^2 / (2 |Re lambda_i|)``
    (continuous) or ``|c_i|^2 |b_i|^2 / (1 - |lambda_i|^2)`` (discrete); a conjugate pair of a real
    target counts as one mode of two states. None without a modal form or if no selection has
    exactly ``r`` states."""
    if T.method != "modal":
        return None
    w, size, mate = _mode_weights(T)
    order = torch.argsort(w, descending=True).tolist()
    wl, sizes, mates = w.tolist(), size.tolist(), mate.tolist()  # lists: the loop may visit all N modes
    sel, n = [], 0
    for i in order:
        if wl[i] < 0 or n == r:  # descending order: nothing after it is selected either
            break
        k = sizes[i]
        if n + k <= r:
            sel += [i, mates[i]] if k == 2 else [i]
            n += k
    if n != r:
        return None
    idx = torch.tensor(sorted(sel))
    Bw, Cw = T.work_BC()
    E = torch.zeros(T.N, r, dtype=Bw.dtype)
    E[idx, torch.arange(r)] = 1.0
    return E.mT @ T.work_apply_A(E), E.mT @ Bw, Cw @ E


def _mode_weights(T: Target) -> tuple[Tensor, Tensor, Tensor]:
    """Dominance of each target mode (modal targets), ``|c_i|^2 |b_i|^2 / (2 |Re lambda_i|)``
    (continuous) or ``|c_i|^2 |b_i|^2 / (1 - |lambda_i|^2)`` (discrete), its size in states and its
    mate; a conjugate pair of a real target is one mode of two states, represented by its member in
    ``T.pi`` (the other member's weight is -1)."""
    lam = T.lam
    w = (T.Ct.abs() ** 2).sum(0) * (T.Bt.abs() ** 2).sum(1)
    w = w / ((1 - lam.abs() ** 2) if T.discrete else (2 * lam.real.abs())).clamp_min(1e-300)
    size = torch.ones_like(w, dtype=torch.long)
    mate = torch.arange(w.numel())
    if T.real:
        size[T.pi] = 2
        mate[T.pi] = T.pj
        w = w.clone()
        w[T.pj] = -1.0  # the pair is represented by its upper member
    return w, size, mate


def dominant_modes(T: Target, k: int) -> list[tuple[complex, int]]:
    """The ``k`` most dominant target modes (``_mode_weights``) as ``(eigenvalue, states)``, most
    dominant first (a pair of a real target by its member with positive imaginary part); empty
    without a modal form."""
    if T.method != "modal":
        return []
    w, size, _ = _mode_weights(T)
    order = torch.argsort(w, descending=True)[:k].tolist()
    out = []
    for i in order:
        if float(w[i]) < 0:
            break
        lam = complex(T.lam[i])
        out.append((complex(lam.real, abs(lam.imag)) if int(size[i]) == 2 else lam, int(size[i])))
    return out


#: candidates of a chosen continuation's new pole (``extension_poles``): this many magnitudes
#: log-spaced over the band of the target's pole magnitudes (continuous time), or over [1e-3, 1e3]
#: in the bilinear image of the unit disk (discrete time)
EXTENSION_GRID = 25


def extension_poles(T: Target) -> tuple[Tensor, Tensor]:
    """``(poles, logmag)``: real candidate poles for the state that a chosen continuation adds to the
    order r-1 optimum (working coordinates), and their log10 magnitudes in the continuous picture
    (the distance between candidates: a decade is 1). Continuous time: ``-w`` for ``w`` log-spaced
    over the band of the target's pole magnitudes (``0.1 .. 10`` without a modal form; a first
    variant widened by a decade each side placed msd 5003's second choice at -27.6, beyond the
    target's fastest pole); discrete time: the bilinear image ``z = (1 - w) / (1 + w)`` of ``s = -w``,
    ``w`` in ``[1e-3, 1e3]`` (from ``z`` near 1 to ``z`` near -1)."""
    if T.discrete:
        lo, hi = -3.0, 3.0
    else:
        mags = T.lam.abs() if T.method == "modal" else torch.tensor([0.1, 10.0], dtype=torch.float64)
        top = float(mags.max())
        lo, hi = math.log10(max(float(mags.min()), 1e-6 * top)), math.log10(top)
    logmag = torch.linspace(lo, hi, EXTENSION_GRID, dtype=torch.float64)
    w = 10.0 ** logmag
    return ((1 - w) / (1 + w) if T.discrete else -w), logmag


def extension_models(C1: Tensor, A1: Tensor, poles: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """The order r-1 model ``(C1, A1)`` with one state added at each of ``poles`` (K,): ``A``
    (K, r, r) block diagonal ``[[A1, 0], [0, pole]]`` and ``C`` (K, p, r) ``[C1, c]`` (not
    output-normal; ``to_pairs`` makes them so). For a single output the model space -- hence the
    criterion -- depends on the poles only; with several, on ``c`` too (one ``c`` for all: the
    candidates differ by their pole)."""
    K, n = poles.shape[0], A1.shape[-1]
    A = torch.zeros(K, n + 1, n + 1, dtype=A1.dtype)
    A[:, :n, :n] = A1
    A[:, n, n] = poles.to(A1.dtype)
    C = torch.cat([C1.expand(K, *C1.shape), c.to(C1.dtype).expand(K, C1.shape[0], 1)], -1)
    return A, C


def random_pair(space, gen: torch.Generator, scale: float = 1.0) -> Tensor:
    """Coordinates of a random output-normal pair (Gaussian ambient coordinates)."""
    return scale * torch.randn(space.dim_ambient, generator=gen, dtype=space.rdt)
