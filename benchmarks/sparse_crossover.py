"""The dense/sparse crossover of ``rarl2`` and ``balanced_truncation`` for sparse targets (issue 18).

For generated sparse models (2-D heat, 2-D upwind convection-diffusion) of N = 300 .. 3000 states,
one thread, times the dense path (``SparseSystem.to_dense`` then the dense ``rarl2`` /
``balanced_truncation``) against the sparse path (``rarl2_large`` / ``lr_balanced_truncation``),
interleaved, and reports the ratio dense / sparse and both relative H2 errors. The smallest N where
the sparse path is faster for both models is the crossover order ``SPARSE_CROSSOVER``
(``difflinalg.control.system._sparse``). Once the dense path exceeds ``--budget`` seconds for a
model, larger N of that model are skipped (beyond the crossover: the dense cost grows like N^3).

    python benchmarks/sparse_crossover.py [--sizes 324 729 1225 2025 3025] [--order 10] [--json out.json]
"""

from __future__ import annotations

import math
import sys

import torch

from _common import interleaved, parser, print_table, write_json


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 196, 324, 729, 1225, 2025, 3025])
    p.add_argument("--order", type=int, default=10)
    p.add_argument("--budget", type=float, default=60.0, help="skip larger N once dense exceeds this (s)")
    args = p.parse_args()
    torch.set_num_threads(1)
    from difflinalg.control import balanced_truncation, rarl2
    from difflinalg.control.large import convection_diffusion_2d, heat_2d, lr_balanced_truncation, rarl2_large

    r = args.order
    rows = []
    for name, make in (("heat", heat_2d), ("convdiff", convection_diffusion_2d)):
        over = {"rarl2": False, "bt": False}
        for N in args.sizes:
            n = round(math.sqrt(N))
            box = {}
            # a fresh system for every call: a SparseSystem caches its factorizations and Gramian
            # factors, which would make every repeat after the first (and BT after RARL2) free
            fns = {
                "rarl2": {"dense": lambda: box.__setitem__("rd", rarl2(make(n).to_dense(), r)),
                          "sparse": lambda: box.__setitem__("rs", rarl2_large(make(n), r))},
                "bt": {"dense": lambda: box.__setitem__("bd", balanced_truncation(make(n).to_dense(), r)),
                       "sparse": lambda: box.__setitem__("bs", lr_balanced_truncation(make(n), r))},
            }
            for what, pair in fns.items():
                if over[what]:
                    continue
                reps = 3 if N <= 800 else 1
                wall, _ = interleaved(pair, reps, warmup=0)
                row = {"model": name, "N": n * n, "r": r, "function": what, "dense_s": wall["dense"],
                       "sparse_s": wall["sparse"], "dense/sparse": wall["dense"] / wall["sparse"]}
                if what == "rarl2":
                    row["dense_err"] = box["rd"].relative_error
                    row["sparse_err"] = box["rs"].relative_error
                rows.append(row)
                print(row, file=sys.stderr, flush=True)
                over[what] = wall["dense"] > args.budget
    print_table(rows, title=f"dense vs sparse path, order {r}, one thread")
    for what in ("rarl2", "bt"):
        faster = [row["N"] for row in rows if row["function"] == what and row["dense/sparse"] > 1]
        print(f"{what}: sparse path faster from N = {min(faster) if faster else 'never (in range)'}")
    write_json(rows, args.json)


if __name__ == "__main__":
    main()
