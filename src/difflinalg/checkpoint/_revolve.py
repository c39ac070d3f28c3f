r"""The Griewank-Walther binomial checkpointing schedule ("Revolve") and its cost.

Reversing ``n`` steps ``x_{k+1} = step(x_k)`` with ``s`` stored states (snapshots, ``x_0``'s
included) costs at least

    t(n, s) = r n - C(s + r, s + 1)   forward steps,   r = min{ r : C(s + r, s) >= n },

besides the ``n`` taped steps of the reversal itself (Griewank 1992, "Achieving logarithmic
growth of temporal and spatial complexity in reverse automatic differentiation"; Griewank &
Walther 2000, "Algorithm 799: revolve", ACM TOMS 26). ``t(n, s)`` satisfies the recursion of the
nested schedules,

    t(n, s) = min_{0 < m < n} [ m + t(m, s) + t(n - m, s - 1) ],   t(1, s) = 0,
    t(n, 1) = n (n - 1) / 2:

advance ``m`` steps from ``x_l``, store ``x_{l+m}``, reverse the right part ``[l+m, n)`` with one
snapshot fewer, then the left part ``[l, l+m)`` with the freed one. The schedule below follows that
recursion with an optimal split at every node. The objective is convex in ``m`` (``t(., s)`` is
convex: its increments are the repetition numbers ``r(n, s)``, nondecreasing in ``n``), so the
split is found by bisection on its forward difference ``1 + r(m + 1, s) - r(n - m, s - 1)``.
The schedule is built iteratively (no recursion depth limit) in ``O(n log n)``.
"""

from __future__ import annotations

from math import comb
from typing import Literal, NamedTuple

from .._errors import InputError

Kind = Literal["takeshot", "advance", "restore", "firsturn", "youturn"]


class Action(NamedTuple):
    """One action of a reversal schedule.

    * ``takeshot``: store the current state ``x_index`` in snapshot ``slot``;
    * ``advance``: run the (untaped) steps ``index .. stop - 1``: current state becomes ``x_stop``;
    * ``restore``: the current state becomes ``x_index``, read from snapshot ``slot``;
    * ``firsturn``: tape step ``index`` (the last one, ``index = n - 1``) from the current state
      ``x_index`` and start the reverse sweep with it;
    * ``youturn``: tape step ``index`` from the current state ``x_index`` and reverse it.
    """

    kind: Kind
    index: int
    stop: int = -1
    slot: int = -1


def _check(n_steps, snapshots) -> None:
    if isinstance(n_steps, bool) or not isinstance(n_steps, int):
        raise InputError(f"n_steps: expected an int, got {type(n_steps).__name__}")
    if n_steps < 0:
        raise InputError(f"n_steps: expected n_steps >= 0, got {n_steps}")
    if isinstance(snapshots, bool) or not isinstance(snapshots, int):
        raise InputError(f"snapshots: expected an int, got {type(snapshots).__name__}")
    if snapshots < 1:
        raise InputError(
            f"snapshots: expected at least 1 (the initial state is always stored), got {snapshots}"
        )


def repetition_number(n: int, s: int) -> int:
    """Smallest ``r >= 0`` with ``C(s + r, s) >= n`` (every step is advanced at most r times)."""
    r, b = 0, 1  # b = C(s + r, s)
    while b < n:
        r += 1
        b = b * (s + r) // r
    return r


def revolve_cost(n_steps: int, snapshots: int) -> int:
    """Minimal number of forward (advance) steps to reverse ``n_steps`` with ``snapshots`` stored
    states: ``r n - C(s + r, s + 1)`` with ``r`` the smallest integer such that
    ``C(s + r, s) >= n`` (Griewank and Walther 2000, "Algorithm 799: revolve").

    Args:
        n_steps: number of steps ``n`` to reverse, an ``int >= 0``.
        snapshots: number of stored states ``s`` (the initial state's included), an ``int >= 1``.

    Returns:
        The optimal number of extra (untaped) step evaluations, an ``int`` (0 for ``n_steps <= 1``),
        besides the ``n_steps`` taped steps of the reversal.

    Raises:
        InputError: ``n_steps`` or ``snapshots`` not an ``int`` (``bool`` refused), ``n_steps < 0``
            or ``snapshots < 1``.

    Example::

        from difflinalg.checkpoint import revolve_cost

        assert revolve_cost(10, 1) == 45          # one snapshot: n (n - 1) / 2
        assert revolve_cost(1000, 10) == 3636     # 3.6 extra steps per step with 10 states
    """
    _check(n_steps, snapshots)
    if n_steps == 0:
        return 0
    r = repetition_number(n_steps, snapshots)
    return r * n_steps - comb(snapshots + r, snapshots + 1)


