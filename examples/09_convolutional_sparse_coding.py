"""Convolutional sparse coding: learning filters through unrolled ADMM, one small solve per frequency.

The story. You learn ``M`` small filters ``d_m`` so that images ``s`` are sparse sums of shifted
copies of them (convolutional sparse coding, CSC; Wohlberg, IEEE TIP 25(1), 2016). The code of an
image is the convolutional lasso solution

    x(d) = argmin_x  1/2 ||sum_m d_m * x_m - s||^2 + lam ||x||_1

computed by K iterations of ADMM, and the filters are trained by backpropagating the loss through
all K iterations ("unrolling"). In the DFT domain the convolutions are products, and the
x-update of every iteration is, at every frequency ``f``, the small system

    (rho I_M + D_f^H D_f) x_f = D_f^H s_f + rho (z - u)_f      (D_f: C x M, the filters' DFTs at f)

What goes wrong elsewhere: written as one dense M x M solve per frequency
(``torch.linalg.solve`` over an ``(H, W/2 + 1, M, M)`` batch) each iteration refactors the same
matrices, and autograd stores and differentiates every one of those factorizations; by hand (the
Sherman-Morrison formula for one channel) the forward is cheap, but the gradient with respect to
``rho`` loses digits (``eps kappa^2``), and nothing tells you when float32 stops being enough.

What difflinalg gives: ``difflinalg.ConvolutionalSolver(D_hat, rho)`` prepares the per-frequency
operator once per filter update -- Sherman-Morrison for one channel, a Cholesky factor of the
C x C Woodbury form for several -- and ``.solve`` is the x-update of every iteration,
differentiable in the filters, the right-hand side and ``rho`` (analytic rules where the closed
form would lose digits), with a ``PrecisionWarning`` when ``rho`` is too small for the dtype.

The script (1) checks the solver's x-update and the training gradient against the dense
per-frequency solve; (2) trains the filters on synthetic images made of a few hidden filters;
(3) times a training step and the x-update alone with ``ConvolutionalSolver`` and with the dense
solve, for one and three channels (one thread, medians of interleaved repeats; the full comparison,
with memory and the hand-written formulas: ``benchmarks/csc.py``); (4) shows the warning in float32 at a
tiny ``rho``.

Run: ``python examples/09_convolutional_sparse_coding.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import difflinalg  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="smaller images, fewer steps, for CI")
parser.add_argument("--out", type=Path, default=Path(__file__).parent / "_output")
args = parser.parse_args()
args.out.mkdir(parents=True, exist_ok=True)
torch.set_num_threads(1)  # timings comparable between machines and runs
gen = torch.Generator().manual_seed(0)

M, KF = 6, 7  # filters, each KF x KF
H = 32 if args.quick else 64  # images H x H
N_IMG = 8 if args.quick else 16
T = 10 if args.quick else 30  # ADMM iterations (the unrolled depth)
LAM, RHO = 0.05, 1.0
EPS64 = torch.finfo(torch.float64).eps


def gabor_filters(m: int, k: int, channels: int) -> torch.Tensor:
    """``m`` unit-norm oriented Gabor filters (m, channels, k, k), a different phase per channel."""
    r = torch.arange(k, dtype=torch.float64) - (k - 1) / 2
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    out = torch.empty(m, channels, k, k, dtype=torch.float64)
    for i in range(m):
        th = math.pi * i / m
        u = xx * math.cos(th) + yy * math.sin(th)
        for c in range(channels):
            out[i, c] = torch.exp(-(xx**2 + yy**2) / (k / 2.5) ** 2) * torch.cos(2.2 * u + c)
    return out / torch.linalg.vector_norm(out, dim=(1, 2, 3), keepdim=True)


def filter_dft(d: torch.Tensor) -> torch.Tensor:
    """Spatial filters (M, C, k, k) -> their DFTs D_hat (H, H/2 + 1, C, M) for H x H images."""
    return torch.fft.rfft2(d, s=(H, H)).permute(2, 3, 1, 0)


def synthesize(d: torch.Tensor, n: int) -> torch.Tensor:
    """``n`` images (n, H, H, C): sparse spikes (2% density) convolved with the filters ``d``
    (circularly, through the DFT), plus a little noise."""
    m = d.shape[0]
    spikes = (torch.rand(n, H, H, m, generator=gen) < 0.02) * torch.randn(n, H, H, m, generator=gen)
    x_hat = torch.fft.rfft2(spikes.double(), dim=(1, 2))
    s = torch.fft.irfft2((filter_dft(d) @ x_hat.unsqueeze(-1)).squeeze(-1), s=(H, H), dim=(1, 2))
    return s + 0.01 * torch.randn(s.shape, generator=gen, dtype=s.dtype)


def soft(w: torch.Tensor, t: float) -> torch.Tensor:
    """Soft thresholding, the prox of ``t |.|``."""
    return torch.sign(w) * torch.relu(w.abs() - t)


def per_frequency(D_hat: torch.Tensor, how: str):
    """The x-update ``b -> (rho I + D_f^H D_f)^{-1} b`` at every frequency: ``"ours"`` (one
    ``ConvolutionalSolver`` per filter update) or ``"dense"`` (an M x M ``torch.linalg.solve`` per
    frequency, the images as the columns of one right-hand side)."""
    if how == "ours":
        return difflinalg.ConvolutionalSolver(D_hat, RHO).solve
    A = RHO * torch.eye(D_hat.shape[-1], dtype=D_hat.dtype) + D_hat.mH @ D_hat
    return lambda b: torch.linalg.solve(A, b.movedim(0, -1)).movedim(-1, 0)


def csc_loss(d: torch.Tensor, s: torch.Tensor, how: str = "ours") -> torch.Tensor:
    """The CSC objective after T unrolled ADMM iterations, per image (filters normalized to unit
    norm: their scale is not identifiable)."""
    d = d / torch.linalg.vector_norm(d, dim=(1, 2, 3), keepdim=True)
    D_hat = filter_dft(d)
    x_update = per_frequency(D_hat, how)
    s_hat = torch.fft.rfft2(s, dim=(1, 2))
    Dhs = (D_hat.mH @ s_hat.unsqueeze(-1)).squeeze(-1)  # (n, H, H/2 + 1, M)
    z = u = torch.zeros(*s.shape[:3], d.shape[0], dtype=s.dtype)
    for _ in range(T):
        x = torch.fft.irfft2(x_update(Dhs + RHO * torch.fft.rfft2(z - u, dim=(1, 2))), s=(H, H), dim=(1, 2))
        z_new = soft(x + u, LAM / RHO)
        u = u + x - z_new
        z = z_new
    rec = torch.fft.irfft2((D_hat @ torch.fft.rfft2(z, dim=(1, 2)).unsqueeze(-1)).squeeze(-1), s=(H, H), dim=(1, 2))
    return (0.5 * ((rec - s) ** 2).sum() + LAM * z.abs().sum()) / s.shape[0]


d_true = gabor_filters(M, KF, 1)
S, S_test = synthesize(d_true, N_IMG), synthesize(d_true, N_IMG)

# --- 1. the x-update and the training gradient against the dense per-frequency solve -------------
d0 = (d_true + 0.1 * torch.randn(d_true.shape, generator=gen, dtype=torch.float64)).requires_grad_()
D_hat = filter_dft(d0.detach())
b = torch.randn(N_IMG, *D_hat.shape[:2], M, generator=gen, dtype=torch.complex128)
x_ours, x_dense = per_frequency(D_hat, "ours")(b), per_frequency(D_hat, "dense")(b)
kappa = float((1 + (D_hat.abs() ** 2).sum((-2, -1)) / RHO).max())  # max_f cond(rho I + D_f^H D_f)
err_x = float((x_ours - x_dense).abs().max() / x_dense.abs().max())
g = {how: torch.autograd.grad(csc_loss(d0, S, how), d0)[0] for how in ("ours", "dense")}
err_g = float((g["ours"] - g["dense"]).abs().max() / g["dense"].abs().max())
print(f"{H} x {H} images, {M} filters {KF} x {KF}, one channel: {D_hat.shape[0] * D_hat.shape[1]} "
      f"frequencies, max_f cond(rho I + D_f^H D_f) = {kappa:.3e}")
print(f"  x-update, ConvolutionalSolver vs dense solve: max rel. difference {err_x:.2e} "
      f"(both backward stable: a few kappa eps = {kappa * EPS64:.1e})")
print(f"  gradient of the loss after {T} unrolled iterations wrt the filters: max rel. difference "
      f"{err_g:.2e}")
# Both sides are backward-stable solves with errors ~ (3 + M) kappa eps per solve (the module
# docstring of ``factor/_convolutional.py``); T of them chained through nonexpansive steps (soft
# thresholding is 1-Lipschitz) stay well within 1e3 T kappa eps.
assert err_x <= 100 * kappa * EPS64 and err_g <= 1e3 * T * kappa * EPS64, (err_x, err_g)

# --- 2. train the filters ------------------------------------------------------------------------
d = d0.detach().clone().requires_grad_()
opt = torch.optim.Adam([d], lr=0.02)
steps = 15 if args.quick else 150
history = []
with torch.no_grad():
    test0 = float(csc_loss(d, S_test))
    train_true, test_true = float(csc_loss(d_true, S)), float(csc_loss(d_true, S_test))
t0 = time.perf_counter()
for _ in range(steps):
    opt.zero_grad()
    loss = csc_loss(d, S)
    loss.backward()
    history.append(float(loss.detach()))
    opt.step()
with torch.no_grad():
    test1 = float(csc_loss(d, S_test))


def filter_distance(x: torch.Tensor) -> float:
    x = x / torch.linalg.vector_norm(x, dim=(1, 2, 3), keepdim=True)
    return float(torch.linalg.vector_norm(x - d_true) / torch.linalg.vector_norm(d_true))


print(f"\n{steps} Adam steps through {T} unrolled ADMM iterations, {time.perf_counter() - t0:.1f} s:")
print(f"  training loss {history[0]:.4e} -> {history[-1]:.4e}, held-out {test0:.4e} -> {test1:.4e} "
      f"(the hidden filters: {train_true:.4e}, {test_true:.4e})")
print(f"  distance to the hidden filters ||d - d_true|| / ||d_true||: {filter_distance(d0.detach()):.3e} "
      f"-> {filter_distance(d.detach()):.3e}")

# --- 3. time: ConvolutionalSolver against the dense solve ---------------------------------------
# More filters than above: the dense solve costs O(M^3) per frequency and iteration, the solver
# O(M) (one channel) or O(M C^2) (C channels, the C x C Woodbury form).
M_T = 16 if args.quick else 32
repeats = 3 if args.quick else 7


def x_updates(D_hat: torch.Tensor, b: torch.Tensor, how: str) -> None:
    """The x-update alone: T chained solves ``x <- A^{-1} (b + x / 2)`` and the gradient of
    ``||x||^2`` wrt ``D_hat`` and ``b`` (no FFTs, no thresholding)."""
    D_hat, b = D_hat.detach().requires_grad_(), b.detach().requires_grad_()
    solve, x = per_frequency(D_hat, how), torch.zeros_like(b)
    for _ in range(T):
        x = solve(b + 0.5 * x)
    torch.autograd.grad((x.abs() ** 2).sum(), (D_hat, b))


rows = []
for C in (1, 3):
    dc = gabor_filters(M_T, KF, C).requires_grad_()
    sc = synthesize(gabor_filters(M_T, KF, C), N_IMG)
    Dc = filter_dft(dc.detach())
    bc = torch.randn(N_IMG, *Dc.shape[:2], M_T, generator=gen, dtype=torch.complex128)
    parts = {"step": lambda how: torch.autograd.grad(csc_loss(dc, sc, how), dc),
             "x-update": lambda how: x_updates(Dc, bc, how)}
    times = {(p, h): [] for p in parts for h in ("ours", "dense")}
    for _ in range(repeats):  # interleaved: a slow moment of the machine hits every contender
        for p, h in times:
            t = time.perf_counter()
            parts[p](h)
            times[p, h].append(time.perf_counter() - t)
    for p in parts:
        rows.append((p, C, statistics.median(times[p, "ours"]), statistics.median(times[p, "dense"])))
print(f"\n{M_T} filters, {N_IMG} images of {H} x {H}, {T} iterations, forward + gradient; median of "
      f"{repeats} interleaved repeats, one thread (step: the training step; x-update: the {T} solves alone):")
print(f"{'part':>9} {'channels':>9} {'ConvolutionalSolver [s]':>24} {'dense solve [s]':>16} {'dense / ours':>13}")
for p, C, t_ours, t_dense in rows:
    print(f"{p:>9} {C:>9} {t_ours:>24.3e} {t_dense:>16.3e} {t_dense / t_ours:>12.1f}x")

# --- 4. loud where float32 is not enough ---------------------------------------------------------
D32 = D_hat.to(torch.complex64)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    difflinalg.ConvolutionalSolver(D32, 1e-6)
msgs = [str(w.message) for w in caught if issubclass(w.category, difflinalg.PrecisionWarning)]
assert msgs, "expected a PrecisionWarning in complex64 at rho = 1e-6"
kappa32 = float((1 + (D32.abs() ** 2).sum((-2, -1)) / 1e-6).max())
print(f"\ncomplex64, rho = 1.0e-06 (max_f kappa_f = {kappa32:.2e}, eps = {torch.finfo(torch.float32).eps:.1e}):")
print(f"  PrecisionWarning: {msgs[0][:150]}...")

# --- figures -------------------------------------------------------------------------------------
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
ax1.plot(history, label="training")
ax1.axhline(train_true, color="C2", ls="--", label="hidden filters")
ax1.set(xlabel="Adam step", ylabel="CSC objective per image", title=f"Filters through {T} ADMM iterations")
ax1.legend()
x = range(len(rows))
ax2.bar([i - 0.2 for i in x], [r[2] for r in rows], width=0.4, label="ConvolutionalSolver")
ax2.bar([i + 0.2 for i in x], [r[3] for r in rows], width=0.4, label=f"dense {M_T} x {M_T} solve")
ax2.set(xticks=list(x), xticklabels=[f"{r[0]}, C = {r[1]}" for r in rows], ylabel="forward + gradient [s]",
        yscale="log", title=f"Time, {M_T} filters")
ax2.legend()
fig.tight_layout()
fig.savefig(args.out / "09_csc.png", dpi=120)

fig, axes = plt.subplots(3, M, figsize=(1.6 * M, 5))
for j, (name, w) in enumerate((("hidden", d_true), ("start", d0.detach()), ("learned", d.detach()))):
    w = w / torch.linalg.vector_norm(w, dim=(1, 2, 3), keepdim=True)
    for i in range(M):
        axes[j, i].imshow(w[i, 0], cmap="gray")
        axes[j, i].set_xticks([])
        axes[j, i].set_yticks([])
    axes[j, 0].set_ylabel(name)
fig.tight_layout()
fig.savefig(args.out / "09_filters.png", dpi=120)
print(f"\nfigures: {args.out / '09_csc.png'}, {args.out / '09_filters.png'}")
