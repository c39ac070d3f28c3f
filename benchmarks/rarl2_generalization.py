"""RARL2 generalization: default settings against a stronger search on random systems (issue 17 item 5).

Families (generated here, from the seed only; ``make_system``):

* ``dense-c``: continuous, ``A = randn(N, N) / sqrt(N)`` shifted so that its rightmost eigenvalue is
  at ``-U(0.02, 0.5)``; ``B``, ``C`` standard normal; ``D = 0`` (a continuous ``D`` makes the H2
  norm infinite);
* ``dense-d`` / ``dense-d-D``: discrete, ``A = randn / sqrt(N)`` scaled to spectral radius
  ``U(0.5, 0.98)``; without / with a standard normal ``D``;
* ``modal-light-c`` / ``modal-heavy-c``: continuous modal systems, complex pairs with natural
  frequencies log-uniform in [0.1, 10] and damping ratios log-uniform in [1e-3, 3e-2] (light: poles
  near the imaginary axis) or uniform in [0.3, 0.9] plus real poles (heavy), turned by a random
  orthogonal similarity (a normal ``A`` without visible block structure);
* ``modal-light-d`` / ``modal-heavy-d``: discrete, poles ``rho e^{i theta}`` with ``rho`` in
  [0.95, 0.999] (light: near the unit circle) or [0.2, 0.9] (heavy), with ``D``;
* ``rss`` / ``drss``: python-control's ``rss`` (strictly proper) and ``drss`` (with ``D``), seeded by
  ``np.random.seed``; they make near-repeated poles on purpose;
* ``msd``: pyMOR's mass-spring-damper ``msd_example`` (masses, stiffnesses and damping drawn);
* ``heat1d``: pyMOR's ``heat_equation_1d_example`` at a drawn diffusion parameter and mesh.

Shapes (p outputs x m inputs: SISO, 2x2, 3x2) and N (30-300) are drawn from the seed (the pyMOR
families: SISO or 2x2, their own sizes). Each (family, seed) gives one case, at an order ``r``
drawn from {2, 4, 8, 12}, lowered while the Hankel singular value ``sigma_{r+1}`` is below
``1e-9 sigma_1`` (the tiny-error regime is issue 17 item 1's business, not the search's).

Split rule (by seed, fixed). Round 1: the DEVELOPMENT set is seeds ``0 .. k-1`` of every family
(``k = 4``, ``--quick``: 1); the EVALUATION set is seeds ``1000 .. 1000 + k - 1``. Look at the
development set to tune the search; run the evaluation set only to report, never tune on it.

Protocol of round 2. Round 1's evaluation set has been looked at (its misses were analysed), so it
is no longer an evaluation set: round 2 tunes on ``dev`` (seeds 0-3), ``dev2`` (a second
development set, seeds ``2000 .. 2007``) and ``oldeval`` (round 1's evaluation misses msd 1000,
drss 1001 and drss 1002, development cases now), and reports on ``eval2`` (seeds ``3000 .. 3003``,
fresh: run once, at the end, with the tuned default). ``--set dev|eval|dev2|eval2|oldeval|both``
(both: dev and eval), ``--cases FAMILY:SEED ...`` for single development cases. While tuning,
``--reuse-ref PATH ...`` takes each case's reference from saved runs (not recomputed); the reported
tables recompute it. ``--vs-round1`` times round 1's default search (``ROUND1_POLICY``) interleaved
with the default, per case (medians of the same repeats): the time anchor of round 2, since the
machine's load differs between runs (``--anchor`` compares with a saved run's times only).

Protocol of round 3. ``eval2`` has been looked at (its misses were analysed in round 2's report):
it is a development set since round 3 (``--set eval2`` stays runnable). Round 3 tunes on ``dev``,
``dev2``, ``eval2`` and ``oldeval`` only, and reports on ``eval3`` (seeds ``4000 .. 4003``, fresh:
run exactly once, at the end, with the final default; the default is not changed after it).
``--vs-round1`` stays the time anchor (round 1's default measured 0.79-1.00x main's default).

Protocol of round 4. ``eval3`` has been looked at: a development set since round 4. Round 4 tunes
on ``dev``, ``dev2``, ``eval2``, ``eval3`` and ``oldeval`` only, and reports on ``eval4`` (seeds
``5000 .. 5003``, fresh: run exactly once, at the end, with the final default; the default is not
changed after it).

Protocol of round 5. ``eval4`` has been looked at: a development set since round 5. Round 5 tunes
on ``dev``, ``dev2``, ``oldeval``, ``eval2``, ``eval3`` and ``eval4`` only, and reports on ``eval5``
(seeds ``6000 .. 6003``, fresh: run exactly once, at the end, with the final default; the default
is not changed after it).

Protocol of round 6. ``eval5`` has been looked at (its misses were analysed in round 5's report): a
development set since round 6. Round 6 tunes on ``dev``, ``dev2``, ``oldeval``, ``eval2``, ``eval3``,
``eval4`` and ``eval5`` only, and reports on ``eval6`` (seeds ``7000 .. 7003``, fresh: run exactly
once, at the end, with the final default; the default is not changed after it). Policy variants are
compared on the development sets by ``rarl2_generalization_sweep.py`` (saved references).

Per case, in the same run (one thread):

* ``default``: ``rarl2(F, r)`` with default settings (timed: the anchor "main's default" is this
  time on today's main; ``--anchor JSON`` compares the per-case times with a saved run);
* the reference: the best of balanced truncation (``balanced_truncation``), pyMOR's IRKA
  (continuous time only; default options) and ``rarl2(F, r, starts=REF_STARTS)``: about 10x the
  default's starts (bt, irka-bt, irka, irka-modal, irka-fixed (since round 2), modal, degree
  continuation ``extend`` -- rarl2's own
  start kind: the order r-1 optimum extended by one state; four extensions since round 3, one
  before --, 24 perturbation rounds from the best result and 30 random starts). rarl2 takes no user-given start model, so continuation is rarl2's
  ``extend`` (its r-1 optimum comes from its bt / irka-bt / irka starts).

The default's time is the median of 3 runs (``--quick``: 1). A case that raises is reported and
counts as a miss. Every error is ``h2_error(F, H, relative=True)`` (the default picks the yardstick), re-measured with
``precise=True`` below 1e-4 where that applies; where ``F``'s realization is too far from normal for
Gramians (drss 1001), these yardsticks use rarl2's balanced re-realization of the same transfer
function (``_realize``; its measured H2 distance is in the row as ``rerealized_delta``). ``resolution`` is ``ReductionResult.resolution`` of
the default run: where a gap is below about twice it, rarl2's double-precision criterion could not
order the two models (reported, still counted against the floors). Gap = ``(err_default - ref) / ref`` (negative:
the default beat the reference). Floors (issue 17 item 5): gap <= 1e-6 on >= 97% of the evaluation
cases, <= 1% on all.

Run: ``./dev bench rarl2_generalization --threads 1 [--quick] [--set dev|eval|dev2|eval2|oldeval|eval3|eval4|eval5|eval6|both]
[--json PATH] [--only FAMILY ...] [--cases FAMILY:SEED ...] [--anchor PATH] [--vs-round1]
[--reuse-ref PATH ...] [--report PATH]``.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import time
import warnings
from pathlib import Path

from _common import parser, print_table, setup, write_json

import torch  # noqa: E402  (after _common, which puts src/ on the path)

from _rarl2_families import FAMILIES, make_system, pick_order  # noqa: E402
from difflinalg import SingularEquationError  # noqa: E402
from difflinalg.control import StateSpace, as_system, balanced_truncation, h2_error, hankel_singular_values, rarl2  # noqa: E402
from difflinalg.control.reduction._rarl2._realize import Realization  # noqa: E402
from difflinalg.control.reduction._rarl2 import _policy  # noqa: E402

#: round 1's default search (the "after" of round 1), timed interleaved with the default by
#: ``--vs-round1``: the time anchor of round 2 on a machine whose load changes between runs
ROUND1_POLICY = _policy.SearchPolicy(default_starts=("bt", "irka-bt", "irka", "irka-modal", "perturb", "perturb"),
                                     disagree_starts=("extend", "random", "random"), agree_starts=(),
                                     patient_starts=(), perturb_merge=False, perturb_swap=0)

DEV_SEEDS, EVAL_SEED0 = 4, 1000
#: round 2 (module docstring, "Protocol"): a second development set and a fresh evaluation set
DEV2_SEEDS, DEV2_SEED0, EVAL2_SEED0 = 8, 2000, 3000
#: round 3: a fresh evaluation set (eval2 has been looked at: a development set since round 3)
EVAL3_SEED0 = 4000
#: round 4: a fresh evaluation set (eval3 has been looked at: a development set since round 4)
EVAL4_SEED0 = 5000
#: round 5: a fresh evaluation set (eval4 has been looked at: a development set since round 5)
EVAL5_SEED0 = 6000
#: round 6: a fresh evaluation set (eval5 has been looked at: a development set since round 6)
EVAL6_SEED0 = 7000
#: the set run only to report (a saved run's set may carry a prefix: ``r6_eval6``); the evaluation
#: sets of rounds 1-5 (eval, eval2, ..., eval5) are development sets since they were looked at
EVALUATION_SETS = ("eval6",)
#: the first evaluation set's misses of round 1, development cases since round 2 (looked at)
OLD_EVAL_MISSES = (("msd", 1000), ("drss", 1001), ("drss", 1002))
#: about 10x the default's starts (module docstring)
REF_STARTS = (["bt", "irka-bt", "irka", "irka-modal", "irka-fixed", "modal"] + ["extend"] * 4
              + ["perturb"] * 24 + ["random"] * 30)


# -- measurement ----------------------------------------------------------------------------------
def rel_error(F: StateSpace, H: StateSpace) -> float:
    """``h2_error(F, H, relative=True)``; below 1e-4 re-measured with ``precise=True`` (if it applies)."""
    if not H.is_stable():
        return math.inf
    e = float(h2_error(F, H, relative=True))
    if e < 1e-4:
        try:
            e = float(h2_error(F, H, relative=True, precise=True))
        except Exception:  # noqa: BLE001 - precise is not available for every system; keep the default
            pass
    return e


def pymor_irka(F: StateSpace, r: int):
    """pyMOR's IRKA (default options) on ``F``, as a StateSpace; None if pyMOR is missing or it fails."""
    try:
        from pymor.models.iosys import LTIModel
        from pymor.reductors.h2 import IRKAReductor
    except ImportError:
        return None
    fom = LTIModel.from_matrices(F.A.numpy(), F.B.numpy(), F.C.numpy(), F.D.numpy())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return as_system(IRKAReductor(fom).reduce(r))
    except Exception:  # noqa: BLE001 - IRKA may fail to converge or break down; then it is no reference
        return None


