"""Singular and near-singular matrix equations: garbage returned vs ``SingularEquationError`` raised
(issue 16 item 2), and the cost of the singularity checks on generic inputs.

1. Sweep. For each size n = 2..8 and each equation -- Sylvester ``A X + X B = C``, Stein
   ``X - A X B = C``, discrete Lyapunov ``A X A^T - X + Q = 0``, continuous Lyapunov
   ``A X + X A^T = Q`` -- 200 random real float64 cases that are *exactly* singular (in exact
   arithmetic; the coefficients are rounded to float64), solved with ``method="auto"`` (the
   Kronecker LU for these sizes) and ``method="schur"``. Coefficients are ``Q T Q^T`` with ``Q``
   random orthogonal and ``T`` upper (quasi-)triangular with a random strict upper part (non-normal)
   and prescribed eigenvalues: Sylvester ``lambda(B) ∋ -lambda(A)[k]``, Stein ``lambda(B) ∋
   1 / lambda(A)[k]``, discrete Lyapunov an eigenvalue ``±1``, ``e^{±i theta}`` or a reciprocal pair
   ``(r, 1/r)``, continuous an eigenvalue ``0``, ``±i w`` or a pair ``(r, -r)`` -- half of the shared
   eigenvalues complex-conjugate pairs (2 x 2 blocks) where the equation allows. A singular
   equation has no unique solution and, for a random right side, none at all: any returned ``X``
   is garbage. "garbage" counts returned results, "raised" ``SingularEquationError``.
   Near-singular cases: the same with the shared eigenvalue moved by ``delta`` (1e-6, 1e-10,
   1e-13): solvable, so the right outcome is a solution (digits lost ~ ``kappa eps``, where
   ``kappa`` is the condition number of the Kronecker matrix, computed here by SVD), a
   ``PrecisionWarning`` when ``kappa eps > 1e-2``, or the error when ``kappa eps`` is of order 1.
   "silent" counts results returned without error or warning although ``kappa eps > 1e-2`` (and
   ``> 1``: not one correct digit). The library's estimate of ``kappa`` is within a factor ~n of
   the SVD's for normal coefficients, so cases near the 1e-2 threshold can fall either side.
2. Overhead. Solve time of generic nonsingular inputs (n = 2, 4, 8; one pair and a batch of 100),
   before vs after, with ``method="auto"``: medians of interleaved rounds, each round running the
   two code versions as separate processes.

"before" is the code at ``--baseline-src DIR`` (a ``src`` directory of main's code, e.g. from
``git archive main src | tar -x -C /tmp/main``), run in a subprocess with the same seeds.

    ./dev bench singular_equations [--quick] [--json PATH|-] [--baseline-src DIR]
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

KINDS = ("sylvester", "stein", "discrete", "continuous")
DELTAS = (1e-6, 1e-10, 1e-13)


# ----------------------------------------------------------------------------------------------
# Case generation (numpy, float64)


def _orth(rng, n):
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def _with_eigs(rng, reals, pairs, nonnormal=0.3):
    """A real matrix ``Q T Q^T`` with eigenvalues ``reals`` and ``a ± i w`` for ``(a, w)`` in
    ``pairs`` (2 x 2 blocks), a random strict upper part of size ``nonnormal``."""
    n = len(reals) + 2 * len(pairs)
    T = np.triu(rng.standard_normal((n, n)), 1) * nonnormal
    blocks = [("r", x) for x in reals] + [("c", p) for p in pairs]
    rng.shuffle(blocks)
    k = 0
    for kind, v in blocks:
        if kind == "r":
            T[k, k] = v
            k += 1
        else:
            a, w = v
            s = math.exp(rng.uniform(-0.5, 0.5))  # off-diagonals b, -c with b c = w^2
            T[k:k + 2, k:k + 2] = [[a, w * s], [-w / s, a]]
            k += 2
    Q = _orth(rng, n)
    return Q @ T @ Q.T


def _spectrum(rng, n, forced_real=(), forced_pairs=()):
    """Random eigenvalues (reals, pairs) for an n x n matrix containing the forced ones."""
    reals, pairs = list(forced_real), list(forced_pairs)
    while len(reals) + 2 * len(pairs) < n:
        if n - len(reals) - 2 * len(pairs) >= 2 and rng.random() < 0.3:
            pairs.append((rng.standard_normal(), abs(rng.standard_normal()) + 0.3))
        else:
            reals.append(rng.standard_normal())
    return reals, pairs


def case(kind, n, rng, delta=0.0):
    """(A, B, C) of one exactly (delta = 0) or nearly singular equation; B is None for Lyapunov."""
    cpx = n >= 2 and rng.random() < 0.5
    if kind in ("sylvester", "stein"):
        if cpx:
            a, w = rng.standard_normal(), abs(rng.standard_normal()) + 0.3
            if kind == "sylvester":
                b = (-a + delta, w)
            else:  # 1 / (a + i w) = (a - i w) / |.|^2: same pair (conjugate) of the inverse
                r2 = a * a + w * w
                b = (a / r2 * (1 + delta), w / r2 * (1 + delta))
            A = _with_eigs(rng, *_spectrum(rng, n, (), [(a, w)]))
            B = _with_eigs(rng, *_spectrum(rng, n, (), [b]))
        else:
            lam = rng.standard_normal()
            lam = lam if abs(lam) > 0.2 else 0.2 + abs(lam)
            mu = -lam + delta if kind == "sylvester" else (1 + delta) / lam
            A = _with_eigs(rng, *_spectrum(rng, n, [lam]))
            B = _with_eigs(rng, *_spectrum(rng, n, [mu]))
        C = rng.standard_normal((n, n))
        return A, B, C
    choice = rng.integers(3) if n >= 2 else 0
    if kind == "discrete":
        if choice == 0:
            A = _with_eigs(rng, *_spectrum(rng, n, [rng.choice([-1.0, 1.0]) * (1 + delta)]))
        elif choice == 1:
            th = rng.uniform(0.2, 3.0)
            A = _with_eigs(rng, *_spectrum(rng, n, (), [((1 + delta) * math.cos(th), (1 + delta) * math.sin(th))]))
        else:
            r = rng.uniform(0.3, 0.9) * rng.choice([-1.0, 1.0])
            A = _with_eigs(rng, *_spectrum(rng, n, [r, (1 + delta) / r]))
    else:
        if choice == 0:
            A = _with_eigs(rng, *_spectrum(rng, n, [delta]))
        elif choice == 1:
            A = _with_eigs(rng, *_spectrum(rng, n, (), [(delta, abs(rng.standard_normal()) + 0.3)]))
        else:
            r = rng.uniform(0.3, 2.0)
            A = _with_eigs(rng, *_spectrum(rng, n, [r, -r + delta]))
    Q = rng.standard_normal((n, n))
    return A, None, Q + Q.T


def kron_cond(kind, A, B):
    """2-norm condition number of the equation's Kronecker matrix (SVD; reference only)."""
    n = A.shape[0]
    B = A.T if kind in ("discrete", "continuous") else B  # real: A^H = A^T
    I = np.eye(n)
    if kind in ("sylvester", "continuous"):
        M = np.kron(A, I) + np.kron(I, B.T)
    else:
        M = np.eye(n * n) - np.kron(A, B.T)
    s = np.linalg.svd(M, compute_uv=False)
    return s[0] / s[-1] if s[-1] > 0 else math.inf


