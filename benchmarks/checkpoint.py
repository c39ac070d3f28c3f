"""Optimal binomial checkpointing (``difflinalg.checkpoint.binomial_loop``) against plain autograd
and ``torch.utils.checkpoint`` segments, in the same run.

Workload (issue 6): n = 10,000 steps of the 256-dimensional nonlinear map
``x_{k+1} = x_k + h tanh(W x_k + b)``, s = 10 snapshots, loss ``sum(x_n^2)``, gradients with
respect to ``x_0`` and ``b`` (case "vector params") and also ``W`` (case "matrix params", where the
256 x 256 gradient, which every method must hold, bounds the possible memory ratio).

Reported per method: stored states, step evaluations (untaped advances + taped), the extra
forward steps against the optimum ``revolve_cost(n, s)``, peak memory allocated by torch during the
forward + backward (torch profiler), its ratio to plain autograd, the median wall time of the
forward + backward and its ratio, and the largest relative gradient difference to plain autograd.

ADMM (issue 19, ``--admm``): one training step through 100 unrolled iterations of complex ADMM for
sparse coding (batch 32, complex64, 256 x 512 dictionary D; ``checkpoint._cases.admm_lasso``):
the step captures the leaf D and the non-leaves ``chol(rho I + D D^H)`` and ``D^H X`` made before
the loop; gradient with respect to D. Plain autograd against ``binomial_loop`` with the captured
tensors as they are, and with the two non-leaves carried in the loop state by hand (the issue's
workaround); times are interleaved medians (``_common.interleaved``).
"""

from __future__ import annotations

import math

import torch
from _common import interleaved, parser, peak_memory, print_table, setup, timeit, write_json
from torch.utils.checkpoint import checkpoint

from difflinalg.check import randn
from difflinalg.checkpoint import binomial_loop, revolve_cost
from difflinalg.checkpoint._cases import admm_lasso


