r"""Adaptive finite-difference derivatives with an error estimate.

The step balances truncation and rounding error, as FiniteDifferences.jl's adaptive ``central_fdm``
does: with a stencil of accuracy order ``k`` for the q-th derivative,

    error(h) ~ C_t * M * h^k + C_r * eps_f / h^q,

where ``M`` estimates ``|f^{(q+k)}|`` (from a wider stencil at a coarse step), ``eps_f`` is the
rounding error of ``f`` (machine epsilon of the dtype times ``|f|`` times ``factor``), ``C_t`` is the
stencil's truncation coefficient and ``C_r = sum |c_i|``. The minimizing step is
``h* = (q C_r eps_f / (k C_t M))^(1/(k+q))`` and the error estimate is ``error(h*)``. Float32 gets its
own (larger) step from its own epsilon, which a fixed ``eps`` cannot do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .._errors import InputError
from ._stencil import Stencil, backward_fdm, central_fdm, forward_fdm

_KINDS = {"central": central_fdm, "forward": forward_fdm, "backward": backward_fdm}


@dataclass(frozen=True)
class Derivative:
    """A finite-difference estimate: ``value`` (shaped like f's output) and its absolute ``error``."""

    value: Tensor
    error: Tensor
    step: float

    def __iter__(self):  # allows ``value, error = derivative(...)``
        yield self.value
        yield self.error


def _as_point(x) -> Tensor:
    if isinstance(x, Tensor):
        t = x.detach()
    elif isinstance(x, (int, float, complex)):
        t = torch.tensor(x, dtype=torch.complex128 if isinstance(x, complex) else torch.float64)
    else:
        raise InputError(f"x: expected a float or a tensor, got {type(x).__name__}")
    if not (t.is_floating_point() or t.is_complex()):
        raise InputError(
            f"x: integer dtype {t.dtype} cannot be perturbed by a finite difference; "
            "pass a floating-point value (e.g. x.double())"
        )
    if not bool(torch.isfinite(t).all()):
        raise InputError("x: contains non-finite values; finite differences need a finite point")
    return t


def _eval(f: Callable, x: Tensor) -> Tensor:
    y = f(x)
    y = torch.as_tensor(y)
    return y.detach()


def _apply(st: Stencil, g: Callable[[float], Tensor], h: float, cache: dict) -> Tensor:
    acc = None
    for o, c in zip(st.offsets, st.float_coefs()):
        if c == 0.0:
            continue
        t = o * h
        if t not in cache:
            cache[t] = g(t)
        term = c * cache[t]
        acc = term if acc is None else acc + term
    return acc / h**st.q


def derivative(
    f: Callable,
    x,
    p: int = 5,
    q: int = 1,
    step: float | None = None,
    *,
    direction: Tensor | None = None,
    kind: str = "central",
    richardson: int = 0,
    factor: float = 1.0,
    max_step: float = 0.1,
) -> Derivative:
    """Estimate the q-th (directional) derivative of ``f`` at ``x`` with a p-point stencil.

    Args:
        f: function of a scalar or tensor, returning a scalar or a tensor (real or complex).
        x: the point, a float or a floating/complex tensor.
        p, q: stencil size and derivative order (p > q).
        step: fixed step; ``None`` picks the roundoff-optimal step adaptively.
        direction: for a tensor ``x`` with more than one element, the direction ``d`` of the
            derivative ``(d/dt)^q f(x + t d)`` at t = 0 (any norm; the result is scaled accordingly).
        kind: "central", "forward" or "backward" stencil.
        richardson: number of Richardson extrapolation levels (0 = none).
        factor: assumed relative rounding error of ``f`` in units of machine epsilon.
        max_step: upper bound on the step (in units of ``|direction|``).

    Returns:
        ``Derivative(value, error, step)``; ``value`` has f's output shape, ``error`` its estimated
        absolute error (same shape).
    """
    if kind not in _KINDS:
        raise InputError(f"kind: expected one of {sorted(_KINDS)}, got {kind!r}")
    st = _KINDS[kind](p, q)
    if step is not None and not (step > 0):
        raise InputError(f"step: must be a positive number, got {step!r}; pass None to choose it adaptively")
    if richardson < 0:
        raise InputError(f"richardson: number of levels must be >= 0, got {richardson}")
    x = _as_point(x)
    if direction is None:
        if x.numel() != 1:
            raise InputError(
                f"direction: x has {x.numel()} elements; pass direction= (a tensor shaped like x) "
                "for a directional derivative"
            )
        direction = torch.ones_like(x)
    else:
        direction = _as_point(direction).to(x.dtype)
        if direction.shape != x.shape:
            raise InputError(f"direction: shape {tuple(direction.shape)} must match x's {tuple(x.shape)}")
    dnorm = float(torch.linalg.vector_norm(direction))
    if dnorm == 0.0:
        raise InputError("direction: must be non-zero")
    unit = direction / dnorm

    def g(t: float) -> Tensor:
        return _eval(f, x + t * unit)

    cache: dict[float, Tensor] = {}
    f0 = g(0.0)
    cache[0.0] = f0
    eps = torch.finfo(f0.real.dtype if (f0.is_floating_point() or f0.is_complex()) else torch.float64).eps
    eps = max(eps, torch.finfo(x.real.dtype).eps)
    fmag = float(f0.abs().max()) if f0.numel() else 0.0
    k = st.order
    C_t = float(st.truncation_coef)
    C_r = st.roundoff_coef

    # |f^{(q+k)}| from a wider central stencil at a coarse step chosen for that estimate.
    m_order = q + k
    st_m = central_fdm(m_order + 2, m_order)
    h_m = min(max_step, eps ** (1.0 / (m_order + 2)) * 2.0)
    est = _apply(st_m, g, h_m, {0.0: f0} if 0.0 in st_m.offsets else {})
    M = float(est.abs().max()) if est.numel() else 0.0
    eps_f = eps * max(fmag, 1e-300) * factor
    if step is not None:
        h = float(step)
    elif M > 0:
        h = min(max_step, (q * C_r * eps_f / (k * C_t * M)) ** (1.0 / (k + q)))
    else:  # f is (numerically) a low-degree polynomial along the line: no truncation error
        h = max_step

    if richardson == 0:
        value = _apply(st, g, h, cache)
        err = C_t * M * h**k + C_r * eps_f / h**q
        error = torch.full(value.shape, err, dtype=value.abs().dtype)
    else:
        # Richardson: D(h_j), h_j = H / 2^j; eliminate h^k, h^(k+1), ... in turn (Neville tableau).
        H = min(max_step, h * 2.0**richardson)
        tab = [_apply(st, g, H / 2.0**j, cache) for j in range(richardson + 1)]
        sym = kind == "central" and all(o == -oo for o, oo in zip(st.offsets, reversed(st.offsets)))
        inc = 2 if sym else 1
        prev = tab
        order = k
        for _ in range(richardson):
            r = 2.0**order
            prev = [(r * prev[j + 1] - prev[j]) / (r - 1) for j in range(len(prev) - 1)]
            order += inc
            if len(prev) == 1:
                break
        value = prev[0]
        last_two = (tab[-1] - value).abs()
        rounding = C_r * eps_f / (H / 2.0**richardson) ** q
        error = last_two + rounding
        h = H / 2.0**richardson
    scale = dnorm**q
    return Derivative(value * scale, error * scale, h * (1.0 / dnorm))

