"""Sylvester/Stein solves against scipy.linalg, same run (issue 5's equation floors).

1. ``solve_sylvester`` n = 200 float64: forward vs ``scipy.linalg.solve_sylvester`` (floor <= 1.2x);
   forward+backward (gradients of A, B, C; Schur factors reused) vs our forward (floor <= 1.6x).
2. RARL2-shaped: a fixed ``A_F`` (N = 250, 500, 1000) factorized once (``SchurForm``), then solves
   with different small (n = 20) right coefficients through ``SylvesterOperator`` (and
   ``SteinOperator``): per-solve time and its growth exponent in N (about 2 = quadratic), against
   ``scipy.linalg.solve_sylvester``, which refactorizes ``A_F`` at every call (cubic).
3. A batch of 1000 independent 8 x 8 Sylvester equations against a Python loop over
   ``scipy.linalg.solve_sylvester`` (floor >= 10x), for every method.
4. The ``method="auto"`` crossover (``KRON_MAX``): Kronecker LU vs Bartels-Stewart for tiny sizes.

Times are medians of interleaved repeats (each repeat runs every contender once), so that on a
shared, noisy machine contenders see the same load and ratios are stable.

    ./dev bench sylvester [--quick] [--json PATH|-] [--threads N] [--repeats R]
"""

from __future__ import annotations

import math
import time

import scipy.linalg
import torch
from _common import interleaved, parser, print_table, setup, write_json

import difflinalg as dl
from difflinalg.check import randn


def _coef(g, n, shift, *batch, dtype=torch.float64):
    return randn(dtype, g, *batch, n, n) / n ** 0.5 + shift * torch.eye(n, dtype=dtype)


def bench_n200(args, rows):
    g = torch.Generator().manual_seed(0)
    n = 100 if args.quick else 200
    for dtype in (torch.float64, torch.complex128):
        A, B, C = _coef(g, n, 1.0, dtype=dtype), _coef(g, n, 1.0, dtype=dtype), randn(dtype, g, n, n)
        W = randn(dtype, g, n, n)
        An, Bn, Cn = A.numpy(), B.numpy(), C.numpy()

        def fwd_bwd():
            a, b, c = (x.detach().requires_grad_() for x in (A, B, C))
            (dl.solve_sylvester(a, b, c) * W.conj()).real.sum().backward()

        t, _ = interleaved({
            "scipy": lambda: scipy.linalg.solve_sylvester(An, Bn, Cn),
            "fwd": lambda: dl.solve_sylvester(A, B, C),
            "fwd_bwd": fwd_bwd,
        }, args.repeats)
        rows.append(dict(bench="sylvester_n", n=n, dtype=str(dtype)[6:], scipy_ms=1e3 * t["scipy"],
                         ours_fwd_ms=1e3 * t["fwd"], fwd_over_scipy=t["fwd"] / t["scipy"],
                         ours_fwd_bwd_ms=1e3 * t["fwd_bwd"], fwd_bwd_over_fwd=t["fwd_bwd"] / t["fwd"]))


