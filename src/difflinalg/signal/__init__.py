"""Array signal processing: eigengap and MUSIC losses, steering vectors."""

__all__: list[str] = []
