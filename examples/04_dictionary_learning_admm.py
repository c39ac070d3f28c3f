"""Dictionary learning by unrolled complex ADMM, and the same loop under ``binomial_loop``.

The story. You learn a complex dictionary ``D`` (m x n, n > m: overcomplete) so that signals
``x`` have sparse codes: the code of ``x`` is the lasso solution

    z(D) = argmin_z  ||D z - x||^2 / 2 + lam ||z||_1      (complex z, |.| the modulus)

computed by K iterations of ADMM, and ``D`` is trained by backpropagating the reconstruction error
``||D z_K(D) - x||^2`` through all K iterations ("unrolling"). Each ADMM iteration solves
``(rho I + D^H D) z = D^H x + rho (y - w)``: the same matrix at every iteration and every signal.

What goes wrong elsewhere: ``torch.linalg.solve`` on ``rho I + D^H D`` (n x n) refactors it at
every iteration and stores what its backward needs at each; with many iterations the tape of the
unrolled loop (every iterate of every signal) dominates memory.

What difflinalg gives:

* ``difflinalg.regularized_solve(D, rhs, rho)``: the regularized normal equations by a Cholesky
  factor of the *smaller* Gram matrix (here ``D D^H``, m x m, with the Woodbury identity), reused by
  its own backward, differentiable in ``D``, ``rhs`` and ``rho``, complex included. The z-update
  is one function, ``make_z_update(D, rho)``: ``difflinalg.RegularizedSolver(D, rho)`` factors
  ``rho I + D^H D`` (or its Woodbury form, whichever is smaller) once per dictionary update and
  every iteration's solve, and backward, reuse that one factor.
* ``difflinalg.checkpoint.binomial_loop(step, state, K, snapshots=s)``: the same loop with the
  same gradient, storing at most ``s`` states and recomputing the rest by Revolve's optimal
  schedule (``revolve_cost(K, s)`` extra steps).

The script trains the dictionary, checks that both loops give the same gradient, and compares
their time and the memory their tapes hold (bytes saved for backward, measured with
``torch.autograd.graph.saved_tensors_hooks``) for several snapshot counts.

Run: ``python examples/04_dictionary_learning_admm.py [--quick] [--out DIR]``.
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
from difflinalg.checkpoint import binomial_loop, revolve_cost  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="fewer iterations and steps, for CI")
parser.add_argument("--out", type=Path, default=Path(__file__).parent / "_output")
args = parser.parse_args()
args.out.mkdir(parents=True, exist_ok=True)
torch.set_num_threads(1)
gen = torch.Generator().manual_seed(0)
CT = torch.complex128

M, N_ATOMS, N_SIG, SPARSITY = 16, 32, 128, 3
K = 30 if args.quick else 100  # ADMM iterations (the unrolled depth)
LAM, RHO = 0.05, 1.0


def crandn(*shape: int) -> torch.Tensor:
    return torch.complex(torch.randn(*shape, generator=gen), torch.randn(*shape, generator=gen)) / 2**0.5


def normalize(D: torch.Tensor) -> torch.Tensor:
    return D / torch.linalg.vector_norm(D, dim=0, keepdim=True)


# Signals: SPARSITY atoms of a hidden dictionary per signal, plus a little noise; a training and
# a held-out set.
D_true = normalize(crandn(M, N_ATOMS).to(CT))


def signals(n: int) -> torch.Tensor:
    support = torch.rand(N_ATOMS, n, generator=gen).argsort(0) < SPARSITY
    Z = torch.where(support, crandn(N_ATOMS, n).to(CT), 0)
    return D_true @ Z + 0.01 * crandn(M, n).to(CT)


X, X_test = signals(N_SIG), signals(N_SIG)


def make_z_update(D: torch.Tensor, rho: float):
    """The z-update ``rhs -> (rho I + D^H D)^-1 rhs`` for a fixed D: one factorization, shared by
    every iteration's solve and by backward (``difflinalg.regularized_solve`` would refactor per
    call)."""
    return difflinalg.RegularizedSolver(D, rho).solve


def soft_threshold(v: torch.Tensor, t: float) -> torch.Tensor:
    """Complex soft thresholding ``v max(0, 1 - t/|v|)``, the prox of ``t |.|``."""
    # clamp: at v = 0 the output is 0 either way; the clamp keeps t/|v| finite there.
    return v * torch.relu(1 - t / v.abs().clamp_min(1e-30))


def admm_step_fn(D: torch.Tensor, DhX: torch.Tensor):
    """One ADMM iteration on the state (y, w) (z is recomputed from them)."""
    z_update = make_z_update(D, RHO)

    def step(state):
        y, w = state
        z = z_update(DhX + RHO * (y - w))
        y_new = soft_threshold(z + w, LAM / RHO)
        return (y_new, w + z - y_new)
    return step


def reconstruction_loss(D: torch.Tensor, snapshots: int | None = None, stats: bool = False,
                        X: torch.Tensor = X):
    """||D y_K - X||^2 / N after K unrolled iterations: plainly, or under binomial_loop."""
    D = normalize(D)  # atoms of unit norm (the usual constraint; scale is not identifiable)
    step = admm_step_fn(D, D.mH @ X)
    state = (torch.zeros(N_ATOMS, N_SIG, dtype=CT), torch.zeros(N_ATOMS, N_SIG, dtype=CT))
    loop_stats = None
    if snapshots is None:
        for _ in range(K):
            state = step(state)
    else:
        state, loop_stats = binomial_loop(step, state, K, snapshots=snapshots, return_stats=True)
    y = state[0]
    loss = ((D @ y - X).abs() ** 2).sum() / N_SIG
    return (loss, loop_stats) if stats else loss


class SavedBytes:
    """Bytes of tensors autograd saves for backward while active (the tape's memory)."""

    def __enter__(self):
        self.total = 0

        def pack(t):
            self.total += t.numel() * t.element_size()
            return t

        self._hooks = torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc):
        self._hooks.__exit__(*exc)


