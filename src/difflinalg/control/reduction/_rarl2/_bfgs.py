r"""BFGS on the quotient of output-normal pairs, in re-centred affine-slice charts.

Quasi-Newton method (Nocedal and Wright, "Numerical Optimization", 2nd ed., algorithm 6.1, with a
line search for the Wolfe conditions, algorithm 3.5/3.6) in the chart coordinates of
``_charts.OutputNormalSpace``: ``x = x0 + B_H v``. When the slice loses transversality (``tau`` below
``switch``) the chart is re-centred at the current point and the inverse-Hessian approximation is
carried over with the chart change ``M = B_H(x1)^T B_H(x0)`` (``H -> M H M^T``), the analogue of a
vector transport in Riemannian BFGS.

Noise. The criterion is ``1 - ||B_hat||^2``, computed with an absolute error of a few ``eps``, while
its gradient (adjoint formula) has no cancellation. Near tiny optima (relative errors of 1e-5, psi of
1e-10) function differences are below the noise, so the line search also accepts the approximate
Wolfe conditions of Hager and Zhang (2005): ``f(a) <= f(0) + eps_f`` and
``sigma g(0) <= g(a) <= (2 delta - 1) g(0)``, decided on directional derivatives only.

Stopping: the relative gradient ``||grad|| / (2 sqrt(f))`` (for a least-squares criterion
``f = ||r||^2`` this is ``||J^T r|| / ||r||``, dimensionless) below ``gtol`` ("converged"); or no
decrease beyond ``max(eps_f, ftol f)`` over ``window`` iterations, which happens when the gradient
has reached its rounding-noise floor (the adjoint gradient is a sum of O(1) terms, so its absolute
noise is a few ``eps``: for tiny errors that is above ``gtol``) ("stationary"); or when the
predicted decrease of a Newton step, ``g^T H^{-1} g / 2`` with a finite-difference Hessian, is below
the noise of ``f`` (Newton decrement; "stationary"); or ``f <= fmin`` with a gradient below ``gexact``
("exact": psi alone cannot tell an exact approximation from one whose error is below its noise,
the gradient, which has no cancellation, can); or no decrease
possible (line search failure after a restart from steepest descent, "stalled"); or ``max_iter``.
The iterate returned is the exact one, or else the best one seen: the lowest ``f``, or among
values within ``eps_f`` of it the smallest gradient.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ._charts import OutputNormalSpace
from ._linesearch import line_search


@dataclass
class OptimResult:
    x: Tensor
    f: float
    grad_norm: float
    rel_grad: float
    iterations: int
    evaluations: int
    chart_switches: int
    status: str  # converged, stationary, exact, stalled, max_iter, abandoned, interrupted
    history: list = field(default_factory=list)  # (iteration, f, grad_norm, seconds)


def fd_inverse_hessian(fg, x: Tensor, Bh: Tensor, g: Tensor, rel_step: float = 1e-7, fg_batch=None):
    """Positive definite inverse of the finite-difference Hessian of ``f`` in chart coordinates, with
    eigenvalues replaced by their absolute values (so that a saddle or a maximum is a direction of
    descent) and bounded below by ``1e-10`` times the largest.

    Forward differences of the gradient ``g`` at ``x`` (``d`` gradient evaluations, in one batched
    call ``fg_batch(X) -> (f (B,), grad (B, D))`` when given; central differences would double the
    dominant cost on large targets) with the step ``h = rel_step max(|x|, 1)``: the gradient has no
    cancellation, so a small step keeps the rounding error ``~eps / h`` small while the O(h)
    truncation error of a larger one overestimated the curvature of stiff problems (with 1e-5 the
    Newton-decrement test of ``minimize`` stopped the SLICOT beam model at order 12 at 0.0079
    instead of 0.0053). Returns ``(H, n_evaluations)``."""
    d = Bh.shape[1]
    if fg_batch is not None:
        H, ok = fd_inverse_hessians(fg_batch, x[None], Bh[None], g[None], rel_step)
        return (H[0] if bool(ok[0]) else None), d
    h = rel_step * max(float(x.norm()), 1.0)
    Hs = torch.stack([(Bh.mT @ fg(x + h * Bh[:, j])[1] - g) / h for j in range(d)], 1)
    H, ok = _inverse_abs(Hs[None])
    return (H[0] if bool(ok[0]) else None), d


def fd_inverse_hessians(fg_batch, X: Tensor, Bh: Tensor, G: Tensor, rel_step: float = 1e-7):
    """``fd_inverse_hessian`` at several points at once: ``X`` (K, D) with chart bases ``Bh``
    (K, D, d) and chart gradients ``G`` (K, d); all ``K d`` gradients in one ``fg_batch`` call.
    Returns ``(H (K, d, d), ok (K,))`` (``ok`` False where the Hessian is not finite or zero)."""
    K, D, d = Bh.shape
    h = rel_step * X.norm(dim=-1).clamp_min(1.0)  # (K,)
    _, Gx = fg_batch((X[:, None, :] + h[:, None, None] * Bh.mT).reshape(K * d, D))
    Hs = ((Gx.reshape(K, d, D) @ Bh - G[:, None, :]) / h[:, None, None]).mT
    return _inverse_abs(Hs)


def _inverse_abs(Hs: Tensor):
    """Inverses of the symmetrized ``Hs`` (K, d, d) with eigenvalues replaced by their absolute values,
    bounded below by 1e-10 times the largest; ``(H, ok)``."""
    Hs = 0.5 * (Hs + Hs.mT)
    ok = torch.isfinite(Hs).flatten(1).all(1)
    Hs = torch.where(ok[:, None, None], Hs, torch.zeros_like(Hs))
    w, V = torch.linalg.eigh(Hs)
    wmax = w.abs().amax(-1, keepdim=True)
    ok &= wmax[:, 0] > 0
    w = w.abs().clamp_min(1e-10 * wmax).clamp_min(1e-300)
    return (V / w[:, None, :]) @ V.mT, ok


def minimize(
    fg: Callable[[Tensor], tuple[float, Tensor]],
    space: OutputNormalSpace,
    x0: Tensor,
    *,
    gtol: float = 1e-9,
    fmin: float = 1e-30,
    gexact: float = 1e-12,
    max_iter: int = 1000,
    switch: float = 0.5,
    eps_f: float = 1e-15,
    callback: Callable | None = None,
    deadline: float | None = None,
    window: int = 30,
    ftol: float = 1e-10,
    noise_window: int = 10,
    decrement_refresh: int = 5,
    hessian: bool = True,
    refresh: int = 200,
    hessian_after: int = 0,
    fg_batch: Callable[[Tensor], tuple[Tensor, Tensor]] | None = None,
    fg0: tuple[float, Tensor] | None = None,
    start: tuple[Tensor, Tensor, Tensor] | None = None,
) -> OptimResult:
    """Minimize a gauge-invariant ``f`` over output-normal pairs from ``x0`` (module docstring).

    Args:
        fg: ``x -> (f, grad_x)`` in ambient coordinates.
        space: the ``OutputNormalSpace`` (charts); its ``sigma`` may change (discrete time).
        gtol: tolerance on the relative gradient ``||grad|| / (2 sqrt f)``.
        fmin, gexact: stop when ``f <= fmin`` and ``||grad|| <= gexact`` (exact approximation).
        switch: re-centre the chart when the transversality drops below it.
        eps_f: absolute noise level of ``f``.
        callback: called as ``callback(iteration, f, grad_norm, x)`` after each iteration; a true
            return value stops the run, with that status if it is a string, else "abandoned".
        deadline: ``time.perf_counter()`` value after which to stop (status "max_iter").
        hessian: after ``hessian_after`` iterations (and then every ``refresh``), reset the
            quasi-Newton matrix to the inverse of a finite-difference Hessian in chart coordinates
            (``fd_inverse_hessian``): the criterion is badly scaled when the poles spread over
            decades, and the scaled identity of plain BFGS then needs thousands of iterations.
            From the first iteration by default: a start near a minimum (IRKA's) then converges in
            one or two Newton steps instead of a steepest-descent line search of several
            evaluations, and the batched Hessian costs about as much as two evaluations where the
            overhead of small operations dominates (measured on the SLICOT benchmark: 11% less time
            in all, up to 35% at small orders, the same results).
        fg0: ``fg(x0)`` if the caller has it already.
        start: ``(B_H, B_V, H)``, the chart bases at ``x0`` (``space.bases(x0)``) and the inverse
            finite-difference Hessian there (``fd_inverse_hessians``), if the caller has them (the
            Hessians at several starts cost one batched call); then ``hessian_after`` is 0.
        fg_batch: ``X (B, D) -> (f (B,), grad_X (B, D))``, the batched ``fg``, used for the
            finite-difference Hessian (its ``d`` gradients in one call).
        decrement_refresh: the Newton-decrement test (module docstring) refreshes a quasi-Newton
            matrix at least this many iterations old with a finite-difference Hessian before it
            stops.
        window, ftol: stop ("stationary") when ``window`` iterations decreased ``f`` by less than
            ``max(eps_f, ftol f)`` (progress too slow to matter), or ``noise_window`` iterations
            decreased ``f`` by less than ``eps_f`` (its values are noise) and did not halve the
            smallest gradient norm (the gradient has reached its rounding-noise floor, which for
            tiny errors lies above ``gtol``; measured on the SLICOT benchmark, this saves the 20
            extra iterations that the long window spent at every such minimum).
    """
    settings = _Settings(gtol, fmin, gexact, max_iter, switch, eps_f, callback, deadline, window, ftol,
                         noise_window, decrement_refresh, hessian, refresh, hessian_after, fg_batch)
    run = _Run(fg, space, x0, settings, fg0, start)
    status, k = "max_iter", 0
    try:
        for k in range(1, max_iter + 1):
            stop = run.iteration(k)
            if stop is not None:
                status, counted = stop
                k -= 0 if counted else 1
                break
    except KeyboardInterrupt:
        status = "interrupted"
    return run.result(status, k)


@dataclass(frozen=True)
class _Settings:
    """The tolerances and hooks of one ``minimize`` call (its arguments of the same names)."""

    gtol: float
    fmin: float
    gexact: float
    max_iter: int
    switch: float
    eps_f: float
    callback: Callable | None
    deadline: float | None
    window: int
    ftol: float
    noise_window: int
    decrement_refresh: int
    hessian: bool
    refresh: int
    hessian_after: int
    fg_batch: Callable | None


def _rel(f: float, gn: float) -> float:
    """The relative gradient ``||grad|| / (2 sqrt f)``."""
    return gn / (2 * math.sqrt(max(f, 1e-300)))


def _bfgs_update(H: Tensor | None, s: Tensor, y: Tensor, d: int, dtype: torch.dtype) -> Tensor | None:
    """The BFGS update of the inverse Hessian approximation (Nocedal and Wright, eq. 6.17) for the
    step ``s`` and gradient change ``y``; skipped without enough curvature (``s^T y`` at the
    rounding level); a missing ``H`` starts as ``(s^T y / y^T y) I`` (eq. 6.20)."""
    sy = float(s @ y)
    if sy > 1e-14 * float(s.norm() * y.norm()):
        if H is None:
            H = torch.eye(d, dtype=dtype) * (sy / float(y @ y))
        rho = 1.0 / sy
        Hy = H @ y
        H = H - rho * (torch.outer(s, Hy) + torch.outer(Hy, s)) + (rho * rho * float(y @ Hy) + rho) * torch.outer(s, s)
    return H


class _Run:
    """The state of one ``minimize`` run (iterate, chart bases, quasi-Newton matrix ``H``, counters,
    history, best iterate) and its steps: stopping tests, direction, line search, update, chart
    change, record."""

    def __init__(self, fg, space: OutputNormalSpace, x0: Tensor, opt: _Settings, fg0, start):
        self.fg, self.space, self.opt = fg, space, opt
        self.t0 = time.perf_counter()
        self.x = x = x0.clone()
        self.Bh, self.Bv = space.bases(x) if start is None else (start[0], start[1])
        self.f, self.gx = fg(x) if fg0 is None else fg0
        self.g = self.Bh.mT @ self.gx
        self.d = self.Bh.shape[1]
        self.H = None
        self.nev, self.nsw = 1, 0
        self.hist = [(0, self.f, float(self.g.norm()), 0.0)]
        # the iterate returned: the lowest f; among values within the noise eps_f of each other the
        # smallest gradient (which has no cancellation, unlike f: near tiny optima it tells where
        # the minimum is when f cannot)
        self.best = (x, self.f, self.hist[0][2])
        self.gmin = [self.hist[0][2]]  # gmin[i]: the smallest gradient norm up to iteration i
        self.k_check, self.x_check = 0, x  # last transversality check (it costs O(D g^2): not every iteration)
        self.k_hess = opt.hessian_after - opt.refresh
        if start is not None:  # the finite-difference Hessian of the first iteration is given
            self.H, self.k_hess = start[2], 1

    def iteration(self, k: int) -> tuple[str, bool] | None:
        """Iteration ``k``; where the run stops, ``(status, whether iteration k counts)``."""
        o = self.opt
        status = self.stop_before_step()
        if status is not None:
            return status, False
        if o.hessian and k - self.k_hess >= o.refresh:
            self.fd_hessian(k)
        if self.decrement_below_noise(k):
            return "stationary", False
        p, gp, a0 = self.direction()
        a, fa, pay = self.search(p, gp, a0)
        if a is None or not fa <= self.f + o.eps_f:
            if self.H is None:
                return "stalled", False
            self.H = None  # restart from steepest descent
            return None
        xn, gnew, self.gx = pay
        self.H = _bfgs_update(self.H, a * p, gnew - self.g, self.d, self.x.dtype)
        self.x, self.f, self.g = xn, fa, gnew
        self.change_chart(k)
        gn = self.record(k)
        stop = o.callback(k, self.f, gn, self.x) if o.callback is not None else None
        if stop:
            return (stop if isinstance(stop, str) else "abandoned"), True
        if self.no_progress(gn):
            return "stationary", True
        return None

    def stop_before_step(self) -> str | None:
        """"exact" (``f <= fmin`` with a gradient below ``gexact``), "converged" (relative gradient
        below ``gtol``) or "max_iter" past the deadline; sets ``gn``, the gradient norm."""
        o = self.opt
        self.gn = gn = float(self.g.norm())
        if self.f <= o.fmin and gn <= o.gexact:
            return "exact"
        if _rel(self.f, gn) <= o.gtol:
            return "converged"
        if o.deadline is not None and time.perf_counter() > o.deadline:
            return "max_iter"
        return None

    def fd_hessian(self, k: int) -> None:
        self.H, ne = fd_inverse_hessian(self.fg, self.x, self.Bh, self.g, fg_batch=self.opt.fg_batch)
        self.nev += ne
        self.k_hess = k

    def decrement_below_noise(self, k: int) -> bool:
        """The Newton decrement test: the predicted decrease of a (quasi-)Newton step is below the
        noise of f, so no measurable progress is left. The quasi-Newton matrix can underestimate
        the curvature radius along a curved valley by orders of magnitude, so the test is
        confirmed with a fresh finite-difference Hessian when the matrix is ``decrement_refresh``
        iterations old or more. A younger one is trusted: a line search whose predicted decrease
        is below the noise can only wander (measured: 60 of the 94 evaluations at a minimum of the
        heatmodel benchmark at order 4)."""
        o = self.opt
        if self.H is None or not 0.5 * float(self.g @ (self.H @ self.g)) <= o.eps_f:
            return False
        if o.hessian and k - self.k_hess >= o.decrement_refresh:
            self.fd_hessian(k)
        return self.H is not None and o.hessian and k - self.k_hess < o.decrement_refresh and \
            0.5 * float(self.g @ (self.H @ self.g)) <= o.eps_f

    def direction(self) -> tuple[Tensor, float, float]:
        """``(p, g^T p, first step)``: the quasi-Newton direction ``-H g`` with step 1, or steepest
        descent (without ``H``, or when ``-H g`` is not a descent direction, which drops ``H``) with
        the step ``min(f / |g|^2, 0.1 max(|x|, 1) / |g|)``."""
        g, gn, f = self.g, self.gn, self.f
        if self.H is None:
            p = -g
            xs = max(float(self.x.norm()), 1.0)
            a0 = min(max(f, 1e-300) / gn**2, 0.1 * xs / gn)
        else:
            p = -(self.H @ g)
            a0 = 1.0
        gp = float(g @ p)
        if not gp < 0:
            self.H, p, gp = None, -g, -gn * gn
            a0 = min(max(f, 1e-300) / gn**2, 0.1 * max(float(self.x.norm()), 1.0) / gn)
        return p, gp, a0

    def search(self, p: Tensor, gp: float, a0: float):
        """The line search along ``x + a B_H p``; ``(a, f(a), (x_a, chart gradient, gradient))``."""
        x, Bh, fg = self.x, self.Bh, self.fg
        dx = Bh @ p

        def phi(a):
            xa = x + a * dx
            fa, gxa = fg(xa)
            ga = Bh.mT @ gxa
            return fa, float(ga @ p), (xa, ga, gxa)

        a, fa, _, pay, ne = line_search(phi, self.f, gp, a0, self.opt.eps_f)
        self.nev += ne
        return a, fa, pay

    def change_chart(self, k: int) -> None:
        """Chart switching: a discrete-time pair near the Cayley chart's boundary is moved to
        another chart (a new finite-difference Hessian follows; earlier iterates are in the other
        chart, so ``best`` restarts); a slice that lost transversality is re-centred, ``H``
        carried over by ``M = B_H(x1)^T B_H(x0)``. The transversality test costs O(D g^2): it runs
        every 20 iterations or after a move of 5% of ``|x|`` since the last test."""
        space, o, x = self.space, self.opt, self.x
        due = k - self.k_check >= 20 or float((x - self.x_check).norm()) > 0.05 * max(float(x.norm()), 1.0)
        if space.discrete and space.cayley_margin(x) < 1e-3:
            C, A = space.pair(x)
            self.x = x = space.from_pair(C, A, choose_sigma=True)
            self.Bh, self.Bv = space.bases(x)
            self.f, self.gx = self.fg(x)
            self.nev += 1
            self.g, self.H = self.Bh.mT @ self.gx, None
            self.k_hess = -o.refresh  # new coordinates: new finite-difference Hessian
            self.nsw += 1
            self.best = (x, math.inf, math.inf)
        elif due and space.transversality(self.Bh, x) < o.switch:
            Bh1, Bv1 = space.bases(x)
            M = Bh1.mT @ self.Bh
            self.g = Bh1.mT @ self.gx
            if self.H is not None:
                self.H = M @ self.H @ M.mT
            self.Bh, self.Bv = Bh1, Bv1
            self.nsw += 1
        if due:
            self.k_check, self.x_check = k, x

    def record(self, k: int) -> float:
        """History and best iterate after iteration ``k``; the gradient norm."""
        gn = float(self.g.norm())
        self.hist.append((k, self.f, gn, time.perf_counter() - self.t0))
        eps_f, best = self.opt.eps_f, self.best
        if self.f < best[1] - eps_f or (self.f <= best[1] + eps_f and gn < best[2]):
            self.best = (self.x, self.f, gn)
        return gn

    def no_progress(self, gn: float) -> bool:
        """At the noise floor of the gradient the iteration wanders without decrease: true when
        the last ``window`` iterations gained less than ``max(eps_f, ftol f)``, or the last
        ``noise_window`` less than ``eps_f`` without halving the smallest gradient norm."""
        o, hist, f = self.opt, self.hist, self.f
        self.gmin.append(min(self.gmin[-1], gn))
        slow = len(hist) > o.window and hist[-o.window - 1][1] - f <= max(o.eps_f, o.ftol * f)
        noise = (len(hist) > o.noise_window and hist[-o.noise_window - 1][1] - f <= o.eps_f
                 and min(h[2] for h in hist[-o.noise_window:]) >= 0.5 * self.gmin[-o.noise_window - 1])
        return slow or noise

    def result(self, status: str, k: int) -> OptimResult:
        """The exact iterate, or else the best one seen."""
        if status != "exact":
            x, f, gn = self.best
        else:
            x, f, gn = self.x, self.f, float(self.g.norm())
        return OptimResult(x, f, gn, _rel(f, gn), k, self.nev, self.nsw, status, self.hist)
