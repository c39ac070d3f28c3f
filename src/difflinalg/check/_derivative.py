r"""Adaptive finite-difference derivatives with a realistic error estimate.

The step balances truncation and rounding error, as FiniteDifferences.jl's adaptive ``central_fdm``
does: with a stencil of accuracy order ``k`` for the q-th derivative,

    error(h) ~ C_t * M * h^k + C_r * eps_f / h^q,

where ``M`` estimates ``|f^{(q+k)}|`` (a wider central stencil at a coarse step), ``eps_f`` is the
rounding error of ``f`` (machine epsilon of the dtype times ``factor`` times ``max |f|`` over the
evaluated points plus ``|x| |f'|``, the effect of rounding the point ``x + t d`` itself, which
dominates where ``f`` is small, e.g. ``sin`` near pi), ``C_t`` is the stencil's truncation
coefficient and ``C_r = sum |c_i|``. The minimizing step is
``h* = (q C_r eps_f / (k C_t M))^(1/(k+q))``. Float32 gets its own (larger) step from its own
epsilon, which a fixed ``eps`` cannot do.

Error estimate. The model above can be optimistic: ``f`` may be noisier than ``eps |f|`` (an
ill-conditioned computation: a solve with condition number kappa is noisy at ``~ eps kappa |f|``)
or ``f^{(q+k)}`` may vanish by coincidence at ``x``. So the rounding part of the estimate is the
largest of three (``_fd_error``):

* the model ``C_r eps_f / h^q`` above;
* the noise measured from the samples: the ``2p - 1`` values at ``h`` and at the check step
  ``r h`` are fitted by a polynomial of degree ``q + k + 1``; the residuals' RMS ``sigma`` is the
  noise of one evaluation (what is smooth over ``|t| <= reach h`` is such a polynomial up to
  ``O(h^(q+k+2))``), and ``C_r sigma / h^q`` bounds its effect (componentwise, and no component
  below the RMS over components: rounding in linear algebra is normwise). Where ``sigma`` exceeds
  the model's ``eps_f`` by more than 4, the step is chosen again from ``sigma`` (``p - 1`` more
  evaluations at each of two steps) and the residuals of both steps are pooled;
* the check of ``D(h)`` against ``D(r h)`` with ``r = 2/3`` (``p - 1`` more evaluations, no point
  farther out; not ``h/2``, whose samples can share the binary lattice error of ``x + t d`` with
  ``h``'s)::

    D(h) - D(r h) = (1 - r^k) T(h) + N(h) - N(r h),

  with ``T`` the truncation and ``N`` the rounding error; what the modelled truncation does not
  explain is attributed to noise, whose typical size at ``h`` is
  ``|N(h) - N(r h)| / sqrt(1 + r^-2q)``.

So ``error = |T| + max(N_model, N_measured, max(0, |D(h) - D(r h)| - (1 - r^k) |T|) / sqrt(1 + r^-2q))``.
This is computed per output component, and ``Derivative.dot(w)`` gives the same estimate for a
linear functional ``w . f'`` (signed terms combine linearly, rounding in quadrature), which is what
``gradcheck`` compares in its reverse-mode checks: the error of a projection is not the sum of the
componentwise bounds.

Richardson extrapolation (``richardson=R``) evaluates the stencil at ``H, H/2, ..., H/2^(R+1)`` and
eliminates the leading error terms (``h^k``, then ``h^(k+2)`` for a symmetric stencil, ...) in a
Neville tableau. The value is the extrapolation over the finest ``R + 1`` steps; the one over the
coarsest ``R + 1`` has the same order ``k'``, so their difference over ``2^k' - 1`` estimates the
truncation error, to which the rounding error propagated through the tableau is added. The finest
step balances the extrapolated order's truncation against rounding, with ``|f^(n)|`` modelled as
``|f'| n! / rho^(n-1)`` (``rho`` from ``|f'|`` and ``M``: ``f`` analytic within a distance ``rho``,
as a matrix function is up to its nearest singularity). The error estimate trusts the rounding
model (the steps are dyadic and no noise check as above is made): for a noisy ``f`` prefer
``richardson=0`` (``gradcheck`` does).

References: Fornberg (1988) for stencils; Moré and Wild, "Estimating computational noise",
SIAM J. Sci. Comput. 33 (2011), for measuring the noise from the samples; Ridders (1982) and
Numerical Recipes ``dfridr`` for the extrapolation and its error estimate; FiniteDifferences.jl
for the adaptive step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .._errors import InputError
from .._utils import real_dtype
from ._fd_error import ErrorModel
from ._fd_step import Line, Samples
from ._stencil import Stencil, backward_fdm, central_fdm, forward_fdm

_KINDS = {"central": central_fdm, "forward": forward_fdm, "backward": backward_fdm}


@dataclass(frozen=True)
class Derivative:
    """A finite-difference estimate: ``value`` (shaped like f's output), its estimated absolute
    ``error`` (same shape) and the ``step`` used (the finest one with Richardson extrapolation)."""

    value: Tensor
    error: Tensor
    step: float
    _model: ErrorModel | None = field(default=None, repr=False, compare=False)

    def __iter__(self):  # allows ``value, error = derivative(...)``
        yield self.value
        yield self.error

    def dot(self, w: Tensor) -> Derivative:
        """The estimate of ``sum(w * value)`` (``w`` real, broadcastable to ``value``) with an error
        estimate of its own (tighter than ``sum(|w| * error)``, which adds worst cases).

        Args:
            w: real weights (a real tensor or a real number), broadcastable to ``value``.

        Returns:
            A scalar ``Derivative``: signed truncation terms combine linearly, rounding errors in
            quadrature.

        Raises:
            InputError: a complex ``value`` (split it into real and imaginary parts first), or a
                complex ``w`` (a tensor or a Python number), checked before any cast: under
                PyTorch's pairing ``Re sum(conj(w) * value)`` only ``w.real`` acts on a real
                ``value``, so pass ``w.real`` if that is meant, or realify both sides (as
                ``gradcheck`` does) for a complex functional.
        """
        if isinstance(w, complex) or (isinstance(w, Tensor) and w.is_complex()):
            raise InputError(
                f"w: Derivative.dot needs a real weight, got a complex {type(w).__name__}; under "
                "PyTorch's pairing Re sum(conj(w) * value) only w.real acts on a real value: pass "
                "w.real, or split complex quantities into real and imaginary parts first"
            )
        w = torch.as_tensor(w, dtype=real_dtype(self.value.dtype), device=self.value.device)
        if self.value.is_complex():
            raise InputError("w: Derivative.dot needs a real weight and a real value; "
                             "split complex values into real and imaginary parts first")
        value = (w * self.value).sum()
        if self._model is None:
            return Derivative(value, (w.abs() * self.error).sum(), self.step)
        model = self._model.dot(w)
        return Derivative(value, model.error(), self.step, model)


def _as_point(x, name: str = "x") -> Tensor:
    if isinstance(x, Tensor):
        t = x.detach()
    elif isinstance(x, bool) or not isinstance(x, (int, float, complex)):
        raise InputError(f"{name}: expected a float or a floating-point tensor, got {type(x).__name__}")
    else:
        t = torch.tensor(x, dtype=torch.complex128 if isinstance(x, complex) else torch.float64)
    if not (t.is_floating_point() or t.is_complex()):
        raise InputError(
            f"{name}: integer dtype {t.dtype} cannot be perturbed by a finite difference; "
            f"pass a floating-point value (e.g. {name}.double())"
        )
    if not bool(torch.isfinite(t).all()):
        raise InputError(f"{name}: contains non-finite values; finite differences need a finite point")
    return t


def _check_int(name: str, value, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InputError(f"{name}: expected an integer >= {low}, got {value!r}")


def _check_positive(name: str, value, hint: str = "") -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    if not ok:
        raise InputError(f"{name}: must be a finite positive number, got {value!r}{hint}")


def _check_options(f, kind: str, p: int, q: int, step, richardson, factor, max_step) -> Stencil:
    """Validate the options of ``derivative`` (before any evaluation of ``f``); the stencil."""
    if not callable(f):
        raise InputError(f"f: expected a callable, got {type(f).__name__}")
    if kind not in _KINDS:
        raise InputError(f"kind: expected one of {sorted(_KINDS)}, got {kind!r}")
    st = _KINDS[kind](p, q)
    if step is not None:
        _check_positive("step", step, "; pass None to choose it adaptively")
    _check_int("richardson", richardson, 0)
    _check_positive("factor", factor)
    _check_positive("max_step", max_step)
    return st


def _check_direction(x: Tensor, direction) -> tuple[Tensor, float]:
    """The direction in ``x``'s dtype (ones for a one-element ``x`` without one) and its norm."""
    if direction is None:
        if x.numel() != 1:
            raise InputError(
                f"direction: x has {x.numel()} elements; pass direction= (a tensor shaped like x) "
                "for a directional derivative"
            )
        direction = torch.ones_like(x)
    else:
        direction = _as_point(direction, "direction")
        if direction.shape != x.shape:
            raise InputError(
                f"direction: shape {tuple(direction.shape)} must match x's shape {tuple(x.shape)}"
            )
        if direction.is_complex() and not x.is_complex():
            raise InputError("direction: complex direction for a real x; pass a real direction")
        direction = direction.to(x.dtype)
    dnorm = float(torch.linalg.vector_norm(direction))
    if dnorm == 0.0:
        raise InputError("direction: must be non-zero")
    return direction, dnorm


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
        step: fixed step in ``t`` (``f`` is evaluated at ``x + t * direction``); ``None`` picks
            the roundoff-optimal step adaptively. With ``richardson > 0`` it is the coarsest step
            (the steps are ``step / 2^j``, j <= R + 1).
        direction: for a tensor ``x`` with more than one element, the direction ``d`` of the
            derivative ``(d/dt)^q f(x + t d)`` at t = 0 (any norm; the result scales with it).
        kind: "central", "forward" or "backward" stencil.
        richardson: number of Richardson extrapolation levels (0 = none).
        factor: assumed relative rounding error of ``f`` in units of machine epsilon.
        max_step: upper bound on the adaptive step in ``t``. ``f`` is evaluated at ``x + t d`` with
            ``|t| <= max(|offsets|) * max_step`` (2 * max_step for the default 5-point central
            stencil): keep that inside ``f``'s domain.

    Returns:
        ``Derivative(value, error, step)``; ``value`` has f's output shape, ``error`` its estimated
        absolute error (same shape), ``step`` the (finest) step in ``t``.

    Raises:
        InputError: ``f`` not callable; an unknown ``kind``; invalid ``p``, ``q`` (``p > q >= 1``),
            ``step``, ``factor``, ``max_step`` (finite positive numbers) or ``richardson``
            (``int >= 0``); ``x`` or ``direction`` not floating point or not finite; no
            ``direction`` for an ``x`` with several elements, a ``direction`` of another shape,
            zero, or complex for a real ``x``; ``f`` returning a non-floating or non-finite value
            (the stencil left its domain: lower ``max_step``).

    Example::

        import math
        import torch
        from difflinalg.check import derivative

        d = derivative(torch.sin, 1.0)                  # adaptive step, 5-point central stencil
        assert abs(float(d.value) - math.cos(1.0)) <= float(d.error) < 1e-11
        x = torch.tensor([1.0, 2.0], dtype=torch.float64)
        d = derivative(lambda x: (x**2).sum(), x, direction=torch.tensor([1.0, 0.0], dtype=torch.float64))
        assert abs(float(d.value) - 2.0) < 1e-9         # directional derivative 2 x . d
    """
    st = _check_options(f, kind, p, q, step, richardson, factor, max_step)
    x = _as_point(x)
    direction, dnorm = _check_direction(x, direction)
    # Internally the step s is along the unit vector (s = t |d|), so that the probe step is
    # measured in x's own units.
    line = Line(st, Samples(f, x, direction / dnorm, dnorm), q, factor, max_step * dnorm,
                float(torch.linalg.vector_norm(x)))
    h = float(step) * dnorm if step is not None else line.adaptive_step()
    if richardson == 0:
        value, model, h = line.plain(h, adaptive=step is None)
    else:
        H = float(step) * dnorm if step is not None else line.richardson_coarsest(richardson, h)
        value, model, h = line.richardson(richardson, H)
    scale = dnorm**q
    model = model.map(lambda t: t * scale, lambda n: n * scale)
    return Derivative(value * scale, model.error(), h / dnorm, model)
