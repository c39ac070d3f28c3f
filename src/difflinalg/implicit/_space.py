r"""Realified flat coordinates of a tuple of tensors (the unknowns of an implicit problem).

The linear solves of implicit differentiation run on real vectors: a tuple of real or complex
tensors ``(x_1, ..., x_k)``, each of shape ``(*B, *s_i)`` with ``B`` the batch shape (independent
problems), becomes one real tensor of shape ``(*B, N)`` holding, for every leaf, its flattened real
part followed (for a complex leaf) by its flattened imaginary part.

Why real: for complex unknowns, ``F`` need not be holomorphic, and its Jacobian is then only
real-linear (``dF = J dx + K conj(dx)``); a complex Krylov or LU solve would silently drop ``K``.
On real coordinates every Jacobian is an ordinary real matrix ``J_R``. PyTorch's complex gradient
convention makes the realification consistent in both directions: with ``R(z) = [Re z, Im z]``,
``R(jvp(F)(dx)) = J_R R(dx)`` and ``R(vjp(F)(w)) = J_R^T R(w)`` (a PyTorch gradient ``g`` of a real
loss satisfies ``dL = Re sum(conj(g) dz) = R(g) . R(dz)``), so the adjoint of the realified
Jacobian is the realified vector-Jacobian product.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from .._utils import real_dtype


class RealSpace:
    """Realified coordinates of leaves with given per-problem shapes and dtypes.

    Leading dimensions beyond the per-problem shape (batch dims, right-hand-side dims) are kept as
    they are, so one space serves batched and unbatched calls alike.
    """

    def __init__(self, shapes: Sequence[torch.Size], dtypes: Sequence[torch.dtype]):
        self.shapes = [torch.Size(s) for s in shapes]
        self.dtypes = list(dtypes)
        self.numels = [math.prod(s) for s in self.shapes]
        self.sizes = [n * (2 if dt.is_complex else 1) for n, dt in zip(self.numels, self.dtypes)]
        self.dim = sum(self.sizes)
        reals = {real_dtype(dt) for dt in self.dtypes}
        if len(reals) != 1:
            raise ValueError(f"leaves must share one precision, got {sorted(map(str, reals))}")
        self.real_dtype = reals.pop()

    @classmethod
    def of(cls, leaves: Sequence[Tensor], batch_dims: int) -> "RealSpace":
        return cls([x.shape[batch_dims:] for x in leaves], [x.dtype for x in leaves])

    def flatten(self, leaves: Sequence[Tensor]) -> Tensor:
        """``(*L, *s_i)`` leaves -> ``(*L, N)`` real vector (``L``: any leading dims, shared)."""
        parts = []
        for x, shape in zip(leaves, self.shapes):
            lead = x.shape[: x.ndim - len(shape)]
            if x.is_complex():
                parts += [x.real.reshape(*lead, -1), x.imag.reshape(*lead, -1)]
            else:
                parts.append(x.reshape(*lead, -1))
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)

    def unflatten(self, v: Tensor) -> tuple[Tensor, ...]:
        """Inverse of ``flatten``: ``(*L, N)`` -> leaves ``(*L, *s_i)`` with their dtypes."""
        lead = v.shape[:-1]
        out, start = [], 0
        for shape, dt, n in zip(self.shapes, self.dtypes, self.numels):
            if dt.is_complex:
                re = v[..., start : start + n]
                im = v[..., start + n : start + 2 * n]
                out.append(torch.complex(re, im).reshape(tuple(lead) + tuple(shape)))
                start += 2 * n
            else:
                out.append(v[..., start : start + n].reshape(tuple(lead) + tuple(shape)))
                start += n
        return tuple(out)
