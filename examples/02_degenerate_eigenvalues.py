"""Degenerate eigenvalues: where ``torch.linalg.eigh``'s gradient is NaN, and what difflinalg gives.

The story. Symmetric matrices with repeated eigenvalues are not exotic: a covariance with white
noise, a graph Laplacian with symmetries, a Hamiltonian with a degenerate level, any matrix
initialised to a multiple of the identity. Many losses are perfectly smooth there -- the sum of
the k smallest eigenvalues, the projector onto an eigenspace, a matrix function ``V f(L) V^H`` --
but ``torch.linalg.eigh``'s backward divides by every eigenvalue difference, including the zero
ones, and returns NaN at an exact tie and rounding noise amplified by 1/gap at a near one.

What difflinalg gives, loss by loss:

* eigenvalue sums over a cluster: exact everywhere (torch too);
* eigenspace projectors: ``difflinalg.subspace_projector`` (gaps across the split only) and
  ``difflinalg.eigh`` (ties up to its rounding-level tolerance), exact at exact and
  rounding-level ties;
* matrix functions ``V f(L) V^H``: ``difflinalg.eigh_function`` / ``hermitian_function`` (divided
  differences), exact at any tie. Through ``difflinalg.eigh`` such a coupled loss is outside the
  class its cotangents determine, and it raises ``DegenerateSpectrumError`` naming the fix instead
  of returning a wrong number;
* a loss of one eigenvector inside a cluster has no derivative at all: ``difflinalg.eigh`` and
  ``difflinalg.svd`` raise a named error.

Every reference gradient is itself checked against finite differences (``difflinalg.check``).
The figure sweeps the gap ``g`` of ``Q diag(1, 1 + g, 3, 5) Q^T`` from 0 to 1e-2 and plots the
gradient error of each method.

Run: ``python examples/02_degenerate_eigenvalues.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import difflinalg  # noqa: E402
from difflinalg.check import gradcheck  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="fewer matrices, for CI")
parser.add_argument("--out", type=Path, default=Path(__file__).parent / "_output")
args = parser.parse_args()
args.out.mkdir(parents=True, exist_ok=True)
torch.set_default_dtype(torch.float64)
gen = torch.Generator().manual_seed(0)

W = torch.randn(4, 4, generator=gen)
W = W + W.T  # a fixed symmetric weight: losses are <W, something>
K = 2  # the cluster: the two smallest eigenvalues


def herm(A: torch.Tensor) -> torch.Tensor:
    # Every loss reads the symmetric part, so that finite differences in any direction and the
    # (symmetric) gradients of all methods describe the same function.
    return (A + A.mT) / 2


def sqrtm_eig(w: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    return (V * w.sqrt()) @ V.mT


# loss name -> {method name: loss function}; the first method of each loss is the reference.
LOSSES = {
    "sum of the 2 smallest eigenvalues": {
        "eigh_subspace (ref)": lambda A: difflinalg.eigh_subspace(herm(A), K).eigenvalues.sum(),
        "torch.linalg.eigh": lambda A: torch.linalg.eigh(herm(A)).eigenvalues[:K].sum(),
        "difflinalg.eigh": lambda A: difflinalg.eigh(herm(A)).eigenvalues[:K].sum(),
    },
    "<W, projector onto their eigenspace>": {
        "subspace_projector (ref)": lambda A: (W * difflinalg.subspace_projector(herm(A), K)).sum(),
        "torch.linalg.eigh": lambda A: (W * (lambda V: V @ V.mT)(torch.linalg.eigh(herm(A))[1][:, :K])).sum(),
        "difflinalg.eigh": lambda A: (W * (lambda V: V @ V.mT)(difflinalg.eigh(herm(A))[1][:, :K])).sum(),
        "eigh, degeneracy_tol=1e-10": lambda A: (
            W * (lambda V: V @ V.mT)(difflinalg.eigh(herm(A), degeneracy_tol=1e-10)[1][:, :K])
        ).sum(),
    },
    "<W, sqrtm(A)> = <W, V sqrt(L) V^T>": {
        "hermitian_function (ref)": lambda A: (
            W * difflinalg.hermitian_function(herm(A), torch.sqrt, lambda x: 0.5 / x.sqrt())
        ).sum(),
        "torch.linalg.eigh": lambda A: (W * sqrtm_eig(*torch.linalg.eigh(herm(A)))).sum(),
        "difflinalg.eigh": lambda A: (W * sqrtm_eig(*difflinalg.eigh(herm(A)))).sum(),
        "difflinalg.eigh_function": lambda A: (
            W * difflinalg.eigh_function(herm(A), torch.sqrt, lambda x: 0.5 / x.sqrt())
        ).sum(),
    },
}


def grad(f, A: torch.Tensor) -> torch.Tensor:
    X = A.clone().requires_grad_()
    (g,) = torch.autograd.grad(f(X), X)
    return g


def test_matrix(gap: float, seed: int | None) -> torch.Tensor:
    """``Q diag(1, 1 + gap, 3, 5) Q^T``; ``seed=None``: Q = I (the diagonal, exactly stored)."""
    w = torch.tensor([1.0, 1.0 + gap, 3.0, 5.0])
    if seed is None:
        return torch.diag(w)
    Q, _ = torch.linalg.qr(torch.randn(4, 4, generator=torch.Generator().manual_seed(seed)))
    return herm(Q @ torch.diag(w) @ Q.T)


# exact tie: diag(1, 1, 3, 5); rounding tie: Q diag(1, 1, 3, 5) Q^T, whose computed eigenvalues
# differ by ~1e-16; near tie: Q diag(1, 1 + 1e-9, 3, 5) Q^T.
POINTS = {
    "exact tie": test_matrix(0.0, None),
    "rounding tie": test_matrix(0.0, 1),
    "gap 1e-9": test_matrix(1e-9, 1),
}

# --- the table: max |gradient - reference| per loss, method and point --------------------------
print("max |gradient - reference gradient| (NaN: not finite); references checked by gradcheck\n")
header = f"{'loss / method':<38}" + "".join(f"{p:>14}" for p in POINTS)
print(header)
print("-" * len(header))
footnotes: set[str] = set()
for loss_name, methods in LOSSES.items():
    print(loss_name)
    ref_name, ref_fn = next(iter(methods.items()))
    refs = {}
    for point, A in POINTS.items():
        # The reference against finite differences (reverse mode; raises GradcheckError if wrong).
        gradcheck(ref_fn, A.clone(), modes=("vjp",), n_directions=3)
        refs[point] = grad(ref_fn, A)
    for name, fn in methods.items():
        cells = []
        for point, A in POINTS.items():
            try:
                g = grad(fn, A)
            except difflinalg.DifflinalgError as e:  # exact or loud: a named error, never a wrong number
                cells.append("raises*")
                footnotes.add(type(e).__name__)
                continue
            err = (g - refs[point]).abs().max()
            cells.append("NaN" if not torch.isfinite(g).all() else f"{float(err):.1e}")
        print(f"  {name:<36}" + "".join(f"{c:>14}" for c in cells))

print(f"* raises {', '.join(sorted(footnotes))}, whose message names the exact alternative "
      "(here eigh_function)" if footnotes else "")

# A loss of one eigenvector inside the cluster: it has no derivative at a tie (the eigenvector is
# any unit vector of the eigenspace). What each library does with it:
print("\n(v_1^T w)^2 for the eigenvector v_1 of the double eigenvalue (no derivative exists):")
w_vec = W[:, 0]
A = POINTS["exact tie"]
g_torch = grad(lambda A: (torch.linalg.eigh(herm(A))[1][:, 0] @ w_vec) ** 2, A)
print(f"  torch.linalg.eigh : {'finite (an arbitrary number)' if torch.isfinite(g_torch).all() else 'NaN'}")
try:
    grad(lambda A: (difflinalg.eigh(herm(A))[1][:, 0] @ w_vec) ** 2, A)
    print("  difflinalg.eigh   : no error")
except difflinalg.DifflinalgError as e:
    print(f"  difflinalg.eigh   : {type(e).__name__}: {str(e)[:90]}...")
try:
    grad(lambda A: (difflinalg.svd(herm(A))[0][:, 3] @ w_vec) ** 2, A)
    print("  difflinalg.svd    : no error")
except difflinalg.GaugeError as e:
    print(f"  difflinalg.svd    : GaugeError: {str(e)[:90]}...")

# --- the sweep over the gap ----------------------------------------------------------------------
gaps = np.concatenate([[0.0], np.logspace(-16, -2, 8 if args.quick else 29)])
seeds = range(1, 4 if args.quick else 21)
curves = {
    ("projector", "torch.linalg.eigh"): [],
    ("projector", "difflinalg.eigh"): [],
    ("projector", "eigh, degeneracy_tol=1e-10"): [],
    ("sqrtm", "torch.linalg.eigh"): [],
    ("sqrtm", "difflinalg.eigh_function"): [],
}
loss_of = {"projector": LOSSES["<W, projector onto their eigenspace>"],
           "sqrtm": LOSSES["<W, sqrtm(A)> = <W, V sqrt(L) V^T>"]}
raised = {key: 0 for key in curves}
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # no warnings expected; keep a sweep's output readable anyway
    for gap in gaps:
        worst = {key: 0.0 for key in curves}
        for seed in seeds:
            A = test_matrix(float(gap), seed)
            for (loss, method) in curves:
                ref = grad(next(iter(loss_of[loss].values())), A)
                try:
                    g = grad(loss_of[loss][method], A)
                except difflinalg.DifflinalgError:
                    raised[(loss, method)] += 1  # loud, not wrong: counted, not plotted
                    continue
                e = float((g - ref).abs().max()) if torch.isfinite(g).all() else np.inf
                worst[(loss, method)] = max(worst[(loss, method)], e)
        for key in curves:
            curves[key].append(worst[key])

print(f"\nworst gradient error over {len(seeds)} random rotations Q, by gap (inf: NaN somewhere)")
print(f"{'':>9}" + "".join(f"{loss:>12}" for loss, _ in curves))
print(f"{'gap':>9}" + "".join(f"{m.split(',')[0].replace('torch.linalg.', 'torch ').replace('difflinalg.', ''):>12}"
                              for _, m in curves))
for i, gap in enumerate(gaps):
    print(f"{gap:>9.0e}" + "".join(f"{curves[key][i]:>12.1e}" for key in curves))
print("(the 'eigh' in the third column has degeneracy_tol=1e-10)")
for key, n in raised.items():
    if n:
        print(f"{key[0]} through {key[1]}: a named error in {n} of {len(gaps) * len(seeds)} cases")

fig, ax = plt.subplots(figsize=(7, 4.5))
x = np.where(gaps == 0, 1e-17, gaps)
for (loss, method), ys in curves.items():
    ys = np.array(ys)
    ax.loglog(x, np.where(np.isfinite(ys), np.maximum(ys, 1e-17), 1e2), "o-" if loss == "projector" else "s--",
              label=f"{loss}: {method}")
ax.axhline(1e2, color="grey", lw=0.5)
ax.text(2e-17, 2e2, "NaN", color="grey")
ax.set(xlabel="gap g (0 plotted at 1e-17)", ylabel="max |grad - exact| (worst Q)",
       title="Gradient error at a near-double eigenvalue\n(reference: subspace_projector, hermitian_function)")
ax.legend(fontsize=7)
fig.tight_layout()
fig.savefig(args.out / "02_gap_sweep.png", dpi=120)
print(f"\nfigure: {args.out / '02_gap_sweep.png'}")