def run_case(family: str, seed: int, repeats: int, saved: dict | None = None, vs_round1: bool = False) -> dict | None:
    """One case (module docstring); ``saved``: a saved row whose reference is reused (not recomputed);
    ``vs_round1``: also time round 1's default (``ROUND1_POLICY``), interleaved with the default."""
    F = make_system(family, seed)
    try:
        hsv = hankel_singular_values(F)
        G, delta = F, None
    except SingularEquationError:
        # the realization is too far from normal for Gramians (drss 1001): the yardsticks (Hankel
        # singular values, balanced truncation, h2_error) use rarl2's balanced re-realization of the
        # same transfer function (measured H2 distance ``delta``, relative, 1e-13); rarl2 gets F
        R = Realization(F)
        G, delta = R.system, R.info["delta"]
        hsv = hankel_singular_values(G)
    r = pick_order(hsv, family, seed)
    if r is None:
        return None
    row = {"family": family, "seed": seed, "N": F.order, "p": F.C.shape[0], "m": F.B.shape[1], "order": r,
           "time": F.time, "hsv_tail": float(hsv[r] / hsv[0])}
    if delta is not None:
        row["rerealized_delta"] = delta
    times, times1 = [], []
    current = _policy.POLICY
    for _ in range(repeats):  # the default's time: median of ``repeats`` runs (the result is the same)
        t0 = time.perf_counter()
        res = rarl2(F, r)
        times.append(time.perf_counter() - t0)
        if vs_round1:
            _policy.POLICY = ROUND1_POLICY
            try:
                t0 = time.perf_counter()
                res1 = rarl2(F, r)
                times1.append(time.perf_counter() - t0)
            finally:
                _policy.POLICY = current
    row["default_s"] = statistics.median(times)
    if vs_round1:
        row["round1_s"] = statistics.median(times1)
        row["round1"] = rel_error(G, res1.model)
    row["default"] = rel_error(G, res.model)
    row["default_reported"] = res.relative_error
    row["default_best_start"] = res.best_start
    row["resolution"] = res.resolution  # the criterion's relative-error resolution at the default's error
    if saved is not None and saved.get("order") == r:
        refs = {k[4:]: saved[k] for k in ("ref_bt", "ref_pymor-irka", "ref_rarl2-10x") if k in saved}
        row.update(ref_s=saved["ref_s"], ref_best_start=saved["ref_best_start"], ref_starts=saved["ref_starts"],
                   reused_ref=True)
        return _finish(row, refs, res)
    refs = {"bt": rel_error(G, balanced_truncation(G, r))}
    if not F.discrete:
        Hi = pymor_irka(G, r)
        if Hi is not None:
            refs["pymor-irka"] = rel_error(G, Hi)
    t0 = time.perf_counter()
    big = rarl2(F, r, starts=REF_STARTS, seed=seed)
    row["ref_s"] = time.perf_counter() - t0
    refs["rarl2-10x"] = rel_error(G, big.model)
    row["ref_best_start"] = big.best_start
    ref_starts: dict[str, float] = {}
    for s in big.starts:
        ref_starts[s.name] = min(ref_starts.get(s.name, math.inf), s.relative_error)
    row["ref_starts"] = ref_starts
    return _finish(row, refs, res)


