"""Random inputs for verification cases and tests, in the ``make_inputs(dtype, gen)`` convention."""

from __future__ import annotations

import torch
from torch import Tensor

from .._utils import real_dtype


def randn(dtype: torch.dtype, gen: torch.Generator | None, *shape: int) -> Tensor:
    """Standard normal tensor of ``shape`` in ``dtype`` drawn from ``gen``.

    Complex: independent standard normal real and imaginary parts (drawn in that order, so the
    real part equals the real tensor drawn from the same generator state).
    """
    rdt = real_dtype(dtype)
    x = torch.randn(*shape, generator=gen, dtype=rdt)
    if dtype.is_complex:
        x = torch.complex(x, torch.randn(*shape, generator=gen, dtype=rdt))
    return x
