"""svd_truncated forward+backward against a full torch.linalg.svd forward+backward (issue 3).

A ``n x n`` float64 matrix (default 2000) with a prescribed spectrum, the ``k = 16`` leading
triplets, and a gauge-invariant loss of all of them (singular values, ``U_k S_k Vh_k``,
``|U_k^T x|^2``, ``|Vh_k y|^2``). The anchor is what a user would write: a full
``torch.linalg.svd`` and slicing. Reported: median times of forward+backward (and forward alone),
the ratio anchor / difflinalg, and the relative difference of the gradients.

Spectra: ``s_i = i^-2``, ``s_i = 1/i`` and ``s_i = 0.9^(i-1)`` (floored at ``1e-10`` with distinct
values: a full SVD's reference gradient divides by ``s_i^2 - s_j^2``, which rounding makes 0
between values below ``eps``) (decaying, the use case of a truncated SVD: tensor networks, PCA),
and a Gaussian matrix (flat top of the spectrum, ``s_16 / s_17 = 1.003``: the Krylov iteration
needs ~50 steps and restarts, still cheaper than a full SVD at n = 2000; method="auto" would fall
back to a full SVD if its convergence rate said otherwise).

Run: ``./dev bench svd_truncated [--quick] [--json PATH|-] [--repeats R] [--threads T]``.
"""

from __future__ import annotations

import torch

from _common import interleaved, parser, print_table, setup, write_json
from difflinalg import svd_truncated
from difflinalg.spectral._svd_iterative import krylov_svd
from difflinalg.spectral._svd_truncated import _budgets, _prefers_iterative


def make_matrix(kind: str, n: int, gen: torch.Generator) -> torch.Tensor:
    if kind == "gaussian":
        return torch.randn(n, n, generator=gen, dtype=torch.float64)
    i = torch.arange(1, n + 1, dtype=torch.float64)
    floor = 1e-10 * (2.0 - i / n)
    s = {"power2": i ** -2.0, "power1": 1.0 / i, "geometric": 0.9 ** (i - 1) + floor}[kind]
    Q1 = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64)).Q
    Q2 = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64)).Q
    return (Q1 * s) @ Q2.mT


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=None, help="matrix size (default 2000, quick 600)")
    p.add_argument("--k", type=int, default=16, help="kept triplets")
    p.add_argument("--spectra", default="power2,power1,geometric,gaussian")
    args = p.parse_args()
    setup(args)
    n = args.n or (600 if args.quick else 2000)
    k = args.k
    repeats = 2 if args.quick else args.repeats
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 1, generator=gen, dtype=torch.float64)
    y = torch.randn(n, 1, generator=gen, dtype=torch.float64)
    W = torch.randn(n, n, generator=gen, dtype=torch.float64)

    def loss(U, S, Vh):
        M = (U * S) @ Vh
        return S.sum() + (M * W).sum() + (U.mT @ x).square().sum() + (Vh @ y).square().sum()

    def anchor(A):
        A = A.detach().requires_grad_()
        U, S, Vh = torch.linalg.svd(A, full_matrices=False)
        return torch.autograd.grad(loss(U[:, :k], S[:k], Vh[:k]), A)[0]

    def ours(A, method):
        A = A.detach().requires_grad_()
        return torch.autograd.grad(loss(*svd_truncated(A, k, method=method)), A)[0]

    rows = []
    for kind in args.spectra.split(","):
        A = make_matrix(kind, n, torch.Generator().manual_seed(1))
        with torch.no_grad():
            it = krylov_svd(A, k, maxiter=_budgets(n, n, k)[0],
                            give_up_early=True) if _prefers_iterative(n, n, k) else None
        path = f"iterative ({it[-1]} steps)" if it is not None else "full SVD (fallback)"
        g_ref = anchor(A)
        grads = {m: ours(A, m) for m in ("auto", "full")}
        # Interleaved repeats (the machines are shared: load changes over a run).
        t = interleaved({
            "anchor": lambda: anchor(A),
            "anchor_fwd": lambda: torch.linalg.svd(A, full_matrices=False),
            "auto": lambda: ours(A, "auto"),
            "auto_fwd": lambda: svd_truncated(A, k, method="auto"),
            "full": lambda: ours(A, "full"),
            "full_fwd": lambda: svd_truncated(A, k, method="full"),
        }, repeats)[0]
        rows.append(dict(spectrum=kind, method="torch.linalg.svd (anchor)", path="full SVD",
                         fwd_s=t["anchor_fwd"], fwd_bwd_s=t["anchor"], speedup=1.0,
                         grad_rel_diff=0.0))
        for m in ("auto", "full"):
            rows.append(dict(
                spectrum=kind, method=f"svd_truncated({m})",
                path=path if m == "auto" else "full SVD", fwd_s=t[f"{m}_fwd"], fwd_bwd_s=t[m],
                speedup=t["anchor"] / t[m],
                grad_rel_diff=float((grads[m] - g_ref).norm() / g_ref.norm()),
            ))
    print_table(rows, title=f"svd_truncated, {n} x {n} float64, k = {k}, "
                            f"{torch.get_num_threads()} threads (speedup = anchor fwd+bwd / ours)")
    write_json(rows, args.json)


if __name__ == "__main__":
    main()
