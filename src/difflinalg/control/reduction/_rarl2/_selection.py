r"""Choosing and measuring RARL2's result where the double-precision criterion cannot resolve it.

The concentrated criterion ``psi = ||F||^2 - ||B_hat||^2`` (normalized: ``||F|| = 1``) is a
difference of numbers of size 1, so in double precision it carries a rounding noise ``eps_f``
(``Target.eps_f``, some ``1e-14``). A model with relative error ``e`` has ``psi = e^2``; once
``e^2`` is near ``eps_f`` (relative errors of ~1e-7 and below) the criterion orders models at
random and may read 0 or a negative number for a non-zero error. Random stable systems reduced to
the order where the Hankel singular values fall below ``1e-10 sigma_1`` are in that regime: there
balanced truncation is often orders of magnitude better than models the optimizer, blind below
the noise, prefers by the criterion.

Where the criterion's resolution of the relative error is coarser than 1e-8 (``best psi <
PRECISE_BELOW eps_f``), the candidates (each start's end point and starting point, balanced
truncation among them, and IRKA iterates from the best one) are compared by the extended-precision
yardstick of ``h2_error(F, H, precise=True)`` (``_modal.squared_h2_error_residues``: poles and
residues refined in extended precision, sums in double-double arithmetic) on the original target,
and the winner's error is reported by it. Its uncertainty (``ReductionResult.error_resolution``)
is ``_precise.error_resolution``: the accuracy of the modal data of target and model (eigenvalue
errors of ``u s_k ||A||``, ``u`` the unit roundoff of the data: long double after Newton refinement
or Rayleigh quotients, double without; ``s_k`` the eigenvalue condition numbers; they move the slow
modes of a stiff target most: the N = 1024 heat equation's LAPACK eigenvalues moved an error of
6.5e-13 by 17-35%) and the rounding of the double-double sums (running bounds of the computed
partial sums; large where the residues of a non-normal target cancel). Without the yardstick (ill-conditioned eigenvectors, or a target too large for it),
the double-precision value is reported with its resolution
``||F|| (sqrt(psi + eps_f) - sqrt(max(psi - eps_f, 0)))``, and a criterion at its noise level
reads as that bound, never as 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ...._utils import eps

from ...analysis._modal import cached_modal_form, squared_h2_error_residues
from ...analysis._precise import residue_work
from ._irka_engine import default_shifts, fixed_shifts, irka, irka_models
from ._starts import to_pairs
from ...system._statespace import StateSpace
from ._target import Target

#: the best criterion is compared beyond double precision when it is below PRECISE_BELOW noise
#: levels (its resolution of the relative error, ``eps_f / (2 psi)``, is coarser than 1e-8)
PRECISE_BELOW = 5e7
#: results within TIE_LEVELS noise levels of the best are candidates for that comparison
TIE_LEVELS = 4.0
#: IRKA polish of the best result where the criterion's resolution of the relative error is coarser
#: than POLISH_RESOLUTION (cannot tell errors within the 1e-6 of the benchmark's quality floor apart):
#: at most POLISH_ITER iterations, to shifts converged to POLISH_TOL. Near a minimum the squared error
#: grows with the square of the model's distance to it, so shifts converged to 1e-8 leave the error
#: of SLICOT heat-cont at order 12 (6.02e-9) 2e-6 above IRKA's fixed point; to 1e-13, 6e-8.
POLISH_RESOLUTION = 1e-6
POLISH_ITER = 60
POLISH_TOL = 1e-13
#: IRKA iterates of the polish that are candidates (the last ones)
POLISH_CANDIDATES = 4
#: IRKA iterates of each polish run that are candidates in their own realizations (the last ones)
RAW_CANDIDATES = 16
#: largest ``residue_work`` of the yardstick for the candidates of a run (each costs
#: O((N + n) n p m) after the target's O(N^2 p m) norm and O(N^3) refinement, once per target)
YARDSTICK_MAX_WORK = 4e6
#: ... and for the one evaluation of the returned model's error when the criterion is at its noise
#: level (a one-off O(N^2 p m) cost; the CLI's yardstick allows as much)
REPORT_MAX_WORK = 2e7
#: the target's modal data are refined in extended precision for the yardstick where the best
#: relative error is below REFINE_BELOW (LAPACK's eigenvalues, with errors of eps ||A||, move the
#: transfer function of a stiff target by ~1e-12 relative: SLICOT heat-cont's order-12 error, 6e-9,
#: needs refinement, errors of 1e-5 do not; refining costs O(N^3) without BLAS, 1 s at N = 200)
REFINE_BELOW = 1e-6
#: balanced truncation of targets up to this order is a candidate by dense Gramians (``bt_model``;
#: 0.3 s at N = 100 on one thread, 3 s at N = 200)
BT_DENSE_MAX_ORDER = 100
#: eigenvector condition numbers above which the residue yardstick is not used (``_modal``)
YARDSTICK_MAX_COND = 1e8


@dataclass
class Choice:
    """The result to return: ``best`` (a ``_Run.results`` entry with the chosen point), its
    normalized squared error ``psi`` (by the yardstick, or the criterion), ``error_resolution``
    (relative, on the error ``sqrt(psi)``), ``polished`` (an IRKA iterate from the best result) and
    ``measured`` (``psi`` is the yardstick's value); ``model``: the balanced truncation of the original
    target (``bt_model``, in its balanced realization, not output-normal) where it is better by the
    yardstick than every point of the run."""

    best: tuple
    psi: float
    error_resolution: float
    polished: bool = False
    measured: bool = False
    model: StateSpace | None = None


def model_of(T: Target, C: Tensor, A: Tensor) -> StateSpace:
    """The model of the output-normal pair ``(C, A)`` (normalized coordinates) with its optimal
    ``B_hat`` (and ``D_hat = D_F``), in the units of the original target:
    ``(omega A, ||F|| B_hat, sqrt(omega) C)`` in continuous time."""
    Bh = T.criterion(C, A, grad=False)[3]
    w = T.omega
    A_o = A * w if not T.discrete else A
    C_o = C * math.sqrt(w) if not T.discrete else C
    F = T.F
    D_o = F.D.detach() if T.discrete else torch.zeros_like(F.D)
    dt = F.dtype
    return StateSpace(A_o.to(dt), (Bh * T.norm).to(dt), C_o.to(dt), D_o.to(dt), time=F.time, dt=F.dt)


def _target_copy(T: Target) -> StateSpace:
    """A detached copy of the original target, made once per ``Target``: the yardstick caches its
    refined modal data on it."""
    if getattr(T, "_yardstick_F", None) is None:
        F = T.F
        T._yardstick_F = StateSpace(*(x.detach() for x in F.matrices()), time=F.time, dt=F.dt)
        if getattr(T, "modal_form", None) is not None:  # the target's eigendecomposition, reused
            T._yardstick_F.cached("modal", lambda: T.modal_form, values_only=True)
    return T._yardstick_F


def yardstick_usable(T: Target, n: int, budget: float) -> bool:
    """The residue yardstick applies to the target (eigenvector condition number at most
    YARDSTICK_MAX_COND) and costs at most ``budget`` (``residue_work``)."""
    if residue_work(T.N, n, T.p, T.m) > budget:
        return False
    cond = cached_modal_form(_target_copy(T))[3]
    return math.isfinite(cond) and cond <= YARDSTICK_MAX_COND


def yardstick(T: Target, H: StateSpace, refine: bool = True) -> tuple[float, float] | None:
    """``(psi, resolution)``: the normalized squared error ``||F - H||^2 / ||F||^2`` by the
    extended-precision yardstick of ``h2_error(..., precise=True)``, and the uncertainty of
    ``sqrt(psi)`` (module docstring); None where it does not apply (an eigenvector basis worse
    conditioned than YARDSTICK_MAX_COND, or a discrete-time pole at 0). ``refine``: the target's
    modal data refined in extended precision (O(N^3) once; without it, accurate to ``eps kappa_F``,
    which is enough for errors far above that: ``REFINE_BELOW``)."""
    F = _target_copy(T)
    out = squared_h2_error_residues(F, H, max_cond=YARDSTICK_MAX_COND, precise=True, refine=refine,
                                    resolution=True)
    if out is None or not (math.isfinite(out[0]) and math.isfinite(out[1])):
        return None
    val, res = out
    return max(val, 0.0) / T.norm ** 2, res / T.norm


def reported_error(psi: float, resolution: float) -> float:
    """The relative error to report for a yardstick value ``psi`` (squared) of uncertainty
    ``resolution``: ``sqrt(psi)`` where it is resolved; below the resolution (``psi`` may even have
    rounded to 0: a 21-state convection-diffusion surrogate at order 20, true error ~3e-12, read 0
    +- 2.3e-9) the upper bound ``sqrt(psi) + resolution``, never 0."""
    e = math.sqrt(max(psi, 0.0))
    return e if e >= resolution else e + resolution


def is_bound(psi: float, resolution: float) -> bool:
    """Whether ``reported_error(psi, resolution)`` is an upper bound (the value is unresolved)."""
    return math.sqrt(max(psi, 0.0)) < resolution


def criterion_resolution(psi: float, eps_f: float) -> float:
    """Uncertainty of ``sqrt(psi)`` for a criterion value ``psi`` with rounding noise ``eps_f``."""
    return math.sqrt(max(psi, 0.0) + eps_f) - math.sqrt(max(psi - eps_f, 0.0))


def select(run, polish: bool = True) -> Choice | None:
    """The result of ``run`` (a ``_rarl2._Run``) to return. Where the best criterion resolves the
    relative error to 1e-8 it is the best result by the criterion. Otherwise the candidates within
    TIE_LEVELS noise levels of it (end points and starting points of the starts, balanced
    truncation of the original target (``bt_model``), and where the resolution is coarser than
    POLISH_RESOLUTION the IRKA iterates from the best result, whose fixed point needs no value of
    the criterion) are compared by the yardstick where it is affordable, and each start's reported
    errors are replaced by the yardstick's values. Without ``polish`` (an interrupted run) the best
    result by the criterion, at once."""
    best = run.best()
    if best is None:
        return None
    T, eps_f = run.T, run.eps_f
    if best[0] > PRECISE_BELOW * eps_f:  # the criterion resolves the relative error to 1e-8
        return Choice(best, best[0], criterion_resolution(best[0], eps_f))
    fallback = Choice(best, max(best[0], eps_f), math.sqrt(eps_f) if best[0] <= eps_f
                      else criterion_resolution(best[0], eps_f))
    if not polish:  # interrupted (Ctrl-C): return at once, with the criterion's bound
        return fallback
    if not yardstick_usable(T, run.r, YARDSTICK_MAX_WORK):
        return _measure_only(run, fallback)
    tie = best[0] + TIE_LEVELS * eps_f
    # unique points: [point, chart centre, polished, [(result index, "start" or "end"), ...]]
    cands: list[list] = []

    def add(i, x, sigma, polished, role):
        for c in cands:
            if c[1] == sigma and torch.equal(c[0], x):
                c[3].append((i, role))
                return
        cands.append([x, sigma, polished, [(i, role)] if role else []])

    for i, (t, x0) in enumerate(zip(run.results, run.x0s)):
        if math.isfinite(t[0]) and t[0] <= tie:
            add(i, t[2], t[3], False, "end")
        if t[1].start_relative_error ** 2 <= tie:
            add(i, x0, t[3], False, "start")
    raw: list[StateSpace] = []
    if best[0] < eps_f / (2 * POLISH_RESOLUTION) and not run.out_of_time():
        ib = next(i for i, t in enumerate(run.results) if t is best)
        pairs, raw = polish_candidates(run, best)
        for x, sigma in pairs:
            add(ib, x, sigma, True, None)
            cands[-1][3].append((ib, "polished"))
    refine = best[0] < REFINE_BELOW ** 2
    vals = []
    for x, sigma, _, refs in cands:
        run.space.sigma = sigma
        v = yardstick(T, model_of(T, *run.space.pair(x)), refine)
        vals.append(v)
        for i, role in refs if v is not None else ():  # each start reports its errors by the yardstick
            sr = run.results[i][1]
            if role == "start":
                sr.start_relative_error = reported_error(*v)
            elif role == "end":
                sr.relative_error = reported_error(*v)
                if math.isfinite(sr.grad_norm):
                    sr.rel_grad = sr.grad_norm / (2 * reported_error(*v))
    ok = [k for k, v in enumerate(vals) if v is not None]
    # models in their own realizations (not output-normal, no gradient), measured as they are:
    # balanced truncation of the original target, always (the run's own "bt" start, from truncated
    # Gramian factors made output-normal by an ill-conditioned Cholesky factor, can be far worse:
    # 2.7e-9 against 4.7e-11 on seed 5 of the tests' random family), and the polish's IRKA iterates
    # (made output-normal, by a Cholesky factor of condition sigma_1 / sigma_r, they lose the digits
    # that tell them apart: heat1d 2000 of benchmarks/rarl2_generalization.py, r = 12, IRKA from
    # fixed shifts 3.9966e-10 as it is, 6e-8 output-normal, balanced truncation 4.38e-10)
    bt = bt_model(T, run.r) if not run.out_of_time() else None
    outside = [("bt", bt, yardstick(T, bt, refine))] if bt is not None else []
    outside += [(name, H, yardstick(T, H, refine)) for name, H in raw if H.is_stable()]
    outside = [o for o in outside if o[2] is not None]
    if not ok and not outside:
        return fallback
    k = min(ok, key=lambda j: vals[j][0]) if ok else None
    # an outside model only where it is better beyond both values' uncertainties and beyond
    # 10 (N + n) eps (relative), the rounding level of any model stored in double precision (exact
    # approximations end there): at a tie, the output-normal model
    floor = 10 * (T.N + run.r) * eps(torch.float64)
    if outside:
        name, H, v = min(outside, key=lambda o: o[2][0])
        if k is None or math.sqrt(v[0]) + v[1] + vals[k][1] + floor < math.sqrt(vals[k][0]):
            ib = next((i for i, t in enumerate(run.results) if t[1].name == name), None)
            t = run.results[ib] if ib is not None else best
            return Choice((t[0], t[1], t[2], t[3], t[4]), v[0], v[1], name != "bt", True, H)
    x, sigma, polished, refs = cands[k]
    t = run.results[refs[0][0]]
    return Choice((t[0], t[1], x, sigma, t[4]), vals[k][0], vals[k][1], polished, True)


def bt_model(T: Target, r: int) -> StateSpace | None:
    """Balanced truncation of the original target, in its balanced realization: up to order
    BT_DENSE_MAX_ORDER ``balanced_truncation`` (dense Gramians: O(N^3) Lyapunov solves, 3 s at
    N = 200 on one thread, 50 s at N = 900), above it, for a modal target, from the full-rank
    pivoted Cholesky factors of the modal Gramians (``balanced_start(exact=True)``, no N x N solve;
    less accurate: on the random family of the tests, 2.7e-9 where the dense one has 4.7e-11;
    None for a Schur-form target). RARL2's own balanced-truncation start comes from low-rank factors, whose
    truncation is no longer negligible against errors of ~1e-10 and below, and its output-normal
    form from a Cholesky factor of the model's Gramian, of condition ``sigma_1 / sigma_r`` (1e10
    in the tiny-error regime), which costs digits such errors do not have. None if it fails (e.g.
    an order above the numerical minimal order)."""
    from .._balanced import balanced_truncation
    from ._starts import balanced_start

    try:
        if T.N <= BT_DENSE_MAX_ORDER:
            return balanced_truncation(_target_copy(T), r)
        if T.method != "modal":
            return None
        Ar, Br, Cr, _ = balanced_start(T, r, exact=True)  # normalized, working coordinates
    except Exception:  # noqa: BLE001 - no candidate
        return None
    return original_units(T, Ar, Br, Cr)


def original_units(T: Target, Ar: Tensor, Br: Tensor, Cr: Tensor) -> StateSpace:
    """The model ``(Ar, Br, Cr)`` of the normalized target (working coordinates, frequency scale
    ``T.omega``) in the units of the original target: ``(omega Ar, ||F|| Br, sqrt(omega) Cr)`` in
    continuous time, with the target's ``D`` in discrete time."""
    F, w = T.F, T.omega
    A_o, C_o = (Ar * w, Cr * math.sqrt(w)) if not T.discrete else (Ar, Cr)
    D_o = F.D.detach() if T.discrete else torch.zeros_like(F.D)
    return StateSpace(*(x.to(F.dtype) for x in (A_o, Br * T.norm, C_o, D_o)), time=F.time, dt=F.dt)


