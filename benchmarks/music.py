"""Eigengap + MUSIC loss on one shared decomposition against one torch.linalg.eigh, forward+backward.

Issue 19's setting: a batch of 64 covariances of a 12 x 12 URA (144 x 144) with 4 signal
eigenvalues in [5, 10] above a noise floor ``1 + 0.1 randn`` (0.1 so that the anchor's gradient
is finite; the timings do not depend on it), 64 steering vectors. The loss is the eigengap hinge
on ``lambda_4 - lambda_5`` plus the MUSIC noise-subspace power ``sum_a ||E_n^H a||^2``:

* anchor: one ``torch.linalg.eigh`` and the same loss on its output (what a user writes);
* shared: ``d = signal.decompose(R)``, ``eigengap_loss(d, ...) + noise_subspace_power(d, ...).sum()``;
* separate: ``eigengap_loss(R, ...) + noise_subspace_power(R, ...).sum()`` (two decompositions,
  the cost before the shared decomposition existed), for information.

Reported: median seconds of forward+backward over interleaved repeats, the ratio to the anchor
(floor of issue 19: shared <= 1.05x, complex64 and complex128), the ratio of median process CPU
times (steadier than wall time on a loaded machine), and the relative errors of the
gradients (ours and the anchor's) against the anchor's gradient computed in complex128.

Run: ``./dev bench music [--quick] [--json PATH|-] [--repeats R] [--threads T]`` (threads default 1).
"""

from __future__ import annotations

import torch

from _common import array_covariances, interleaved, parser, print_table, setup, write_json
from difflinalg.signal import decompose, eigengap_loss, noise_subspace_power, ura_steering

N, K, MARGIN = 144, 4, 6.0


def covariances(batch: int, dtype: torch.dtype, gen: torch.Generator) -> torch.Tensor:
    return array_covariances(batch, dtype, gen, N)  # K = 4 sources


def anchor_loss(R, S):
    w, V = torch.linalg.eigh(R)
    En = V[..., : N - K]
    hinge = torch.relu(MARGIN - (w[..., N - K] - w[..., N - K - 1])).mean()
    return hinge + (En.mH @ S).abs().square().sum()


def shared_loss(R, S):
    d = decompose(R)
    return eigengap_loss(d, K, MARGIN) + noise_subspace_power(d, S, K).sum()


def separate_loss(R, S):
    return eigengap_loss(R, K, MARGIN) + noise_subspace_power(R, S, K).sum()


def step(loss, R, S):
    def run():
        r = R.clone().requires_grad_()
        g, = torch.autograd.grad(loss(r, S), r)
        return g
    return run


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=None, help="batch size (default 64, quick 8)")
    p.add_argument("--no-separate", action="store_true", help="time only the anchor and the shared variant")
    args = p.parse_args()
    if args.threads is None:
        args.threads = 1
    setup(args)
    batch = args.batch or (8 if args.quick else 64)
    repeats = 3 if args.quick else args.repeats
    rows = []
    for dtype in (torch.complex64, torch.complex128):
        gen = torch.Generator().manual_seed(0)
        R = covariances(batch, dtype, gen)
        t, ph = torch.meshgrid(torch.linspace(0.05, 1.0, 8), torch.linspace(-3.0, 3.0, 8), indexing="ij")
        S = ura_steering(12, 12, t.reshape(-1), ph.reshape(-1)).to(dtype)
        fns = {"anchor": step(anchor_loss, R, S), "shared": step(shared_loss, R, S)}
        if not args.no_separate:
            fns["separate"] = step(separate_loss, R, S)
        wall, cpu = interleaved(fns, repeats)
        # reference: the anchor in complex128 (correct on this 0.1-wide floor, which complex128
        # resolves); the anchor's own complex64 gradient of the noise-subspace loss is not
        g_ref = step(anchor_loss, R.to(torch.complex128), S.to(torch.complex128))()
        g_anchor = fns["anchor"]().to(torch.complex128)
        for name in [v for v in ("shared", "separate") if v in fns]:
            g = fns[name]().to(torch.complex128)
            rows.append({
                "dtype": str(dtype).replace("torch.", ""), "batch": batch, "variant": name,
                "anchor_s": wall["anchor"], "time_s": wall[name], "ratio": wall[name] / wall["anchor"],
                "cpu_ratio": cpu[name] / cpu["anchor"],
                "grad_err": float((g - g_ref).norm() / g_ref.norm()),
                "anchor_grad_err": float((g_anchor - g_ref).norm() / g_ref.norm()),
                "floor_1.05x": (f"wall {'met' if wall[name] <= 1.05 * wall['anchor'] else 'MISSED'}, "
                                f"cpu {'met' if cpu[name] <= 1.05 * cpu['anchor'] else 'MISSED'}") if name == "shared" else "",
            })
    print_table(rows, title=f"eigengap + MUSIC loss forward+backward vs torch.linalg.eigh ({args.threads} thread(s), "
                            f"median of {repeats} interleaved repeats)")
    write_json(rows, args.json)


if __name__ == "__main__":
    main()
