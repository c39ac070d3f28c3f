"""Differentiating a Bessel function series, four ways.

The story. You have a special function that PyTorch does not ship -- here the Bessel function of
the first kind of real order,

    J_nu(x) = sum_k (-1)^k (x/2)^(2k+nu) / (k! Gamma(k+nu+1)),

written as a truncated series in torch (``lgamma`` keeps the huge factorials in range) -- and you
need its derivative in ``x``. There are four ways to get it, and they should agree:

1. forward-mode automatic differentiation (``torch.func.jvp``),
2. reverse-mode automatic differentiation (``torch.autograd.grad``),
3. the manual rule from the recurrence, ``J'_nu = (J_{nu-1} - J_{nu+1}) / 2``,
4. a finite difference: the 5-point central stencil ``central_fdm(5, 1)`` of
   ``difflinalg.check``, with the step chosen to balance truncation and rounding.

What goes wrong elsewhere: a hand-rolled finite difference with a "small" step (1e-10, say) loses
most of its digits to rounding, and one with a large step to truncation; a stencil typed from
memory with one wrong weight gives a smooth, plausible, wrong number. What difflinalg gives: the
stencil weights derived exactly (rational arithmetic, checked here against a Vandermonde solve
you can do yourself) and ``difflinalg.check.derivative``, which picks the step that minimizes the
total error and reports an error estimate next to the value.

The script prints the derivative at nu = 2, x = 0.5 (0.11985236384014333) from each method with
its difference to the reference, derives the 5-point stencil, and plots J_nu and its derivative
for a few orders and the finite-difference error against the step size (the "V" of truncation
against rounding).

Run: ``python examples/01_bessel_derivatives.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import math
from fractions import Fraction
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import scipy.special  # noqa: E402
import torch  # noqa: E402

from difflinalg.check import central_fdm, derivative  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="fewer points, for CI")
parser.add_argument("--out", type=Path, default=Path(__file__).parent / "_output")
args = parser.parse_args()
args.out.mkdir(parents=True, exist_ok=True)
torch.set_default_dtype(torch.float64)

# --- the function --------------------------------------------------------------------------------
# 60 terms: the k-th term is below (x/2)^(2k) / (k!)^2, under 1e-40 of the sum for x <= 10 at k=60.
# For large x the alternating terms grow to ~e^x / sqrt(x) before they decay, so the series loses
# about x / ln(10) digits to cancellation: we stay in 0 < x <= 10, where it keeps >= 11 digits.
N_TERMS = 60


def bessel_j(nu: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    """J_nu(x) for x > 0 by the power series, differentiable in x (and nu) by plain autograd."""
    k = torch.arange(N_TERMS, dtype=x.dtype)
    nu = torch.as_tensor(nu, dtype=x.dtype)
    xk = x.unsqueeze(-1)
    sign = 1.0 - 2.0 * (k % 2)
    # log of (x/2)^(2k+nu) / (k! Gamma(k+nu+1)); lgamma keeps the factorials from overflowing.
    log_term = (2 * k + nu) * torch.log(xk / 2) - torch.lgamma(k + 1) - torch.lgamma(k + nu + 1)
    # Gamma(k+nu+1) has poles for negative integer k+nu+1 (nu = -1, k = 0): 1/Gamma = 0 there.
    finite = (k + nu + 1 > 0) | (torch.frac(k + nu + 1) != 0)
    return (sign * torch.where(finite, torch.exp(log_term), 0.0)).sum(-1)


# The series against SciPy, on a grid and for a few orders (integer and not).
xs = torch.linspace(0.05, 10.0, 200 if args.quick else 2000)
worst = max(
    float((bessel_j(nu, xs) - torch.from_numpy(scipy.special.jv(nu, xs.numpy()))).abs().max())
    for nu in (0.0, 1.0, 2.0, 2.5, 5.0)
)
print(f"series vs scipy.special.jv on (0, 10], nu in {{0, 1, 2, 2.5, 5}}: max |diff| = {worst:.2e}")

# --- the derivative at nu = 2, x = 0.5, four ways ------------------------------------------------
NU, X0 = 2.0, 0.5
REFERENCE = 0.11985236384014333  # (J_1(0.5) - J_3(0.5)) / 2, SciPy's jvp(2, 0.5)
x0 = torch.tensor(X0)

# 1. forward mode: push the tangent dx = 1 through the series.
_, d_forward = torch.func.jvp(lambda x: bessel_j(NU, x), (x0,), (torch.ones(()),))
# 2. reverse mode: pull the cotangent 1 back through it.
x_leaf = x0.clone().requires_grad_()
(d_reverse,) = torch.autograd.grad(bessel_j(NU, x_leaf), x_leaf)
# 3. the manual rule from the recurrence J_{nu-1} + J_{nu+1} = (2 nu / x) J_nu and its derivative.
d_manual = (bessel_j(NU - 1, x0) - bessel_j(NU + 1, x0)) / 2
# 4. the 5-point central difference, step chosen by difflinalg.check.derivative.
fd = derivative(lambda x: bessel_j(NU, x), x0, p=5, q=1)

print(f"\nd/dx J_2(x) at x = 0.5; reference {REFERENCE!r} (scipy.special.jvp(2, 0.5) = "
      f"{float(scipy.special.jvp(NU, X0))!r})")
rows = [
    ("forward mode", "torch.func.jvp", float(d_forward)),
    ("reverse mode", "torch.autograd.grad", float(d_reverse)),
    ("manual rule", "(J_1 - J_3) / 2", float(d_manual)),
    ("central_fdm(5, 1)", f"h = {float(fd.step):.1e}", float(fd.value)),
]
print(f"{'method':<18} {'how':<20} {'value':>22} {'minus reference':>16}")
for name, how, value in rows:
    print(f"{name:<18} {how:<20} {value:>22.17f} {value - REFERENCE:>16.2e}")
print(f"(the finite difference's own error estimate: {float(fd.error):.1e})")
print("pairwise differences:")
for i in range(len(rows)):
    for j in range(i + 1, len(rows)):
        print(f"  {rows[i][0]:<18} - {rows[j][0]:<18} {rows[i][2] - rows[j][2]: .2e}")

# --- the 5-point stencil from its Vandermonde system ---------------------------------------------
# f(x + o h) = sum_j f^(j)(x) (o h)^j / j!. Weights c with sum_i c_i o_i^j = j! [j == q] for
# j = 0..p-1 make sum_i c_i f(x + o_i h) / h^q = f^(q)(x) + O(h^(p-q)): a Vandermonde system.
offsets = [-2, -1, 0, 1, 2]
q = 1
V = np.array([[o**j for o in offsets] for j in range(len(offsets))], dtype=float)
rhs = np.array([math.factorial(q) if j == q else 0 for j in range(len(offsets))], dtype=float)
c_float = np.linalg.solve(V, rhs)


def solve_exact(rows_: list[list[Fraction]], b: list[Fraction]) -> list[Fraction]:
    """Gauss-Jordan elimination in rational arithmetic: the exact weights."""
    m = [r[:] + [bi] for r, bi in zip(rows_, b)]
    n = len(m)
    for col in range(n):
        piv = next(r for r in range(col, n) if m[r][col] != 0)
        m[col], m[piv] = m[piv], m[col]
        m[col] = [v / m[col][col] for v in m[col]]
        for r in range(n):
            if r != col and m[r][col] != 0:
                m[r] = [a - m[r][col] * b_ for a, b_ in zip(m[r], m[col])]
    return [r[-1] for r in m]


c_exact = solve_exact([[Fraction(v) for v in row] for row in V.astype(int).tolist()],
                      [Fraction(int(v)) for v in rhs])
lib = central_fdm(5, 1)
print("\nthe 5-point first-derivative stencil, offsets", offsets)
print(f"  Vandermonde solve (float):    {np.array2string(c_float, precision=17)}")
print(f"  Vandermonde solve (rational): {[str(c) for c in c_exact]}")
print(f"  difflinalg central_fdm(5, 1): offsets {list(lib.offsets)}, weights {[str(c) for c in lib.coefs]}")
assert list(lib.offsets) == offsets and [Fraction(c) for c in lib.coefs] == c_exact
print("  -> identical (exact rational comparison)")

# --- figures -------------------------------------------------------------------------------------
# (a) J_nu and its derivative by reverse mode, against SciPy's jvp.
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
xg = torch.linspace(0.05, 10.0, 200 if args.quick else 1000).requires_grad_()
for nu in (0.0, 1.0, 2.0, 3.5):
    J = bessel_j(nu, xg)
    (dJ,) = torch.autograd.grad(J.sum(), xg)  # elementwise in x: the sum's gradient is J'(x)
    ax1.plot(xg.detach(), J.detach(), label=f"nu = {nu:g}")
    ax2.plot(xg.detach(), dJ, label=f"nu = {nu:g}")
    err = np.abs(dJ.numpy() - scipy.special.jvp(nu, xg.detach().numpy())).max()
    print(f"reverse-mode J'_{nu:g} on (0, 10] vs scipy.special.jvp: max |diff| = {err:.1e}")
ax1.set(title="J_nu(x) by the series", xlabel="x")
ax2.set(title="dJ_nu/dx by reverse mode", xlabel="x")
ax1.legend(), ax2.legend()
fig.tight_layout()
fig.savefig(args.out / "01_bessel.png", dpi=120)

# (b) finite-difference error against the step: truncation ~ h^4 on the right, rounding ~ eps/h
# on the left; the adaptive step of difflinalg.check.derivative sits near the bottom of the V.
# Steps up to 0.2: the stencil reaches x0 - 2h, which must stay in the series' domain x > 0.
steps = np.logspace(-9, np.log10(0.2), 30 if args.quick else 120)
stencil = np.array([float(c) for c in lib.coefs])
f_np = lambda x: float(bessel_j(NU, torch.tensor(x)))  # noqa: E731
errs = [abs(sum(c * f_np(X0 + o * h) for c, o in zip(stencil, offsets)) / h - REFERENCE) for h in steps]
naive = [abs((f_np(X0 + h) - f_np(X0)) / h - REFERENCE) for h in steps]
fig, ax = plt.subplots(figsize=(6, 4))
ax.loglog(steps, np.maximum(errs, 1e-18), ".-", label="central_fdm(5, 1)")
ax.loglog(steps, np.maximum(naive, 1e-18), ".-", label="forward difference (f(x+h)-f(x))/h")
ax.axvline(float(fd.step), color="k", ls="--", label=f"adaptive step {float(fd.step):.1e}")
ax.set(xlabel="step h", ylabel="|error| at nu=2, x=0.5", title="Finite differences: truncation vs rounding")
ax.legend()
fig.tight_layout()
fig.savefig(args.out / "01_fd_error.png", dpi=120)
i_best = int(np.argmin(errs))
print(f"\nbest fixed step for central_fdm(5, 1): h = {steps[i_best]:.1e}, error {errs[i_best]:.1e}; "
      f"forward difference at its best: {min(naive):.1e}")
print(f"figures: {args.out / '01_bessel.png'}, {args.out / '01_fd_error.png'}")