# --- 1. train the dictionary ---------------------------------------------------------------------
D = (D_true + 0.3 * crandn(M, N_ATOMS).to(CT)).requires_grad_()  # a perturbed start
with torch.no_grad():
    test0 = float(reconstruction_loss(D, X=X_test))
opt = torch.optim.Adam([D], lr=0.02)
steps = 15 if args.quick else 150
history = []
t0 = time.perf_counter()
for it in range(steps):
    opt.zero_grad()
    loss = reconstruction_loss(D, snapshots=8)
    loss.backward()
    history.append(float(loss.detach()))
    opt.step()
with torch.no_grad():
    test1 = float(reconstruction_loss(D, X=X_test))
    train_true, test_true = (float(reconstruction_loss(D_true, X=x_)) for x_ in (X, X_test))
print(f"{steps} Adam steps of dictionary learning through {K} unrolled complex ADMM iterations "
      f"(binomial_loop, 8 snapshots), {time.perf_counter() - t0:.1f} s:")
print(f"  training loss {history[0]:.4f} -> {history[-1]:.4f}, held-out {test0:.4f} -> {test1:.4f} "
      f"(the hidden dictionary: {train_true:.4f}, {test_true:.4f})")

# --- 2. same gradient, plain or checkpointed -----------------------------------------------------
D0 = D.detach().clone()


def grad_of(snapshots):
    D_ = D0.clone().requires_grad_()
    with SavedBytes() as saved:
        loss, st = reconstruction_loss(D_, snapshots, stats=True)
    t = time.perf_counter()
    (g,) = torch.autograd.grad(loss, D_)
    return g, saved.total, time.perf_counter() - t, st


g_plain, bytes_plain, _, _ = grad_of(None)
state_bytes = 2 * N_ATOMS * N_SIG * torch.empty((), dtype=CT).element_size()
print(f"\none state (y, w): {state_bytes / 1024:.0f} KiB; the plain unrolled loop's tape: "
      f"{bytes_plain / 2**20:.1f} MiB")
snap_list = [2, 4, 8, 16] if args.quick else [2, 3, 4, 6, 8, 12, 16, 32]
configs = [None] + snap_list  # None: the plain unrolled loop
repeats = 1 if args.quick else 5
times = {s: [] for s in configs}
last = {}
for _ in range(repeats):  # interleaved repeats: a slow moment of the machine hits every config
    for s in configs:
        D_ = D0.clone().requires_grad_()
        t = time.perf_counter()
        loss, st = reconstruction_loss(D_, s, stats=True)
        (g,) = torch.autograd.grad(loss, D_)
        times[s].append(time.perf_counter() - t)
        last[s] = (g, st)
rows = []
print(f"\n{'snapshots':>10} {'advances':>9} {'held states':>12} {'tape+snapshots [MiB]':>21} "
      f"{'fwd+bwd [s]':>12} {'vs plain':>9} {'max |g - g_plain|':>18}")
t_plain = statistics.median(times[None])
for s in configs:
    g, st = last[s]
    med = statistics.median(times[s])
    err = float((g - g_plain).abs().max())
    if s is None:
        mem = bytes_plain
        print(f"{'plain':>10} {0:>9} {K:>12} {mem / 2**20:>21.2f} {med:>12.3f} {1.0:>8.2f}x {err:>18.1e}")
    else:
        # binomial_loop holds <= s states, plus one step's tape while it reverses that step.
        mem = st.peak_snapshots * state_bytes + bytes_plain / K
        print(f"{s:>10} {st.forward_steps:>9} {st.peak_snapshots:>12} {mem / 2**20:>21.2f} "
              f"{med:>12.3f} {med / t_plain:>8.2f}x {err:>18.1e}")
        assert st.forward_steps == revolve_cost(K, s)
    rows.append((s, mem, med))
print(f"(median of {repeats} interleaved repeat(s), one thread; advances: untaped step evaluations, "
      "revolve_cost(K, s))")
print("(plain: the measured tape; binomial_loop: peak held snapshots times the state size plus one "
      "step's tape, the measured plain tape / K)")

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
ax1.semilogy(history)
ax1.set(xlabel="Adam step", ylabel="||D y_K - X||^2 / N", title=f"Dictionary learning, {K} ADMM iterations")
ax2.plot([r[1] / 2**20 for r in rows[1:]], [r[2] for r in rows[1:]], "o-", label="binomial_loop")
for s, mem, t in rows[1:]:
    ax2.annotate(f"s={s}", (mem / 2**20, t), textcoords="offset points", xytext=(4, 4), fontsize=8)
ax2.plot([rows[0][1] / 2**20], [rows[0][2]], "s", color="C3", label="plain unrolled loop")
ax2.set(xscale="log", xlabel="memory for backward [MiB]", ylabel="forward + backward [s]",
        title="Memory vs time")
ax2.legend()
fig.tight_layout()
fig.savefig(args.out / "04_admm.png", dpi=120)
print(f"\nfigure: {args.out / '04_admm.png'}")
