"""The search over starts of one RARL2 run: the starts' candidate models (balanced truncation,
IRKA runs in lock-step, modal truncation, random, extension of the order n-1 solution), their
optimization from the most promising, and the perturbation rounds (basin hopping)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ...._errors import InputError
from . import _policy
from ._irka_engine import default_shifts, fixed_shifts, irka, irka_models
from ._progress import Progress as _Progress
from ._run import _Run
from ._selection import TIE_LEVELS
from ._perturb import jitter_start, perturb_start
from ._starts import resolved_balanced_start, extension_models, extension_poles, modal_start, random_pair, to_pairs


def _search(run: _Run, names: list[str], bt_model, gen, prog: _Progress, adaptive: bool = False) -> None:
    """Optimize the starts, the most promising (lowest criterion) first, skipping duplicates (a start
    that is the same model as an earlier one); then the perturbation rounds from the best result.
    ``adaptive``: after them _policy.POLICY.agree_starts if the optimized starts agree (no two
    results further apart than _policy.POLICY.agree_rtol), else _policy.POLICY.disagree_starts; the
    perturbation rounds run only if the results then disagree, i.e. when the landscape shows several
    minima, and after them one random jump from the best (_policy.POLICY.disagree_jitter,
    ``jitter_start``). Raises KeyboardInterrupt through (the results so far are kept)."""
    _optimize_starts(run, [n for n in names if n != "perturb"], bt_model, gen, prog)
    if adaptive and run.results:
        if run.out_of_time():
            return
        # agreeing starts may share a basin far above the best (drss 3002 of
        # benchmarks/rarl2_generalization.py: 28%): degree continuation, which climbs from the order
        # r-1 optimum, is the start kind that leaves it (_policy.POLICY.agree_starts); disagreeing
        # starts (several minima) get continuation from several one-state extensions and random
        # starts, which reach basins that the model-based starts and the perturbations of their
        # best miss (development sets)
        extra = _policy.POLICY.agree_starts if _agree(run) else _policy.POLICY.disagree_starts
        prog.total += len(extra)
        _optimize_starts(run, list(extra), bt_model, gen, prog)
        if _agree(run):
            if _policy.POLICY.agree_jitter:  # measured in round 6, not a default (_policy)
                _jump(run, gen, prog)
            return
    _perturb_rounds(run, names, adaptive, prog)
    if adaptive and _policy.POLICY.disagree_jitter:
        # last, one random jump from the best (all dampings scaled at once): the result is the best
        # of all starts, so it can only lower it (round 6: development case drss 1002, 0.58%)
        _jump(run, gen, prog)


def _jump(run: _Run, gen, prog: _Progress) -> None:
    """Optimize one random jump from the best result (``jitter_start``), if time is left."""
    if run.out_of_time() or not run.results or run.exact():
        return
    pair = jitter_start(run, gen)
    if pair is not None:
        prog.total += 1
        run.optimize("perturb", pair, prog)


def _perturb_rounds(run: _Run, names: list[str], adaptive: bool, prog: _Progress) -> None:
    """The damping rounds (one per "perturb" in ``names``), then, ``adaptive``, the pole-swap rounds."""
    tried: set = set()
    rounds = names.count("perturb")
    # the pole-swap rounds follow the damping rounds (their own rounds: in one pool the swaps, closer
    # to the best by the criterion, took every round and joined the best again, e.g. SLICOT build at
    # r = 20, where the second damping round finds the best known minimum)
    swaps = [False] * rounds + [True] * (_policy.POLICY.swap_rounds if adaptive and rounds else 0)
    for swap in swaps:
        if run.out_of_time() or not run.results or run.exact():
            return
        pair = perturb_start(run, tried, swap)
        if pair is None:
            if swap:
                return
            continue
        prog.total += swap  # the swap rounds are not among ``names``
        run.optimize("perturb", pair, prog)


def _agree(run: _Run) -> bool:
    """Whether the optimized starts agree: their errors within _policy.POLICY.agree_rtol."""
    errs = [math.sqrt(max(t[0], 0.0)) for t in run.results]
    return max(errs) - min(errs) <= _policy.POLICY.agree_rtol * max(min(errs), 1e-300)


def _optimize_starts(run: _Run, primary: list[str], bt_model, gen, prog: _Progress) -> None:
    """Make the candidate models of the start kinds ``primary``, score them in one batch and optimize
    them, the most promising first, skipping duplicates."""
    made = []
    modal = modal_start(run.T, run.r) if {"modal", "irka-modal"} & set(primary) else None
    irka_cands = _irka_candidates(run, primary, bt_model, modal)
    for name in primary:
        if run.out_of_time() and made:  # a budget spent before any start still gets the first one
            break
        models = _start_models(name, run, bt_model, gen, irka_cands, modal)
        if models is not None:
            made.append((name, *models))
    cands = sorted(((psi, i, name, pair, grad) for i, (name, pair, psi, grad) in enumerate(run.score_starts(made))),
                   key=lambda t: (t[0], t[1]))
    done: list[tuple[float, Tensor]] = []
    hess = run.start_hessians(cands)
    for i, (psi0, _, name, pair, grad0) in enumerate(cands):
        if run.out_of_time() and run.results:
            return
        if run.exact():
            # at the criterion's noise level no optimization can show progress: the remaining
            # starts are recorded as they are ("noise"), for the comparison in extended
            # precision among the results at that level (``_selection.select``)
            for psi_r, _, name_r, pair_r, _ in cands[i:]:
                if psi_r <= run.best()[0] + TIE_LEVELS * run.eps_f:
                    run.record_unoptimized(name_r, pair_r, "noise")
            return
        poles = torch.sort(torch.linalg.eigvals(pair[1]).real).values
        if any(abs(psi0 - p) <= 1e-12 * max(abs(p), 1e-300) and torch.allclose(poles, q, rtol=1e-8, atol=1e-12)
               for p, q in done):
            continue  # the same model as a start already optimized
        done.append((psi0, poles))
        run.optimize(name, pair, prog, psi0, grad0, hess[i])


def _irka_candidates(run: _Run, names: list[str], bt_model, modal) -> dict:
    """The candidate models ``(A, C)`` of the IRKA starts among ``names`` ("irka-bt": from balanced
    truncation ``bt_model``, "irka-modal": from modal truncation ``modal`` (``modal_start``), "irka":
    from spread shifts, "irka-fixed": from ``fixed_shifts``): the first iterate and the last
    _policy.POLICY.irka_candidates of each run (IRKA may oscillate or drift away from a better model
    it passed, but scoring every iterate cost more than the run). The runs go in lock-step (one
    batched IRKA) and their candidates are projected in one batch."""
    froms = {"irka-bt": bt_model, "irka-modal": modal}
    runs = [n for n in ("irka-bt", "irka-modal") if n in names and froms[n] is not None]
    shift_runs = {"irka": default_shifts(run.T, run.r) if "irka" in names else None,
                  "irka-fixed": fixed_shifts(run.T, run.r) if "irka-fixed" in names else None}
    shift_runs = {n: v for n, v in shift_runs.items() if v is not None}
    runs += list(shift_runs)
    if not runs:
        return {}
    starts = [froms[n] for n in runs if n not in shift_runs]
    models = tuple(torch.stack(t) for t in zip(*starts)) if starts else None
    shifts = torch.stack(list(shift_runs.values())) if shift_runs else None
    its = irka(run.T, models=models, shifts=shifts, deadline=run.deadline)
    keep = [d[:1] + d[1:][-_policy.POLICY.irka_candidates:] for d in its]
    if not any(keep):
        return {}
    A, _, C, ok = irka_models(run.T, [t for d in keep for t in d])
    out, at = {}, 0
    for name, d in zip(runs, keep):
        sel = torch.nonzero(ok[at:at + len(d)]).reshape(-1) + at
        if sel.numel():
            out[name] = (A[sel], C[sel])
        at += len(d)
    return out


def _start_models(name: str, run: _Run, bt_model, gen, irka_cands: dict, modal):
    """The candidate models of a start, ``(A, C, normal)`` with ``A`` (K, r, r) and ``C`` (K, p, r) in
    the working coordinates (``normal``: already output-normal pairs), or None; ``_Run.score_starts``
    keeps the best candidate of each start. ``irka_cands``: ``_irka_candidates`` of the run;
    ``modal``: ``modal_start`` (or None)."""
    if name == "bt":
        Ar, _, Cr = bt_model
        return Ar[None], Cr[None], False
    if name in ("irka-bt", "irka", "irka-modal", "irka-fixed"):
        return (*irka_cands[name], False) if name in irka_cands else None
    if name == "random":
        C, A = run.space.pair(random_pair(run.space, gen))
        return A[None], C[None], True
    if name == "modal":
        return None if modal is None else (modal[0][None], modal[2][None], False)
    if name in ("extend", "extend-pole"):
        pair = _extend_start(run, gen, chosen=name == "extend-pole")
        return None if pair is None else (pair[1][None], pair[0][None], True)
    raise InputError(f"starts: unknown start kind {name!r}")


def _lower_solution(run: _Run, gen):
    """The order n-1 RARL2 solution ``(C, S, sigma, (C1, A1))`` (chart coordinates of its best
    result, from its own balanced-truncation and IRKA starts, and its output-normal pair), solved once
    per run and kept on it: every ``extend`` start of the run extends the same solution. None if it
    has none."""
    if run.lower is None:
        T, r = run.T, run.r
        sub = _Run(T, r - 1, run.tol, run.max_iter, run.deadline)
        Ar, Br, Cr, _ = resolved_balanced_start(T, r - 1)  # T is already normalized and rescaled
        _search(sub, list(_policy.POLICY.lower_starts), (Ar, Br, Cr), gen, _Progress(False, 1))
        if sub.best() is None:
            run.lower = ()
        else:
            _, _, x, sigma, _ = sub.best()
            sub.space.sigma = sigma
            run.lower = (*sub.space.from_vec(x), sigma, sub.space.pair(x))
    return run.lower or None


def _extend_start(run: _Run, gen, chosen: bool = False):
    """The order n-1 RARL2 solution (``_lower_solution``) with one state added. ``chosen`` (start kind
    "extend-pole"): the new pole placed by the criterion (``_chosen_extension``; the run's k-th such
    start takes the k-th choice; past the last, a random extension); else the best of a few
    random extensions ``C -> [C, c]`` (``c`` small) and ``S -> [[S, s], [-s^H, 0]]`` in the ambient
    coordinates; with ``c -> 0`` the new state becomes unobservable and the criterion tends to the
    order n-1 optimum, so they start just below it. Each call draws new extensions from ``gen``:
    several ``extend`` starts of a run climb from the same optimum in different directions."""
    T, r = run.T, run.r
    if r < 2:
        return None
    lower = _lower_solution(run, gen)
    if lower is None:
        return None
    C, S, sigma, low_pair = lower
    if chosen:
        pair = _chosen_extension(run, low_pair, gen)
        if pair is not None:
            return pair
    sp = run.space
    best, best_psi = None, math.inf
    for k in range(16):
        scale = 10.0 ** (-1 - 2 * (k % 4) / 3)
        c = scale * torch.randn(T.p, 1, generator=gen, dtype=sp.rdt).to(sp.mdt)
        s = torch.randn(r - 1, 1, generator=gen, dtype=sp.rdt).to(sp.mdt)
        C2 = torch.cat([C, c], 1)
        S2 = torch.zeros(r, r, dtype=sp.mdt)
        S2[:-1, :-1] = S
        S2[:-1, -1:] = s
        S2[-1:, :-1] = -s.mH
        sp.sigma = sigma
        x2 = sp.to_vec(C2, S2)
        psi = run.fg(x2)[0]
        if psi < best_psi:
            best, best_psi = x2, psi
    return sp.pair(best) if best is not None else None


#: scale of the new state's output column in a chosen continuation (``_chosen_extension``)
CHOSEN_C_SCALE = 0.3


def _chosen_extension(run: _Run, low_pair, gen):
    """The run's next chosen continuation: the order n-1 optimum ``low_pair = (C1, A1)`` with one
    state added at a real pole placed by the criterion (``extension_models``, poles
    ``extension_poles``): the first the candidate with the lowest criterion; each next one the lowest
    among the candidates at least a decade (in the continuous picture) from every earlier choice. The new pole's place
    picks the basin the continuation descends to: on development case msd 5003 of
    ``benchmarks/rarl2_generalization.py`` a slow new pole (the lowest criterion: where ``|F -
    H_{r-1}|`` is largest) leads to the basin all default starts share, a fast one (>= 1.2) to the
    4.9% better basin that before only the reference's random extensions reached (in about 100
    iterations: these starts get _policy.POLICY.chosen_horizon). The candidates are
    scored once per run, in one batch (kept on the run). Output-normal ``(C, A)``, or None."""
    if run.extend_scan is None:
        T = run.T
        C1, A1 = low_pair
        poles, logmag = extension_poles(T)
        c = CHOSEN_C_SCALE * torch.randn(T.p, 1, generator=gen, dtype=torch.float64)
        A, C = extension_models(C1, A1, poles, c)
        C2, A2, ok = to_pairs(T, A, C)
        psi = torch.full((poles.shape[0],), math.inf, dtype=torch.float64)
        if bool(ok.any()):
            idx = torch.nonzero(ok).reshape(-1)
            psi[idx] = T.psi_batch(C2[idx], A2[idx])
        psi = torch.where(torch.isfinite(psi), psi, torch.full_like(psi, math.inf))
        run.extend_scan = (psi, logmag, C2, A2, [])
    psi, logmag, C2, A2, chosen = run.extend_scan
    far = torch.ones_like(psi, dtype=torch.bool)
    for j in chosen:
        far &= (logmag - logmag[j]).abs() >= 1.0
    cand = torch.where(far, psi, torch.full_like(psi, math.inf))
    j = int(torch.argmin(cand))
    if not math.isfinite(float(cand[j])):
        return None
    chosen.append(j)
    return C2[j], A2[j]
