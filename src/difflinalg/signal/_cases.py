"""Verification cases of the signal functions (run by ``difflinalg verify``)."""

from __future__ import annotations

import torch

from .._utils import real_dtype
from ..check import register_case
from ..spectral._cases_eigh import hermitian_with_spectrum
from ._decomposition import decompose
from ._eigengap import cluster_mean_gap_loss, eigengap_loss
from ._esprit import unitary_esprit
from ._music import music_spectrum, noise_subspace_power
from ._smoothing import spatial_smoothing
from ._steering import ula_steering, ura_steering


def _covariance(dtype, gen, n, signal, floor, delta=0.0, batch=()):
    """``Q diag(w) Q^H`` with ``signal`` eigenvalues above a floor ``floor + delta * randn``."""
    m = n - len(signal)
    noise = floor + delta * torch.randn(m, generator=gen, dtype=torch.float64)
    w = torch.cat([noise.sort().values, torch.tensor(sorted(signal), dtype=torch.float64)])
    return hermitian_with_spectrum(dtype, gen, w, batch)


# eigengap: margin 3 > every gap used, so the hinge is active (a smooth function of R there).
register_case("eigengap_loss", "generic", lambda R: eigengap_loss(R, 2, 3.0, reduction="none"),
              lambda dt, g: (hermitian_with_spectrum(dt, g, [0.1, 0.9, 2.0, 2.8, 3.5]),))
register_case("eigengap_loss", "per_sample_k",
              lambda R: eigengap_loss(R, torch.tensor([1, 2, 3]), 3.0, reduction="sum"),
              lambda dt, g: (hermitian_with_spectrum(dt, g, [0.1, 0.9, 2.0, 2.8, 3.5], batch=(3,)),))
# lambda_3 = 3 and lambda_4 = 2 are simple; the top pair and the floor are exactly repeated.
register_case("eigengap_loss", "degenerate_elsewhere", lambda R: eigengap_loss(R, 3, 3.0),
              lambda dt, g: (hermitian_with_spectrum(dt, g, [1.0, 1.0, 1.0, 2.0, 3.0, 6.0, 6.0]),),
              hard=True, max_step=1e-2)

def _S8(dtype):
    """Seven ULA steering vectors of 8 elements (their real parts for a real dtype)."""
    S = ula_steering(8, torch.linspace(-1.0, 1.0, 7, dtype=torch.float64))
    return S.to(dtype) if dtype.is_complex else S.real.to(dtype)
register_case("music_spectrum", "generic", lambda R, S: music_spectrum(R, S, 2),
              lambda dt, g: (_covariance(dt, g, 8, [4.0, 7.0], 1.0, 0.2), _S8(dt)))
register_case("music_spectrum", "batched", lambda R, S: music_spectrum(R, S, 2),
              lambda dt, g: (_covariance(dt, g, 8, [4.0, 7.0], 1.0, 0.2, batch=(2,)), _S8(dt)))
register_case("music_spectrum", "flat_noise_floor", lambda R, S: music_spectrum(R, S, 2),
              lambda dt, g: (_covariance(dt, g, 8, [4.0, 7.0], 1.0, 0.0), _S8(dt)),
              hard=True, max_step=1e-2)
register_case("music_spectrum", "repeated_signal_near_flat_floor", lambda R, S: music_spectrum(R, S, 3),
              lambda dt, g: (_covariance(dt, g, 8, [5.0, 5.0, 9.0], 1.0, 1e-10), _S8(dt)),
              hard=True, max_step=1e-2)
register_case("noise_subspace_power", "generic", lambda R, S: noise_subspace_power(R, S, 3),
              lambda dt, g: (_covariance(dt, g, 8, [3.0, 5.0, 7.0], 1.0, 1e-12), _S8(dt)), hard=True,
              max_step=1e-2)

# Per-sample k (a LongTensor of the batch shape): 1, 2 and 3 sources above a floor of width 0.2.
_K3 = torch.tensor([1, 2, 3])
register_case("noise_subspace_power", "per_sample_k", lambda R, S: noise_subspace_power(R, S, _K3),
              lambda dt, g: (_covariance(dt, g, 8, [4.0, 7.0, 9.0], 1.0, 0.2, batch=(3,)), _S8(dt)))
register_case("music_spectrum", "per_sample_k", lambda R, S: music_spectrum(R, S, _K3),
              lambda dt, g: (_covariance(dt, g, 8, [4.0, 7.0, 9.0], 1.0, 0.2, batch=(3,)), _S8(dt)))
