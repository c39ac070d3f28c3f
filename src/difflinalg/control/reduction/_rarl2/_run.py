"""The state of one RARL2 run (``_Run``): the target, the chart space, the criterion closures, the
optimization of one start and the results so far (``RunResult`` records)."""

from __future__ import annotations

import math
import time as _time
from typing import NamedTuple

import torch
from torch import Tensor

from .._results import StartResult
from ._bfgs import OptimResult, fd_inverse_hessians, minimize
from ._charts import OutputNormalSpace
from ._policy import MINIMUM_STATUS
from ._progress import Progress as _Progress
from ._starts import to_pairs
from ._target import Target
from . import _policy


class RunResult(NamedTuple):
    """One optimized (or recorded) start of a run: the criterion ``f`` at its end, its
    ``StartResult``, the chart coordinates ``x`` and the chart's ``sigma`` there, and its history
    ``(iteration, relative error, gradient norm, seconds)``."""

    f: float
    start: StartResult
    x: Tensor
    sigma: Tensor
    history: list


class _Run:
    """State of one rarl2 call: the target, charts, criterion closure and the results so far."""

    def __init__(self, T: Target, r: int, tol: float, max_iter: int, deadline):
        self.T, self.r = T, r
        self.tol, self.max_iter, self.deadline = tol, max_iter, deadline
        self.space = OutputNormalSpace(r, T.p, not T.real, T.discrete)
        # noise level of psi (below it the line search decides on directional derivatives)
        self.eps_f = T.eps_f
        self.results: list[RunResult] = []
        self.minima: list[Tensor | None] = []  # poles of each result that is a stationary point
        self.x0s: list[Tensor] = []  # the starting point of each result
        # the order r-1 solution that "extend" starts extend (``_search._lower_solution``; () if none)
        self.lower: tuple | None = None
        # the chosen continuations' scan of new poles and choices so far (``_search._chosen_extension``)
        self.extend_scan: tuple | None = None

    def fg(self, x: Tensor):
        cs = self.space.from_vec(x)
        C, A = self.space.pair(x, cs)
        psi, gA, gC, _ = self.T.criterion(C, A)
        if not math.isfinite(psi):
            return math.inf, torch.zeros_like(x)
        return psi, self.space.pullback(x, gC, gA, cs)

    def fg_batch(self, X: Tensor, psi: bool = False) -> tuple[Tensor, Tensor]:
        """``fg`` at the rows of ``X`` (B, D), batched; ``f`` is ``1 - ||D||^2 - ||B_hat||^2``
        unless ``psi`` (``Target.criterion_batch``)."""
        cs = self.space.from_vec(X)
        C, A = self.space.pair(X, cs)
        f, gA, gC = self.T.criterion_batch(C, A, psi)
        G = self.space.pullback(X, gC, gA, cs)
        bad = ~torch.isfinite(f)
        if bool(bad.any()):
            f = f.masked_fill(bad, math.inf)
            G = G.masked_fill(bad[:, None], 0.0)
        return f, G

    def best_model(self, A: Tensor, C: Tensor):
        """Of the models ``A`` (K, r, r), ``C`` (K, p, r), the output-normal pair with the lowest
        criterion and its index (None, None if none is stable and observable); batched."""
        C2, A2, ok = to_pairs(self.T, A.to(self.space.mdt), C.to(self.space.mdt))
        if not bool(ok.any()):
            return None, None
        idx = torch.nonzero(ok).reshape(-1)
        psi = self.T.psi_batch(C2[idx], A2[idx])
        psi = torch.where(torch.isfinite(psi), psi, torch.full_like(psi, math.inf))
        j = int(torch.argmin(psi))
        if not math.isfinite(float(psi[j])):
            return None, None
        k = int(idx[j])
        return (C2[k], A2[k]), k

    def out_of_time(self) -> bool:
        return self.deadline is not None and _time.perf_counter() > self.deadline

    def psi_of_pairs(self, pairs: list) -> list[float]:
        """The criterion at each output-normal pair ``(C, A)`` (one batched evaluation)."""
        if not pairs:
            return []
        C = torch.stack([c for c, _ in pairs]).to(self.space.mdt)
        A = torch.stack([a for _, a in pairs]).to(self.space.mdt)
        return self.T.psi_batch(C, A).tolist()

    def score_starts(self, made: list) -> list:
        """The best candidate of each start: ``made`` holds ``(name, A, C, normal)`` with candidate
        models ``A`` (K, r, r), ``C`` (K, p, r) (``normal``: already output-normal pairs); returns
        ``(name, (C, A), psi, (grad_A, grad_C))`` of the candidate with the lowest criterion per
        start (starts without a stable, observable candidate are left out). All candidates of all
        starts are brought to output-normal form in one batch and evaluated, with their ambient
        gradients, in another: at small orders an evaluation costs its call overhead, not its flops."""
        mdt = self.space.mdt
        raw = [k for k, m in enumerate(made) if not m[3]]
        conv = {}
        if raw:
            C2, A2, ok = to_pairs(self.T, torch.cat([made[k][1] for k in raw]).to(mdt),
                                  torch.cat([made[k][2] for k in raw]).to(mdt))
            at = 0
            for k in raw:
                K = made[k][1].shape[0]
                conv[k] = (C2[at:at + K], A2[at:at + K], ok[at:at + K])
                at += K
        groups = []
        for k, (name, A, C, normal) in enumerate(made):
            C2, A2, ok = conv[k] if k in conv else (C.to(mdt), A.to(mdt), torch.ones(A.shape[0], dtype=torch.bool))
            idx = torch.nonzero(ok).reshape(-1)
            if idx.numel():
                groups.append((name, C2[idx], A2[idx]))
        if not groups:
            return []
        f, gA, gC = self.T.criterion_batch(torch.cat([g[1] for g in groups]), torch.cat([g[2] for g in groups]))
        out, at = [], 0
        for name, C2, A2 in groups:
            K = A2.shape[0]
            j = at + int(torch.argmin(f[at:at + K]))
            if math.isfinite(float(f[j])):
                out.append((name, (C2[j - at], A2[j - at]), float(f[j]), (gA[j], gC[j])))
            at += K
        return out

    def start_hessians(self, cands: list) -> list:
        """For the starts ``cands`` (``(psi, i, name, pair, (grad_A, grad_C))``): ``(x0, B_H, B_V, H)``
        each, the chart coordinates and bases at the start and the inverse finite-difference Hessian
        there (``minimize``'s first iteration), all Hessians in one batched evaluation; a list of
        None where that does not pay: discrete time (each start has its own Cayley chart), no
        batched criterion (Schur form), or more than _policy.POLICY.start_hessian_rows gradients in all (then the
        evaluations cost their flops, and a start that is skipped or joins at its start would waste
        its share)."""
        d = self.space.dim
        if self.T.discrete or self.T.method != "modal" or not cands or len(cands) * d > _policy.POLICY.start_hessian_rows:
            return [None] * len(cands)
        mdt = self.space.mdt
        C, A = (torch.stack([c[3][j] for c in cands]).to(mdt) for j in (0, 1))
        gA, gC = (torch.stack([c[4][j] for c in cands]) for j in (0, 1))
        X = self.space.from_pair(C, A)  # continuous time: one global chart, batched
        Bh, Bv = self.space.bases(X)
        G = (Bh.mT @ self.space.pullback(X, gC, gA)[..., None])[..., 0]
        H, ok = fd_inverse_hessians(self.fg_batch, X, Bh, G)
        return [(X[k], Bh[k], Bv[k], H[k]) if bool(ok[k]) else None for k in range(len(cands))]

    def poles(self, x: Tensor) -> Tensor:
        return torch.linalg.eigvals(self.space.pair(x)[1])

    def joined(self, f: float, x: Tensor) -> bool:
        """True if ``(f, x)`` is at a minimum already found: within _policy.POLICY.join_rtol of the criterion of a
        start that ended at a stationary point, with the same poles (each within _policy.POLICY.join_pole_rtol of
        one of the other's, both ways). Optimizing it further would only find that minimum again."""
        near = [mu for (fi, sr, *_), mu in zip(self.results, self.minima)
                if mu is not None and abs(f - fi) <= _policy.POLICY.join_rtol * fi + self.eps_f]
        if not near:
            return False
        p = self.poles(x)
        return any(_same_poles(p, q) for q in near)

    def optimize(self, name: str, pair, progress: _Progress, psi0: float | None = None,
                 grad0: tuple[Tensor, Tensor] | None = None, start=None) -> StartResult:
        """Optimize from ``pair`` (criterion ``psi0`` and ambient gradients ``grad0 = (grad_A, grad_C)``
        there, if known; ``start``: ``(x0, B_H, B_V, H)`` of ``start_hessians``), record and return
        the result."""
        t0 = _time.perf_counter()
        C, A = pair
        if start is not None:
            x0 = start[0]
        else:
            x0 = self.space.from_pair(C.to(self.space.mdt), A.to(self.space.mdt))
        best = self.best()
        best_f = best[0] if best is not None else math.inf
        # a start far above the best result, or at a minimum already found, is not optimized: decided
        # on the criterion alone (its gradient is only reported, and only needed if it is the best)
        f0 = psi0 if psi0 is not None else self.psi_of_pairs([(C, A)])[0]
        # a patient start (degree continuation) begins near the order r-1 optimum, above the best by
        # construction: it is neither skipped nor abandoned for its distance to the best, only when
        # its rate of decrease cannot close that distance
        patient = name in _policy.POLICY.patient_starts
        # a chosen continuation descends slowly at first while its new pole moves into place (msd
        # 5003 of benchmarks/rarl2_generalization.py: about 100 iterations to its better basin)
        horizon = _policy.POLICY.chosen_horizon if name == "extend-pole" else _policy.POLICY.abandon_horizon
        skip = f0 > _policy.POLICY.skip_ratio * best_f and not patient
        status = "skipped" if skip else "joined" if self.joined(f0, x0) else None
        g0 = None
        if status is None or f0 <= best_f:
            if psi0 is not None and grad0 is not None:
                g0 = self.space.pullback(x0, grad0[1], grad0[0])
            else:
                f0, g0 = self.fg(x0)
        fs: list[float] = []

        def cb(k, f, gn, x):
            progress.update(name, k, math.sqrt(max(f, 0.0)))
            fs.append(f)
            if self.joined(f, x):
                return "joined"
            if k < _policy.POLICY.abandon_after or not f > best_f:
                return False
            # abandon a start far above the best result so far (not a patient one), or one whose
            # recent rate of decrease cannot close the gap to it within abandon_horizon iterations
            k0 = min(len(fs) - 1, _policy.POLICY.abandon_after)
            rate = (fs[-1 - k0] - f) / k0 if k0 > 0 else math.inf
            far = f > _policy.POLICY.abandon_ratio * best_f and not patient
            return far or rate * horizon < f - best_f

        if status is not None:
            gn = float(g0.norm()) if g0 is not None else math.nan
            res = OptimResult(x0, f0, gn, gn / (2 * self.err(f0)), 0, 1, 0, status, [(0, f0, gn, 0.0)])
        else:
            res = minimize(self.fg, self.space, x0, gtol=self.tol, max_iter=self.max_iter, callback=cb,
                           deadline=self.deadline, eps_f=self.eps_f, fg_batch=self.fg_batch, fg0=(f0, g0),
                           start=None if start is None else start[1:])
        # never return worse than the start: a higher criterion is kept only within its noise level
        # eps_f (``minimize`` breaks such ties by the gradient, which tells where the minimum is)
        if not res.f <= f0 + self.eps_f:
            res.x, res.f = x0, f0
        # the relative gradient at an error the criterion can tell (not at its noise: 1e+141)
        rel_grad = res.grad_norm / (2 * self.err(res.f))
        sr = StartResult(name, self.err(f0), self.err(res.f), res.grad_norm,
                         rel_grad, res.iterations, res.evaluations, res.chart_switches, res.status,
                         _time.perf_counter() - t0)
        hist = [(k, math.sqrt(max(f, 0.0)), g, t) for (k, f, g, t) in res.history]
        self.results.append(RunResult(res.f, sr, res.x.clone(), self.space.sigma, hist))
        self.x0s.append(x0)
        # the poles of a start that ended at a stationary point: later starts can join it
        self.minima.append(self.poles(res.x) if res.status in MINIMUM_STATUS else None)
        progress.done += 1
        progress.update(name, res.iterations, sr.relative_error, force=True)
        if res.status == "interrupted":
            raise KeyboardInterrupt
        return sr

    def exact(self) -> bool:
        """A start found an exact approximation, or one whose criterion is at its noise level
        (nothing can be shown to be better)."""
        return any(t[1].status == "exact" or t[0] <= _policy.POLICY.noise_levels * self.eps_f for t in self.results)

    def record_unoptimized(self, name: str, pair, status: str = "interrupted") -> None:
        x = self.space.from_pair(*(t.to(self.space.mdt) for t in pair))
        f = self.fg(x)[0]
        e = self.err(f)
        sr = StartResult(name, e, e, math.nan, math.nan, 0, 1, 0, status, 0.0)
        self.results.append(RunResult(f, sr, x, self.space.sigma, [(0, e, math.nan, 0.0)]))
        self.x0s.append(x)
        self.minima.append(None)

    def err(self, f: float) -> float:
        """The relative error of a criterion value ``f``; at the criterion's noise level (``f <= eps_f``,
        where it may read 0 or less for a non-zero error) the bound ``sqrt(eps_f)`` (``_selection``
        replaces it by the extended-precision value where that is computed)."""
        return math.sqrt(max(f, self.eps_f))

    def best(self):
        ok = [t for t in self.results if math.isfinite(t[0])]
        return min(ok, key=lambda t: t[0]) if ok else None


def _same_poles(p: Tensor, q: Tensor) -> bool:
    """Each pole of ``p`` within _policy.POLICY.join_pole_rtol (relative to its magnitude, or to the largest) of
    one of ``q`` and vice versa."""
    if p.shape != q.shape:
        return False
    D = (p[:, None] - q[None, :]).abs()
    tol = _policy.POLICY.join_pole_rtol * torch.maximum(q.abs(), 1e-3 * q.abs().max())
    return bool((D.min(0).values <= tol).all()) and bool((D.min(1).values <= tol[D.argmin(1)]).all())