def _finish(row: dict, refs: dict, res) -> dict:
    """``row`` completed with the reference ``refs`` (source -> error), the gap and the default's starts."""
    row.update({f"ref_{k}": v for k, v in refs.items()})
    src = min(refs, key=refs.get)
    row["ref"], row["ref_source"] = refs[src], src
    row["gap"] = (row["default"] - row["ref"]) / row["ref"] if row["ref"] > 0 else math.nan
    # per-start errors of both runs (the development analysis: which start found the better basin)
    row["default_starts"] = {s.name: s.relative_error for s in res.starts}
    return row


def summary(rows: list[dict], key: str, anchor: dict | None) -> list[dict]:
    """Per-family (``key``) and total rows: cases, fraction within 1e-6 and 1%, max gap, times."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r[key], []).append(r)
    groups["TOTAL"] = rows
    out = []
    for name, rs in groups.items():
        gaps = [r["gap"] for r in rs]
        t = sum(r["default_s"] for r in rs)
        row = {key: name, "cases": len(rs), "<=1e-6": f"{sum(g <= 1e-6 for g in gaps)}/{len(rs)}",
               "<=1%": f"{sum(g <= 1e-2 for g in gaps)}/{len(rs)}", "max gap": max(gaps),
               "default s": t, "ref s": sum(r["ref_s"] for r in rs)}
        if all("round1_s" in r for r in rs):
            row["round-1 s"] = sum(r["round1_s"] for r in rs)
            row["time / round 1"] = t / row["round-1 s"]
        if anchor:
            ta = [anchor.get((r["family"], r["seed"])) for r in rs]
            if all(a is not None for a in ta):
                row["time / anchor"] = t / sum(ta)
        out.append(row)
    return out


def misses(rows: list[dict]) -> list[dict]:
    """The development analysis: for each case above the 1e-6 floor, the default's best start, the
    reference's source and best start, and per start kind the best relative gap of the reference
    run's starts of that kind to the reference (0: that kind found the better basin)."""
    out = []
    for r in rows:
        if not r["gap"] > 1e-6:
            continue
        kinds = {k: (v - r["ref"]) / r["ref"] for k, v in r["ref_starts"].items()}
        out.append({"family": r["family"], "seed": r["seed"], "N": r["N"], "pxm": f"{r['p']}x{r['m']}",
                    "order": r["order"], "default": r["default"], "gap": r["gap"],
                    "resolution": r.get("resolution", math.nan), "default best": r["default_best_start"],
                    "ref source": r["ref_source"], "ref best": r["ref_best_start"],
                    "kinds at ref (gap <= 1e-6)": ",".join(sorted(k for k, g in kinds.items() if g <= 1e-6)) or "-"})
    return out


