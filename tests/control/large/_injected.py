"""A target whose recorded solves carry a known forward error (tests of the rounding probe,
``_adi_run.RecordedRun.noise``, and of the error model that uses it, ``_errsys``)."""

from difflinalg.control.large import heat_2d
from difflinalg.control.large._adi import adi_shifts
from difflinalg.control.large._solves import solver_of


def injected_heat(n: int, eta: float):
    """A heat model whose shifted solves (after its shifts are chosen) return ``(1 + eta)`` times the
    solution: a known forward error in every recorded step."""
    s = heat_2d(n)
    adi_shifts(s, False)
    S = solver_of(s)
    solve = S.solve
    S.solve = lambda a, b, X, adjoint=False: solve(a, b, X, adjoint) * (1 + eta)
    return s
