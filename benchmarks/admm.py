"""Unrolled complex ADMM for sparse coding: one training step (forward + gradient wrt the
dictionary) with four z-updates, in one run (issue 19, item 1).

Problem: ``min_z 1/2 ||D z - s||^2 + lam ||z||_1`` for a batch of 32 complex signals ``s`` (the
columns of an m x 32 block) and a dictionary ``D`` (m x n, m < n), unrolled for T iterations::

    v = (rho I + D^H D)^{-1} (D^H s + rho (z - u)),   z = soft(v + u, lam / rho),   u = u + v - z

and the training loss ``||D z_T - s||^2 + lam ||z_T||_1``, differentiated wrt ``D``. The z-update:

* ``RegularizedSolver``: ``difflinalg.RegularizedSolver(D, rho)`` once (Woodbury: the m x m
  factor), ``solver.solve`` per iteration;
* ``factor_once`` (the anchor, what a user writes with torch alone): ``L = cholesky(rho I + D D^H)``
  once, per iteration ``(b - D^H cholesky_solve(D b, L)) / rho``, autograd through all of it;
* ``refactor``: the naive form, ``cholesky(rho I + D^H D)`` (n x n) and ``cholesky_solve`` per
  iteration;
* ``linalg_solve``: ``torch.linalg.solve(rho I + D^H D, b)`` per iteration.

Reported per size (D 64 x 128 and 256 x 512), iteration count (20, 100) and dtype (complex64,
complex128): median wall time of the training step (interleaved repeats, one thread; at least
``--repeats``, more for short steps so that each contender gets ``MIN_SECONDS`` of samples) and the
ratio of median CPU (process) times, steadier than wall time on a shared machine, peak memory
of one step (torch profiler's CPU allocator events, ``_common.peak_memory``), the ratios to
``factor_once``, the relative difference of the gradient wrt D to ``factor_once``'s, and its
relative error against ``factor_once`` run in complex128 on the same data (``grad_err_c128``: in
complex64 the soft-thresholding can flip an entry, so two complex64 gradients may differ by more
than either's error).
Floors (issue 19): time <= 0.8x and peak memory <= 1.0x of ``factor_once`` at every size;
gradients equal within 1e-12 (complex128).

Run: ``./dev bench admm [--quick] [--json PATH|-] [--repeats R] [--slow-repeats R]``.
``refactor`` and ``linalg_solve`` cost O(n^3) per iteration: they get ``--slow-repeats``
(default 1) timed runs, not interleaved with the others.
"""

from __future__ import annotations

import math
import statistics
import time

import torch

from _common import interleaved, parser, peak_memory, print_table, setup, write_json
from difflinalg import RegularizedSolver
from difflinalg.check import randn

BATCH, RHO, LAM = 32, 1.0, 0.1
MIN_SECONDS = 1.5  # of timed samples per fast contender and case (more repeats for short steps)


def soft(w, t):
    return torch.sgn(w) * torch.relu(w.abs() - t)


def unrolled(D, s, n_iter, zupdate):
    """The training loss after ``n_iter`` ADMM iterations; ``zupdate(b)`` solves (rho I + D^H D) v = b."""
    Dhs = D.mH @ s
    z = u = torch.zeros(D.shape[-1], s.shape[-1], dtype=D.dtype)
    for _ in range(n_iter):
        v = zupdate(Dhs + RHO * (z - u))
        z_new = soft(v + u, LAM / RHO)
        u = u + v - z_new
        z = z_new
    return ((D @ z - s).abs() ** 2).sum() + LAM * z.abs().sum()


def ours(D, s, n_iter):
    solver = RegularizedSolver(D, RHO)
    return unrolled(D, s, n_iter, solver.solve)


def factor_once(D, s, n_iter):
    T = D @ D.mH + RHO * torch.eye(D.shape[-2], dtype=D.dtype)
    L = torch.linalg.cholesky(T)
    return unrolled(D, s, n_iter, lambda b: (b - D.mH @ torch.cholesky_solve(D @ b, L)) / RHO)


def refactor(D, s, n_iter):
    eye = torch.eye(D.shape[-1], dtype=D.dtype)

    def zupdate(b):
        return torch.cholesky_solve(b, torch.linalg.cholesky(D.mH @ D + RHO * eye))

    return unrolled(D, s, n_iter, zupdate)


def linalg_solve(D, s, n_iter):
    eye = torch.eye(D.shape[-1], dtype=D.dtype)
    return unrolled(D, s, n_iter, lambda b: torch.linalg.solve(D.mH @ D + RHO * eye, b))


