"""RARL2 at scale (issue 18): rarl2_large vs pyMOR IRKA and pyMOR balanced truncation on
generated sparse models (2-D heat, 2-D upwind convection-diffusion, mass-spring-damper descriptor).

Each (model, N, r, method) runs in its own subprocess (one thread) so that its peak memory
(``resource.getrusage``, max RSS) is its own. The relative H2 error of every result is measured
twice: by pyMOR's ``h2_norm`` of the error system (the outside yardstick) and by difflinalg's
``h2_error_sparse`` (the error system's low-rank Gramian: no cancellation). Floors (issue 18):
convection-diffusion N = 1e3..3e3: rarl2 time <= IRKA time; N >= 1e4: rarl2 error <= min(IRKA, BT)
(1 + 1e-6) and time <= IRKA time. Time-vs-N exponents: log-log least squares per (model, r, method)
over the sizes run (``--merge`` adds the rows of earlier runs, e.g. N = 1e5 run alone later; a
later file's row replaces an earlier one of the same model, N, r and method).

    python benchmarks/rarl2_large.py [--sizes 1000 3000 10000] [--orders 10 20] [--models ...]
        [--methods ...] [--yardstick both|ours] [--merge old.json] [--json out.json]
    python benchmarks/rarl2_large.py --merge old.json new.json --markdown [--json merged.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("heat", "convdiff", "msd")
METHODS = ("rarl2_large", "pymor_irka", "pymor_bt", "pymor_bt_sr")
DEFAULT_METHODS = METHODS[:3]
# pymor_bt_sr: pyMOR's BT with the square-root projection (E_r = I by construction), the BT anchor where
# the default balancing-free projection returns a singular E_r (heat and convdiff at 10^5, r = 20)
BT_METHODS = ("pymor_bt", "pymor_bt_sr")


def make(model: str, N: int):
    from difflinalg.control.large import convection_diffusion_2d, heat_2d, msd_descriptor

    if model == "msd":
        return msd_descriptor(N // 2)
    n = round(math.sqrt(N))
    return heat_2d(n) if model == "heat" else convection_diffusion_2d(n)


def worker(model: str, N: int, r: int, method: str, yardstick: str = "both") -> dict:
    """One configuration, in this process: time the method, then measure its error both ways."""
    import resource
    import time

    import torch

    torch.set_num_threads(1)
    from pymor.models.iosys import LTIModel

    from difflinalg.control.large import h2_norm_sparse, rarl2_large
    from difflinalg.control.large._gramians import h2_error_norm

    sys_ = make(model, N)
    fom = LTIModel.from_matrices(sys_.A, sys_.B, sys_.C, E=sys_.E)
    t = time.perf_counter()
    info = {}
    if method == "rarl2_large":
        import warnings

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            R = rarl2_large(sys_, r)
        H = R.model
        info = {"best_start": R.best_start, "surrogate_order": R.surrogate_order, "factorizations": R.factorizations,
                "order": H.order, "rel_err_rarl2": R.relative_error, "timings": R.timings,
                "warnings": [str(w.message)[:160] for w in caught]}
    else:
        from pymor.reductors.bt import BTReductor
        from pymor.reductors.h2 import IRKAReductor

        if method == "pymor_irka":
            rom = IRKAReductor(fom).reduce(r)
        else:
            rom = BTReductor(fom).reduce(r, projection="sr" if method == "pymor_bt_sr" else "bfsr")
        from difflinalg.control import StateSpace

        H = StateSpace.from_pymor(rom)
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    from difflinalg import UnstableSystemError

    try:
        en = h2_error_norm(sys_, H)  # h2_error_sparse's value (en.reported), with its resolution
    except UnstableSystemError as e:  # a reduced model with an unstable pole: its H2 error is infinite
        return {"model": model, "N": sys_.order, "r": r, "method": method, "seconds": seconds, "peak_bytes": peak,
                "rel_err_pymor": math.inf, "rel_err_ours": math.inf, "unstable": str(e)[:160], **info}
    yard = math.nan
    if yardstick == "both":
        rom = H.to_pymor()
        yard = float((fom - rom).h2_norm() / fom.h2_norm())
    return {"model": model, "N": sys_.order, "r": r, "method": method, "seconds": seconds, "peak_bytes": peak,
            "rel_err_pymor": yard, "rel_err_ours": en.reported / en.target_norm,
            "resolution_ours": en.resolution / en.target_norm, "norm_ours": h2_norm_sparse(sys_), **info}


def order_of(model: str, N: int) -> int:
    """The state count ``make(model, N)`` builds (the grids round N to a square, msd to an even N)."""
    return 2 * (N // 2) if model == "msd" else round(math.sqrt(N)) ** 2


def merge_rows(runs: list[list[dict]]) -> list[dict]:
    """The rows of several runs, a later run's row replacing an earlier one of the same (model,
    states, r, method) (a re-run after a code change), ordered by model, N, r and method."""
    rows = {}
    for run_rows in runs:
        for row in run_rows:
            row = {**row, "N": order_of(row["model"], row["N"])}  # older failed rows hold the N asked for
            rows[(row["model"], row["N"], row["r"], row["method"])] = row
    order = {m: i for i, m in enumerate(MODELS)} | {m: i for i, m in enumerate(METHODS)}
    return [rows[k] for k in sorted(rows, key=lambda k: (order[k[0]], k[1], k[2], order[k[3]]))]


def run(model, N, r, method, timeout, yardstick="both") -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [sys.executable, __file__, "--worker", model, str(N), str(r), method, yardstick]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"model": model, "N": order_of(model, N), "r": r, "method": method, "error": f"timeout {timeout:g} s"}
    if out.returncode != 0:
        return {"model": model, "N": order_of(model, N), "r": r, "method": method,
                "error": out.stderr.strip().splitlines()[-1][:200]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else (1.0 if a == b else math.inf)  # both 0: below the yardstick's noise


def exponents(rows: list[dict]) -> list[dict]:
    """Time ~ N^a: log-log least squares per (model, r, method) over the sizes with a result."""
    import numpy as np

    out = []
    for key in sorted({(r["model"], r["r"], r["method"]) for r in rows}):
        pts = sorted((r["N"], r["seconds"]) for r in rows
                     if (r["model"], r["r"], r["method"]) == key and "error" not in r)
        if len({n for n, _ in pts}) < 2:
            continue
        x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
        a = float(np.polyfit(x, y, 1)[0])
        out.append({"model": key[0], "r": key[1], "method": key[2], "exponent": a,
                    "sizes": [p[0] for p in pts]})
    return out


def _err(row: dict) -> float:
    """The error used for the floors: pyMOR's yardstick where it was run, else ours."""
    v = row.get("rel_err_pymor", math.nan)
    return row["rel_err_ours"] if v is None or math.isnan(v) else v


