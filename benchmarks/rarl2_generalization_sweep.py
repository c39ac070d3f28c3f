"""RARL2 generalization, tuning tool: search-policy variants on saved development cases (issue 17 item 5).

Each case ``FAMILY:SEED`` of a saved ``rarl2_generalization.py --json`` run is solved once per
variant, the variants interleaved per case in one process (one thread), against the saved reference
(not recomputed). Prints per variant: cases within 1e-6 / 1% of the reference, total time and its
ratio to the first variant (the current default), and the cases whose error changed by more than
1e-6 (relative). Development sets only: an evaluation set is never swept.

Variants are named in ``VARIANTS`` (policy fields replaced in ``_policy.POLICY``).

Run: ``python benchmarks/rarl2_generalization_sweep.py --ref PATH [--sets KEY ...] [--cases F:S ...]
[--variants NAME ...] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

from _common import setup  # noqa: F401  (puts src/ on the path)

import torch

from _rarl2_families import make_system
from rarl2_generalization import EVALUATION_SETS, rel_error
from difflinalg import SingularEquationError
from difflinalg.control import hankel_singular_values, rarl2
from difflinalg.control.reduction._rarl2 import _policy
from difflinalg.control.reduction._rarl2._realize import Realization

#: round 5's default (the anchor of round 6's sweeps: "default")
_D = dataclasses.replace(_policy.SearchPolicy(), disagree_jitter=False)
#: name -> fields of SearchPolicy replaced (the first is the anchor of the time ratios)
VARIANTS: dict[str, dict] = {
    "default": {},
    # round 6: the random jump (_perturb.jitter_start) where the starts disagree (the default since
    # round 6; "default" here is round 5's), where they agree, both
    "jitter": {"disagree_jitter": True},
    "agree-jitter": {"agree_jitter": True},
    "jitter-both": {"disagree_jitter": True, "agree_jitter": True},
    "agree+extend": {"agree_starts": ("extend-pole", "extend-pole", "extend")},
    "disagree+extend": {"disagree_starts": ("extend-pole", "extend", "extend", "random", "random")},
    "both+extend": {"agree_starts": ("extend-pole", "extend-pole", "extend"),
                    "disagree_starts": ("extend-pole", "extend", "extend", "random", "random")},
    "disagree+extend-last": {"disagree_starts": ("extend-pole", "extend", "random", "random", "extend")},
    "disagree+random-last": {"disagree_starts": ("extend-pole", "extend", "random", "random", "random")},
    "disagree-random2extend": {"disagree_starts": ("extend-pole", "extend", "random", "extend")},
    "disagree-2extend-1random": {"disagree_starts": ("extend-pole", "extend", "extend", "random")},
    "agree+2ext": {"agree_starts": ("extend-pole", "extend-pole", "extend", "extend")},
    "agree-pole+ext": {"agree_starts": ("extend-pole", "extend")},
    "agree+random": {"agree_starts": ("extend-pole", "extend-pole", "random")},
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ref", type=Path, nargs="+", required=True, help="saved runs (JSON) with the references")
    p.add_argument("--sets", nargs="+", help="keys of the saved runs to sweep (default: all development keys)")
    p.add_argument("--cases", nargs="+", metavar="FAMILY:SEED")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS))
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.sets and any(k.split("_")[-1] in EVALUATION_SETS for k in args.sets):
        p.error(f"--sets: {EVALUATION_SETS} is the evaluation set, run only to report (never swept); "
                "name development keys (e.g. r5_dev)")
    rows: dict = {}
    for path in args.ref:
        for key, s in json.loads(path.read_text()).items():
            if not (isinstance(s, dict) and "rows" in s) or key.split("_")[-1] in EVALUATION_SETS:
                continue
            if args.sets and key not in args.sets:
                continue
            rows.update({(r["family"], r["seed"]): r for r in s["rows"]})
    if args.cases:
        want = {(c.split(":")[0], int(c.split(":")[1])) for c in args.cases}
        rows = {k: v for k, v in rows.items() if k in want}
    out = {v: {} for v in args.variants}
    current = _policy.POLICY
    for (fam, seed), saved in sorted(rows.items()):
        F = make_system(fam, seed)
        try:
            hankel_singular_values(F)
            G = F
        except SingularEquationError:
            G = Realization(F).system
        for v in args.variants:
            _policy.POLICY = dataclasses.replace(_D, **VARIANTS[v])
            try:
                t0 = time.perf_counter()
                res = rarl2(F, saved["order"])
                dt = time.perf_counter() - t0
            finally:
                _policy.POLICY = current
            e = rel_error(G, res.model)
            out[v][f"{fam}:{seed}"] = {"err": e, "s": dt, "gap": (e - saved["ref"]) / saved["ref"],
                                       "best": res.best_start}
        print(f"{fam}:{seed} r={saved['order']} " + " ".join(
            f"{v}={out[v][f'{fam}:{seed}']['gap']:+.1e}/{out[v][f'{fam}:{seed}']['s']:.2f}s" for v in args.variants),
            file=sys.stderr, flush=True)
    base = out[args.variants[0]]
    t0 = sum(x["s"] for x in base.values())
    print(f"{'variant':<20} {'<=1e-6':>8} {'<=1%':>8} {'time s':>8} {'ratio':>6}  changed (gap before -> after)")
    for v in args.variants:
        o = out[v]
        n = len(o)
        w6 = sum(x["gap"] <= 1e-6 for x in o.values())
        w1 = sum(x["gap"] <= 1e-2 for x in o.values())
        t = sum(x["s"] for x in o.values())
        ch = [f"{c} {base[c]['gap']:+.2e}->{x['gap']:+.2e}" for c, x in o.items()
              if abs(x["err"] - base[c]["err"]) > 1e-6 * base[c]["err"]]
        print(f"{v:<20} {w6:>4}/{n:<3} {w1:>4}/{n:<3} {t:8.1f} {t / t0 if t0 else math.nan:6.2f}  {'; '.join(ch) or '-'}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
