"""Unrolled ADMM for convolutional sparse coding: one training step (forward + gradient wrt the
spatial filters) with four x-updates, in one run (issue 19, item 1, "frequency-domain CSC").

Problem (Wohlberg, IEEE TIP 2016): ``min_x 1/2 ||sum_m d_m * x_m - s||^2 + lam ||x||_1`` for a
batch of images ``s`` (B x H x W x C) and M filters ``d`` (M x C x 8 x 8), unrolled for T
iterations with the DFT over the image axes (``rfft2``: F = H (W/2 + 1) frequencies)::

    x_hat = (rho I + D_f^H D_f)^{-1} (D_f^H s_hat + rho (z - u)_hat)   at every frequency f
    z = soft(x + u, lam / rho),   u = u + x - z

and the training loss ``||sum_m d_m * z_m - s||^2 + lam ||z||_1``, differentiated wrt ``d``. The
x-update:

* ``ConvolutionalSolver``: ``difflinalg.ConvolutionalSolver(D_hat, rho)`` once per step,
  ``.solve`` per iteration (C = 1: Sherman-Morrison; C = 3: the C x C Cholesky, Woodbury);
* ``by_hand`` (the anchor, what a practitioner writes with torch alone): C = 1 the
  Sherman-Morrison formula ``(b - a (a^H b) / (rho + |a|^2)) / rho`` (denominator once per step);
  C = 3 Woodbury with ``torch.linalg.solve`` of the C x C system ``rho I + D_f D_f^H`` per
  frequency and iteration (the images as columns);
* ``by_hand_cholesky`` (C = 3 only): the same with ``cholesky`` once and ``cholesky_solve`` per
  iteration;
* ``dense``: ``torch.linalg.solve`` of the M x M system ``rho I + D_f^H D_f`` per frequency and
  iteration (the images as columns).

``x_update`` times the x-update alone: T chained solves ``x <- A^{-1} (b + x / 2)`` with the
same ``D_hat`` and a random ``b`` (B x H x W' x M), and the gradient of ``||x||^2`` wrt ``D_hat``
and ``b`` (no FFTs, no thresholding, which dominate the training step).

Reported per part (``step``, ``x_update``), channel count and dtype (complex64, complex128): median wall time of the training
step (interleaved repeats, one thread), the ratio of median CPU (process) times, peak memory of
one step (torch profiler's CPU allocator events), ratios to ``by_hand``, and the relative
difference of the filters' gradient to ``by_hand``'s. ``dense`` costs O(M^3) per frequency and
iteration: it gets ``--slow-repeats`` (default 1) timed runs, not interleaved.

Run: ``./dev bench csc [--quick] [--json PATH|-] [--repeats R] [--slow-repeats R]``.
"""

from __future__ import annotations

import torch
from _common import (
    interleaved,
    parser,
    peak_memory,
    print_table,
    setup,
    timed_runs,
    write_json,
)

from difflinalg import ConvolutionalSolver

RHO, LAM, K = 1.0, 0.05, 8  # K x K filters


def soft(w, t):
    return torch.sign(w) * torch.relu(w.abs() - t)


def as_columns(b):
    """(B, H, W', M) -> (H, W', M, B): the images as the columns of one block per frequency."""
    return b.movedim(0, -1)


def from_columns(x):
    return x.movedim(-1, 0)


def ours(D_hat):
    return ConvolutionalSolver(D_hat, RHO).solve


def by_hand(D_hat):
    C = D_hat.shape[-2]
    if C == 1:
        d = D_hat[..., 0, :]
        scale = 1.0 / (RHO + (d.abs() ** 2).sum(-1, keepdim=True))
        return lambda b: (b - d.conj() * ((d * b).sum(-1, keepdim=True) * scale)) / RHO
    T = RHO * torch.eye(C, dtype=D_hat.dtype) + D_hat @ D_hat.mH
    return lambda b: (b - from_columns(D_hat.mH @ torch.linalg.solve(T, D_hat @ as_columns(b)))) / RHO


def by_hand_cholesky(D_hat):
    C = D_hat.shape[-2]
    L = torch.linalg.cholesky(RHO * torch.eye(C, dtype=D_hat.dtype) + D_hat @ D_hat.mH)
    return lambda b: (b - from_columns(D_hat.mH @ torch.cholesky_solve(D_hat @ as_columns(b), L))) / RHO


def dense(D_hat):
    M = D_hat.shape[-1]
    A = RHO * torch.eye(M, dtype=D_hat.dtype) + D_hat.mH @ D_hat
    return lambda b: from_columns(torch.linalg.solve(A, as_columns(b)))


METHODS = {"ConvolutionalSolver": ours, "by_hand": by_hand, "by_hand_cholesky": by_hand_cholesky,
           "dense": dense}


def filter_dft(d, H):
    """(M, C, K, K) real filters -> D_hat (H, H/2 + 1, C, M) in the matching complex dtype."""
    cdtype = torch.complex64 if d.dtype == torch.float32 else torch.complex128
    return torch.fft.rfft2(d, s=(H, H)).permute(2, 3, 1, 0).contiguous().to(cdtype)


