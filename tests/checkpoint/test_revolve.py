"""Revolve schedule and cost: closed form vs the schedule's own count, a recursion DP and an
exhaustive shortest-path search over all schedules; validity of the schedule by simulation."""

import heapq
from functools import lru_cache
from math import comb

import pytest

from difflinalg import InputError
from difflinalg.checkpoint import revolve_cost, revolve_schedule
from difflinalg.checkpoint._revolve import schedule_stats


def closed_form(n, s):
    r = 0
    while comb(s + r, s) < n:
        r += 1
    return r * n - comb(s + r, s + 1)


def simulate(actions, n, s):
    """Execute a schedule on state indices; returns (advanced steps, peak slots). Asserts validity."""
    slots = {}
    cur = 0  # x_0 is in hand
    reversed_steps = []
    advances = 0
    for a in actions:
        if a.kind == "takeshot":
            assert cur == a.index and 0 <= a.slot < s
            slots[a.slot] = cur
        elif a.kind == "restore":
            assert slots.get(a.slot) == a.index
            cur = a.index
        elif a.kind == "advance":
            assert cur == a.index and a.index < a.stop <= n - 1
            advances += a.stop - a.index
            cur = a.stop
        else:
            assert cur == a.index
            assert (a.kind == "firsturn") == (not reversed_steps)
            reversed_steps.append(a.index)
    assert reversed_steps == list(range(n - 1, -1, -1))  # every step once, last to first
    return advances, len(slots)


def brute_force(n, s):
    """Fewest advanced steps over *all* schedules (Dijkstra over (stored set, current, next))."""
    start = (frozenset(), 0, n - 1)
    dist = {start: 0}
    heap = [(0, 0, start)]
    tie = 1
    while heap:
        d, _, node = heapq.heappop(heap)
        stored, cur, nxt = node
        if nxt < 0:
            return d
        if d > dist[node]:
            continue
        moves = []
        if cur is not None and cur < nxt:
            moves.append((1, (stored, cur + 1, nxt)))
        if cur is not None and cur == nxt:
            moves.append((0, (stored, None, nxt - 1)))
        if cur is not None and cur not in stored and len(stored) < s:
            moves.append((0, (stored | {cur}, cur, nxt)))
        for k in stored:
            moves.append((0, (stored - {k}, cur, nxt)))
            if k <= nxt:
                moves.append((0, (stored, k, nxt)))
        for w, nb in moves:
            if d + w < dist.get(nb, float("inf")):
                dist[nb] = d + w
                heapq.heappush(heap, (d + w, tie, nb))
                tie += 1
    raise AssertionError("no schedule")


@lru_cache(maxsize=None)
def recursion(n, s):
    if n <= 1:
        return 0
    if s == 1:
        return n * (n - 1) // 2
    return min(m + recursion(m, s) + recursion(n - m, s - 1) for m in range(1, n))


def test_known_values():
    assert revolve_cost(10, 1) == 45
    assert revolve_cost(1000, 10) == 3636
    assert revolve_cost(0, 3) == 0 and revolve_cost(1, 1) == 0
    assert revolve_cost(5, 10) == 4  # enough snapshots: each step advanced once, but the last


@pytest.mark.parametrize("n", range(1, 9))
@pytest.mark.parametrize("s", range(1, 4))
def test_closed_form_is_the_exhaustive_optimum(n, s):
    assert revolve_cost(n, s) == closed_form(n, s) == brute_force(n, s)


def test_closed_form_matches_recursion_dp():
    for s in range(1, 6):
        for n in range(1, 41):
            assert revolve_cost(n, s) == recursion(n, s), (n, s)


def test_schedule_count_and_validity():
    for s in range(1, 7):
        for n in range(0, 61):
            actions = revolve_schedule(n, s)
            if n == 0:
                assert actions == []
                continue
            adv, peak = simulate(actions, n, s)
            assert adv == revolve_cost(n, s) == schedule_stats(actions)["forward_steps"]
            assert peak <= s
    for n, s in [(1000, 10), (10000, 10), (777, 3), (5000, 2)]:
        actions = revolve_schedule(n, s)
        adv, peak = simulate(actions, n, s)
        assert adv == closed_form(n, s) and peak == min(s, n)


def test_bad_arguments():
    with pytest.raises(InputError, match="snapshots: expected at least 1"):
        revolve_cost(10, 0)
    with pytest.raises(InputError, match="n_steps: expected n_steps >= 0"):
        revolve_schedule(-1, 2)
    with pytest.raises(InputError, match="n_steps: expected an int"):
        revolve_cost(2.5, 2)
    with pytest.raises(InputError, match="snapshots: expected an int"):
        revolve_schedule(3, True)