def _res(row: dict) -> float:
    """The relative resolution of our yardstick on the row (0 for rows measured before it was kept)."""
    return row.get("resolution_ours", 0.0)


def floors(rows: list[dict]) -> list[dict]:
    """The issue's floors per (model, N, r) from the rows. BT's error is the lower of its projections
    run; where IRKA gave no result within its limit, time is decided against the limit (a bound) and
    error against BT alone (undecided without a BT result)."""
    out = []
    keys = sorted({(r["model"], r["N"], r["r"]) for r in rows})
    for key in keys:
        got = {r["method"]: r for r in rows if (r["model"], r["N"], r["r"]) == key and "error" not in r}
        late = [r for r in rows if (r["model"], r["N"], r["r"], r["method"]) == (*key, "pymor_irka")
                and r.get("error", "").startswith("timeout")]
        bts = [got[m] for m in BT_METHODS if m in got]
        if "rarl2_large" not in got or ("pymor_irka" not in got and not late) or ("pymor_irka" in got and not bts):
            continue
        ra = got["rarl2_large"]
        bt_ours = min((b["rel_err_ours"] for b in bts), default=math.nan)
        bt_yard = min((_err(b) for b in bts), default=math.nan)
        if "pymor_irka" in got:
            ir = got["pymor_irka"]
            f = {"time_ratio": ra["seconds"] / ir["seconds"],
                 "err_ratio_pymor": _ratio(_err(ra), min(_err(ir), bt_yard)),
                 "err_ratio_ours": _ratio(ra["rel_err_ours"], min(ir["rel_err_ours"], bt_ours))}
            label = "error <= min(IRKA,BT)(1+1e-6), time <= IRKA"
        else:
            limit = float(late[0]["error"].split()[1])
            f = {"time_ratio": ra["seconds"] / limit, "time_bound": True,
                 "err_ratio_pymor": _ratio(_err(ra), bt_yard) if bts else math.nan,
                 "err_ratio_ours": _ratio(ra["rel_err_ours"], bt_ours) if bts else math.nan}
            label = (f"error <= BT(1+1e-6), time <= IRKA (IRKA: no result in {limit:g} s)" if bts else
                     f"time <= IRKA (IRKA: no result in {limit:g} s; error undecided)")
        f = {"model": key[0], "N": key[1], "r": key[2], **f}
        if key[0] == "convdiff" and key[1] <= 3500:
            f["floor"] = "time <= IRKA"
            f["met"] = f["time_ratio"] <= 1
        elif key[1] >= 10000:
            f["floor"] = label
            # error by our yardstick (the error system's Gramian, its resolution per row); pyMOR's h2_norm
            # of the error system is reported beside it (it disagrees at 1e-6 on convdiff: README)
            f["met"] = f["time_ratio"] <= 1 and (f["err_ratio_ours"] <= 1 + 1e-6 or not bts)
            anchors = [got[m] for m in ("pymor_irka", *BT_METHODS) if m in got]
            if anchors:
                # each value is within its resolution (rows with resolution_ours) of the true error: the
                # floor is met where ours is not above the best anchor as far as the yardstick resolves,
                # and says so where the intervals overlap
                b = min(anchors, key=lambda a: a["rel_err_ours"])
                a_hi, a_lo = ra["rel_err_ours"] + _res(ra), ra["rel_err_ours"] - _res(ra)
                clear = a_hi <= (b["rel_err_ours"] - _res(b)) * (1 + 1e-6)
                # the ratio alone fails, or a value compared is a bound (at its resolution)
                unresolved = not f["met"] or ra["rel_err_ours"] <= _res(ra) or b["rel_err_ours"] <= _res(b)
                if unresolved and not clear and a_lo <= (b["rel_err_ours"] + _res(b)) * (1 + 1e-6):
                    f["met"] = f["time_ratio"] <= 1
                    f["floor"] = label + " (within the yardstick's resolution)"
        out.append(f)
    return out


