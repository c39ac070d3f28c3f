"""MUSIC and eigengap losses: calibrating a 12 x 12 array by gradient descent, in complex64.

The story. A 144-element uniform rectangular array has unknown per-element gain and phase errors
``gamma``: the measured covariance of a scene with k sources is

    R = diag(gamma) A P A^H diag(gamma)^H + sigma^2 I,    A = [a(theta_1, phi_1), ...],

and MUSIC with the nominal steering vectors ``a`` points in the wrong directions. You calibrate
by gradient descent from scenes with known sources: learn ``g = exp(alpha + i psi)`` (144
complex numbers, initialised to 1) so that the calibrated covariance ``R_c = diag(g) R diag(g)^H``

* has the known steering vectors in its signal subspace: MUSIC loss
  ``||E_n^H a||^2 / n`` at the true directions (``E_n``: the noise subspace), and
* has a clear gap between its k signal eigenvalues and the noise: eigengap hinge loss
  ``relu(margin - (lambda_k - lambda_{k+1}) / tr R_c)``.

What goes wrong elsewhere: the noise eigenvalues of ``R_c`` are (nearly) equal -- exactly
``sigma^2`` at the start, where g = 1 -- and ``torch.linalg.eigh``'s backward divides by their
differences. The gradient is NaN or dominated by rounding amplified by 1/gap, and a training loop
that skips non-finite steps (as ``torch.amp.GradScaler`` does) never leaves the start.

What difflinalg gives: ``difflinalg.signal.noise_subspace_power`` and ``eigengap_loss``
differentiate through the *split* between signal and noise subspaces only (gaps
``lambda_k - lambda_{k+1}``), so ties inside the noise subspace are harmless, in complex64 too;
``difflinalg.signal.decompose`` computes the eigendecomposition once and both losses share it
(one forward and one backward through it per step).

The script trains the calibration twice, with difflinalg's losses and with the same losses
written on ``torch.linalg.eigh`` (skipping non-finite steps), counts the non-finite steps, also
evaluates torch's gradient along difflinalg's trajectory (non-finite count and deviation), and
plots the direction-of-arrival error of single-source test scenes (MUSIC peak on a grid) against
the training step.

Run: ``python examples/03_music_eigengap_training.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from difflinalg.signal import (SpectralDecomposition, decompose, eigengap_loss, music_spectrum,  # noqa: E402
                               noise_subspace_power, ura_steering)

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="fewer scenes and steps, for CI")
parser.add_argument("--out", type=Path, default=Path(__file__).parent / "_output")
args = parser.parse_args()
args.out.mkdir(parents=True, exist_ok=True)
gen = torch.Generator().manual_seed(0)

NX = NY = 12
N = NX * NY
K_SRC = 2  # sources per training scene
SIGMA2 = 0.01  # noise power (per element; sources have power 1: SNR 20 dB)
MARGIN = 0.5  # the desired normalized gap (lambda_k - lambda_{k+1}) / tr R_c
STEPS = 20 if args.quick else 150
BATCH = 8 if args.quick else 16
EVAL_EVERY = 5 if args.quick else 10

# --- the array's errors and the data -------------------------------------------------------------
# Gains +-20%; phases: a ramp across the aperture (a mis-positioned array: it biases every
# direction estimate) plus 0.3 rad of random phase per element.
ix, iy = torch.arange(N) // NY, torch.arange(N) % NY
gamma = torch.polar(torch.exp(0.2 * torch.randn(N, generator=gen)),
                    0.15 * ix + 0.1 * iy + 0.3 * torch.randn(N, generator=gen))


def directions(shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Random directions: polar angle 5..60 degrees from broadside, any azimuth (float32)."""
    theta = torch.deg2rad(5 + 55 * torch.rand(shape, generator=gen))
    phi = 2 * math.pi * torch.rand(shape, generator=gen)
    return theta, phi