def bench_rarl2(args, rows):
    g = torch.Generator().manual_seed(1)
    n, n_solves = 20, (20 if args.quick else 200)
    Ns = (125, 250, 500) if args.quick else (250, 500, 1000)
    per_solve = {}
    for dtype in (torch.float64, torch.complex128):
        for N in Ns:
            AF = randn(dtype, g, N, N) / N ** 0.5 - 1.5 * torch.eye(N, dtype=dtype)
            t0 = time.perf_counter()
            AFf = dl.SchurForm(AF)
            t_schur = time.perf_counter() - t0
            Bs = [_coef(g, n, 1.0, dtype=dtype) for _ in range(n_solves)]
            Cs = [randn(dtype, g, N, n) for _ in range(n_solves)]
            AFn, Bn, Cn = AF.numpy(), Bs[0].numpy(), Cs[0].numpy()
            k = min(n_solves, 3)

            def sylv():
                for B, C in zip(Bs, Cs):
                    dl.SylvesterOperator(AFf, B).solve(C)

            def stein():
                for B, C in zip(Bs, Cs):
                    dl.SteinOperator(AFf, 0.3 * B).solve(C)

            def sylv_grad():  # forward and backward (adjoint solve), gradients of B and C
                for B, C in zip(Bs[:k], Cs[:k]):
                    b, c = B.detach().requires_grad_(), C.detach().requires_grad_()
                    dl.SylvesterOperator(AFf, b).solve(c).abs().sum().backward()

            def scipy_refactor():
                for _ in range(k):
                    scipy.linalg.solve_sylvester(AFn, Bn, Cn)

            reps = max(1, args.repeats // 3)
            t, _ = interleaved({"sylv": sylv, "stein": stein, "grad": sylv_grad, "scipy": scipy_refactor}, reps)
            ps = t["sylv"] / n_solves
            per_solve[(dtype, N)] = ps
            rows.append(dict(bench="rarl2", dtype=str(dtype)[6:], N=N, n=n, schur_once_ms=1e3 * t_schur,
                             sylvester_solve_ms=1e3 * ps, stein_solve_ms=1e3 * t["stein"] / n_solves,
                             solve_plus_grad_ms=1e3 * t["grad"] / k,
                             scipy_per_call_ms=1e3 * t["scipy"] / k,
                             scipy_over_ours=(t["scipy"] / k) / ps))
        for a, b in list(zip(Ns[:-1], Ns[1:])) + [(Ns[0], Ns[-1])]:
            rows.append(dict(bench="rarl2_growth", dtype=str(dtype)[6:], N=f"{a}->{b}",
                             exponent=math.log(per_solve[(dtype, b)] / per_solve[(dtype, a)]) / math.log(b / a)))


def bench_batch(args, rows):
    g = torch.Generator().manual_seed(2)
    b, n = (200 if args.quick else 1000), 8
    A, B, C = _coef(g, n, 1.0, b), _coef(g, n, 1.0, b), randn(torch.float64, g, b, n, n)
    An, Bn, Cn = A.numpy(), B.numpy(), C.numpy()
    fns = {"scipy_loop": lambda: [scipy.linalg.solve_sylvester(An[i], Bn[i], Cn[i]) for i in range(b)]}
    dev = torch.device(args.device)
    A, B, C = A.to(dev), B.to(dev), C.to(dev)

    def run(m):
        X = dl.solve_sylvester(A, B, C, method=m)
        if dev.type == "cuda":
            torch.cuda.synchronize()  # time the kernels, not their launch
        return X

    for m in ("auto", "kron", "eig", "schur", "schur-torch"):
        fns[m] = (lambda m=m: run(m))
    t, _ = interleaved(fns, max(3, args.repeats // 2))
    for m in fns:
        if m != "scipy_loop":
            rows.append(dict(bench="batch", device=args.device, batch=b, n=n, method=m, ours_ms=1e3 * t[m],
                             scipy_loop_ms=1e3 * t["scipy_loop"], speedup=t["scipy_loop"] / t[m]))


def bench_crossover(args, rows):
    g = torch.Generator().manual_seed(3)
    for batch in ((), (100,)):
        for n in (2, 4, 6, 8, 10, 12):
            A, B, C = _coef(g, n, 1.0, *batch), _coef(g, n, 1.0, *batch), randn(torch.float64, g, *batch, n, n)
            t, _ = interleaved({m: (lambda m=m: dl.solve_sylvester(A, B, C, method=m))
                             for m in ("kron", "schur")}, args.repeats)
            rows.append(dict(bench="crossover", batch=batch[0] if batch else 1, mn=n * n,
                             kron_ms=1e3 * t["kron"], schur_ms=1e3 * t["schur"],
                             faster="kron" if t["kron"] < t["schur"] else "schur"))


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--only", choices=("n200", "rarl2", "batch", "crossover"), default=None)
    p.add_argument("--device", default="cpu", help="device of the batched solves (e.g. cuda; the SciPy loop stays on the CPU)")
    args = p.parse_args()
    setup(args)
    print(f"torch threads: {torch.get_num_threads()}")
    rows: list[dict] = []
    for name, fn in (("n200", bench_n200), ("rarl2", bench_rarl2), ("batch", bench_batch),
                     ("crossover", bench_crossover)):
        if args.only in (None, name):
            start = len(rows)
            fn(args, rows)
            groups = {}
            for r in rows[start:]:
                groups.setdefault(r["bench"], []).append(r)
            for title, rs in groups.items():
                print_table([{k: v for k, v in r.items() if k != "bench"} for r in rs], title=title)
    write_json(rows, args.json)


if __name__ == "__main__":
    main()
