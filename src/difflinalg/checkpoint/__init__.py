"""Optimal binomial (Revolve) checkpointing of long loops through autograd."""

__all__: list[str] = []
