"""Implicit differentiation: tuning ridge penalties through an argmin, against unrolling.

The story. A bilevel problem: the inner problem fits ridge-regression weights with one penalty
per feature,

    x*(eta) = argmin_x  ||A x - b||^2 / n + sum_j exp(eta_j) x_j^2,

and the outer problem tunes the 50 log-penalties ``eta`` to minimize the validation error
``||A_val x*(eta) - b_val||^2 / n_val``. Gradient descent on ``eta`` needs ``d x*/d eta``.

What goes wrong elsewhere: the common trick is to *unroll* the inner solver (T steps of gradient
descent) and backpropagate through all of them. Its gradient is the gradient of the T-step
iterate, not of the minimizer: biased unless T is large enough for the slowest direction of an
ill-conditioned problem to converge, with a graph (memory) and a backward cost growing with T.
Differentiating a closed-form solve works only when there is one.

What difflinalg gives: ``difflinalg.implicit.argmin(f, x_star, eta)`` takes a minimizer computed
by *any* solver (here: a Cholesky solve without autograd, or the same gradient-descent loop run to
convergence) and attaches it to the graph of ``eta`` by the implicit function theorem,
``dx*/d eta = -(d^2f/dx^2)^-1 d^2f/dx d eta``, with one linear solve per derivative and residual
checks that raise ``ConvergenceError`` if ``x_star`` is not a minimizer. ``fixed_point`` does the
same for ``x = T(x)``; both agree with the closed form and with finite differences.

The script compares the gradient d(validation loss)/d eta from the closed form, ``argmin``,
``fixed_point`` and unrolled gradient descent with T steps (error and time against T), checks
against a finite difference, shows the named error for an unconverged solution, and then tunes
``eta`` by Adam with the implicit gradient.

Run: ``python examples/05_implicit_differentiation.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import difflinalg  # noqa: E402
from difflinalg.check import derivative  # noqa: E402
from difflinalg.implicit import argmin, fixed_point  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="fewer outer steps, for CI")
parser.add_argument("--out", type=Path, default=Path(__file__).parent / "_output")
args = parser.parse_args()
args.out.mkdir(parents=True, exist_ok=True)
torch.set_default_dtype(torch.float64)
gen = torch.Generator().manual_seed(0)

# --- data: 50 features, 10 of them informative, correlated columns (an ill-conditioned Gram) -----
N_TRAIN, N_VAL, N_TEST, D = 100, 100, 1000, 50
x_true = torch.zeros(D)
x_true[:10] = torch.randn(10, generator=gen)
mix = torch.eye(D) + 0.9 * torch.randn(D, D, generator=gen) / D**0.5


def sample(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    A_ = torch.randn(n, D, generator=gen) @ mix
    return A_, A_ @ x_true + 0.5 * torch.randn(n, generator=gen)


(A, b), (A_val, b_val), (A_test, b_test) = sample(N_TRAIN), sample(N_VAL), sample(N_TEST)


def inner(x: torch.Tensor, eta: torch.Tensor) -> torch.Tensor:
    """The training objective f(x, eta)."""
    return ((A @ x - b) ** 2).sum() / N_TRAIN + (torch.exp(eta) * x**2).sum()


def val_loss(x: torch.Tensor) -> torch.Tensor:
    return ((A_val @ x - b_val) ** 2).sum() / N_VAL


def ridge_solve(eta: torch.Tensor) -> torch.Tensor:
    """The minimizer in closed form: (A^T A / n + diag(exp eta)) x = A^T b / n."""
    H = A.T @ A / N_TRAIN + torch.diag(torch.exp(eta))
    return torch.linalg.solve(H, A.T @ b / N_TRAIN)


def lipschitz(eta: torch.Tensor) -> float:
    """Largest eigenvalue of the Hessian 2 (A^T A / n + diag(exp eta)): the GD step is 1/L."""
    return float(2 * torch.linalg.eigvalsh(A.T @ A / N_TRAIN + torch.diag(torch.exp(eta))).max())


def gd_step(x: torch.Tensor, eta: torch.Tensor, step: float) -> torch.Tensor:
    """One gradient-descent step on f, written out (so that unrolling can differentiate it)."""
    grad_x = 2 * A.T @ (A @ x - b) / N_TRAIN + 2 * torch.exp(eta) * x
    return x - step * grad_x


eta0 = torch.full((D,), -3.0)
h = torch.linalg.eigvalsh(2 * (A.T @ A / N_TRAIN + torch.diag(torch.exp(eta0))))
print(f"inner Hessian: eigenvalues in [{float(h.min()):.3g}, {float(h.max()):.3g}], "
      f"condition number {float(h.max() / h.min()):.0f}")


def grad_eta(outer_of_eta, repeats: int = 3) -> tuple[torch.Tensor, float]:
    """The gradient at eta0 and the median time of forward + backward over ``repeats`` calls
    after a warm-up call (the first torch.func call of a session pays a one-off setup cost)."""
    times = []
    for _ in range(repeats + 1):
        eta = eta0.clone().requires_grad_()
        t0 = time.perf_counter()
        (g,) = torch.autograd.grad(outer_of_eta(eta), eta)
        times.append(time.perf_counter() - t0)
    return g, statistics.median(times[1:])


# 1. the closed form, differentiated by autograd through torch.linalg.solve: the reference.
g_ref, t_ref = grad_eta(lambda eta: val_loss(ridge_solve(eta)))


# 2. argmin: the minimizer from a solver that autograd never sees, attached by the IFT.
def via_argmin(eta):
    with torch.no_grad():
        x_star = ridge_solve(eta)
    return val_loss(argmin(inner, x_star, eta))


g_argmin, t_argmin = grad_eta(via_argmin)

# 3. fixed_point: the same minimizer as the fixed point of one gradient-descent step, found by
# running that step to convergence (no graph), then attached by the IFT on x = T(x).
STEP = 1.0 / lipschitz(eta0)


def via_fixed_point(eta):
    with torch.no_grad():
        x = torch.zeros(D)
        for _ in range(20000):
            x_new = gd_step(x, eta, STEP)
            if (x_new - x).norm() <= 1e-14 * x_new.norm():
                break
            x = x_new
    return val_loss(fixed_point(lambda x_, eta_: gd_step(x_, eta_, STEP), x_new, eta))


g_fp, t_fp = grad_eta(via_fixed_point)


# 4. unrolling T steps of gradient descent from x = 0, differentiated through every step.
def via_unrolling(T):
    def outer(eta):
        x = torch.zeros(D)
        for _ in range(T):
            x = gd_step(x, eta, STEP)
        return val_loss(x)
    return outer


# 5. a finite difference of the exact outer loss along a random direction.
d = torch.randn(D, generator=gen)
fd = derivative(lambda eta: val_loss(ridge_solve(eta)), eta0, direction=d)

rel = lambda g: float((g - g_ref).norm() / g_ref.norm())  # noqa: E731
print(f"\nd(validation loss)/d eta at eta = -3 (||g|| = {float(g_ref.norm()):.4g}):")
print(f"{'method':<34} {'rel. error vs closed form':>26} {'time [ms]':>10}  (forward + backward, median)")
print(f"{'closed form (autograd of solve)':<34} {0.0:>26.1e} {1e3 * t_ref:>10.1f}")
print(f"{'implicit.argmin':<34} {rel(g_argmin):>26.1e} {1e3 * t_argmin:>10.1f}")
print(f"{'implicit.fixed_point (GD map)':<34} {rel(g_fp):>26.1e} {1e3 * t_fp:>10.1f}  (incl. solve)")
Ts = [10, 30, 100, 300, 1000] + ([] if args.quick else [3000, 10000])
unrolled = []
for T in Ts:
    g_T, t_T = grad_eta(via_unrolling(T))
    unrolled.append((T, rel(g_T), t_T))
    print(f"{f'unrolled GD, T = {T}':<34} {rel(g_T):>26.1e} {1e3 * t_T:>10.1f}")
print(f"directional derivative: closed form {float(g_ref @ d):.10f}, argmin "
      f"{float(g_argmin @ d):.10f}, finite difference {float(fd.value):.10f} (+- {float(fd.error):.0e})")

# --- loud: an x_star that is not a minimizer -----------------------------------------------------
try:
    eta = eta0.clone().requires_grad_()
    with torch.no_grad():
        x10 = torch.zeros(D)
        for _ in range(10):
            x10 = gd_step(x10, eta, STEP)
    val_loss(argmin(inner, x10, eta)).backward()
except difflinalg.ConvergenceError as e:
    print(f"\nargmin given 10 GD steps instead of a minimizer -> ConvergenceError:\n  {str(e)[:160]}")

# --- tuning eta with the implicit gradient -------------------------------------------------------
eta = eta0.clone().requires_grad_()
opt = torch.optim.Adam([eta], lr=0.1)
outer_steps = 40 if args.quick else 300
history = []
for it in range(outer_steps):
    opt.zero_grad()
    loss = via_argmin(eta)
    loss.backward()
    history.append(float(loss.detach()))
    opt.step()


def test_error(eta_):
    with torch.no_grad():
        return float(((A_test @ ridge_solve(eta_) - b_test) ** 2).mean())


best_scalar = min((test_error(torch.full((D,), float(v))), float(v)) for v in torch.linspace(-8, 2, 41))
print(f"\nAdam on eta ({outer_steps} steps, implicit gradients): validation {history[0]:.4f} -> "
      f"{history[-1]:.4f}; test error {test_error(eta0):.4f} -> {test_error(eta.detach()):.4f} "
      f"(best single penalty on a grid: {best_scalar[0]:.4f} at eta = {best_scalar[1]:.2f})")
lam = torch.exp(eta.detach())
print(f"  learned penalties: informative features exp(eta) median {float(lam[:10].median()):.2g}, "
      f"the others {float(lam[10:].median()):.2g}")

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
ax1.loglog([u[0] for u in unrolled], [u[1] for u in unrolled], "o-", label="unrolled GD")
ax1.axhline(max(rel(g_argmin), 1e-16), color="C1", label="implicit.argmin")
ax1.set(xlabel="unrolled steps T", ylabel="relative gradient error", title="Gradient of the validation loss")
ax1.legend()
ax2.plot(history)
ax2.set(xlabel="Adam step on eta", ylabel="validation loss", title="Tuning 50 ridge penalties")
fig.tight_layout()
fig.savefig(args.out / "05_implicit.png", dpi=120)
print(f"\nfigure: {args.out / '05_implicit.png'}")