def step(method, d, s, n_iter):
    """One training step: the loss after ``n_iter`` ADMM iterations and its gradient wrt ``d``."""
    d = d.detach().requires_grad_()
    B, H, W, _ = s.shape
    M = d.shape[0]
    D_hat = filter_dft(d, H)
    zupdate = METHODS[method](D_hat)
    s_hat = torch.fft.rfft2(s, dim=(1, 2))
    Dhs = (D_hat.mH @ s_hat.unsqueeze(-1)).squeeze(-1)  # (B, H, W', M)
    z = u = torch.zeros(B, H, W, M, dtype=d.dtype)
    for _ in range(n_iter):
        x = torch.fft.irfft2(zupdate(Dhs + RHO * torch.fft.rfft2(z - u, dim=(1, 2))), s=(H, W), dim=(1, 2))
        z_new = soft(x + u, LAM / RHO)
        u = u + x - z_new
        z = z_new
    rec = torch.fft.irfft2((D_hat @ torch.fft.rfft2(z, dim=(1, 2)).unsqueeze(-1)).squeeze(-1), s=(H, W), dim=(1, 2))
    loss = ((rec - s) ** 2).sum() + LAM * z.abs().sum()
    (g,) = torch.autograd.grad(loss, d)
    return g


def x_updates(method, d, s, n_iter):
    """The x-update alone: ``n_iter`` chained solves ``x <- A^{-1} (b + x / 2)`` (no FFTs, no
    thresholding) and the gradient of ``||x||^2`` wrt ``D_hat`` and ``b``."""
    B, H, _, _ = s.shape
    D_hat = filter_dft(d, H).requires_grad_()
    gen = torch.Generator().manual_seed(1)
    b = torch.randn(B, H, H // 2 + 1, d.shape[0], generator=gen, dtype=D_hat.dtype).requires_grad_()
    zupdate = METHODS[method](D_hat)
    x = torch.zeros_like(b)
    for _ in range(n_iter):
        x = zupdate(b + 0.5 * x)
    gD, gb = torch.autograd.grad((x.abs() ** 2).sum(), (D_hat, b))
    return torch.cat([gD.flatten(), gb.flatten()])


PARTS = {"step": step, "x_update": x_updates}


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--slow-repeats", type=int, default=1, help="timed runs of dense")
    p.add_argument("--iters", type=int, default=50, help="ADMM iterations (default 50)")
    p.add_argument("--size", type=int, default=64, help="image size H = W (default 64)")
    p.add_argument("--filters", type=int, default=32, help="number of filters M (default 32)")
    p.add_argument("--batch", type=int, default=8, help="images per step (default 8)")
    p.add_argument("--channels", nargs="+", type=int, default=[1, 3], help="channel counts C (default 1 3)")
    p.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(PARTS),
                   help="the training step and/or the x-update alone (default both)")
    p.add_argument("--fast-only", action="store_true", help="skip dense")
    args = p.parse_args()
    if args.threads is None:
        args.threads = 1
    setup(args)
    n_iter, H, M, B = args.iters, args.size, args.filters, args.batch
    if args.quick:
        n_iter, H, M, B = 5, 16, 8, 2
    repeats = 2 if args.quick else args.repeats
    rows = []
    for part in args.parts:
        run = PARTS[part]
        for C in args.channels:
            fast = ["ConvolutionalSolver", "by_hand"] + (["by_hand_cholesky"] if C > 1 else [])
            methods = fast + ([] if args.fast_only else ["dense"])
            for dtype in (torch.float32, torch.float64):
                cname = "complex64" if dtype == torch.float32 else "complex128"
                gen = torch.Generator().manual_seed(0)
                d = torch.randn(M, C, K, K, generator=gen, dtype=torch.float64).to(dtype) / K
                s = torch.randn(B, H, H, C, generator=gen, dtype=torch.float64).to(dtype)
                calls = {k: (lambda k=k, d=d, s=s, run=run: run(k, d, s, n_iter)) for k in methods}
                wall, cpu = interleaved({k: calls[k] for k in fast}, repeats)
                grads = {k: calls[k]() for k in fast}
                for k in methods[len(fast):]:
                    run(k, d, s, min(n_iter, 2))  # warm-up
                    wall[k], grads[k] = timed_runs(calls[k], args.slow_repeats)
                mem = {k: peak_memory(calls[k]) for k in methods}
                ref = grads["by_hand"]
                for k in methods:
                    rows.append({
                        "part": part, "C": C, "dtype": cname, "x_update": k, "time_s": wall[k],
                        "time_ratio": wall[k] / wall["by_hand"],
                        "cpu_ratio": cpu[k] / cpu["by_hand"] if k in cpu else float("nan"),
                        "peak_MB": mem[k] / 2**20, "mem_ratio": mem[k] / mem["by_hand"],
                        "grad_rel_diff": float((grads[k] - ref).abs().max() / ref.abs().max()),
                    })
                print_table(rows[-len(methods):], title=f"{part}, C = {C}, {cname}")
    print_table(rows, title=(f"All (M = {M} filters {K}x{K}, {H}x{H} images, F = {H * (H // 2 + 1)}, "
                             f"batch {B}, {n_iter} iterations, {args.threads} thread(s), "
                             f"{repeats} interleaved repeats)"))
    write_json(rows, args.json)


if __name__ == "__main__":
    main()