METHODS = {"RegularizedSolver": ours, "factor_once": factor_once, "refactor": refactor,
           "linalg_solve": linalg_solve}


def step(method, D, s, n_iter):
    """One training step: the loss and its gradient wrt D."""
    Dg = D.detach().requires_grad_()
    loss = METHODS[method](Dg, s, n_iter)
    (g,) = torch.autograd.grad(loss, Dg)
    return g


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--slow-repeats", type=int, default=1, help="timed runs of refactor/linalg_solve")
    p.add_argument("--sizes", nargs="+", default=None, help="dictionary sizes MxN (default 64x128 256x512)")
    p.add_argument("--iters", nargs="+", type=int, default=None, help="iteration counts (default 20 100)")
    p.add_argument("--fast-only", action="store_true", help="skip refactor and linalg_solve")
    args = p.parse_args()
    if args.threads is None:
        args.threads = 1
    setup(args)
    sizes = [(64, 128)] if args.quick else [(64, 128), (256, 512)]
    if args.sizes:
        sizes = [tuple(int(v) for v in sz.split("x")) for sz in args.sizes]
    iters = args.iters or ([20] if args.quick else [20, 100])
    methods = ["RegularizedSolver", "factor_once"] + ([] if args.fast_only else ["refactor", "linalg_solve"])
    dtypes = [torch.complex64, torch.complex128]
    repeats = 2 if args.quick else args.repeats
    rows = []
    for (m, n) in sizes:
        for n_iter in iters:
            for dtype in dtypes:
                gen = torch.Generator().manual_seed(0)
                D = randn(dtype, gen, m, n) / m ** 0.5
                s = randn(dtype, gen, m, BATCH)
                fast = {k: (lambda k=k: step(k, D, s, n_iter)) for k in ("RegularizedSolver", "factor_once")}
                # Short steps get more repeats (at least MIN_SECONDS of samples per contender): at 64 x 128
                # a step takes 10-30 ms, and medians of 7 moved by 0.1 in the ratio under load.
                t0 = time.perf_counter()
                fast["factor_once"]()
                reps = max(repeats, math.ceil(MIN_SECONDS / (time.perf_counter() - t0)))
                wall, cpu = interleaved(fast, reps)
                grads = {k: step(k, D, s, n_iter) for k in methods[:2]}
                for k in methods[2:]:
                    step(k, D, s, min(n_iter, 2))  # warm-up
                    ts = []
                    for _ in range(args.slow_repeats):
                        t0 = time.perf_counter()
                        grads[k] = step(k, D, s, n_iter)
                        ts.append(time.perf_counter() - t0)
                    wall[k] = statistics.median(ts)
                mem = {k: peak_memory(lambda k=k: step(k, D, s, n_iter)) for k in methods}
                ref = grads["factor_once"]
                exact = ref if dtype == torch.complex128 else step(
                    "factor_once", D.to(torch.complex128), s.to(torch.complex128), n_iter)
                for k in methods:
                    rows.append({
                        "D": f"{m}x{n}", "iters": n_iter, "dtype": str(dtype).replace("torch.", ""),
                        "z_update": k, "repeats": reps if k in cpu else args.slow_repeats, "time_s": wall[k], "time_ratio": wall[k] / wall["factor_once"],
                        "cpu_ratio": cpu[k] / cpu["factor_once"] if k in cpu else float("nan"),
                        "peak_MB": mem[k] / 2**20, "mem_ratio": mem[k] / mem["factor_once"],
                        "grad_rel_diff": float((grads[k] - ref).abs().max() / ref.abs().max()),
                        "grad_err_c128": float((grads[k].to(exact.dtype) - exact).abs().max() / exact.abs().max()),
                    })
                print_table(rows[-len(methods):], title=f"D {m}x{n}, {n_iter} iterations, {dtype}")
    print_table(rows, title=f"All (batch {BATCH}, {args.threads} thread(s), {repeats} interleaved repeats)")
    bad = [r for r in rows if r["z_update"] == "RegularizedSolver"
           and (r["time_ratio"] > 0.8 or r["mem_ratio"] > 1.0
                or (r["dtype"] == "complex128" and r["grad_rel_diff"] > 1e-12))]
    print("\nfloors (time <= 0.8x, memory <= 1.0x of factor_once, complex128 gradients within 1e-12):",
          "met" if not bad else f"NOT met in {len(bad)} row(s)")
    # (no CPU ratio for the one-run contenders: null in the JSON, which has no NaN)
    write_json([{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()} for r in rows],
               args.json)


if __name__ == "__main__":
    main()
