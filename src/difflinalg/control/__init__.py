"""Linear systems and H2-optimal model reduction (RARL2)."""

__all__: list[str] = []