def covariance(theta: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """The measured covariance of each scene (a long observation: its expectation), complex64."""
    A = gamma[:, None] * ura_steering(NX, NY, theta, phi)  # (..., N, k): the true responses
    return A @ A.mH + SIGMA2 * torch.eye(N, dtype=A.dtype)


def calibrate(R: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    g = torch.exp(torch.complex(params[0], params[1]))  # g = exp(alpha + i psi)
    return g[:, None] * R * g.conj()


def loss_difflinalg(R_c: torch.Tensor, steering: torch.Tensor) -> torch.Tensor:
    # One eigendecomposition shared by both losses (decompose once, backward once).
    d = decompose(R_c)
    music = noise_subspace_power(d, steering, K_SRC).mean() / N
    scale = d.eigenvalues.sum(-1, keepdim=True)  # the trace: the gap is scale-free
    return music + eigengap_loss(SpectralDecomposition(d.eigenvalues / scale, d.eigenvectors), K_SRC, MARGIN)


def loss_torch(R_c: torch.Tensor, steering: torch.Tensor) -> torch.Tensor:
    """The same two losses written on torch.linalg.eigh (eigenvalues ascending)."""
    w, V = torch.linalg.eigh(R_c)
    E_n = V[..., : N - K_SRC]  # the noise subspace
    music = (E_n.mH @ steering).abs().pow(2).sum(-2).mean() / N
    gap = (w[..., N - K_SRC] - w[..., N - K_SRC - 1]) / w.sum(-1)
    return music + torch.relu(MARGIN - gap).mean()


# Test scenes: one source each. The estimate is the MUSIC peak on a local grid around the true
# direction (+-10 deg in theta, +-20 deg in phi, 0.5 deg steps): it measures the bias the
# array errors cause, without the cost of a search over the whole hemisphere.
N_TEST = 6
test_theta, test_phi = directions((N_TEST, 1))
R_test = covariance(test_theta, test_phi)
offs_t, offs_p = torch.meshgrid(torch.deg2rad(torch.arange(-10.0, 10.01, 0.5)),
                                torch.deg2rad(torch.arange(-20.0, 20.01, 0.5)), indexing="ij")
grid_t = (test_theta + offs_t.reshape(-1)).abs()  # (N_TEST, G); |.|: through the normal
grid_p = test_phi + offs_p.reshape(-1) + math.pi * (test_theta + offs_t.reshape(-1) < 0)
grid_a = ura_steering(NX, NY, grid_t, grid_p)  # (N_TEST, N, G) complex64


def angle_between(t1, p1, t2, p2):
    cos = torch.sin(t1) * torch.sin(t2) * torch.cos(p1 - p2) + torch.cos(t1) * torch.cos(t2)
    return torch.rad2deg(torch.arccos(cos.clamp(-1, 1)))


def doa_error_deg(params: torch.Tensor) -> float:
    """Mean angle between the true direction and the MUSIC peak over the test scenes (degrees)."""
    with torch.no_grad():
        spec = music_spectrum(calibrate(R_test, params), grid_a, 1)  # (N_TEST, G)
        best = spec.argmax(-1, keepdim=True)
        t_hat, p_hat = grid_t.gather(-1, best), grid_p.gather(-1, best)
        return float(angle_between(test_theta, test_phi, t_hat, p_hat).mean())


def train(loss_fn, shadow_fn=None):
    """Adam on (alpha, psi); non-finite gradients are skipped and counted (as a GradScaler does).
    ``shadow_fn``: also evaluate that loss's gradient at the same parameters (not used to step)."""
    params = torch.zeros(2, N, requires_grad=True)
    opt = torch.optim.Adam([params], lr=0.03)
    stream = torch.Generator().manual_seed(1)  # the same training scenes for both runs
    out = {"loss": [], "doa": [], "skipped": 0, "shadow_nonfinite": 0, "shadow_dev": []}
    for step in range(STEPS):
        theta = torch.deg2rad(5 + 55 * torch.rand(BATCH, K_SRC, generator=stream))
        phi = 2 * math.pi * torch.rand(BATCH, K_SRC, generator=stream)
        R = covariance(theta, phi)
        steering = ura_steering(NX, NY, theta, phi)  # the nominal (uncalibrated) responses
        opt.zero_grad()
        loss = loss_fn(calibrate(R, params), steering)
        (g,) = torch.autograd.grad(loss, params)
        if shadow_fn is not None:
            p2 = params.detach().requires_grad_()
            (g2,) = torch.autograd.grad(shadow_fn(calibrate(R, p2), steering), p2)
            if torch.isfinite(g2).all():
                out["shadow_dev"].append(float((g2 - g).norm() / g.norm()))
            else:
                out["shadow_nonfinite"] += 1
        out["loss"].append(float(loss.detach()))
        if torch.isfinite(g).all():
            params.grad = g
            opt.step()
        else:
            out["skipped"] += 1
        if step % EVAL_EVERY == 0 or step == STEPS - 1:
            out["doa"].append((step, doa_error_deg(params.detach())))
    return params.detach(), out


print(f"{NX} x {NY} URA ({N} elements), complex64, {K_SRC} sources per scene, batch {BATCH}, "
      f"{STEPS} Adam steps; DOA error before calibration: {doa_error_deg(torch.zeros(2, N)):.2f} deg")
t0 = time.perf_counter()
p_dl, run_dl = train(loss_difflinalg, shadow_fn=loss_torch)
t_dl = time.perf_counter() - t0
t0 = time.perf_counter()
p_t, run_t = train(loss_torch)
t_t = time.perf_counter() - t0

dev = sorted(run_dl["shadow_dev"])
print(f"\n{'training with':<28} {'non-finite steps':>17} {'final loss':>11} {'DOA error [deg]':>16} {'time [s]':>9}")
for name, run, t in (("difflinalg losses", run_dl, t_dl), ("torch.linalg.eigh losses", run_t, t_t)):
    skipped = f"{run['skipped']} / {STEPS}"
    print(f"{name:<28} {skipped:>17} {run['loss'][-1]:>11.4f} "
          f"{run['doa'][-1][1]:>16.2f} {t:>9.1f}")
print(f"\ntorch.linalg.eigh's gradient along difflinalg's trajectory: non-finite at "
      f"{run_dl['shadow_nonfinite']} of {STEPS} steps; where finite, relative deviation from "
      f"difflinalg's: median {dev[len(dev) // 2] if dev else float('nan'):.1e}, "
      f"max {dev[-1] if dev else float('nan'):.1e}")
phase_err = torch.angle(torch.exp(1j * p_dl[1]) * gamma / (torch.exp(1j * p_dl[1]) * gamma).mean())
print(f"residual phase error of the calibrated array (rms, after removing the common phase): "
      f"{float(phase_err.pow(2).mean().sqrt()):.3f} rad (before: "
      f"{float(torch.angle(gamma / gamma.mean()).pow(2).mean().sqrt()):.3f} rad)")

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
for name, run in (("difflinalg losses", run_dl), ("torch.linalg.eigh losses", run_t)):
    steps_, errs = zip(*run["doa"])
    ax1.plot(steps_, errs, "o-", label=f"{name} ({run['skipped']} non-finite steps)")
ax1.set(xlabel="training step", ylabel="mean DOA error [deg]", title="Single-source test scenes")
ax1.legend(fontsize=8)
# One test scene's spectrum around its source, before and after calibration (same local grid).
shape = offs_t.shape
extent = (-20, 20, -10, 10)
for params, style, label in ((torch.zeros(2, N), "w--", "before"), (p_dl, "r-", "after")):
    spec = music_spectrum(calibrate(R_test[:1], params), grid_a[:1], 1).reshape(shape)
    ax2.contour(10 * torch.log10(spec / spec.max()), levels=[-3.0], colors=style[0],
                linestyles=style[1:], extent=extent)
    if label == "after":
        ax2.imshow(10 * torch.log10(spec / spec.max()), aspect="auto", origin="lower",
                   extent=extent, cmap="viridis")
ax2.plot(0, 0, "r+", ms=14)
ax2.set(xlabel="azimuth offset [deg]", ylabel="polar angle offset [deg]",
        title="MUSIC spectrum [dB] after calibration\n(-3 dB contours: white before, red after; +: truth)")
fig.tight_layout()
fig.savefig(args.out / "03_music_doa.png", dpi=120)
print(f"\nfigure: {args.out / '03_music_doa.png'}")