def solve(dl, kind, A, B, C, method):
    t = lambda x: torch.from_numpy(x)  # noqa: E731
    if kind == "sylvester":
        return dl.solve_sylvester(t(A), t(B), t(C), method=method)
    if kind == "stein":
        return dl.solve_stein(t(A), t(B), t(C), method=method)
    if kind == "discrete":
        return dl.solve_discrete_lyapunov(t(A), t(C), method=method)
    return dl.solve_continuous_lyapunov(t(A), t(C), method=method)


def outcome(dl, kind, A, B, C, method):
    """("raised" | "warned" | "returned", max |X|)."""
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        try:
            X = solve(dl, kind, A, B, C, method)
        except dl.SingularEquationError:
            return "raised", math.nan
    warned = any(issubclass(x.category, dl.PrecisionWarning) for x in w)
    return ("warned" if warned else "returned"), float(X.abs().max())


def sweep(dl, count, sizes):
    rows = []
    for kind in KINDS:
        for n in sizes:
            for method in ("auto", "schur"):
                rng = np.random.default_rng(1000 * n + KINDS.index(kind))
                res = [outcome(dl, kind, *case(kind, n, rng), method) for _ in range(count)]
                ret = [x for o, x in res if o != "raised"]
                rows.append(dict(part="singular", kind=kind, n=n, method=method, delta=0.0,
                                 cases=count, raised=sum(o == "raised" for o, _ in res),
                                 warned=sum(o == "warned" for o, _ in res),
                                 garbage=len(ret), max_abs_x=max(ret, default=math.nan)))
            for delta in DELTAS:
                rng = np.random.default_rng(7 + 1000 * n + KINDS.index(kind) + int(-math.log10(delta)))
                counts = dict(raised=0, warned=0, returned=0, silent=0, silent_no_digit=0)
                for _ in range(max(count // 4, 1)):
                    A, B, C = case(kind, n, rng, delta)
                    o, _ = outcome(dl, kind, A, B, C, "auto")
                    counts[o] += 1
                    if o == "returned":
                        k = float(kron_cond(kind, A, B)) * 2.2e-16
                        counts["silent"] += int(k > 1e-2)
                        counts["silent_no_digit"] += int(k > 1)
                rows.append(dict(part="near", kind=kind, n=n, method="auto", delta=delta,
                                 cases=max(count // 4, 1), **counts))
    return rows


def timing(dl, sizes, repeats):
    """Median seconds per ``method="auto"`` solve of generic inputs (one call per size/batch)."""
    from _common import timeit

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    rows = []
    for n in sizes:
        for batch in (1, 100):
            A = torch.randn(batch, n, n, generator=g, dtype=torch.float64) / n ** 0.5 + 2 * torch.eye(n, dtype=torch.float64)
            B = torch.randn(batch, n, n, generator=g, dtype=torch.float64) / n ** 0.5 + 2 * torch.eye(n, dtype=torch.float64)
            C = torch.randn(batch, n, n, generator=g, dtype=torch.float64)
            S = 0.5 * A / torch.linalg.eigvals(A).abs().amax(-1)[:, None, None]
            for kind, fn in (("sylvester", lambda: dl.solve_sylvester(A, B, C)),
                             ("stein", lambda: dl.solve_stein(S, S.mT, C)),
                             ("discrete", lambda: dl.solve_discrete_lyapunov(S, C))):
                rows.append(dict(kind=kind, n=n, batch=batch, seconds=timeit(fn, repeats)))
    return rows


def _child(args):
    # _common put this checkout's src first on sys.path: the version under test goes before it
    sys.path.insert(0, args.src)
    import difflinalg as dl
    assert Path(dl.__file__).resolve().is_relative_to(Path(args.src).resolve()), dl.__file__
    out = {}
    if not args.timing_only:
        out["sweep"] = sweep(dl, args.count, args.sizes)
    out["timing"] = timing(dl, args.timing_sizes, args.repeats)
    print(json.dumps(out, default=float))


def _run(src, args, timing_only=False):
    cmd = [sys.executable, __file__, "--child", "--src", str(src), "--count", str(args.count), "--repeats", str(args.repeats),
           "--sizes", *map(str, args.sizes), "--timing-sizes", *map(str, args.timing_sizes)]
    if timing_only:
        cmd.append("--timing-only")
    env = dict(os.environ, PYTHONPATH=str(src), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1")
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main():
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import parser, print_table, write_json

    p = parser(__doc__.splitlines()[0])
    p.add_argument("--baseline-src", metavar="DIR", help="src directory of the code to compare against (before)")
    p.add_argument("--count", type=int, default=200, help="exactly singular cases per kind and size")
    p.add_argument("--sizes", type=int, nargs="+", default=list(range(2, 9)))
    p.add_argument("--timing-sizes", type=int, nargs="+", default=[2, 4, 8])
    p.add_argument("--rounds", type=int, default=3, help="interleaved before/after timing rounds")
    p.add_argument("--child", action="store_true", help=argparse_hidden())
    p.add_argument("--timing-only", action="store_true", help=argparse_hidden())
    p.add_argument("--src", help=argparse_hidden())
    args = p.parse_args()
    if args.quick:
        args.count, args.sizes, args.repeats, args.rounds = 20, [2, 5, 8], 5, 1
    if args.child:
        return _child(args)
    here = Path(__file__).resolve().parents[1] / "src"
    versions = {"after": here}
    if args.baseline_src:
        versions = {"before": Path(args.baseline_src).resolve(), "after": here}
    results = {k: _run(src, args) for k, src in versions.items()}
    # Interleaved timing rounds: before, after, before, after, ... (each its own process).
    times = {k: [r["timing"]] for k, r in results.items()}
    for _ in range(args.rounds - 1):
        for k, src in versions.items():
            times[k].append(_run(src, args, timing_only=True)["timing"])

    sing = {k: [r for r in v["sweep"] if r["part"] == "singular"] for k, v in results.items()}
    table = []
    for i, r in enumerate(sing["after"]):
        row = dict(kind=r["kind"], n=r["n"], method=r["method"], cases=r["cases"])
        for k in versions:
            s = sing[k][i]
            row[f"{k} garbage (warned)"] = f"{s['garbage']} ({s['warned']})"
            row[f"{k} raised"] = s["raised"]
        row["after max|X| returned"] = r["max_abs_x"]
        if "before" in versions:
            row["before max|X| returned"] = sing["before"][i]["max_abs_x"]
        table.append(row)
    print_table(table, title="Exactly singular equations (float64): results returned (garbage) vs raised")
    near = {k: [r for r in v["sweep"] if r["part"] == "near"] for k, v in results.items()}
    ntable = []
    for i, r in enumerate(near["after"]):
        row = dict(kind=r["kind"], n=r["n"], delta=r["delta"], cases=r["cases"])
        for k in versions:
            s = near[k][i]
            row[f"{k} raised/warned/returned"] = f"{s['raised']}/{s['warned']}/{s['returned']}"
            row[f"{k} silent"] = f"{s['silent']}/{s['silent_no_digit']}"
        ntable.append(row)
    print_table(ntable, title="Near-singular equations (method auto): silent = returned without error or warning "
                "although kappa eps > 1e-2 / > 1 (kappa: SVD of the Kronecker matrix)")
    ttable = []
    for i, r in enumerate(times["after"][0]):
        row = dict(kind=r["kind"], n=r["n"], batch=r["batch"])
        for k in versions:
            row[f"{k} us"] = 1e6 * float(np.median([t[i]["seconds"] for t in times[k]]))
        if "before" in versions:
            row["after/before"] = row["after us"] / row["before us"]
        ttable.append(row)
    print_table(ttable, title="Generic nonsingular solves, method auto (median of rounds of per-process medians)")
    write_json([dict(table="singular", **r) for r in table] + [dict(table="near", **r) for r in ntable]
               + [dict(table="timing", **r) for r in ttable], args.json)


def argparse_hidden():
    import argparse
    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
