"""Truncated SVD of a large matrix with gradients, against the full SVD.

The story. You need the k leading singular triplets of a tall matrix -- a low-rank approximation,
a nuclear-norm-like penalty, a PCA layer -- and the gradient of a loss of them. The obvious route
is ``torch.linalg.svd`` and slicing: it pays for all ``min(m, n)`` triplets, forward and backward,
and its backward divides by ``s_i^2 - s_j^2`` for *every* pair, so a matrix with a repeated tail
(exactly low rank: many zero singular values, however far from the k you keep) gets a NaN
gradient for a loss that is perfectly smooth.

What difflinalg gives: ``svd_truncated(A, k)`` computes only the leading block (randomized block
Krylov iteration for large matrices, ``method="auto"``), and its backward needs only the gap
``s_k > s_{k+1}`` -- the projection onto the discarded part is handled by solves with the
matrix, not by the discarded vectors -- so the gradient agrees with the full SVD's where that one
is finite, is finite where it is not, and costs O(m n k) per Krylov iteration instead of the
full SVD's O(m n min(m, n)).

The script (1) checks ``svd_truncated``'s derivatives against finite differences on a small
matrix (real and complex); (2) on a large low-rank-plus-noise matrix compares the loss and the
gradient of ``torch.linalg.svd``, ``difflinalg.svd_truncated(method="full")`` and
``method="iterative"``; (3) repeats that on an exactly low-rank matrix; (4) times forward plus
backward for growing sizes (one thread, medians of interleaved repeats) and plots it.

Run: ``python examples/08_truncated_svd.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import difflinalg  # noqa: E402
from difflinalg.check import gradcheck  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="smaller matrices, one repeat, for CI")
parser.add_argument("--out", type=Path, default=Path(__file__).parent / "_output")
args = parser.parse_args()
args.out.mkdir(parents=True, exist_ok=True)
torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)  # timings comparable between machines and runs
gen = torch.Generator().manual_seed(0)
K = 10


def low_rank(m: int, n: int, r: int, noise: float) -> torch.Tensor:
    """Rank-r signal with singular values from 1 down to 1e-2, plus Gaussian noise of that size."""
    s = torch.logspace(0, -2, r)
    U, _ = torch.linalg.qr(torch.randn(m, r, generator=gen))
    V, _ = torch.linalg.qr(torch.randn(n, r, generator=gen))
    return (U * s) @ V.T * (m * n) ** 0.25 + noise * torch.randn(m, n, generator=gen)


def make_loss(Y: torch.Tensor, svd_k):
    """<Y, best rank-k approximation of A>: smooth in A wherever s_k > s_{k+1}."""
    def loss(A):
        U, S, Vh = svd_k(A)
        return ((U * S) @ Vh * Y).sum()
    return loss


METHODS = {
    "torch.linalg.svd + slice": lambda A: (lambda U, S, Vh: (U[..., :K], S[..., :K], Vh[..., :K, :]))(
        *torch.linalg.svd(A, full_matrices=False)),
    "svd_truncated, full": lambda A: difflinalg.svd_truncated(A, K, method="full"),
    "svd_truncated, iterative": lambda A: difflinalg.svd_truncated(A, K, method="iterative"),
}


def value_and_grad(loss, A):
    X = A.clone().requires_grad_()
    v = loss(X)
    (g,) = torch.autograd.grad(v, X)
    return v.detach(), g


# --- 1. finite differences on a small matrix -----------------------------------------------------
print("svd_truncated(A, 10) against finite differences (gradcheck: vjp, jvp, hvp):")
for dtype in (torch.float64, torch.complex128):
    A = low_rank(60, 40, 20, 1e-3).to(dtype)
    if dtype.is_complex:
        A = A + 1j * low_rank(60, 40, 20, 1e-3)
    Y = torch.randn(60, 40, generator=gen, dtype=dtype)
    # The loss is real: Re<Y, A_k> for complex A. gradcheck computes forward mode and
    # forward-over-reverse through torch.func, where difflinalg's tie checks cannot raise and say
    # so once (TransformCheckWarning); this matrix has no ties, so the notice is not needed here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", difflinalg.TransformCheckWarning)
        rep = gradcheck(lambda A_: make_loss(Y, METHODS["svd_truncated, full"])(A_).real, A)
    print(f"  {str(dtype):<16} {len(rep.records)} checks passed, max rel. error {rep.max_rel_err():.1e}")

# --- 2./3. agreement on large matrices -----------------------------------------------------------
m, n = (800, 400) if args.quick else (2000, 1000)
cases = {
    "low rank + noise (full rank)": low_rank(m, n, 40, 1e-3),
    "exactly rank 40 (zero tail)": low_rank(m, n, 40, 0.0),
}
Y = torch.randn(m, n, generator=gen)
for case, A in cases.items():
    S = torch.linalg.svdvals(A)
    print(f"\n{m} x {n}, {case}: s_{K} = {float(S[K - 1]):.3g}, s_{K + 1} = {float(S[K]):.3g}, "
          f"s_min = {float(S[-1]):.1e}")
    results = {name: value_and_grad(make_loss(Y, f), A) for name, f in METHODS.items()}
    v_ref, g_ref = results["svd_truncated, full"]
    print(f"  {'method':<26} {'loss':>20} {'gradient finite':>16} {'max |g - g_full| / max |g_full|':>32}")
    for name, (v, g) in results.items():
        fin = bool(torch.isfinite(g).all())
        rel = float((g - g_ref).abs().max() / g_ref.abs().max()) if fin else float("nan")
        print(f"  {name:<26} {float(v):>20.12f} {str(fin):>16} {rel:>32.1e}")

# --- 4. timing -----------------------------------------------------------------------------------
sizes = [(400, 200), (800, 400)] if args.quick else [(500, 250), (1000, 500), (2000, 1000)]
repeats = 1 if args.quick else 3
times = {name: [] for name in METHODS}
print(f"\nforward + backward, k = {K}, one thread, median of {repeats} interleaved repeat(s) [s]")
print(f"{'m x n':>12}" + "".join(f"{name:>27}" for name in METHODS) + f"{'torch / iterative':>18}")
for m_, n_ in sizes:
    A = low_rank(m_, n_, 40, 1e-3)
    Y = torch.randn(m_, n_, generator=gen)
    runs = {name: [] for name in METHODS}
    for _ in range(repeats):  # interleaved: a slow moment of the machine hits every method
        for name, f in METHODS.items():
            t0 = time.perf_counter()
            value_and_grad(make_loss(Y, f), A)
            runs[name].append(time.perf_counter() - t0)
    med = {name: statistics.median(r) for name, r in runs.items()}
    for name in METHODS:
        times[name].append(med[name])
    ratio = med["torch.linalg.svd + slice"] / med["svd_truncated, iterative"]
    print(f"{f'{m_} x {n_}':>12}" + "".join(f"{med[name]:>27.3f}" for name in METHODS) + f"{ratio:>17.1f}x")

fig, ax = plt.subplots(figsize=(6, 4))
for name, ts in times.items():
    ax.loglog([m_ * n_ for m_, n_ in sizes], ts, "o-", label=name)
ax.set(xlabel="m n (n = m / 2)", ylabel="forward + backward [s]", title=f"Leading {K} triplets with gradient")
ax.legend()
fig.tight_layout()
fig.savefig(args.out / "08_truncated_svd_time.png", dpi=120)
print(f"\nfigure: {args.out / '08_truncated_svd_time.png'}")