def floors(rows: list[dict], failed: int = 0) -> dict:
    """The issue's floors over ``rows`` (cases that ``failed`` count as misses)."""
    n = len(rows) + failed
    within6 = sum(r["gap"] <= 1e-6 for r in rows)
    within1 = sum(r["gap"] <= 1e-2 for r in rows)
    return {"cases": n, "failed": failed, "within_1e-6": within6, "within_1pct": within1,
            "floor_97pct_1e-6": bool(n and within6 >= 0.97 * n), "floor_all_1pct": bool(n and within1 == n)}


def report(name: str, rows: list[dict], failures: list[dict], anchor: dict | None) -> tuple[list[dict], dict]:
    """Print the tables of set ``name``; return its per-family summary and floors."""
    cols = ["family", "seed", "N", "p", "m", "order", "default", "ref", "ref_source", "gap", "default_s", "ref_s"]
    print_table(rows, cols, title=f"{name} set: cases")
    summ = summary(rows, "family", anchor)
    print_table(summ, title=f"{name} set: per family (gap = (default - ref) / ref)")
    if name.split("_")[-1] not in EVALUATION_SETS:  # the analysis of misses: development sets only
        print_table(misses(rows), title=f"{name} set: cases above 1e-6 (which start kinds of the reference reached it)")
    for f in failures:
        print(f"{name} FAILED: {f['family']} seed {f['seed']}: {f['error']}")
    fl = floors(rows, len(failures))
    print(f"{name} floors: within 1e-6 {fl['within_1e-6']}/{fl['cases']} "
          f"({'met' if fl['floor_97pct_1e-6'] else 'NOT met'}: >= 97%), within 1% {fl['within_1pct']}/{fl['cases']} "
          f"({'met' if fl['floor_all_1pct'] else 'NOT met'}: all)")
    return summ, fl


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--set", choices=("dev", "eval", "both", "dev2", "eval2", "oldeval", "eval3", "eval4", "eval5",
                                        "eval6"),
                   default="both",
                   help="which seed set to run (module docstring)")
    p.add_argument("--cases", nargs="+", metavar="FAMILY:SEED", help="only these cases (development)")
    p.add_argument("--reuse-ref", type=Path, nargs="+", metavar="PATH",
                   help="take each case's reference from a saved run (tuning iterations only)")
    p.add_argument("--vs-round1", action="store_true",
                   help="also time round 1's default search, interleaved (the time anchor of round 2)")
    p.add_argument("--only", nargs="+", metavar="FAMILY", choices=FAMILIES, help="only these families")
    p.add_argument("--seeds", type=int, default=None, help=f"seeds per family and set (default {DEV_SEEDS}, --quick 1)")
    p.add_argument("--report", type=Path, metavar="PATH", help="only re-print the tables of a saved --json run")
    p.add_argument("--anchor", type=Path, metavar="PATH", help="JSON of an earlier run: per-case default times to compare")
    args = p.parse_args()
    setup(args)
    try:
        from pymor.core.logger import set_log_levels

        set_log_levels({"pymor": "ERROR"})
    except ImportError:
        print("rarl2_generalization: pyMOR not installed: no IRKA reference, no msd/heat1d families", file=sys.stderr)
    k = args.seeds or (1 if args.quick else DEV_SEEDS)
    families = args.only or FAMILIES
    sets = {"dev": [(f, i) for f in families for i in range(k)],
            "eval": [(f, i) for f in families for i in range(EVAL_SEED0, EVAL_SEED0 + k)],
            "dev2": [(f, i) for f in families for i in range(DEV2_SEED0, DEV2_SEED0 + (args.seeds or DEV2_SEEDS))],
            "eval2": [(f, i) for f in families for i in range(EVAL2_SEED0, EVAL2_SEED0 + k)],
            "eval3": [(f, i) for f in families for i in range(EVAL3_SEED0, EVAL3_SEED0 + k)],
            "eval4": [(f, i) for f in families for i in range(EVAL4_SEED0, EVAL4_SEED0 + k)],
            "eval5": [(f, i) for f in families for i in range(EVAL5_SEED0, EVAL5_SEED0 + k)],
            "eval6": [(f, i) for f in families for i in range(EVAL6_SEED0, EVAL6_SEED0 + k)],
            "oldeval": [c for c in OLD_EVAL_MISSES if c[0] in families]}
    if args.cases:
        sets = {"cases": [(c.split(":")[0], int(c.split(":")[1])) for c in args.cases]}
    chosen = ("cases",) if args.cases else ("dev", "eval") if args.set == "both" else (args.set,)
    reuse = {}
    if args.reuse_ref:  # tuning iterations only: the reference values of a saved run, not recomputed
        for path in args.reuse_ref:
            old = json.loads(path.read_text())
            reuse.update({(r["family"], r["seed"]): r for s_ in old.values() if isinstance(s_, dict) and "rows" in s_
                          for r in s_["rows"]})
    anchor = None
    if args.anchor:
        old = json.loads(args.anchor.read_text())
        anchor = {(r["family"], r["seed"]): r["default_s"] for s in old.values() if isinstance(s, dict)
                  for r in s.get("rows", [])}
    out: dict = {"threads": torch.get_num_threads(), "ref_starts": len(REF_STARTS)}
    if args.report:  # re-print the tables of a saved run (no computation)
        saved = json.loads(args.report.read_text())
        for name in saved:
            if isinstance(saved[name], dict) and "rows" in saved[name]:
                report(name, saved[name]["rows"], saved[name].get("failures", []), anchor)
        return 0
    for name in chosen:
        rows, failures = [], []
        for fam, seed in sets[name]:
            try:
                row = run_case(fam, seed, 1 if args.quick else min(args.repeats, 3), reuse.get((fam, seed)),
                               args.vs_round1)
            except ImportError as exc:
                print(f"  {fam} seed {seed}: skipped ({exc})", file=sys.stderr)
                continue
            except Exception as exc:  # noqa: BLE001 - a failing case is a miss, reported, not a lost run
                print(f"  {fam} seed {seed}: FAILED {type(exc).__name__}: {exc}", file=sys.stderr)
                failures.append({"family": fam, "seed": seed, "error": f"{type(exc).__name__}: {exc}"})
                continue
            if row is None:
                print(f"  {fam} seed {seed}: no order above the tiny-error regime", file=sys.stderr)
                continue
            rows.append(row)
            print(f"  [{name}] {fam:<14} seed {seed:<5} N={row['N']:<4} {row['p']}x{row['m']} r={row['order']:<3} "
                  f"default {row['default']:.6e} ({row['default_s']:.2f} s, {row['default_best_start']}) "
                  f"ref {row['ref']:.6e} ({row['ref_source']}, {row['ref_best_start']}) gap {row['gap']:+.1e}",
                  file=sys.stderr, flush=True)
        summ, fl = report(name, rows, failures, anchor)
        out[name] = {"rows": rows, "summary": summ, "floors": fl, "failures": failures}
    write_json(out, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
