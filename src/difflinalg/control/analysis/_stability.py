"""Stability: the decay rate (distance of the poles to the stability boundary) and the checks that
name the offending pole."""

from __future__ import annotations

from torch import Tensor

from ..._errors import InputError, UnstableSystemError
from ..._utils import is_wrapped, warn_once
from ..system._route import sparse_route
from ..system._statespace import StateSpace, check_system, fmt_complex


# -- stability ------------------------------------------------------------------------------------
def decay_rate(sys: StateSpace) -> float:
    """Distance of the poles to the stability boundary: ``-max Re(lambda)`` (continuous) or
    ``1 - max |lambda|`` (discrete); positive iff stable (the minimum over a batch). In continuous
    time it is the slowest decay rate of the free response ``exp(A t) x0``.

    Args:
        sys: a ``StateSpace`` (or a system ``as_system`` converts).

    Returns:
        The rate as a float (``inf`` for order 0; not differentiable: the poles are detached).

    Raises:
        InputError: ``sys`` is not a system.

    Example::

        from difflinalg.control import builtin_model, decay_rate

        assert decay_rate(builtin_model("random")) > 0  # stable
    """
    sys = check_system(sys)
    if sys.order == 0:
        return float("inf")
    ev = sys.poles()
    if sys.discrete:
        return float(1.0 - ev.abs().amax())
    return float(-ev.real.amax())


def stability_margin(sys: StateSpace) -> float:
    """Deprecated name of ``decay_rate`` (python-control's ``stability_margins`` means gain and
    phase margins, not this); warns ``DeprecationWarning`` once per process.

    Args:
        sys: a ``StateSpace`` (or a system ``as_system`` converts).

    Returns:
        ``decay_rate(sys)`` (a float).

    Raises:
        InputError: ``sys`` is not a system.

    Example::

        import warnings
        from difflinalg.control import builtin_model, decay_rate, stability_margin

        F = builtin_model("random")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            assert stability_margin(F) == decay_rate(F)
    """
    warn_once("control.stability_margin", "difflinalg.control.stability_margin is deprecated: use decay_rate "
              "(the same value; python-control's stability_margins are gain/phase margins)", DeprecationWarning)
    return decay_rate(sys)


@sparse_route("is_stable")
def is_stable(sys: StateSpace) -> bool:
    """True if every pole is in the open left half-plane (continuous) / open unit disk (discrete).

    Args:
        sys: a ``StateSpace`` (or a system ``as_system`` converts), or a
            ``SparseSystem`` (above ``SPARSE_CROSSOVER`` states: a sparse eigensolver,
            ``control.large``); a batch is stable when every
            member is.

    Returns:
        ``decay_rate(sys) > 0`` (a bool; from the detached poles, so a pole on the boundary to
        rounding can go either way).

    Raises:
        InputError: ``sys`` is not a system.

    Example::

        import torch
        from difflinalg.control import StateSpace, is_stable

        one = torch.ones(1, 1, dtype=torch.float64)
        assert is_stable(StateSpace(-one, one, one))
        assert not is_stable(StateSpace(2 * one, one, one, dt=0.1))  # pole 2 outside the unit disk
    """
    return decay_rate(sys) > 0


def check_stable(sys: StateSpace, name: str = "target") -> None:
    """Raise ``UnstableSystemError`` naming the worst pole unless ``sys`` is stable."""
    if sys.order == 0 or is_wrapped(sys.A):
        return
    check_stable_poles(sys.poles(), sys.discrete, name)


def check_stable_poles(ev: Tensor, discrete: bool, name: str = "target") -> None:
    """``check_stable`` from precomputed poles."""
    ev = ev.reshape(-1)
    if ev.numel() == 0:
        return
    score = ev.abs() if discrete else ev.real
    k = int(score.argmax())
    bad = float(score[k]) >= (1.0 if discrete else 0.0)
    if not bad:
        return
    if discrete:
        raise UnstableSystemError(
            f"{name}: the system is not stable: discrete-time pole {fmt_complex(ev[k])} has modulus "
            f"{float(ev[k].abs()):.6g} >= 1, so its H2 norm is infinite; reduce only the stable part "
            "(e.g. split off the unstable poles first) or check the sampling/time domain (time='continuous'?)"
        )
    raise UnstableSystemError(
        f"{name}: the system is not stable: continuous-time pole {fmt_complex(ev[k])} has real part "
        f"{float(ev[k].real):.6g} >= 0, so its H2 norm is infinite; reduce only the stable part "
        "(e.g. split off the unstable poles first) or check the time domain (time='discrete'?)"
    )


def check_h2(sys: StateSpace, name: str = "target", stability: bool = True) -> None:
    """Raise unless ``sys`` has a finite H2 norm (stable; D = 0 in continuous time)."""
    if not sys.discrete and not is_wrapped(sys.D) and bool((sys.D != 0).any()):
        raise InputError(
            f"{name}: a continuous-time system with a non-zero feedthrough D has an infinite H2 norm "
            f"(max |D| = {float(sys.D.abs().max()):.3g}); reduce the strictly proper part "
            "StateSpace(A, B, C) and add D back to the reduced model"
        )
    if stability:
        check_stable(sys, name)