def _t(n: int, s: int) -> int:
    r = repetition_number(n, s)
    return r * n - comb(s + r, s + 1)


def _split(n: int, s: int) -> int:
    """An optimal first advance ``m`` for ``n >= 2`` steps and ``s >= 2`` snapshots."""
    lo, hi = 1, n - 1  # smallest m in [1, n-1] whose forward difference is >= 0
    while lo < hi:
        mid = (lo + hi) // 2
        if 1 + repetition_number(mid + 1, s) - repetition_number(n - mid, s - 1) >= 0:
            hi = mid
        else:
            lo = mid + 1
    return lo


def revolve_schedule(n_steps: int, snapshots: int) -> list[Action]:
    """The binomial reversal schedule of ``n_steps`` steps with ``snapshots`` stored states.

    Its number of advanced steps is ``revolve_cost(n_steps, snapshots)`` (optimal), at most
    ``snapshots`` snapshot slots are in use at any time, and every step is taped exactly once, in
    the order ``n - 1, ..., 0`` (``firsturn`` for the first, ``youturn`` for the others). Built
    iteratively in ``O(n log n)``, by the recursion of nested reversals with an optimal split at
    every node (Griewank 1992; Griewank and Walther 2000).

    Args:
        n_steps: number of steps ``n`` to reverse, an ``int >= 0``.
        snapshots: number of stored states ``s`` (the initial state's included), an ``int >= 1``.

    Returns:
        The list of ``Action`` s to execute in order (empty for ``n_steps = 0``): it starts with
        ``takeshot`` of ``x_0`` in slot 0.

    Raises:
        InputError: ``n_steps`` or ``snapshots`` not an ``int`` (``bool`` refused), ``n_steps < 0``
            or ``snapshots < 1``.

    Example::

        from difflinalg.checkpoint import revolve_cost, revolve_schedule

        schedule = revolve_schedule(4, 2)
        assert schedule[0].kind == "takeshot" and schedule[4].kind == "firsturn"
        advanced = sum(a.stop - a.index for a in schedule if a.kind == "advance")
        assert advanced == revolve_cost(4, 2) == 4
        assert [a.index for a in schedule if a.kind.endswith("turn")] == [3, 2, 1, 0]
    """
    _check(n_steps, snapshots)
    if n_steps == 0:
        return []
    out: list[Action] = [Action("takeshot", 0, slot=0)]
    first = [True]

    def turn(k: int) -> None:
        out.append(Action("firsturn" if first[0] else "youturn", k))
        first[0] = False

    # Work items: ("rev", l, r, s, slot): reverse steps [l, r) with the current state x_l, which is
    # stored in `slot`, and s snapshot slots (that one included); ("restore", slot, index).
    stack: list[tuple] = [("rev", 0, n_steps, snapshots, 0)]
    while stack:
        item = stack.pop()
        if item[0] == "restore":
            out.append(Action("restore", item[2], slot=item[1]))
            continue
        _, l, r, s, slot = item
        if r - l == 1:
            turn(l)
        elif s == 1:  # no free slot: re-advance from x_l for every step, last to first
            for k in range(r - 1, l - 1, -1):
                if k != r - 1:
                    out.append(Action("restore", l, slot=slot))
                if k > l:
                    out.append(Action("advance", l, stop=k))
                turn(k)
        else:
            m = _split(r - l, s)
            out.append(Action("advance", l, stop=l + m))
            out.append(Action("takeshot", l + m, slot=slot + 1))
            stack.append(("rev", l, l + m, s, slot))  # left part, done last
            stack.append(("restore", slot, l))
            stack.append(("rev", l + m, r, s - 1, slot + 1))  # right part, done first
    return out


def schedule_stats(actions: list[Action]) -> dict:
    """Advanced steps, taped steps and peak snapshot slots of a schedule (by simulation)."""
    advances = sum(a.stop - a.index for a in actions if a.kind == "advance")
    turns = sum(a.kind in ("firsturn", "youturn") for a in actions)
    slots = {a.slot for a in actions if a.kind == "takeshot"}
    return {"forward_steps": advances, "taped_steps": turns, "snapshots": len(slots)}
