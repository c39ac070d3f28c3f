"""Implicit differentiation of a fixed point (``difflinalg.implicit.fixed_point``) against
autograd through the unrolled solver iterations (the default), in the same run.

Workload: a batch of B equilibrium problems ``z = tanh(W z + U u + b)`` (deep-equilibrium style,
hidden size d) solved by fixed-point iteration to a relative step of 1e-10, in two regimes:
"fast" (``||W||_2 = 0.9``, saturated tanh: a few dozen iterations) and "slow" (``W`` = 0.99 times an
orthogonal matrix, small inputs: about two thousand iterations). Loss ``sum(z*^2)``, gradients with respect to ``W``, ``U``,
``b``. Per method: wall time of solve + gradient (median), peak memory allocated by torch
(profiler), and the relative gradient difference to the dense implicit gradient (the exact IFT
gradient up to rounding). Unrolled autograd stores every iteration (its memory grows with the
iteration count) and differentiates the truncated iteration rather than the fixed point.
"""

from __future__ import annotations

import torch
from _common import parser, peak_memory, print_table, setup, timeit, write_json

from difflinalg.implicit import fixed_point


def make(B: int, d: int, rho: float, scale: float, orthogonal: bool, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    m = d // 2
    W = torch.randn(d, d, generator=g, dtype=torch.float64)
    # a Gaussian W scaled to norm rho has spectral radius ~rho/2 (fast); rho * orthogonal has
    # every eigenvalue on |lambda| = rho (slow: ~log(tol)/log(rho) iterations)
    W = torch.linalg.qr(W)[0] if orthogonal else W / torch.linalg.matrix_norm(W, 2)
    W = (rho * W).requires_grad_()
    U = (scale * torch.randn(d, m, generator=g, dtype=torch.float64) / m**0.5).requires_grad_()
    b = (0.1 * scale * torch.randn(d, generator=g, dtype=torch.float64)).requires_grad_()
    u = torch.randn(B, m, generator=g, dtype=torch.float64)
    return W, U, b, u


def T(z, W, U, b, u):
    return torch.tanh(z @ W.mT + u @ U.mT + b)


def iterate(W, U, b, u, tol=1e-10, maxiter=20000):
    """Plain fixed-point iteration; returns z and the number of iterations."""
    z = torch.zeros(u.shape[0], W.shape[0], dtype=u.dtype)
    for k in range(1, maxiter + 1):
        z_new = T(z, W, U, b, u)
        done = float((z_new - z).detach().norm() / z_new.detach().norm()) <= tol
        z = z_new
        if done:
            return z, k
    return z, maxiter


def run(regime: str, B: int, d: int, rho: float, scale: float, repeats: int) -> list[dict]:
    W, U, b, u = make(B, d, rho, scale, orthogonal=regime == "slow")
    wrt = (W, U, b)

    def unrolled():
        z, _ = iterate(W, U, b, u)
        return torch.autograd.grad((z**2).sum(), wrt)

    def implicit(solve):
        def go():
            with torch.no_grad():
                z, _ = iterate(W, U, b, u)
            z = fixed_point(T, z, W, U, b, u, solve=solve, batch_dims=1)
            return torch.autograd.grad((z**2).sum(), wrt)
        return go

    with torch.no_grad():
        _, iters = iterate(W, U, b, u)
    methods = {"unrolled autograd": unrolled, "fixed_point, dense": implicit("dense"),
               "fixed_point, gmres": implicit("gmres")}
    ref = implicit("dense")()
    rows = []
    for name, fn in methods.items():
        grads = fn()
        err = max(float((a - r).norm() / r.norm()) for a, r in zip(grads, ref))
        rows.append(dict(regime=regime, method=name, batch=B, dim=d, solver_iterations=iters,
                         peak_MB=peak_memory(fn) / 2**20, seconds=timeit(fn, repeats=repeats, warmup=0),
                         grad_rel_err_vs_dense_ift=err))
    for r in rows:
        r["mem_ratio_vs_unrolled"] = rows[0]["peak_MB"] / r["peak_MB"]
        r["time_ratio_vs_unrolled"] = r["seconds"] / rows[0]["seconds"]
    return rows


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--dim", type=int, default=256)
    p.set_defaults(repeats=3)
    args = p.parse_args()
    setup(args)
    B, d = (16, 64) if args.quick else (args.batch, args.dim)
    rows = []
    for regime, rho, scale, batch in (("fast", 0.9, 1.0, B), ("slow", 0.99, 0.1, max(1, B // 4))):
        rows += run(regime, batch, d, rho, scale, 1 if args.quick else args.repeats)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float64")
    print_table(rows, ["regime", "method", "batch", "dim", "solver_iterations", "peak_MB",
                       "mem_ratio_vs_unrolled", "seconds", "time_ratio_vs_unrolled",
                       "grad_rel_err_vs_dense_ift"],
                title="implicit fixed-point gradient vs autograd through the solver")
    write_json(rows, args.json)


if __name__ == "__main__":
    main()
