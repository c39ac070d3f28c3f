"""regularized_solve forward+backward against autograd through the explicit Gram matrix (issue 4).

``y = (rho I + D^H D)^{-1} x`` for a batch of 512 complex64 problems with 8 right-hand sides each:
a tall dictionary D 64 x 32 (the Gram matrix is 32 x 32) and a wide one D 16 x 256 (256 x 256
Gram matrix, 16 x 16 on the Woodbury side). Gradients are taken with respect to D, x and rho.

The anchor is what a user writes with torch alone: ``A = D^H D + rho I``,
``L = torch.linalg.cholesky(A)``, ``y = torch.cholesky_solve(x, L)`` and autograd through all of
it (its backward differentiates the factorization: triangular solves with n right-hand sides and
the Gram product). difflinalg factorizes once and its backward is one solve with the saved factor
plus two thin products (``method="auto"``: the smaller Gram matrix, i.e. Woodbury for the wide case;
``method="direct"`` on the wide case is reported too).

Reported: median forward+backward wall time and CPU (process) time with their ratios difflinalg /
anchor (the calls are interleaved so that load from other processes hits all alike; on a shared
machine the CPU-time ratio is the steadier one), the peak memory of one forward+backward (torch
profiler, CPU) and its ratio, and the relative difference of the gradient wrt D. Floors (issue 4): time ratio <= 0.6, memory ratio <= 0.7; Woodbury at least 5x faster than
direct on the wide case.

Run: ``./dev bench regularized_solve [--quick] [--json PATH|-] [--repeats R] [--threads T]``
(default one thread, see ``main``).
"""

from __future__ import annotations

import torch

from _common import interleaved, parser, peak_memory, print_table, setup, write_json
from difflinalg import regularized_solve
from difflinalg.check import randn

DTYPE = torch.complex64


def make_inputs(batch: int, m: int, n: int, r: int, gen: torch.Generator):
    D = randn(DTYPE, gen, batch, m, n) / m ** 0.5
    x = randn(DTYPE, gen, batch, n, r)
    W = randn(DTYPE, gen, batch, n, r)  # cotangent of y: loss = Re <W, y>
    rho = torch.tensor(0.5)
    return D, x, rho, W


def anchor(D, x, rho, W):
    D, x, rho = (t.detach().requires_grad_() for t in (D, x, rho))
    A = D.mH @ D + rho * torch.eye(D.shape[-1], dtype=D.dtype)
    L = torch.linalg.cholesky(A)
    y = torch.cholesky_solve(x, L)
    return torch.autograd.grad((W.conj() * y).real.sum(), (D, x, rho))


def ours(D, x, rho, W, method="auto"):
    D, x, rho = (t.detach().requires_grad_() for t in (D, x, rho))
    y = regularized_solve(D, x, rho, method=method)
    return torch.autograd.grad((W.conj() * y).real.sum(), (D, x, rho))


def rel(a, b) -> float:
    return float((a - b).abs().max() / b.abs().max())


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=None, help="problems per batch (default 512, quick 64)")
    # One thread by default: on a shared machine, OpenMP barriers of many small batched kernels wait
    # for time slices held by other processes and swamp the measurement (pass --threads N to change).
    p.set_defaults(threads=1)
    args = p.parse_args()
    setup(args)
    batch = args.batch or (64 if args.quick else 512)
    repeats = 3 if args.quick else args.repeats
    gen = torch.Generator().manual_seed(0)
    rows = []
    for case, (m, n) in [("tall 64x32", (64, 32)), ("wide 16x256", (16, 256))]:
        inputs = make_inputs(batch, m, n, 8, gen)
        methods = ["auto"] if m >= n else ["auto", "direct"]
        fns = {"anchor": lambda: anchor(*inputs)}
        for method in methods:
            fns[method] = lambda method=method: ours(*inputs, method=method)
        # The wide anchor takes seconds per call: fewer repeats there.
        wall, cpu = interleaved(fns, repeats if m >= n else max(2, repeats // 3))
        g_ref = anchor(*inputs)
        mem = {k: peak_memory(f) for k, f in fns.items()}
        for k in fns:
            g = g_ref if k == "anchor" else ours(*inputs, method=k)
            label = ("anchor: cholesky+cholesky_solve" if k == "anchor" else
                     f"difflinalg {k}" + (" (woodbury)" if m < n and k == "auto" else ""))
            rows.append(dict(case=case, impl=label, ms=1e3 * wall[k], time_ratio=wall[k] / wall["anchor"],
                             cpu_ms=1e3 * cpu[k], cpu_ratio=cpu[k] / cpu["anchor"],
                             peak_MiB=mem[k] / 2**20, mem_ratio=mem[k] / mem["anchor"],
                             grad_rel_diff=rel(g[0], g_ref[0])))
    wide = {r["impl"]: r for r in rows if r["case"].startswith("wide")}
    w, d = wide["difflinalg auto (woodbury)"], wide["difflinalg direct"]
    speedup, cpu_speedup = d["ms"] / w["ms"], d["cpu_ms"] / w["cpu_ms"]
    print_table(rows, title=f"regularized_solve forward+backward, batch {batch}, complex64, 8 right-hand sides, "
                            f"threads {torch.get_num_threads()}")
    print(f"\nwide case: woodbury is {speedup:.1f}x faster than direct in wall time, {cpu_speedup:.1f}x in CPU "
          "time (floor 5x)")
    for r in rows:
        r["batch"] = batch
    rows.append(dict(case="wide 16x256", impl="woodbury speedup over direct", speedup=speedup,
                     cpu_speedup=cpu_speedup))
    write_json(rows, args.json)


if __name__ == "__main__":
    main()
