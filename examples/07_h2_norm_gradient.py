"""Matrix equations: the gradient of an H2 norm through a Lyapunov solve.

The story. You design a linear system ``x' = A x + B u, y = C x`` -- here a chain of masses,
springs and dampers -- and want to tune it (the dampers) to minimize the H2 norm of its response,

    ||G||_2^2 = tr(C P C^T),   A P + P A^T + B B^T = 0   (P: the controllability Gramian).

That needs the gradient of the norm with respect to ``A``, ``B`` and ``C``, i.e. derivatives
through the solution of a Lyapunov equation. SciPy solves the equation but does not
differentiate it; differentiating a Bartels-Stewart solver by autograd would go through a Schur
decomposition whose backward torch does not provide for this use; writing the adjoint by hand is
easy to get wrong (transposes, a factor 2). difflinalg's Lyapunov/Sylvester solvers carry the
adjoint rule (the gradient of ``A X + X A^H = Q`` is another Lyapunov solve with ``A^H``), so
``h2_norm`` is differentiable in every matrix, real or complex, batched, to second order.

The script checks the norm against SciPy, the gradient against the closed form
``d||G||^2/dA = 2 Q P``, ``d/dB = 2 Q B``, ``d/dC = 2 C P`` (``Q`` the observability Gramian, both
Gramians from SciPy), and everything against finite differences (``difflinalg.check.gradcheck``:
reverse mode, forward mode, forward-over-reverse) in float64 and complex128. It then tunes the
dampers of the chain by gradient descent, checks the derivative along the way, and shows the
named error you get for a system without an H2 norm.

Run: ``python examples/07_h2_norm_gradient.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import scipy.linalg  # noqa: E402
import torch  # noqa: E402

import difflinalg  # noqa: E402
from difflinalg.check import derivative, gradcheck  # noqa: E402
from difflinalg.control import StateSpace, h2_norm  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="a shorter chain and fewer steps, for CI")
parser.add_argument("--out", type=Path, default=Path(__file__).parent / "_output")
args = parser.parse_args()
args.out.mkdir(parents=True, exist_ok=True)
torch.set_default_dtype(torch.float64)
N_MASS = 8 if args.quick else 20


def chain(c: torch.Tensor, k: float = 1.0, m: float = 1.0) -> tuple[torch.Tensor, ...]:
    """(A, B, C) of N masses in a chain: springs k, dampers c_i (from mass i to ground), force on
    the first mass, output the position of the last one. State ``[positions; velocities]``."""
    n, batch = c.shape[-1], c.shape[:-1]  # c: (..., n), one chain per leading index
    K = k * (2 * torch.eye(n) - torch.diag(torch.ones(n - 1), 1) - torch.diag(torch.ones(n - 1), -1))
    top = torch.cat([torch.zeros(n, n), torch.eye(n)], 1).expand(*batch, n, 2 * n)
    bottom = torch.cat([(-K / m).expand(*batch, n, n), -torch.diag_embed(c) / m], -1)
    A = torch.cat([top, bottom], -2)
    B = torch.zeros(2 * n, 1)
    B[n, 0] = 1.0 / m
    C = torch.zeros(1, 2 * n)
    C[0, n - 1] = 1.0
    return A, B, C


def h2_squared(A: torch.Tensor, B: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    """``tr(C P C^H)`` with the Lyapunov equation written out (``h2_norm`` does the same)."""
    P = difflinalg.solve_continuous_lyapunov(A, -B @ B.mH)  # A P + P A^H = -B B^H
    return torch.diagonal(C @ P @ C.mH, dim1=-2, dim2=-1).sum(-1).real


c0 = torch.full((N_MASS,), 0.3)
A, B, C = chain(c0)

# --- 1. the value against SciPy ------------------------------------------------------------------
P_sp = scipy.linalg.solve_continuous_lyapunov(A.numpy(), -B.numpy() @ B.numpy().T)
Q_sp = scipy.linalg.solve_continuous_lyapunov(A.numpy().T, -C.numpy().T @ C.numpy())
norm_sp = np.sqrt(np.trace(C.numpy() @ P_sp @ C.numpy().T))
norm_dl = float(h2_norm(StateSpace(A, B, C)))
print(f"{N_MASS}-mass chain, {2 * N_MASS} states, dampers c = 0.3")
print(f"H2 norm: difflinalg {norm_dl:.15f}, SciPy {norm_sp:.15f}, rel. diff "
      f"{abs(norm_dl - norm_sp) / norm_sp:.1e}")

# --- 2. the gradient against the closed form from SciPy's Gramians -------------------------------
mats = [t.clone().requires_grad_() for t in (A, B, C)]
gA, gB, gC = torch.autograd.grad(h2_squared(*mats), mats)
closed = {"A": 2 * Q_sp @ P_sp, "B": 2 * Q_sp @ B.numpy(), "C": 2 * C.numpy() @ P_sp}
print("\nd||G||^2 / d(A, B, C): difflinalg autograd vs closed form (2QP, 2QB, 2CP) from SciPy")
for name, g in zip("ABC", (gA, gB, gC)):
    ref = closed[name]
    print(f"  d/d{name}: max |diff| / max |grad| = {np.abs(g.numpy() - ref).max() / np.abs(ref).max():.1e}")

# --- 3. finite differences: three modes, real and complex, and through h2_norm ------------------
print("\nfinite-difference checks (difflinalg.check.gradcheck; raises on a mismatch):")
gen = torch.Generator().manual_seed(0)
for dtype in (torch.float64, torch.complex128):
    Ar, Br, Cr = (t.to(dtype) for t in (A, B, C))
    if dtype.is_complex:  # a genuinely complex system: rotate the modes a little
        Ar = Ar + 0.05j * torch.randn(Ar.shape, generator=gen, dtype=torch.float64)
        Br = Br + 0.3j * torch.randn(Br.shape, generator=gen, dtype=torch.float64)
    t0 = time.perf_counter()
    # max_step: the stencil moves A by up to 2 * max_step * (a Gaussian matrix); keep the
    # perturbed systems stable (the slowest modes of the lightly damped chain decay slowly).
    rep = gradcheck(lambda A_, B_, C_: h2_norm(StateSpace(A_, B_, C_)), Ar, Br, Cr,
                    modes=("vjp", "jvp", "hvp"), names=("A", "B", "C"),
                    n_directions=1 if args.quick else 3,
                    max_step=1e-4)
    print(f"  {str(dtype):<15} h2_norm(A, B, C): {len(rep.records)} checks passed, "
          f"max rel. error {rep.max_rel_err():.1e} ({time.perf_counter() - t0:.1f} s)")

# A batch of systems in one call: one norm and one gradient per system, no Python loop.
cs = torch.stack([torch.full((N_MASS,), v) for v in (0.1, 0.3, 1.0)]).requires_grad_()
Ab, Bb, Cb = chain(cs)
norms = h2_norm(StateSpace(Ab, Bb.expand(3, -1, -1), Cb.expand(3, -1, -1)))
(g_batch,) = torch.autograd.grad(norms.sum(), cs)
print(f"  batched: norms {[round(float(v), 4) for v in norms.detach()]} for c = 0.1, 0.3, 1.0; "
      f"d norm / d c_1 = {[round(float(v), 4) for v in g_batch[:, 0]]}")

# --- 4. tuning the dampers -----------------------------------------------------------------------
# minimize ||G||_2^2 + lam * sum(c) over c > 0 (c = exp(s): positivity by construction), from
# light damping c = 0.05 (a resonant chain, large norm); lam prices the damping material.
lam = 0.02
s = torch.log(torch.full((N_MASS,), 0.05)).requires_grad_()
opt = torch.optim.Adam([s], lr=0.1)
steps = 60 if args.quick else 400
hist = []
for it in range(steps):
    opt.zero_grad()
    A_, B_, C_ = chain(torch.exp(s))
    obj = h2_norm(StateSpace(A_, B_, C_)) ** 2 + lam * torch.exp(s).sum()
    obj.backward()
    hist.append(float(obj))
    opt.step()
c_opt = torch.exp(s.detach())


def objective(c):
    A_, B_, C_ = chain(c)
    return h2_norm(StateSpace(A_, B_, C_)) ** 2 + lam * c.sum()


# At the end, the autograd directional derivative against a 5-point finite difference.
d = torch.randn(N_MASS, generator=gen)
c_leaf = c_opt.clone().requires_grad_()
(g_end,) = torch.autograd.grad(objective(c_leaf), c_leaf)
fd = derivative(objective, c_opt, direction=d)
print(f"\ndamper tuning ({steps} Adam steps): objective {hist[0]:.4f} -> {hist[-1]:.4f}; "
      f"c from 0.05 to [{float(c_opt.min()):.3f}, {float(c_opt.max()):.3f}]")
print(f"  directional derivative at the end: autograd {float(g_end @ d):.3e}, "
      f"finite difference {float(fd.value):.3e} (+- {float(fd.error):.0e})")

# --- 5. loud at the hard points ------------------------------------------------------------------
print("\nwhere no H2 norm exists:")
A_bad = A.clone()
A_bad[-1, -1] = 1.0  # a negative damper: the last mass pumps energy in
try:
    h2_norm(StateSpace(A_bad, B, C))
except difflinalg.UnstableSystemError as e:
    print(f"  unstable A -> UnstableSystemError: {str(e)[:110]}")
try:  # eigenvalues +-i: lambda_i + conj(lambda_j) = 0, the Lyapunov operator is singular
    difflinalg.solve_continuous_lyapunov(torch.tensor([[0.0, 1.0], [-1.0, 0.0]]), -torch.eye(2))
except difflinalg.SingularEquationError as e:
    print(f"  undamped oscillator -> SingularEquationError: {str(e)[:100]}")

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
ax1.semilogy(hist)
ax1.set(xlabel="Adam step", ylabel="||G||_2^2 + lam sum(c)", title="Tuning the dampers")
ax2.plot(range(1, N_MASS + 1), c_opt, "o-")
ax2.axhline(0.05, color="grey", ls="--", label="initial")
ax2.set(xlabel="mass", ylabel="damper c_i", title="Optimized dampers")
ax2.legend()
fig.tight_layout()
fig.savefig(args.out / "07_h2_dampers.png", dpi=120)
print(f"\nfigure: {args.out / '07_h2_dampers.png'}")
