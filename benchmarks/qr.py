"""qr forward+backward against torch.linalg.qr forward+backward where torch supports the mode (issue 4).

Batched tall, square and wide matrices in float64 and complex64, ``mode="reduced"`` (and
``"complete"`` for square/wide, where Q is unique), with the loss ``Re <Wq, Q> + Re <Wr, R>``.
difflinalg additionally normalizes the factorization (R with a positive real diagonal) and checks
for rank deficiency before differentiating; torch returns LAPACK's signs. Modes torch cannot
differentiate (``"r"``, ``"complete"`` with m > n) are reported against difflinalg's own reduced
mode. Reported: median forward+backward time (calls interleaved round-robin, wall and CPU time),
ratio difflinalg / torch (floor: <= 1.2), and peak memory (torch profiler, CPU).

Run: ``./dev bench qr [--quick] [--json PATH|-] [--repeats R] [--threads T]`` (default one thread:
on a shared machine OpenMP barriers wait for other processes' time slices).
"""

from __future__ import annotations

import torch

from _common import interleaved, parser, peak_memory, print_table, setup, write_json
from difflinalg import qr
from difflinalg.check import randn


def fwd_bwd(factor, A, Wq, Wr):
    A = A.detach().requires_grad_()
    Q, R = factor(A)
    loss = (Wr.conj() * R).real.sum()
    if Q is not None:
        loss = loss + (Wq.conj() * Q).real.sum()
    return torch.autograd.grad(loss, A)[0]


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.set_defaults(threads=1, repeats=21)  # fast cases: more repeats for steadier medians
    args = p.parse_args()
    setup(args)
    repeats = 3 if args.quick else args.repeats
    scale = 4 if args.quick else 1
    gen = torch.Generator().manual_seed(0)
    cases = [  # (name, batch, m, n, dtype, mode, torch supports it)
        ("tall", 256, 64, 32, torch.float64, "reduced", True),
        ("tall", 256, 64, 32, torch.complex64, "reduced", True),
        ("square", 64, 64, 64, torch.float64, "reduced", True),
        ("square", 64, 64, 64, torch.complex64, "complete", True),
        ("wide", 256, 32, 64, torch.float64, "reduced", True),
        ("wide", 256, 32, 64, torch.complex64, "complete", True),
        ("tall", 256, 64, 32, torch.complex64, "r", False),
        ("tall", 256, 64, 32, torch.complex64, "complete", False),
    ]
    rows = []
    for name, batch, m, n, dtype, mode, supported in cases:
        batch //= scale
        A = randn(dtype, gen, batch, m, n)
        k = min(m, n)
        qcols = m if mode == "complete" else k
        rrows = m if mode == "complete" else k
        Wq, Wr = randn(dtype, gen, batch, m, qcols), randn(dtype, gen, batch, rrows, n)
        if mode == "complete" and m > n:
            # An invariant loss of the complement Q2 (its projector), plus Q1 and R.
            def ours_factor(A):
                Q, R = qr(A, mode="complete")
                Q2 = Q[..., n:]
                return torch.cat([Q[..., :n], Q2 @ (Q2.mH @ Wq[..., :n])], -1), R
        elif mode == "r":
            def ours_factor(A):
                return None, qr(A, mode="r").R
        else:
            def ours_factor(A, mode=mode):
                return qr(A, mode=mode)
        fns = {"ours": lambda: fwd_bwd(ours_factor, A, Wq, Wr)}
        if supported:
            fns["anchor"] = lambda mode=mode: fwd_bwd(lambda A: torch.linalg.qr(A, mode=mode), A, Wq, Wr)
            ref_label = "torch.linalg.qr"
        else:  # no torch anchor: difflinalg's reduced mode for scale
            fns["anchor"] = lambda: fwd_bwd(qr, A, Wq[..., :k], Wr[..., :k, :])
            ref_label = "difflinalg reduced (torch cannot)"
        wall, cpu = interleaved(fns, repeats)
        mem = {key: peak_memory(f) for key, f in fns.items()}
        rows.append(dict(case=f"{name} {batch}x{m}x{n}", dtype=str(dtype).replace("torch.", ""), mode=mode,
                         reference=ref_label, ref_ms=1e3 * wall["anchor"], ours_ms=1e3 * wall["ours"],
                         ratio=wall["ours"] / wall["anchor"], cpu_ratio=cpu["ours"] / cpu["anchor"],
                         ref_MiB=mem["anchor"] / 2**20, ours_MiB=mem["ours"] / 2**20))
    print_table(rows, title=f"qr forward+backward (threads {torch.get_num_threads()}); floor: ratio <= 1.2 "
                            "where the reference is torch")
    write_json(rows, args.json)


if __name__ == "__main__":
    main()