def _measure_only(run, choice: Choice) -> Choice:
    """The best result with its error measured by the yardstick where the criterion is at its noise
    level and one evaluation is affordable (REPORT_MAX_WORK); else ``choice`` as it is."""
    T = run.T
    if run.best()[0] > TIE_LEVELS * run.eps_f or not yardstick_usable(T, run.r, REPORT_MAX_WORK):
        return choice
    _, _, x, sigma, _ = choice.best
    run.space.sigma = sigma
    v = yardstick(T, model_of(T, *run.space.pair(x)), run.best()[0] < REFINE_BELOW ** 2)
    if v is None:
        return choice
    return Choice(choice.best, v[0], v[1], False, True)


def polish_candidates(run, best) -> tuple[list[tuple[Tensor, complex | float]], list[tuple[str, StateSpace]]]:
    """IRKA runs in lock-step (POLISH_ITER iterations at most, shifts to POLISH_TOL): from the result
    ``best``, from the fixed shifts of the "irka-fixed" start (continuous time) and from the spread
    shifts of the "irka" start. Returns the last POLISH_CANDIDATES iterates of the run from ``best``
    that are stable and observable as ``(x, sigma)`` (chart coordinates and centre), and the last
    RAW_CANDIDATES stable iterates of every run as models in their own realizations, in the original
    units (``(name, StateSpace)``: "irka-fixed", "irka", or "polish" from ``best``). At tiny
    errors the double-precision criterion cannot guide BFGS the last relative ~1e-5 to the minimum
    (its noise is the resolution), while IRKA's fixed point, the interpolation conditions of a
    stationary point, does not evaluate it (heat-cont, SLICOT, order 8: from 5.9560882e-6 to
    5.9560691e-6, a fixed point IRKA reaches from every start, in 10 iterations); IRKA from fixed
    shifts reaches pyMOR's IRKA value where the run's starts, made output-normal, cannot show it
    (heat1d 2000 and 3003 of ``benchmarks/rarl2_generalization.py``, development sets since round 3).
    ``select`` keeps one only if it is better by the yardstick."""
    T = run.T
    _, _, x, sigma, _ = best
    run.space.sigma = sigma
    C, A = run.space.pair(x)
    Bh = T.criterion(C, A, grad=False)[3]
    shift_runs = [(n, v) for n, v in (("irka-fixed", fixed_shifts(T, run.r)), ("irka", default_shifts(T, run.r)))
                  if v is not None]
    shifts = torch.stack([v for _, v in shift_runs]) if shift_runs else None
    all_its = irka(T, models=(A[None], Bh[None], C[None]), shifts=shifts, max_iter=POLISH_ITER, tol=POLISH_TOL,
                   deadline=run.deadline)
    names = ["polish"] + [n for n, _ in shift_runs]
    raw = []
    for name, its in zip(names, all_its):
        if its:
            Ai, Bi, Ci, ok = irka_models(T, its[-RAW_CANDIDATES:])
            raw += [(name, original_units(T, Ai[k], Bi[k], Ci[k])) for k in torch.nonzero(ok).reshape(-1).tolist()]
    its = all_its[0]
    if not its:
        return [], raw
    Ai, _, Ci, ok = irka_models(T, its[-POLISH_CANDIDATES:])
    if not bool(ok.any()):
        return [], raw
    Cn, An, ok2 = to_pairs(T, Ai[ok].to(run.space.mdt), Ci[ok].to(run.space.mdt))
    pairs = [(run.space.from_pair(Cn[k], An[k]), run.space.sigma) for k in torch.nonzero(ok2).reshape(-1).tolist()]
    return pairs, raw
