r"""The error model of a finite-difference estimate, and the noise measured from its samples.

``derivative`` (``_derivative.py``) estimates the error of ``D(h) = sum_i c_i f(x + o_i h d) / h^q``
as truncation plus rounding. The rounding part has three estimates, of which the largest counts:

1. the model ``sum |c_i| eps |f| / h^q`` (right for a function computed to relative accuracy eps);
2. the noise *measured* from the samples themselves: the ``m = 2p - 1`` values at the step and at
   the check step are fitted by a polynomial of degree ``q + k + 1`` (least squares; ``k`` the
   stencil's order); over ``|t| <= reach h`` the smooth part of f is such a polynomial up to
   ``O(h^(q+k+2))``, so the residuals ``r`` are the rounding noise of f (Moré and Wild's ECnoise
   idea, on samples that are already there). With ``dof = m - degree - 1`` their RMS
   ``sigma = ||r||_2 / sqrt(dof)`` is the noise level of each evaluation, and the noise of ``D(h)``
   is at most ``sum |c_i| sigma / h^q`` (``sqrt(sum c_i^2)`` for independent errors; the 1-norm
   leaves room for the few degrees of freedom of the estimate). This is what covers an
   ill-conditioned computation (a solve with condition number kappa is noisy at ``~ eps kappa |f|``,
   not ``eps |f|``), and, in ``gradcheck``'s second-order modes, the rounding error of the inner
   derivative (the gradient or JVP being differenced), whatever its propagation through the rule;
3. the difference of the estimates at the step and at the check step, less its modelled
   truncation (a second sample of the noise, kept from before).

Rounding in linear algebra is normwise (a solve spreads every entry's error over all components),
while one component's residuals are only ``dof`` samples: so no component is credited with less
than the RMS over components of the measured noise. A linear functional ``w . D`` gets the noise of
the functional itself from its own residuals ``r w`` (whatever the correlation between
components) next to the quadrature sum ``||w * noise||_2``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class ErrorModel:
    """Pieces of the error estimate, kept so that linear functionals get their own estimate.

    ``error = |trunc| + max(noise, resid_noise, max(0, |check| - gain * |check_trunc|) / spread)``
    (elementwise): ``trunc`` is a signed truncation estimate, ``noise`` a rounding bound (modelled
    or measured, componentwise), ``check`` a signed difference of two estimates (``None`` when there
    is none) whose truncation part is ``gain * check_trunc``; the rest of it, over ``spread``, is
    the noise it reveals. ``resid`` (``None`` or shaped ``(m, *value.shape)``) holds the residuals
    of the sampled values after a polynomial fit, already in derivative units (times
    ``sum |c_i| / h^q``), with ``dof`` degrees of freedom: ``||resid||_2 / sqrt(dof)`` measures the
    noise of this very quantity, so a linear functional gets the noise of the functional itself,
    whatever the correlation of the rounding errors between components.
    """

    trunc: Tensor
    noise: Tensor
    check: Tensor | None = None
    check_trunc: Tensor | None = None
    gain: float = 0.0
    spread: float = 1.0
    resid: Tensor | None = None
    dof: int = 0

    def error(self) -> Tensor:
        err = self.noise
        if self.resid is not None:
            err = torch.maximum(err, resid_noise(self.resid, self.dof))
        if self.check is not None:
            excess = (self.check.abs() - self.gain * self.check_trunc.abs()).clamp_min(0.0)
            err = torch.maximum(err, excess / self.spread)
        return self.trunc.abs() + err

    def map(self, lin: Callable[[Tensor], Tensor], quad: Callable[[Tensor], Tensor]) -> ErrorModel:
        """The model after a linear map: ``lin`` for the signed parts, ``quad`` for the noise."""
        check = None if self.check is None else lin(self.check)
        check_trunc = None if self.check_trunc is None else lin(self.check_trunc)
        resid = None if self.resid is None else torch.stack([lin(r) for r in self.resid])
        return ErrorModel(lin(self.trunc), quad(self.noise), check, check_trunc, self.gain, self.spread,
                           resid, self.dof)

    def dot(self, w: Tensor) -> ErrorModel:
        """The model of ``sum(w * D)`` for a real weight ``w``: signed parts (and the residuals)
        combine linearly and the componentwise rounding bounds in quadrature."""
        return self.map(lambda t: (w * t).sum(), lambda n: torch.linalg.vector_norm((w * n).reshape(-1)))


def resid_noise(resid: Tensor, dof: int) -> Tensor:
    """Noise of each component from its fit residuals, ``||r_i||_2 / sqrt(dof)``."""
    return torch.linalg.vector_norm(resid, dim=0) / math.sqrt(dof)


def fit_residuals(ts: list[float], vals: list[Tensor], h: float, degree: int) -> tuple[Tensor, int] | None:
    """Residuals of the least-squares polynomial of ``degree`` through ``(t_j, f(x + t_j d))``.

    Returns ``(R, dof)``: ``R`` shaped ``(m, *f.shape)`` (a complex f: the modulus of the real and
    imaginary residuals, so that both parts count), ``dof = m - degree - 1``; ``None`` when there
    are not more samples than coefficients. Over ``|t| <= reach h`` the smooth part of f is a
    polynomial of degree ``q + k`` up to ``O(h^(q+k+1))``, a factor ``h`` below the stencil's own
    truncation, so what remains is the rounding noise of f.
    """
    m = len(ts)
    dof = m - degree - 1
    if dof < 1:
        return None
    t = torch.tensor(ts, dtype=torch.float64) / h
    Q, _ = torch.linalg.qr(t[:, None] ** torch.arange(degree + 1, dtype=torch.float64))
    F = torch.stack([v.reshape(-1) for v in vals])
    F = torch.view_as_real(F.to(torch.complex128)) if F.is_complex() else F.to(torch.float64)[..., None]
    F = F.reshape(m, -1)
    R = F - Q @ (Q.T @ F)
    R = torch.linalg.vector_norm(R.reshape(m, -1, 2 if vals[0].is_complex() else 1), dim=-1)
    return R.reshape(m, *vals[0].shape), dof
