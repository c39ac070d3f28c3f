r"""Scalar functions and their first and second divided differences, evaluated stably.

The Daleckii-Krein theorem writes the derivatives of a matrix function of a Hermitian matrix
``A = V diag(l) V^H`` in the eigenbasis with divided differences of the scalar function ``f``
(Bhatia, "Matrix Analysis", V.3; Higham, "Functions of Matrices", Thm. 3.11 and 3.33)::

    f[a, b]    = (f(a) - f(b)) / (a - b),          f[a, a]    = f'(a)
    f[a, b, c] = (f[a, b] - f[b, c]) / (a - c),    f[a, a, a] = f''(a) / 2

(symmetric in their arguments). Near-equal arguments make the quotients cancel: the generic
evaluation switches to quadrature of the mean-value form when the arguments are close,

    f[a, b]    ~ (f'(a) + 4 f'((a+b)/2) + f'(b)) / 6      (Simpson, error O(|a-b|^4 f^(5)))
    f[a, b, c] ~ f''((a+b+c)/3) / 2                       (error O(spread^2 f^(4)))

with the switch at ``|a - b| <= eps^(1/5) max(|a|, |b|)`` (first) and ``eps^(1/3)`` (second), where
both errors balance near ``eps^(4/5)`` and ``eps^(2/3)`` relative. Exactly equal arguments give
the exact limits ``f'(a)`` and ``f''(a) / 2``, so repeated eigenvalues are no special case.
The ready-made functions (sqrt, log, exp, pow) supply closed forms without cancellation instead.

Second divided differences are formed with the widest pair of the three arguments as the
denominator (the best-conditioned of the three equivalent quotients).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .._errors import InputError, NotPositiveDefiniteError
from .._utils import eps, is_wrapped

ScalarFn = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class ScalarFunction:
    """A real scalar function applied to real eigenvalues, with what its derivative rules need.

    Attributes:
        f, df: the function and its derivative (elementwise callables on real tensors).
        d2f: its second derivative; ``None``: obtained from ``df`` by forward-mode autodiff.
        dd: stable first divided difference ``dd(a, b)`` (broadcasting, including ``a == b``);
            ``None``: the generic quotient / Simpson switch.
        dd2: stable second divided difference ``dd2(a, b, c)``; ``None``: generic.
        domain: ``check(w, name)`` raising for eigenvalues outside the domain; ``None``: all reals.
        kappa: condition estimate of the derivative from the eigenvalues (..., n) -> (...): the
            predicted relative error of the first divided differences is ``kappa eps``, ``inf``
            where the derivative does not exist (sqrt at a zero eigenvalue); ``None``: not checked.
        name: for messages.
    """

    f: ScalarFn
    df: ScalarFn
    d2f: ScalarFn | None = None
    dd: Callable[[Tensor, Tensor], Tensor] | None = None
    dd2: Callable[[Tensor, Tensor, Tensor], Tensor] | None = None
    domain: Callable[[Tensor, str], None] | None = None
    kappa: Callable[[Tensor], Tensor] | None = None
    name: str = "f"

    def second(self, w: Tensor) -> Tensor:
        if self.d2f is not None:
            return self.d2f(w)
        # df is elementwise, so its JVP along ones is the elementwise derivative.
        return torch.func.jvp(self.df, (w,), (torch.ones_like(w),))[1]


def _close(a: Tensor, b: Tensor, rel: float) -> Tensor:
    scale = torch.maximum(a.abs(), b.abs()).clamp_min(torch.finfo(a.dtype).tiny)
    return (a - b).abs() <= rel * scale


def first_divided_differences(fn: ScalarFunction, w: Tensor) -> Tensor:
    """Matrix ``D[..., i, j] = f[w_i, w_j]`` for eigenvalues ``w`` of shape (..., n)."""
    a, b = w[..., :, None], w[..., None, :]
    if fn.dd is not None:
        return fn.dd(a, b)
    fw = fn.f(w)
    close = _close(a, b, eps(w.dtype) ** 0.2)
    quotient = (fw[..., :, None] - fw[..., None, :]) / torch.where(close, torch.ones_like(a), a - b)
    dfw = fn.df(w)
    simpson = (dfw[..., :, None] + 4.0 * fn.df(0.5 * (a + b)) + dfw[..., None, :]) / 6.0
    exact = torch.where(a == b, dfw[..., :, None].expand_as(simpson), simpson)
    return torch.where(close, exact, quotient)


def second_divided_differences(fn: ScalarFunction, w: Tensor, D: Tensor | None = None) -> Tensor:
    """Tensor ``T[..., i, k, j] = f[w_i, w_k, w_j]`` (O(n^3) memory) for eigenvalues ``w``."""
    li, lk, lj = w[..., :, None, None], w[..., None, :, None], w[..., None, None, :]
    if fn.dd2 is not None:
        return fn.dd2(li, lk, lj)
    if D is None:
        D = first_divided_differences(fn, w)
    Dik, Dkj, Dij = D[..., :, :, None], D[..., None, :, :], D[..., :, None, :]
    # Three equal quotients; use the one whose denominator is the widest pair.
    d1, d2, d3 = li - lj, lk - lj, li - lk
    one = torch.ones((), dtype=w.dtype, device=w.device)
    c1 = (Dik - Dkj) / torch.where(d1 == 0, one, d1)  # (f[i,k] - f[k,j]) / (l_i - l_j)
    c2 = (Dik - Dij) / torch.where(d2 == 0, one, d2)  # (f[k,i] - f[i,j]) / (l_k - l_j)
    c3 = (Dij - Dkj) / torch.where(d3 == 0, one, d3)  # (f[i,j] - f[j,k]) / (l_i - l_k)
    a1, a2, a3 = d1.abs(), d2.abs(), d3.abs()
    best = torch.where((a1 >= a2) & (a1 >= a3), c1, torch.where(a2 >= a3, c2, c3))
    spread = torch.maximum(torch.maximum(a1, a2), a3)
    scale = torch.maximum(torch.maximum(li.abs(), lk.abs()), lj.abs()).clamp_min(torch.finfo(w.dtype).tiny)
    close = spread <= eps(w.dtype) ** (1 / 3) * scale
    mean = li + ((lk - li) + (lj - li)) / 3.0  # exactly l_i when all three are equal
    return torch.where(close, 0.5 * fn.second(mean), best)


# ----------------------------------------------------------------------------------------------
# Ready-made functions with closed-form divided differences (no cancellation).


def _sinhc(x: Tensor) -> Tensor:
    """sinh(x) / x, accurate near 0."""
    small = x.abs() < 1e-3
    xs = torch.where(small, torch.ones_like(x), x)
    return torch.where(small, 1.0 + x * x / 6.0 + x**4 / 120.0, torch.sinh(xs) / xs)


def _atanhc(u: Tensor) -> Tensor:
    """atanh(u) / u, accurate near 0."""
    small = u.abs() < 1e-3
    us = torch.where(small, torch.full_like(u, 0.5), u)
    u2 = u * u
    return torch.where(small, 1.0 + u2 / 3.0 + u2 * u2 / 5.0, torch.atanh(us) / us)


def _check_positive(strict: bool, fname: str):
    def check(w: Tensor, name: str) -> None:
        if is_wrapped(w) or w.numel() == 0:
            return
        wmin = w.min(dim=-1).values
        # Within rounding (n eps |A|) of zero counts as zero: singular for log/pow, zero for sqrt.
        tol = w.shape[-1] * eps(w.dtype) * w.abs().amax(dim=-1)
        bad = wmin <= tol if strict else wmin < -tol
        if bool(bad.any()):
            worst = float(wmin.min())
            what = "positive definite" if strict else "positive semidefinite"
            raise NotPositiveDefiniteError(
                f"{name}: {fname} needs a Hermitian {what} matrix, but its smallest eigenvalue is "
                f"{worst:.3e}; shift it (A + eps * I) or use the general {fname.split('mh')[0]}m "
                "for a principal branch of a non-Hermitian matrix"
            )

    return check


def _sqrt_dd2(a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    sa, sb, sc = a.clamp_min(0).sqrt(), b.clamp_min(0).sqrt(), c.clamp_min(0).sqrt()
    return -1.0 / ((sa + sb) * (sb + sc) * (sa + sc))


def _sqrt_kappa(w: Tensor) -> Tensor:
    """``max |l| / (2 l_min)``: ``f'(l) = 1 / (2 sqrt(l))`` has relative condition 1/2 in ``l``, and
    ``l_min`` carries an absolute error ~``eps max |l|``; ``inf`` where ``l_min`` is zero within
    rounding (``<= n eps max |l|``, the tolerance of the forward's domain check): there the square
    root is not differentiable."""
    wmax = w.abs().amax(dim=-1)
    wmin = w.amin(dim=-1)
    tol = w.shape[-1] * eps(w.dtype) * wmax
    return torch.where(wmin > tol, wmax / (2 * wmin.clamp_min(torch.finfo(w.dtype).tiny)),
                       torch.full_like(wmax, math.inf))


SQRT = ScalarFunction(
    f=lambda w: w.clamp_min(0).sqrt(),
    df=lambda w: 0.5 / w.clamp_min(0).sqrt(),
    d2f=lambda w: -0.25 / w.clamp_min(0) ** 1.5,
    dd=lambda a, b: 1.0 / (a.clamp_min(0).sqrt() + b.clamp_min(0).sqrt()),
    dd2=_sqrt_dd2,
    domain=_check_positive(False, "sqrtmh"),
    kappa=_sqrt_kappa,
    name="sqrt",
)


def _log_dd(a: Tensor, b: Tensor) -> Tensor:
    # log(a/b) = 2 atanh(u), u = (a - b)/(a + b)  =>  f[a, b] = 2 atanh(u) / (u (a + b)).
    s = a + b
    return 2.0 * _atanhc((a - b) / s) / s


LOG = ScalarFunction(
    f=torch.log, df=torch.reciprocal, d2f=lambda w: -1.0 / (w * w), dd=_log_dd,
    domain=_check_positive(True, "logmh"), name="log",
)


def _exp_dd(a: Tensor, b: Tensor) -> Tensor:
    # (e^a - e^b)/(a - b) = e^{(a+b)/2} sinh(h)/h with h = (a - b)/2.
    return torch.exp(0.5 * (a + b)) * _sinhc(0.5 * (a - b))


EXP = ScalarFunction(f=torch.exp, df=torch.exp, d2f=torch.exp, dd=_exp_dd, name="exp")


def power(p: float) -> ScalarFunction:
    """``x -> x^p`` on positive reals, with closed-form divided differences."""
    if isinstance(p, Tensor) or not isinstance(p, (int, float)) or not math.isfinite(p):
        raise InputError(f"p: expected a finite Python number, got {p!r}")
    p = float(p)

    def dd(a: Tensor, b: Tensor) -> Tensor:
        # With a = e^{x+h}, b = e^{x-h}: (a^p - b^p)/(a - b) = e^{(p-1)x} sinh(p h)/sinh(h).
        la, lb = torch.log(a), torch.log(b)
        x, h = 0.5 * (la + lb), 0.5 * (la - lb)
        return p * torch.exp((p - 1.0) * x) * _sinhc(p * h) / _sinhc(h)

    return ScalarFunction(
        f=lambda w: w**p, df=lambda w: p * w ** (p - 1.0),
        d2f=lambda w: p * (p - 1.0) * w ** (p - 2.0), dd=dd,
        domain=_check_positive(True, "powmh"), name=f"pow({p:g})",
    )