# Per-sample k on exactly flat floors (the samples' floors start at different indices).
register_case("music_spectrum", "per_sample_k_flat_floor", lambda R, S: music_spectrum(R, S, _K3),
              lambda dt, g: (_covariance(dt, g, 8, [4.0, 7.0, 9.0], 1.0, 0.0, batch=(3,)), _S8(dt)),
              hard=True, max_step=1e-2)


def _combined(R, S):
    """Eigengap hinge + cluster-mean hinge + MUSIC loss on one shared decomposition."""
    d = decompose(R)
    return (eigengap_loss(d, 2, 5.0) + cluster_mean_gap_loss(d, 2, 5.0)
            + noise_subspace_power(d, S, 2).sum())
register_case("decompose", "combined_losses", _combined,
              lambda dt, g: (_covariance(dt, g, 8, [4.0, 7.0], 1.0, 0.2), _S8(dt)))
register_case("decompose", "combined_losses_flat_floor",
              lambda R, S: cluster_mean_gap_loss(decompose(R), 2, 5.0) + noise_subspace_power(decompose(R), S, 2).sum(),
              lambda dt, g: (_covariance(dt, g, 8, [4.0, 7.0], 1.0, 0.0), _S8(dt)), hard=True, max_step=1e-2)

# Cluster-mean hinge: smooth on an exactly flat floor (the noise mean has the projector as its
# gradient); "mean" also at a repeated signal pair (equal source powers).
register_case("cluster_mean_gap_loss", "generic", lambda R: cluster_mean_gap_loss(R, 2, 4.0, reduction="none"),
              lambda dt, g: (hermitian_with_spectrum(dt, g, [0.1, 0.9, 2.0, 2.8, 3.5]),))
register_case("cluster_mean_gap_loss", "flat_floor", lambda R: cluster_mean_gap_loss(R, 3, 6.0),
              lambda dt, g: (hermitian_with_spectrum(dt, g, [1.0, 1.0, 1.0, 1.0, 3.0, 5.0, 6.0]),),
              hard=True, max_step=1e-2)
register_case("cluster_mean_gap_loss", "flat_floor_repeated_signal",
              lambda R: cluster_mean_gap_loss(R, torch.tensor([2, 4]), 9.0, signal="mean", reduction="sum"),
              lambda dt, g: (hermitian_with_spectrum(dt, g, [1.0, 1.0, 1.0, 5.0, 5.0, 8.0, 8.0], batch=(2,)),),
              hard=True, max_step=1e-2)

register_case("ula_steering", "generic", lambda t: ula_steering(5, t, spacing=0.4),
              lambda dt, g: (torch.rand(4, generator=g, dtype=real_dtype(dt)) * 2 - 1,),
              dtypes=(torch.float64,))
register_case("ura_steering", "generic", lambda t, p: ura_steering(3, 2, t, p),
              lambda dt, g: (torch.rand(2, 3, generator=g, dtype=real_dtype(dt)),
                             torch.rand(3, generator=g, dtype=real_dtype(dt)) * 6),
              dtypes=(torch.float64,))


def _ula_data(dtype, gen, n=6, doas=(-0.3, 0.5), snapshots=100):
    """Sample covariance of two sources at 10 dB on an n-element ULA (complex)."""
    A = ula_steering(n, torch.tensor(doas, dtype=torch.float64))
    s = torch.complex(torch.randn(len(doas), snapshots, generator=gen, dtype=torch.float64),
                      torch.randn(len(doas), snapshots, generator=gen, dtype=torch.float64)) * 2.2
    noise = torch.complex(torch.randn(n, snapshots, generator=gen, dtype=torch.float64),
                          torch.randn(n, snapshots, generator=gen, dtype=torch.float64)) * 0.7
    X = A @ s + noise
    return ((X @ X.mH) / snapshots).to(dtype)


register_case("unitary_esprit", "two_sources", lambda R: unitary_esprit(R, 2),
              lambda dt, g: (_ula_data(dt, g),), dtypes=(torch.complex128,), modes=("vjp", "jvp", "hvp"))
register_case("spatial_smoothing", "ura_forward_backward",
              lambda R: spatial_smoothing(R, (2, 2), shape=(2, 3), forward_backward=True),
              lambda dt, g: (hermitian_with_spectrum(dt, g, [0.5, 1.0, 1.5, 2.0, 3.0, 4.0], batch=(2,)),))
