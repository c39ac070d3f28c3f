"""Random inputs for verification cases and tests, in the ``make_inputs(dtype, gen)`` convention."""

from __future__ import annotations

import torch
from torch import Tensor

from .._utils import real_dtype


def randn(dtype: torch.dtype, gen: torch.Generator | None, *shape: int) -> Tensor:
    """Standard normal tensor of ``shape`` in ``dtype`` drawn from ``gen``.

    Complex: independent standard normal real and imaginary parts (drawn in that order, so the
    real part equals the real tensor drawn from the same generator state).

    Args:
        dtype: a floating or complex dtype (float32/64, complex64/128).
        gen: the ``torch.Generator`` to draw from (CPU), or ``None`` for the global one.
        shape: the dimensions, as separate ints.

    Returns:
        A tensor of ``shape`` and ``dtype`` on the CPU (variance 1 per real component).

    Raises:
        Nothing: no checks of its own; torch's error for an integer dtype.

    Example (the ``make_inputs(dtype, gen)`` of a verification case)::

        import torch
        from difflinalg.check import randn

        make_inputs = lambda dtype, gen: (randn(dtype, gen, 3, 3),)
        (A,) = make_inputs(torch.complex128, torch.Generator().manual_seed(0))
        re = randn(torch.float64, torch.Generator().manual_seed(0), 3, 3)
        assert A.shape == (3, 3) and torch.equal(A.real, re)
    """
    rdt = real_dtype(dtype)
    x = torch.randn(*shape, generator=gen, dtype=rdt)
    if dtype.is_complex:
        x = torch.complex(x, torch.randn(*shape, generator=gen, dtype=rdt))
    return x
