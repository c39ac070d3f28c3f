"""Implicit differentiation of roots, fixed points and argmins."""

__all__: list[str] = []
