"""Optimal binomial (Revolve) checkpointing of long loops through autograd.

``revolve_schedule(n, s)`` / ``revolve_cost(n, s)``: the Griewank-Walther schedule and its optimal
number of extra forward steps; ``binomial_loop(step, x0, n, snapshots=s)``: a loop whose backward
follows that schedule (at most ``s`` stored states, gradients of the unrolled loop), for the state
and for every tensor ``step`` captures, leaves and tensors computed before the loop alike
(``_capture``).
"""

from ._loop import LoopStats, binomial_loop
from ._revolve import Action, revolve_cost, revolve_schedule

__all__ = ["Action", "LoopStats", "binomial_loop", "revolve_cost", "revolve_schedule"]