def make_problem(dim: int, dtype: torch.dtype, matrix_grad: bool, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    W = (torch.randn(dim, dim, generator=g, dtype=dtype) / math.sqrt(dim)).requires_grad_(matrix_grad)
    b = (0.1 * torch.randn(dim, generator=g, dtype=dtype)).requires_grad_()
    x0 = torch.randn(dim, generator=g, dtype=dtype).requires_grad_()
    counter = [0]

    def step(x):
        counter[0] += 1
        return x + 0.05 * torch.tanh(W @ x + b)

    wrt = [x0, b] + ([W] if matrix_grad else [])
    return step, x0, wrt, counter


def plain(step, x0, n):
    x = x0
    for _ in range(n):
        x = step(x)
    return x


def segments(step, x0, n, k):
    """torch.utils.checkpoint over k uniform segments (non-reentrant: closures are supported)."""
    bounds = [round(i * n / k) for i in range(k + 1)]
    x = x0
    for a, c in zip(bounds[:-1], bounds[1:]):
        x = checkpoint(lambda x, m=c - a: plain(step, x, m), x, use_reentrant=False)
    return x


def run_case(n: int, s: int, dim: int, dtype, matrix_grad: bool, repeats: int) -> list[dict]:
    step, x0, wrt, counter = make_problem(dim, dtype, matrix_grad)
    k_sqrt = max(1, round(math.sqrt(n)))
    methods = {
        "plain autograd": (lambda: plain(step, x0, n), n),
        f"torch checkpoint, {s} segments": (lambda: segments(step, x0, n, s), s + math.ceil(n / s)),
        f"torch checkpoint, {k_sqrt} segments": (lambda: segments(step, x0, n, k_sqrt), k_sqrt + math.ceil(n / k_sqrt)),
        f"binomial_loop, s={s}": (lambda: binomial_loop(step, x0, n, snapshots=s), s + 1),
    }
    ref = None
    rows = []
    opt = revolve_cost(n, s)
    for name, (forward, states) in methods.items():
        def fwd_bwd(forward=forward):
            out = forward()
            return torch.autograd.grad((out**2).sum(), wrt)

        counter[0] = 0
        grads = fwd_bwd()
        evals = counter[0]
        if ref is None:
            ref = grads
        err = max(float((a - r).abs().max() / r.abs().max()) for a, r in zip(grads, ref))
        mem = peak_memory(fwd_bwd)
        t = timeit(fwd_bwd, repeats=repeats, warmup=0)
        rows.append(dict(
            case="matrix params" if matrix_grad else "vector params",
            method=name, stored_states=states, step_evals=evals, extra_forward=evals - n,
            optimal_extra=opt if name.startswith("binomial") else "",
            peak_MB=mem / 2**20, seconds=t, grad_rel_err=err,
        ))
    base_mem, base_t = rows[0]["peak_MB"], rows[0]["seconds"]
    for r in rows:
        r["mem_ratio_vs_plain"] = base_mem / r["peak_MB"]
        r["time_ratio_vs_plain"] = r["seconds"] / base_t
    return rows


def admm_rows(m: int, n: int, batch: int, iters: int, s: int, dtype, repeats: int) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    D = (randn(dtype, g, m, n) / math.sqrt(m)).requires_grad_()
    X = randn(dtype, g, batch, m)
    rho, lam = 1.0, 0.1

    def run(loop, carry=False):
        def fwd_bwd():
            step, state = admm_lasso(D, X, rho, lam, carry=carry)
            z = loop(step, state)[0]
            return torch.autograd.grad((z.abs() ** 2).sum(), D)[0]
        return fwd_bwd

    fns = {
        "plain autograd": run(lambda f, x: plain(f, x, iters)),
        f"binomial_loop s={s}, captured": run(lambda f, x: binomial_loop(f, x, iters, snapshots=s)),
        f"binomial_loop s={s}, carried by hand": run(
            lambda f, x: binomial_loop(f, x, iters, snapshots=s), carry=True),
    }
    ref = fns["plain autograd"]()
    rows = []
    for name, f in fns.items():
        err = float((f() - ref).abs().max() / ref.abs().max())
        rows.append(dict(case=f"ADMM {m}x{n}, batch {batch}, {iters} it., {str(dtype)[6:]}",
                         method=name, peak_MB=peak_memory(f) / 2**20, grad_rel_err=err))
    wall, _ = interleaved(fns, repeats)
    for r in rows:
        r["seconds"] = wall[r["method"]]
        r["mem_ratio_vs_plain"] = rows[0]["peak_MB"] / r["peak_MB"]
        r["time_ratio_vs_plain"] = r["seconds"] / rows[0]["seconds"]
    return rows


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=10_000)
    p.add_argument("--snapshots", type=int, default=10)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--admm", action="store_true", help="only the ADMM case (issue 19)")
    p.add_argument("--admm-snapshots", type=int, default=10)
    p.add_argument("--admm-dtype", choices=["complex64", "complex128"], default="complex64")
    p.set_defaults(repeats=3)
    args = p.parse_args()
    setup(args)
    n = 1000 if args.quick else args.steps
    repeats = 1 if args.quick else args.repeats
    dtype = getattr(torch, args.dtype)
    rows = []
    if not args.admm:
        for matrix_grad in (False, True):
            rows += run_case(n, args.snapshots, args.dim, dtype, matrix_grad, repeats)
        print(f"n = {n} steps, dim = {args.dim}, {args.dtype}, s = {args.snapshots}; optimal extra "
              f"forward steps revolve_cost = {revolve_cost(n, args.snapshots)}; torch "
              f"{torch.__version__}, {torch.get_num_threads()} threads")
        cols = ["case", "method", "stored_states", "step_evals", "extra_forward", "optimal_extra",
                "peak_MB", "mem_ratio_vs_plain", "seconds", "time_ratio_vs_plain", "grad_rel_err"]
        print_table(rows, cols, title="binomial checkpointing vs plain autograd and torch.utils.checkpoint")
    size = (64, 128, 8, 20) if args.quick else (256, 512, 32, 100)
    admm = admm_rows(*size, args.admm_snapshots, getattr(torch, args.admm_dtype), repeats)
    cols = ["case", "method", "peak_MB", "mem_ratio_vs_plain", "seconds", "time_ratio_vs_plain",
            "grad_rel_err"]
    print_table(admm, cols, title=f"ADMM with captured D, chol(rho I + D D^H), D^H X; "
                f"s = {args.admm_snapshots}, revolve_cost = {revolve_cost(size[3], args.admm_snapshots)}")
    write_json(rows + admm, args.json)


if __name__ == "__main__":
    main()
