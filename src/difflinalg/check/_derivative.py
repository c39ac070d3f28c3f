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
from ._fd_error import ErrorModel, fit_residuals, resid_noise
from ._stencil import Stencil, backward_fdm, central_fdm, forward_fdm

_KINDS = {"central": central_fdm, "forward": forward_fdm, "backward": backward_fdm}
# Ratio of the check step to the step. Not a power of two: the rounding of ``x + t d`` lies on a
# binary lattice, and steps h and h/2 can see the same lattice error (the check would miss it).
_CHECK = 2.0 / 3.0


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
            w: real weights (tensor or number), broadcastable to ``value``.

        Returns:
            A scalar ``Derivative``: signed truncation terms combine linearly, rounding errors in
            quadrature.

        Raises:
            InputError: a complex ``value`` (split it into real and imaginary parts first).
                Pass a real ``w``: a complex tensor ``w`` is cast to ``value``'s real dtype by
                torch before the check (its imaginary part dropped, with torch's
                ``UserWarning``), complex Python numbers raise torch's ``TypeError``.
        """
        w = torch.as_tensor(w, dtype=real_dtype(self.value.dtype), device=self.value.device)
        if w.is_complex() or self.value.is_complex():
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


def _apply(st: Stencil, g: Callable[[float], Tensor], h: float) -> Tensor:
    """``sum_i c_i g(o_i h) / h^q`` (``g`` caches its evaluations)."""
    acc = None
    for o, c in zip(st.offsets, st.float_coefs()):
        if c == 0.0:
            continue
        term = c * g(o * h)
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
    x = _as_point(x)
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
    # Internally the step s is along the unit vector (s = t |d|), so that the probe step below is
    # measured in x's own units.
    unit = direction / dnorm
    max_s = max_step * dnorm
    xnorm = float(torch.linalg.vector_norm(x))

    cache: dict[float, Tensor] = {}

    def g(t: float) -> Tensor:
        if t not in cache:
            y = torch.as_tensor(f(x + t * unit))
            if not (y.is_floating_point() or y.is_complex()):
                raise InputError(f"f: must return a floating-point or complex value, got {y.dtype}")
            y = y.detach()
            if not bool(torch.isfinite(y).all()):
                raise InputError(
                    f"f: returned non-finite values at x + {t / dnorm:.3g} * direction; the point "
                    "left f's domain: lower max_step (or structure the input inside f)"
                )
            cache[t] = y
        return cache[t]

    f0 = g(0.0)
    eps = max(torch.finfo(real_dtype(f0.dtype)).eps, torch.finfo(real_dtype(x.dtype)).eps)
    k = st.order
    C_t = float(st.truncation_coef)
    C_r = st.roundoff_coef
    reach = max(abs(o) for o in st.offsets)

    # Signed estimate of f^{(q+k)} from a wider central stencil at a coarse step (rounding error of
    # the estimate ~ eps / h_m^(q+k), truncation ~ h_m^2), reaching no farther than the main stencil.
    m_order = q + k
    st_m = central_fdm(m_order + 2, m_order)
    reach_m = max(abs(o) for o in st_m.offsets)
    h_m = min(max_s * reach / reach_m, 2.0 * eps ** (1.0 / (m_order + 2)))
    M_vec = _apply(st_m, g, h_m)
    # Rounding error of each component: eps times the largest |f| seen near x (not |f(x)| alone,
    # which may vanish at x) plus |x| |f'| for the rounding of the point x + t d.
    fmag = torch.stack([c.abs() for c in cache.values()]).amax(0)
    d1 = (g(h_m) - g(-h_m)).abs() / (2 * h_m)  # |f'| along the unit direction
    if xnorm > 0:
        fmag = fmag + xnorm * d1
    M = float(M_vec.abs().max()) if M_vec.numel() else 0.0
    fmax = float(fmag.max()) if fmag.numel() else 0.0
    if step is not None:
        h = float(step) * dnorm
    elif M > 0 and fmax > 0:
        h = min(max_s, (q * C_r * eps * factor * fmax / (k * C_t * M)) ** (1.0 / (k + q)))
    else:  # f is (numerically) a polynomial of degree < q + k along the line: no truncation error
        h = max_s

    def noise(hh: float) -> Tensor:
        return C_r * eps * factor * fmag / hh**q

    def at_step(hh: float, prev: tuple[Tensor, int] | None = None):
        """The estimate at step ``hh``, its error model and the fit residuals (f's units, with
        their degrees of freedom); ``prev``: residuals at an earlier step, pooled with these (f's
        noise level does not depend on the step)."""
        value = _apply(st, g, hh)
        check = value - _apply(st, g, _CHECK * hh)
        trunc = C_t * M_vec * hh**k
        # The 2p - 1 samples at both steps (keys built as in ``_apply``, so they hit the cache),
        # fitted by a polynomial of degree q + k + 1 (q + k where that leaves < 2 degrees of freedom).
        ts = sorted({0.0} | {o * hh for o in st.offsets} | {o * (_CHECK * hh) for o in st.offsets})
        deg = q + k + 1 if len(ts) - (q + k + 2) >= 2 else q + k
        fit = fit_residuals(ts, [g(t) for t in ts], hh, deg)
        if fit is not None and prev is not None:
            fit = torch.cat([prev[0], fit[0]]), prev[1] + fit[1]
        nz, resid, dof = noise(hh), None, 0
        if fit is not None:
            resid, dof = fit[0] * (C_r / hh**q), fit[1]
            sig = resid_noise(resid, dof)
            # Normwise rounding, few samples per component: at least the RMS over components.
            pooled = sig.square().mean().sqrt() if sig.numel() else sig
            nz = torch.maximum(nz, torch.maximum(sig, pooled))
        model = ErrorModel(trunc, nz, check, trunc, 1.0 - _CHECK**k,
                           math.sqrt(1.0 + _CHECK ** (-2 * q)), resid, dof)
        return value, model, fit

    if richardson == 0:
        value, model, fit = at_step(h)
        # f noisier than eps |f| (ill-conditioned): the step that balances truncation against the
        # measured noise is larger; one more estimate there (2 (p - 1) evaluations) is more
        # accurate, and its residuals double the samples of the noise level.
        level = float(resid_noise(*fit).max()) if fit is not None and fit[0].numel() else 0.0
        if step is None and M > 0 and level > 4.0 * eps * factor * fmax:
            h2 = min(max_s, (q * C_r * level / (k * C_t * M)) ** (1.0 / (k + q)))
            if h2 > 1.5 * h:
                h = h2
                value, model, _ = at_step(h, fit)
    else:
        R = richardson
        sym = all(o == -oo for o, oo in zip(st.offsets, reversed(st.offsets)))
        inc = 2 if sym else 1
        if step is not None:
            H = float(step) * dnorm
        else:
            # Model |f^(n)| ~ |f'| n! / rho^(n-1) (f analytic within a distance rho, as a matrix
            # function is up to its nearest singularity); rho from |f'| and M, then the step that
            # balances truncation of the extrapolated order k' against rounding.
            k_eff = k + inc * R
            fine = h
            D1 = float(d1.max()) if d1.numel() else 0.0
            if M > 0 and D1 > 0 and h < max_s:
                n = q + k
                rho = (math.factorial(n) * D1 / M) ** (1.0 / (n - 1)) if n > 1 else 1.0
                n_eff = q + k_eff
                M_eff = D1 * math.factorial(n_eff) / rho ** (n_eff - 1)
                fine = (q * C_r * eps * factor * fmax / (k_eff * C_t * M_eff)) ** (1.0 / (k_eff + q))
            H = min(max_s, fine * 2.0 ** (R + 1))
        # R + 2 steps: two extrapolated entries of the same order (steps H..H/2^R and
        # H/2..H/2^(R+1)); their difference estimates the error of the finer one, the value.
        steps = [H / 2.0**j for j in range(R + 2)]
        row, nrow = [_apply(st, g, hj) for hj in steps], [noise(hj) for hj in steps]
        order = k
        for _ in range(R):
            r = 2.0**order
            row = [(r * row[j + 1] - row[j]) / (r - 1) for j in range(len(row) - 1)]
            nrow = [(r * nrow[j + 1] + nrow[j]) / (r - 1) for j in range(len(nrow) - 1)]
            order += inc
        coarse, value = row
        h = steps[-1]
        model = ErrorModel((coarse - value) / (2.0**order - 1), nrow[1])
    scale = dnorm**q
    model = model.map(lambda t: t * scale, lambda n: n * scale)
    return Derivative(value * scale, model.error(), h / dnorm, model)
