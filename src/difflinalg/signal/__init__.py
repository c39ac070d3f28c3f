"""Array signal processing: eigengap and MUSIC losses on one shared decomposition, steering
vectors."""

from ._decomposition import SpectralDecomposition, decompose
from ._eigengap import cluster_mean_gap_loss, eigengap_loss
from ._music import music_spectrum, noise_subspace_power
from ._steering import ula_steering, ura_steering

__all__: list[str] = [
    "SpectralDecomposition", "decompose", "eigengap_loss", "cluster_mean_gap_loss", "music_spectrum",
    "noise_subspace_power", "ula_steering", "ura_steering",
]

from ._order import estimate_source_count, information_criteria

__all__ += ["estimate_source_count", "information_criteria"]

from ._doa import find_peaks, soft_argmax_refine
from ._esprit import unitary_esprit
from ._root_music import root_music
from ._smoothing import forward_backward_average, spatial_smoothing

__all__ += ["find_peaks", "soft_argmax_refine", "unitary_esprit", "root_music", "forward_backward_average",
            "spatial_smoothing"]
