"""``markov_system``: the finite-impulse-response system of given Markov parameters."""

from __future__ import annotations

import torch

from ..._errors import InputError
from ..._utils import as_tensor
from ._statespace import StateSpace


def markov_system(markov) -> StateSpace:
    """Discrete-time finite-impulse-response realization of Markov parameters ``F_0, ..., F_K``
    ((K+1, p, m), or (K+1,) for a single-input single-output system): ``F(z) = sum_k F_k z^{-k}``,
    ``D = F_0``, a block shift ``A`` (nilpotent) of order ``K m``.

    Args:
        markov: (K+1, p, m) Markov parameters ``F_0, ..., F_K`` with ``K >= 1`` (or (K+1,) for one
            input and output); a tensor or array, floating or complex (integers become float64).

    Returns:
        Discrete-time ``StateSpace`` (``dt`` unspecified) of order ``K m``, p outputs, m inputs,
        the dtype of ``markov``; ``C`` holds ``F_1, ..., F_K`` (differentiable in them).

    Raises:
        InputError: not a tensor, fewer than two parameters, or another shape; non-finite entries.

    Example::

        import torch
        from difflinalg.control import markov_system

        sys = markov_system(torch.tensor([0.0, 1.0, 0.5]))  # F(z) = z^-1 + 0.5 z^-2
        assert sys.order == 2 and sys.discrete
    """
    M = as_tensor(markov, "target")
    if M.ndim == 1:
        M = M[:, None, None]
    if M.ndim != 3 or M.shape[0] < 2:
        raise InputError(f"target: Markov parameters must have shape (K+1, p, m) with K >= 1 (or (K+1,) "
                         f"for one input and output), got {tuple(M.shape)}")
    if not (M.is_floating_point() or M.is_complex()):
        M = M.to(torch.float64)
    K, p, m = M.shape[0] - 1, M.shape[1], M.shape[2]
    N = K * m
    A = torch.zeros(N, N, dtype=M.dtype)
    if K > 1:
        A[m:, :-m] = torch.eye(N - m, dtype=M.dtype)
    B = torch.zeros(N, m, dtype=M.dtype)
    B[:m] = torch.eye(m, dtype=M.dtype)
    C = M[1:].permute(1, 0, 2).reshape(p, N)
    return StateSpace(A, B, C, M[0], time="discrete")
