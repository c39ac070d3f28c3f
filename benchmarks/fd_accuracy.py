"""Accuracy of finite-difference derivatives: difflinalg.check.derivative vs torch.autograd.gradcheck's.

Anchor: ``torch.autograd.gradcheck`` estimates derivatives with a central difference at a fixed
``eps = 1e-6``, ``(f(x + eps v) - f(x - eps v)) / (2 eps)``, evaluated in the input's dtype (its
``_compute_numerical_gradient``). Ours: ``derivative`` with the 5-point central stencil and the
adaptive step (``p5``), and with two Richardson levels (``p5_rich2``).

Functions (each at several points, real inputs in float64 and float32):
  exp, sin, J_2 as its power series (``bessel_j_series``, derivative from scipy.special.jvp), and
  the Cholesky factor of an SPD matrix along a symmetric direction (reference: the analytic JVP in
  float64, ``L Phi(L^-1 dA L^-T)``, accurate to ~1e-15 for these well-conditioned matrices).

Reported per function, dtype and method: median and max relative error over the points (for the
matrix, max-norm error over max-norm of the reference), the function evaluations per derivative,
and for ours the median ratio of the error estimate to the actual error (>= 1: not optimistic).

    python benchmarks/fd_accuracy.py [--quick] [--json PATH|-]
"""

from __future__ import annotations

import math
import statistics

import scipy.special as sp
import torch

from _common import parser, print_table, setup, write_json

from difflinalg.check import derivative
from difflinalg.check._functions import bessel_j_series
from difflinalg.factor._cholesky import cholesky_factor, cholesky_jvp

TORCH_EPS = 1e-6


def torch_gradcheck_fd(f, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """torch.autograd.gradcheck's numerical directional derivative (central, eps = 1e-6)."""
    return (f(x + TORCH_EPS * v) - f(x - TORCH_EPS * v)) / (2 * TORCH_EPS)


class Counted:
    """Wraps f and counts its evaluations."""

    def __init__(self, f):
        self.f, self.n = f, 0

    def __call__(self, x):
        self.n += 1
        return self.f(x)


def scalar_problems(n_points: int):
    def grid(a, b):
        return [a + (b - a) * i / max(n_points - 1, 1) for i in range(n_points)]

    return [
        ("exp", torch.exp, math.exp, grid(-1.0, 2.0)),
        ("sin", torch.sin, math.cos, grid(0.1, 1.4)),
        ("bessel_j2_series", lambda z: bessel_j_series(2, z), lambda z: float(sp.jvp(2, z)), grid(0.3, 2.5)),
    ]


def cholesky_problem(n: int, seed: int):
    """(A, U, dL): an SPD matrix, a symmetric direction and the exact directional derivative."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, n, generator=g, dtype=torch.float64)
    A = X @ X.T / n + torch.eye(n, dtype=torch.float64)
    U = torch.randn(n, n, generator=g, dtype=torch.float64)
    U = (U + U.T) / 2
    return A, U, cholesky_jvp(cholesky_factor(A), U)


def measure(dtype: torch.dtype, n_points: int, n_matrices: int) -> list[dict]:
    methods = {
        "p5": lambda f, x, v: derivative(f, x, direction=v),
        "p5_rich2": lambda f, x, v: derivative(f, x, direction=v, richardson=2),
        "torch_eps1e-6": lambda f, x, v: torch_gradcheck_fd(f, x, v),
    }
    cases = []  # (function name, f, x, v, reference)
    for name, f, df, points in scalar_problems(n_points):
        for x in points:
            cases.append((name, f, torch.tensor(x, dtype=dtype), torch.ones((), dtype=dtype),
                          torch.tensor(df(x), dtype=torch.float64)))
    for k in range(n_matrices):
        A, U, dL = cholesky_problem(6, seed=k)
        cases.append(("cholesky_6x6", cholesky_factor, A.to(dtype), U.to(dtype), dL))

    rows = []
    names = list(dict.fromkeys(c[0] for c in cases))
    for fname in names:
        for mname, method in methods.items():
            errs, ratios, evals = [], [], []
            for name, f, x, v, ref in cases:
                if name != fname:
                    continue
                fc = Counted(f)
                out = method(fc, x, v)
                value = out.value if hasattr(out, "value") else out
                err = float((value.double() - ref).abs().max() / ref.abs().max())
                errs.append(err)
                evals.append(fc.n)
                if hasattr(out, "error"):
                    actual = float((value.double() - ref).abs().max())
                    ratios.append(float(out.error.max()) / max(actual, 1e-300))
            rows.append(dict(
                function=fname, dtype=str(dtype).replace("torch.", ""), method=mname,
                median_rel_err=statistics.median(errs), max_rel_err=max(errs),
                evals=statistics.median(evals),
                est_over_err=statistics.median(ratios) if ratios else float("nan"),
            ))
    # Ratio of the anchor's error to ours (median over the points), per function and dtype.
    for r in rows:
        anchor = next(a for a in rows if a["function"] == r["function"] and a["method"] == "torch_eps1e-6")
        r["anchor_over_ours"] = anchor["median_rel_err"] / max(r["median_rel_err"], 1e-300)
    return rows


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    setup(args)
    n_points, n_matrices = (5, 2) if args.quick else (21, 8)
    rows = []
    for dtype in (torch.float64, torch.float32):
        rows += measure(dtype, n_points, n_matrices)
    cols = ["function", "dtype", "method", "median_rel_err", "max_rel_err", "anchor_over_ours", "evals",
            "est_over_err"]
    print_table(rows, cols, title=f"Finite-difference accuracy ({n_points} points per scalar function, "
                f"{n_matrices} matrices; anchor: torch.autograd.gradcheck central difference, eps=1e-6)")
    write_json(rows, args.json)


if __name__ == "__main__":
    main()
