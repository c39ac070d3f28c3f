"""Model reduction walkthrough: RARL2 against balanced truncation and IRKA.

The story. You have a stable linear system with many states -- a discretized structure, a heat
equation, a closed control loop -- and want a small model whose output is as close as possible
for every input: the H2-optimal reduced model of a given order n,

    min_H ||F - H||_2   over stable H of order n.

What goes wrong elsewhere: balanced truncation is fast and comes with an error bound, but is not
H2-optimal (its error is often tens of percent larger at the same order); IRKA satisfies the
first-order optimality conditions when it converges, but it is a fixed-point iteration that can
cycle or stop at a poor stationary point, and it does not say how close to optimal it is.

What difflinalg gives: ``difflinalg.control.rarl2`` minimizes the H2 error itself over
output-normal pairs ``(C, A)`` (stable by construction; ``B`` and ``D`` optimal in closed form),
with BFGS on an exact adjoint gradient, from several starts -- balanced truncation and IRKA among
them -- so it never returns a model worse than its best start, and it reports each start. IRKA
is not a separate public function yet: its models are RARL2's starts "irka", "irka-bt" and
"irka-modal", and their relative errors are in ``result.starts[i].start_error``; that is what the
IRKA column shows. Every error printed for a model is recomputed from the error system by
``h2_error``, independently of the optimizer.

The script reduces the built-in 120-state mass-spring-damper chain (``builtin_model("msd")``)
to a range of orders, and, when python-control is installed (``pip install control``, the
``control`` extra), a closed-loop system of a flexible structure built with python-control. It
plots the relative H2 errors against the order, the Hankel singular values, and the frequency
responses and their errors.

Run: ``python examples/06_model_reduction.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from difflinalg.control import (  # noqa: E402
    StateSpace,
    balanced_truncation,
    builtin_model,
    frequency_response,
    h2_error,
    hankel_singular_values,
    rarl2,
)

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="fewer orders, for CI")
parser.add_argument("--out", type=Path, default=Path(__file__).parent / "_output")
args = parser.parse_args()
args.out.mkdir(parents=True, exist_ok=True)


def walkthrough(name: str, F: StateSpace, orders: list[int], w: np.ndarray) -> None:
    """Reduce F to each order by the three methods, print the table and save the figures."""
    print(f"\n=== {name}: {F.order} states, {F.n_inputs} input(s), {F.n_outputs} output(s) ===")
    print(f"{'order':>5} {'balanced trunc.':>16} {'IRKA (best start)':>18} {'RARL2':>10} "
          f"{'RARL2 / BT':>11} {'best start':>11} {'RARL2 time [s]':>15}")
    rows, models = [], {}
    for n in orders:
        t0 = time.perf_counter()
        res = rarl2(F, n, max_time=60)
        t_rarl2 = time.perf_counter() - t0
        H_bt = balanced_truncation(F, n)
        e_bt = float(h2_error(F, H_bt, relative=True))
        e_rarl2 = float(h2_error(F, res.model, relative=True))
        irka = [s.start_error for s in res.starts if s.name.startswith("irka")]
        e_irka = min(irka) if irka else float("nan")
        rows.append((n, e_bt, e_irka, e_rarl2))
        models[n] = (H_bt, res.model)
        print(f"{n:>5} {e_bt:>16.4e} {e_irka:>18.4e} {e_rarl2:>10.4e} {e_rarl2 / e_bt:>11.3f} "
              f"{res.best_start:>11} {t_rarl2:>15.2f}")
        # RARL2 starts from balanced truncation and IRKA, and keeps the best: never worse.
        assert e_rarl2 <= e_bt * (1 + 1e-8) and e_rarl2 <= e_irka * (1 + 1e-6)
    tag = name.split()[0]

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    r = np.array(rows)
    ax1.semilogy(r[:, 0], r[:, 1], "o-", label="balanced truncation")
    ax1.semilogy(r[:, 0], r[:, 2], "^--", label="IRKA (RARL2's start)")
    ax1.semilogy(r[:, 0], r[:, 3], "s-", label="RARL2")
    ax1.set(xlabel="reduced order n", ylabel="||F - H||_2 / ||F||_2", title=f"{name}: relative H2 error")
    ax1.legend()
    hsv = hankel_singular_values(F)
    ax2.semilogy(np.arange(1, len(hsv) + 1), hsv / hsv[0], ".")
    ax2.set(xlabel="index", ylabel="sigma_i / sigma_1", title="Hankel singular values")
    fig.tight_layout()
    fig.savefig(args.out / f"06_{tag}_errors.png", dpi=120)

    n_show = orders[len(orders) // 2]
    H_bt, H_r = models[n_show]
    wt = torch.as_tensor(w, dtype=torch.float64)
    resp = {k: frequency_response(sys_, wt)[..., 0, 0].abs().numpy()
            for k, sys_ in (("full", F), ("bt", H_bt), ("rarl2", H_r))}
    err = {k: (frequency_response(F, wt) - frequency_response(sys_, wt))[..., 0, 0].abs().numpy()
           for k, sys_ in (("bt", H_bt), ("rarl2", H_r))}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.loglog(w, resp["full"], "k", lw=2, label=f"full ({F.order} states)")
    ax1.loglog(w, resp["bt"], "--", label=f"balanced truncation, n = {n_show}")
    ax1.loglog(w, resp["rarl2"], ":", label=f"RARL2, n = {n_show}")
    ax1.set(xlabel="frequency w [rad/s]", ylabel="|H(iw)| (input 1 -> output 1)", title="Frequency response")
    ax1.legend(fontsize=8)
    ax2.loglog(w, err["bt"], "--", label="balanced truncation")
    ax2.loglog(w, err["rarl2"], ":", label="RARL2")
    ax2.set(xlabel="frequency w [rad/s]", ylabel="|F(iw) - H(iw)|", title=f"Error, n = {n_show}")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out / f"06_{tag}_frequency.png", dpi=120)
    print(f"figures: 06_{tag}_errors.png, 06_{tag}_frequency.png in {args.out}")


# --- 1. a built-in model -------------------------------------------------------------------------
walkthrough("msd (built-in mass-spring-damper chain)", builtin_model("msd"),
            [4, 8, 12] if args.quick else [2, 4, 6, 8, 10, 12, 16, 20, 24],
            np.logspace(-2, 1, 400))

# --- 2. a python-control model -------------------------------------------------------------------
try:
    import control
except ImportError:
    control = None
if control is None:
    print("\npython-control is not installed: skipping the python-control model "
          "(pip install control, or the `control` extra of difflinalg).")
else:
    # A flexible structure: 12 lightly damped modes, under a PI-lead controller in negative
    # feedback; python-control builds the closed loop. Every block is converted to state space
    # first, so that the interconnection stays in state space (26 states, no polynomial algebra).
    modes = [control.ss(control.tf([g * wn**2], [1, 2 * 0.02 * wn, wn**2]))
             for g, wn in zip(np.linspace(1.0, 0.2, 12), np.geomspace(1.0, 30.0, 12))]
    plant = modes[0]
    for m in modes[1:]:
        plant = control.parallel(plant, m)
    controller = control.ss(control.tf([0.05, 0.02], [1.0, 0.0]) * control.tf([1.0, 1.0], [0.1, 1.0]))
    loop = control.feedback(control.series(controller, plant), 1)
    F_ctrl = StateSpace(np.asarray(loop.A, dtype=float), np.asarray(loop.B, dtype=float),
                        np.asarray(loop.C, dtype=float))
    assert np.allclose(np.asarray(loop.D), 0), "the closed loop is strictly proper: D = 0"
    walkthrough("control (closed-loop flexible structure, python-control)", F_ctrl,
                [4, 8, 12] if args.quick else [2, 4, 6, 8, 10, 12, 16, 20],
                np.logspace(-2, 2, 400))
