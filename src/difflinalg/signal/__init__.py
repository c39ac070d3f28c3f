"""Array signal processing: eigengap and MUSIC losses, steering vectors."""

from ._eigengap import eigengap_loss
from ._music import music_spectrum, noise_subspace_power
from ._steering import ula_steering, ura_steering

__all__: list[str] = ["eigengap_loss", "music_spectrum", "noise_subspace_power", "ula_steering", "ura_steering"]
