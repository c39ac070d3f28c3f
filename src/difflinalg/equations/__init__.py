"""Matrix equations: Sylvester, Stein, Lyapunov, and reusable factored operators."""

__all__: list[str] = []
