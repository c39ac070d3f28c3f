r"""Re-realizing a target whose realization is too far from normal for Gramians in double precision.

A stable ``(A_F, B_F, C_F)`` whose ``A_F`` departs far from normality (``||A_F|| >> rho(A_F)``, e.g.
python-control's ``drss(300, 1, 1)`` at seed 1001: ``||A_F|| = 1.8e4`` at spectral radius 0.979)
makes every Stein / Lyapunov operator on it numerically singular (condition >= 1e14: the transient
growth of ``A_F^k``), although its *transfer function* is benign. RARL2 needs the target only
through its transfer function, so such a target is replaced by a balanced realization of the same
transfer function (``rerealize``), and the user's errors are measured against the original target.

Discrete time (Kung's / Ho-Kalman's ERA, from the Markov parameters ``h_0 = D``, ``h_k = C A^{k-1} B``):

1. ``h_k`` for ``k <= K``, until the tail ``tau_K = sum_{k > K} ||h_k||_F^2`` is below
   ``(TAIL_RTOL ||F||)^2``. The tail is estimated by geometric extrapolation of the last window of
   ``w`` terms at its observed decay ``q = S_last / S_previous`` (``tau ~ S_last q / (1 - q)``), only
   once ``q < 1`` (the transient is over) and at least ``L_0 = log(TAIL_RTOL) / log(rho)`` terms
   are in (a decay never faster than the spectral radius allows).
2. The block Hankel matrix ``[h_{1+i+j}]`` (``r x r`` blocks, ``2 r + 1 <= K``), its SVD
   ``U S V^H``; the states with ``s_i > RANK_RTOL s_1`` are kept: ``C = (U S^{1/2})[:p]``,
   ``B = (S^{1/2} V^H)[:, :m]``, ``A = S^{-1/2} U^H [h_{2+i+j}] V S^{-1/2}``, ``D = h_0`` (an
   approximately balanced realization: its Gramians are solved with condition ~ ``s_1 / s_n``).
3. The re-realization error ``delta^2 = sum_{k <= K} ||h_k - h~_k||^2 + tau_K + (tail of F~)`` is
   *measured* (the last term from ``F~``'s own, well-conditioned, Gramian), and the re-realization is
   refused (``SingularEquationError``) unless ``delta <= REALIZATION_RTOL ||F||``, far below the
   resolution of any reported relative error (``1e-11``; the criterion's noise is ``~1e-13`` in the
   squared relative error).

Continuous time goes through the bilinear map ``z = (w + s) / (w - s)`` (``w``: geometric mean of
the pole magnitudes), which preserves the Hankel singular values; and the continuous H2 norm is a
discrete one: ``||G||_2 = ||sqrt(2 w) G_d(z) / (1 + z)||_2`` (substituting ``s = i w tan(theta / 2)``;
``G_d(-1) = G(inf) = 0`` for a strictly proper ``G``), whose Markov parameters are the alternating
partial sums ``g_{k+1} = h_k - g_k`` of those of ``G_d``. So errors are Markov-parameter sums in both
time domains.

Cost: ``K`` products ``A_F X`` (``O(K N^2 m)``) and one SVD of a ``(K p / 2) x (K m / 2)`` matrix;
decided from ``rho`` before any of it: above ``HANKEL_MAX`` rows or columns the target is refused
with the same named error, which says what the cause is and what to do.

Reference: S. Y. Kung, "A new identification and model reduction algorithm via singular value
decomposition", 12th Asilomar Conference (1978); B. L. Ho, R. E. Kalman, "Effective construction of
linear state-variable models from input/output functions", Regelungstechnik 14 (1966).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ...._errors import SingularEquationError
from ...._utils import eps
from ...analysis._stability import check_stable_poles
from ...system._statespace import StateSpace

#: the target's Markov tail is summed until it is below ``(TAIL_RTOL ||F||)^2``
TAIL_RTOL = 1e-14
#: ERA keeps the Hankel singular values above ``RANK_RTOL sigma_1``
RANK_RTOL = 1e-13
#: a re-realization is used only if its H2 distance to the target is below ``REALIZATION_RTOL ||F||``
REALIZATION_RTOL = 1e-11
#: largest Hankel matrix side (rows or columns) that ERA factorizes (an SVD of 2500^2: ~10 s)
HANKEL_MAX = 2500
#: a model's Markov terms are continued to at most this many times the target's
MAX_TERMS_FACTOR = 20


def _markov(A: Tensor, B: Tensor, C: Tensor, D: Tensor, k0: int, k1: int, X: Tensor) -> tuple[Tensor, Tensor]:
    """``h_k = C A^{k-1} B`` for ``k0 <= k < k1`` (``k0 >= 1``) from ``X = A^{k0-1} B``; returns the
    stacked ``h`` (k1 - k0, p, m) and ``A^{k1-1} B``. The powers are products ``A X`` (never ``A^k``)."""
    Xs = []
    for _ in range(k0, k1):
        Xs.append(X)
        X = A @ X
    return C @ torch.stack(Xs), X


def _refined_solve(LU, piv, M: Tensor, R: Tensor, adjoint: bool = False, steps: int = 2) -> Tensor:
    """``M^{-1} R`` (``M^{-H} R``) with ``steps`` of fixed-precision iterative refinement: its
    residuals are products, accurate componentwise, so the solution becomes componentwise backward
    stable (Skeel 1980) -- what keeps the transfer function of a far-from-normal ``A`` (whose
    normwise backward errors ``eps ||A||`` would move it) in the bilinear map."""
    X = torch.linalg.lu_solve(LU, piv, R, adjoint=adjoint)
    Mo = M.mH if adjoint else M
    for _ in range(steps):
        X = X + torch.linalg.lu_solve(LU, piv, R - Mo @ X, adjoint=adjoint)
    return X


def to_discrete(A, B, C, D, w: float):
    """Bilinear image ``z = (w + s) / (w - s)`` of a continuous system: ``A_d = (w I + A)(w I - A)^{-1}
    = 2 w (w I - A)^{-1} - I``, ``B_d = sqrt(2 w) (w I - A)^{-1} B``, ``C_d = sqrt(2 w) C (w I - A)^{-1}``,
    ``D_d = D + C (w I - A)^{-1} B`` (same transfer function, same Hankel singular values); the solves
    are refined (``_refined_solve``)."""
    I = torch.eye(A.shape[-1], dtype=A.dtype)
    M = w * I - A
    LU, piv = torch.linalg.lu_factor(M)
    Bs = _refined_solve(LU, piv, M, B)
    Ad = 2 * w * _refined_solve(LU, piv, M, I) - I
    Cs = _refined_solve(LU, piv, M, C.mH, adjoint=True).mH
    return Ad, math.sqrt(2 * w) * Bs, math.sqrt(2 * w) * Cs, D + C @ Bs


def to_continuous(A, B, C, D, w: float):
    """Inverse of ``to_discrete``: ``A = w (A_d + I)^{-1} (A_d - I)``, ``B = sqrt(2 w) (A_d + I)^{-1} B_d``,
    ``C = sqrt(2 w) C_d (A_d + I)^{-1}``, ``D = D_d - C_d (A_d + I)^{-1} B_d``."""
    I = torch.eye(A.shape[-1], dtype=A.dtype)
    P = A + I
    Bs = torch.linalg.solve(P, B)
    Ac = w * torch.linalg.solve(P, A - I)
    Cc = math.sqrt(2 * w) * torch.linalg.solve(P.mT, C.mT).mT
    return Ac, math.sqrt(2 * w) * Bs, Cc, D - C @ Bs


def _cont_weighted(h: Tensor, w: float) -> Tensor:
    """Markov parameters of ``sqrt(2 w) G_d(z) / (1 + z)`` from those ``h`` of ``G_d``:
    ``g_0 = 0``, ``g_{k+1} = h_k - g_k`` (module docstring)."""
    sign = torch.ones(h.shape[0], dtype=torch.float64)
    sign[1::2] = -1.0
    s = sign.to(h.dtype)[:, None, None]
    g = s * torch.cumsum(s * h, 0)  # g_{k+1} = sum_{j <= k} (-1)^{k-j} h_j
    return math.sqrt(2 * w) * torch.cat([torch.zeros_like(h[:1]), g])


class Realization:
    """A target's Markov parameters (discrete, or of its bilinear image), its balanced
    re-realization ``system`` and the data to measure any model's error against the original.

    Attributes:
        system: the re-realized ``StateSpace`` (same time domain as the target).
        info: ``dict`` for ``ReductionResult.details["realization"]``: ``order`` (of the
            re-realization), ``markov_terms`` ``K``, ``norm_A`` (of the original ``A``),
            ``spectral_radius`` (of ``A``; continuous time: of its bilinear image), ``delta`` (measured relative H2 distance of the re-realization to the
            target), ``tail`` (relative bound of the truncated Markov tail), ``hankel_sv_ratio``
            (``s_n / s_1``), ``omega`` (continuous: the bilinear map's frequency).
    """

    def __init__(self, F: StateSpace, cause: Exception | None = None):
        self.F, self.discrete = F, F.discrete
        A, B, C, D = (x.detach() for x in (F.A, F.B, F.C, F.D))
        ev = torch.linalg.eigvals(A)
        check_stable_poles(ev, self.discrete, "target")
        normA = float(torch.linalg.matrix_norm(A, 2))
        # the quoted spectral radius is the target's own (continuous: the largest pole magnitude)
        rho_F = float(ev.abs().max())
        self.w = 1.0
        if not self.discrete:
            # the geometric mean of the pole magnitudes maps the band of the poles around z = 0
            self.w = float(torch.exp(torch.log(ev.abs().clamp_min(1e-300)).mean()))
            A, B, C, D = to_discrete(A, B, C, D, self.w)
            ev = (self.w + ev) / (self.w - ev)
        rho = float(ev.abs().max())
        p, m = C.shape[0], B.shape[1]
        self._what = (f"the target's realization is too far from normal for Gramians in double precision "
                      f"(||A|| = {normA:.3e} at {'spectral radius' if self.discrete else 'largest pole magnitude'} "
                      f"{rho_F:.6g}); its transfer function may be fine")
        self._cause = cause
        L0 = max(64, math.ceil(math.log(TAIL_RTOL) / math.log(max(rho, 1e-300)))) if rho > 0 else 64
        if (L0 // 2) * max(p, m) > HANKEL_MAX:
            which = "spectral radius" if self.discrete else "spectral radius of its bilinear image"
            self._refuse(f"a balanced re-realization from its Markov parameters would need about {L0} of them "
                         f"({which} {rho:.6g}: a {(L0 // 2) * max(p, m)}-sided Hankel matrix, above "
                         f"HANKEL_MAX = {HANKEL_MAX})")
        h, tail, K = self._markov_until_tail(A, B, C, D, L0)
        self.h, self.tail2 = h, tail  # h_0..h_K (of the bilinear image in continuous time)
        Ae, Be, Ce, De, ratio = self._era(h, p, m)
        if not self.discrete:
            Ae, Be, Ce, De = to_continuous(Ae, Be, Ce, De, self.w)
            De = torch.zeros_like(De)  # strictly proper target; the residue is part of delta below
        self.system = StateSpace(Ae.to(F.dtype), Be.to(F.dtype), Ce.to(F.dtype), De.to(F.dtype),
                                 time="discrete" if self.discrete else "continuous", dt=F.dt)
        self.norm2 = float(self._energy(h)) + tail
        d2, _ = self.distance2(self.system)
        delta = math.sqrt(d2 / self.norm2)
        self.info = {"order": int(Ae.shape[0]), "markov_terms": K, "norm_A": normA, "spectral_radius": rho,
                     "delta": delta, "tail": math.sqrt(tail / self.norm2), "hankel_sv_ratio": ratio}
        if not self.discrete:
            self.info["omega"] = self.w
        if not delta <= REALIZATION_RTOL:
            self._refuse(f"its balanced re-realization from {K} Markov parameters is {delta:.2e} away (relative "
                         f"H2), above REALIZATION_RTOL = {REALIZATION_RTOL:.0e}")

    # -- construction ----------------------------------------------------------------------------
    def _refuse(self, why: str):
        raise SingularEquationError(
            f"rarl2: {self._what}, and {why}; give rarl2 a balanced realization of the target (e.g. "
            "ERA from its Markov parameters, or a modal form) or its Markov parameters truncated where "
            "they are negligible") from self._cause

    def _energy(self, h: Tensor):
        if self.discrete:
            return (h.abs() ** 2).sum()
        return (_cont_weighted(h, self.w).abs() ** 2).sum()

    def _markov_until_tail(self, A, B, C, D, L0: int):
        """``h_0 .. h_K`` and the estimated tail energy (module docstring, step 1)."""
        w = max(16, L0 // 16)
        kmax = 2 * L0 + 8 * w  # transient allowance beyond the asymptotic count
        hs, X, k = [D[None]], B, 1
        while True:
            k1 = min(k + 4 * w, kmax + 1)
            hk, X = _markov(A, B, C, D, k, k1, X)
            hs.append(hk)
            k = k1
            h = torch.cat(hs)
            e = (h.abs() ** 2).sum((-2, -1))
            S_last, S_prev, total = float(e[-w:].sum()), float(e[-2 * w:-w].sum()), float(e.sum())
            q = S_last / S_prev if S_prev > 0 else 0.0
            tail = S_last * q / (1 - q) if q < 1 else math.inf
            if k - 1 >= L0 and q < 1 and tail <= (TAIL_RTOL ** 2) * total:
                if not self.discrete:  # the weighted sequence's tail, at the same decay
                    tail = tail * 2 * self.w / (1 - math.sqrt(q)) ** 2
                return h, tail, k - 1
            if k > kmax:
                self._refuse(f"its Markov parameters still grow or decay slowly after {kmax} terms "
                             f"(transient growth of A^k)")
            if (k // 2) * max(C.shape[0], B.shape[1]) > HANKEL_MAX:
                self._refuse(f"its Markov parameters decay too slowly for a Hankel matrix of side "
                             f"HANKEL_MAX = {HANKEL_MAX}")

    @staticmethod
    def _era(h: Tensor, p: int, m: int):
        """Balanced realization from ``h_0 .. h_K`` (module docstring, step 2)."""
        K = h.shape[0] - 1
        r = (K - 1) // 2
        idx = torch.arange(r)[:, None] + torch.arange(r)[None, :]
        H0 = h[1 + idx].permute(0, 2, 1, 3).reshape(r * p, r * m)
        H1 = h[2 + idx].permute(0, 2, 1, 3).reshape(r * p, r * m)
        U, s, Vh = torch.linalg.svd(H0, full_matrices=False)
        n = int((s > RANK_RTOL * s[0]).sum())
        U, s, Vh = U[:, :n], s[:n], Vh[:n]
        si = s.rsqrt().to(h.dtype)
        sq = s.sqrt().to(h.dtype)
        A = si[:, None] * (U.mH @ H1 @ Vh.mH) * si[None, :]
        C = U[:p] * sq[None, :]
        B = sq[:, None] * Vh[:, :m]
        return A, B, C, h[0], float(s[-1] / s[0])

    # -- errors against the original -----------------------------------------------------------
    def distance2(self, G: StateSpace) -> tuple[float, float]:
        """``(||F - G||_2^2, bound)`` for a stable ``G`` of moderate order (the re-realization or a
        reduced model), from Markov-parameter sums against the original target's (continuous time:
        of the bilinear images, weighted as in the module docstring). ``G``'s terms are continued
        beyond ``K`` until their energy is below ``(eps ||F||)^2``; ``bound`` is the target's
        truncated tail, ``sqrt(tau_K)``, which moves ``||F - G||_2`` by at most itself (triangle
        inequality)."""
        A, B, C, D = (x.detach().to(self.h.dtype) for x in (G.A, G.B, G.C, G.D))
        if not self.discrete:
            A, B, C, D = to_discrete(A, B, C, D, self.w)
        K = self.h.shape[0] - 1
        hg, X = _markov(A, B, C, D, 1, K + 1, B)
        e = [self.h - torch.cat([D[None], hg])]
        small = (eps(torch.float64) ** 2) * self.norm2
        k = K + 1
        while k < MAX_TERMS_FACTOR * (K + 1):  # G's own tail (its decay: G is stable)
            hg, X = _markov(A, B, C, D, k, k + 256, X)
            e.append(-hg)
            k += 256
            if float((hg.abs() ** 2).sum()) <= small:
                break
        return float(self._energy(torch.cat(e))), math.sqrt(self.tail2)
