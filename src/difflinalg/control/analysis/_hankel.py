r"""Hankel singular values from the Gramians' factors, to the accuracy double precision allows.

With ``P = L_P L_P^H`` and ``Q = L_Q L_Q^H`` the Hankel singular values are the singular values of
``L_Q^H L_P`` (Laub, Heath, Paige, Ward 1987; Antoulas, *Approximation of Large-Scale Dynamical
Systems*, 2005, section 7.1). Taking them as ``sqrt(eig(L_Q^H P L_Q))`` instead squares them: the
eigenvalues carry an absolute error of about ``eps sigma_1^2``, so every value below
``sqrt(eps) sigma_1`` (1.5e-8 of the first) is rounding. The singular values of the product carry
an absolute error of about ``n eps kappa ||L_Q|| ||L_P||`` (``>= eps sigma_1``), ``kappa`` the
condition of the Lyapunov (Stein) operator that gave the Gramians (continuous:
``max |lambda| / min |Re lambda|``; SLICOT's heat-cont: 1.6e4, so its values below ~1e-8 of the
first are not resolved; ``tests/control/analysis/test_hankel.py`` checks ``10 n eps kappa ||L_Q||
||L_P||`` against 40-digit values). On a random discrete
system of 50 states, against 40-digit values, 5e-12 of the first instead of 1e-8: the values down
to 1e-10 of the first within 1%, where squared ones were off by up to 100% (the 37th, 1.64e-9 of
the first, read 1.0e-8 on one machine and 7.8e-9 on another).

Derivatives. Where a Gramian is numerically singular (a non-minimal system) its factor comes from
``difflinalg.eigh`` (exact at the repeated zero eigenvalues) with the negative (rounding)
eigenvalues clipped and masked, so the leading values keep finite, exact first derivatives
(before, ``h.sum()`` of the leading values gave NaN for an uncontrollable mode): the null block of a positive
semidefinite ``P(t)`` has a zero first derivative where it vanishes. It grows quadratically,
though, a curvature no factor's derivative carries: a second derivative through such a factor
raises (``_FirstOrderOnly``). Values at or below
``n eps sigma_1`` (``minimal_order``'s threshold) are rounding: their singular vectors
are arbitrary, so are their derivatives. A loss that weighs them raises
``DegenerateSpectrumError`` in backward, and a forward-mode derivative raises where they exist;
``hankel_singular_values(sys, k)`` with ``k`` at most the numerical minimal order has none.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..._errors import DegenerateSpectrumError, InputError, TransformCheckWarning
from ..._nested import call
from ..._rule import Rule
from ..._utils import eps, herm, is_wrapped, warn_once
from ...spectral import eigh
from ..system._route import sparse_route
from ..system._statespace import StateSpace, check_system
from ._norms import controllability_gramian_of, observability_gramian_of
from ._stability import check_stable


def gramian_factor(P: Tensor) -> Tensor:
    """A factor ``L`` with ``P = L L^H`` of a Hermitian positive semidefinite Gramian: Cholesky
    when it is numerically definite, else ``V sqrt(w)`` from ``difflinalg.eigh`` with the
    eigenvalues at or below 0 (rounding errors) set to zero, value and derivative (the square root
    has none at 0)."""
    L, info = torch.linalg.cholesky_ex(herm(P))
    if not is_wrapped(info) and not bool((info > 0).any()):
        return L
    w, V = eigh(herm(P))
    # clipped at 0, not at the rounding level n eps max(w): the small positive eigenvalues can be
    # right to many digits (a discrete random system of 50 states: its balanced truncation to order
    # 44 reaches 1.1e-13 with them, none at all without), or noise (heat, N = 40: order 10 reaches
    # 4.9e-10 with them, 3.0e-10 without, 2.97e-10 from the modal Gramians' Cauchy factors)
    keep = w > 0
    root = torch.where(keep, w, torch.ones_like(w)).sqrt() * keep
    L = V * root.to(V.dtype)[..., None, :]
    # second derivatives are guarded wherever the Gramian is numerically singular, whether its
    # null eigenvalues came out negative (clipped) or as positive rounding
    singular = (w <= P.shape[-1] * eps(w.dtype) * w[..., -1:].abs()).any(-1)
    if not is_wrapped(singular) and not bool(singular.any()):
        return L
    return _FirstOrderOnly.apply(L, singular)


SINGULAR_CURVATURE_MSG = (
    "gramian_factor: a second derivative through the factor of a numerically singular Gramian (a "
    "non-minimal system: uncontrollable or unobservable modes) is not exact: the Gramian's null "
    "block grows quadratically along a perturbation, a curvature no factor's derivative carries. "
    "First derivatives are exact; for second ones, differentiate the system's minimal realization"
)


class _FirstOrderOnly(Rule):
    """Identity on the factor of a singular Gramian (``clipped``: per batch entry, whether it has
    an eigenvalue at or below ``n eps max(w)``): its first derivatives pass (exact: the null block
    of a positive semidefinite ``P(t)`` has zero first derivative where it vanishes), a derivative
    of them raises (``_Guard`` with ``SINGULAR_CURVATURE_MSG``)."""

    @staticmethod
    def forward(L: Tensor, clipped: Tensor):
        return L.clone()

    @staticmethod
    def save(ctx, inputs, output):
        return (inputs[1],)

    @staticmethod
    def gradients(ctx, clipped, g):
        return _Guard.apply(g, clipped, SINGULAR_CURVATURE_MSG, False)

    @staticmethod
    def tangents(ctx, clipped, dL, *_):
        return _Guard.apply(dL, clipped, SINGULAR_CURVATURE_MSG, False)


class _Guard(Rule):
    """Identity on ``x`` whose derivatives raise ``DegenerateSpectrumError(msg)`` where they reach
    ``mask`` (broadcast from the left: batch flags over matrices, or one flag per entry): any tangent
    (forward), any cotangent or, ``weighed``, a nonzero one (reverse). Inside ``torch.func``, which
    cannot raise on data: NaN there, with a ``TransformCheckWarning`` (``_nan_or_raise``)."""

    @staticmethod
    def forward(x: Tensor, mask: Tensor, msg: str, weighed: bool):
        return x.clone()

    @staticmethod
    def save(ctx, inputs, output):
        _, mask, ctx.msg, ctx.weighed = inputs
        return (mask,)

    @staticmethod
    def gradients(ctx, mask, g):
        return _nan_or_raise(g, mask & (g != 0) if ctx.weighed else mask, ctx.msg)

    @staticmethod
    def tangents(ctx, mask, dx, *_):
        return _nan_or_raise(dx, mask, ctx.msg)


def _nan_or_raise(x: Tensor, bad: Tensor, msg: str) -> Tensor:
    """``x`` where ``bad`` is False; else ``DegenerateSpectrumError(msg)``, or inside ``torch.func``
    NaN where ``bad`` (broadcast from the left), warned once per message's source (the text before
    its first colon). Through ``_nested.call``: these run inside derivative rules, whose plain
    operations would drop the tangents of outer forward-mode levels."""
    if is_wrapped(x) or is_wrapped(bad):
        source = msg.split(":")[0]
        warn_once(source, source + ": inside torch.func this check cannot raise: the derivative is NaN "
                  "instead of a DegenerateSpectrumError (" + msg + ")", TransformCheckWarning)
        flag = bad.reshape(bad.shape + (1,) * (x.dim() - bad.dim())).to(x.real.dtype)
        return call(_nan_where, x, flag)
    if bool(bad.any()):
        raise DegenerateSpectrumError(msg)
    return call(torch.clone, x)


def _nan_where(x: Tensor, flag: Tensor) -> Tensor:
    return torch.where(flag > 0, torch.full_like(x, float("nan")), x)


ROUNDING_MSG = (
    "hankel_singular_values: the loss depends on Hankel singular values at the rounding level "
    "(at or below n eps sigma_1: the system is numerically non-minimal, of order {order}); "
    "their singular vectors, hence their derivatives, are arbitrary. Take only the leading ones, "
    "hankel_singular_values(sys, k) with k <= {order}, or a loss that does not weigh the others"
)


@sparse_route("hankel_singular_values")
def hankel_singular_values(sys: StateSpace, k: int | None = None) -> Tensor:
    """Hankel singular values (descending, real): the singular values of ``L_Q^H L_P``, the
    product of the Gramians' factors (absolute error about ``n eps kappa ||L_Q|| ||L_P||``, ``kappa``
    the condition of the Lyapunov operator: module docstring).

    Args:
        sys: a stable ``StateSpace`` (or a system ``as_system`` converts), batched or not; or a
            ``SparseSystem`` (above ``SPARSE_CROSSOVER`` states: from low-rank Gramian factors,
            ``control.large``).
        k: return only the leading ``k`` values (default: all ``n``; for a large sparse system all
            that the low-rank factors resolve).

    Returns:
        (..., n) (or (..., k)) real tensor, descending; differentiable in the matrices of a dense
        system, exactly for the values above ``n eps sigma_1``; a derivative that reaches
        a value at or below it raises (module docstring).

    Raises:
        UnstableSystemError: the system is not stable (names the pole).
        InputError: ``sys`` is not a system; ``k`` not a positive integer.
        DegenerateSpectrumError: (in a derivative) the loss weighs a rounding-level value.

    Example::

        from difflinalg.control import builtin_model, hankel_singular_values

        hsv = hankel_singular_values(builtin_model("random"))
        assert hsv.shape == (30,) and bool((hsv[:-1] >= hsv[1:]).all())
    """
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise InputError(f"k: expected a positive integer (how many leading Hankel singular values), got {k!r}")
    sys = check_system(sys)
    check_stable(sys, "system")
    P = sys.cached("P", lambda: controllability_gramian_of(sys))
    Q = sys.cached("Q", lambda: observability_gramian_of(sys))
    s = torch.linalg.svdvals(gramian_factor(Q).mH @ gramian_factor(P))
    s = s if k is None else s[..., :k]
    n = sys.order
    mask = s <= n * eps(s.dtype) * s[..., :1].detach()
    order = "<unknown>" if is_wrapped(mask) else int((~mask).sum(-1).min())
    return _Guard.apply(s, mask, ROUNDING_MSG.format(order=order), True)