def markdown(rows: list[dict], fl: list[dict], ex: list[dict]) -> str:
    """The README tables (rows, floors, exponents) as markdown."""
    out = ["| model | N | r | method | time s | peak MB | rel. H2 err (ours) | rel. H2 err (pyMOR h2_norm) | kept |",
           "|---|---:|---:|---|---:|---:|---:|---:|---|"]
    for r in rows:
        if "error" in r:
            out.append(f"| {r['model']} | {r['N']} | {r['r']} | {r['method']} | - | - | failed: {r['error'][:110]} | | |")
            continue
        yard = r.get("rel_err_pymor", math.nan)
        yard = "-" if yard is None or math.isnan(yard) else f"{yard:.6e}"
        kept = r.get("best_start", "") or ("unstable model" if "unstable" in r else "")
        if r.get("order", r["r"]) != r["r"]:
            kept += f" (order {r['order']})"
        err = f"{r['rel_err_ours']:.6e}"
        if r["rel_err_ours"] <= _res(r):  # below the yardstick's resolution: the value is the resolution
            err = f"<= {err} (resolution)"
        out.append(f"| {r['model']} | {r['N']} | {r['r']} | {r['method']} | {r['seconds']:.2f} | "
                   f"{r['peak_bytes'] / 2**20:.0f} | {err} | {yard} | {kept} |")
    out += ["", "| model | N | r | time / IRKA | err / min(IRKA, BT) (ours) | floor | met |",
            "|---|---:|---:|---:|---:|---|---|"]
    for f in fl:
        met = "yes" if f.get("met") else "NO" if "met" in f else "-"
        tr = f"< {f['time_ratio']:.3f}" if f.get("time_bound") else f"{f['time_ratio']:.2f}"
        er = "-" if math.isnan(f["err_ratio_ours"]) else f"{f['err_ratio_ours']:.8f}"
        out.append(f"| {f['model']} | {f['N']} | {f['r']} | {tr} | {er} | "
                   f"{f.get('floor', '(none)')} | {met} |")
    out += ["", "| model | r | method | time ~ N^a | sizes |", "|---|---:|---|---:|---|"]
    for e in ex:
        out.append(f"| {e['model']} | {e['r']} | {e['method']} | {e['exponent']:.2f} | {', '.join(map(str, e['sizes']))} |")
    return "\n".join(out)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        sys.path.insert(0, str(ROOT / "src"))
        m, N, r, meth = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
        print(json.dumps(worker(m, N, r, meth, sys.argv[6] if len(sys.argv) > 6 else "both")))
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 3000, 10000])
    p.add_argument("--orders", type=int, nargs="+", default=[10, 20])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), choices=METHODS)
    p.add_argument("--yardstick", default="both", choices=("both", "ours"),
                   help="'ours': skip pyMOR's h2_norm of the error system (large N)")
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--merge", metavar="PATH", nargs="+", default=[], help="add the rows of earlier runs")
    p.add_argument("--json", metavar="PATH")
    p.add_argument("--markdown", action="store_true",
                   help="only print the tables of the --merge runs (and write them merged to --json)")
    a = p.parse_args()
    rows = merge_rows([json.loads(Path(path).read_text())["rows"] for path in a.merge])
    if a.markdown:
        print(markdown(rows, floors(rows), exponents(rows)))
        if a.json:  # the merged rows, e.g. back into benchmarks/rarl2_large.json
            Path(a.json).write_text(json.dumps({"rows": rows, "floors": floors(rows), "exponents": exponents(rows)},
                                               indent=1))
        return
    print(f"{'model':<9} {'N':>6} {'r':>3} {'method':<12} {'time s':>8} {'peak MB':>8} {'rel err (pyMOR)':>16} "
          f"{'rel err (ours)':>15}  note")
    for model in a.models:
        for N in a.sizes:
            for r in a.orders:
                for meth in a.methods:
                    row = run(model, N, r, meth, a.timeout, a.yardstick)
                    rows = merge_rows([rows, [row]])
                    if "error" in row:
                        print(f"{model:<9} {N:>6} {r:>3} {meth:<12} failed: {row['error']}", flush=True)
                        continue
                    print(f"{model:<9} {row['N']:>6} {r:>3} {meth:<12} {row['seconds']:8.2f} "
                          f"{row['peak_bytes'] / 2**20:8.0f} {row['rel_err_pymor']:16.6e} {row['rel_err_ours']:15.6e}  "
                          f"{row.get('best_start', '')}", flush=True)
    fl = floors(rows)
    print("\nfloors")
    for f in fl:
        print(f"{f['model']:<9} {f['N']:>6} {f['r']:>3} time/IRKA {f['time_ratio']:.2f} err/min(IRKA,BT) "
              f"{f['err_ratio_pymor']:.8f} (ours {f['err_ratio_ours']:.8f})  {f.get('floor', '')}: "
              f"{'met' if f.get('met') else 'NOT met' if 'met' in f else '-'}")
    ex = exponents(rows)
    print("\ntime ~ N^a (log-log least squares over the sizes run)")
    for e in ex:
        print(f"{e['model']:<9} r={e['r']:>3} {e['method']:<12} a = {e['exponent']:.2f}  (N = {e['sizes']})")
    if a.json:
        Path(a.json).write_text(json.dumps({"rows": rows, "floors": fl, "exponents": ex}, indent=1))


if __name__ == "__main__":
    main()
