r"""IRKA, the iterative rational Krylov algorithm (Gugercin, Antoulas, Beattie 2008), as a reductor.

A model ``H`` of order ``r`` with simple poles ``mu_i`` and residue directions ``c_i b_i^T`` is a
stationary point of the H2 error iff ``F`` interpolates it tangentially at the mirror images
``sigma_i = -conj(mu_i)`` (continuous) or ``1 / conj(mu_i)`` (discrete) of its poles (Meier-Luenberger
conditions). IRKA iterates the Petrov-Galerkin projection ``V = [(sigma_i I - A)^{-1} B conj(b_i)]``,
``W = [(sigma_i I - A)^{-H} C^H c_i]``, ``H = ((W^H V)^{-1} W^H A V, (W^H V)^{-1} W^H B, C V)`` with the
shifts and directions of the previous iterate, from balanced truncation, until the shifts converge.
The engine is RARL2's (``_rarl2._irka_engine.irka``: batched, in the target's modal coordinates where it
has them); this module gives it the reductor contract.
"""

from __future__ import annotations

import time as _time

import torch

from ..._errors import ConvergenceError, InputError
from ..analysis._norms import h2_error
from ..analysis._stability import check_h2, check_stable_poles, decay_rate
from ..system._statespace import StateSpace, check_system
from ._balanced import check_order
from ._rarl2._irka_engine import _interpolation_data, irka_models
from ._rarl2._irka_engine import irka as _irka_runs
from ._rarl2._starts import resolved_balanced_start
from ._rarl2._target import Target
from ._results import ReductionResult


def irka(F: StateSpace, r: int, *, max_iter: int = 100, tol: float = 1e-6, method: str = "auto") -> ReductionResult:
    """IRKA from balanced truncation (module docstring): a model of order ``r`` that satisfies the
    first-order H2-optimality conditions when it converges (a stationary point, not necessarily the
    best one: ``rarl2`` searches several).

    Args:
        F: a stable ``StateSpace`` (continuous time with D = 0, or discrete time; unbatched).
        r: the reduced order, below the minimal order of ``F``.
        max_iter: at most this many projections.
        tol: converged when the sorted shifts move by at most ``tol`` relative to the largest.
        method: the target's factorization, ``"auto"``, ``"modal"`` or ``"schur"`` (as ``rarl2``).

    Returns:
        ``ReductionResult`` (``reductor="irka"``; ``error`` by ``h2_error``; ``details``:
        ``iterations``, ``converged`` and the final ``shifts``).

    Raises:
        UnstableSystemError: ``F`` is unstable. InputError: bad ``r``, ``method``, a batch, non-zero
        ``D`` in continuous time. ConvergenceError: an iterate's projection broke down, or the
        final model is unstable (IRKA does not guarantee stability): use ``rarl2``.

    Example::

        from difflinalg.control import builtin_model, irka

        res = irka(builtin_model("random"), 4)
        assert res.model.order == 4 and res.reductor == "irka"
    """
    t0 = _time.perf_counter()
    F = check_system(F, "F")
    if F.batch_shape != ():
        raise InputError(f"F: irka reduces one system, got a batch of shape {tuple(F.batch_shape)}")
    check_h2(F, "F", stability=False)
    if isinstance(r, bool) or not isinstance(r, int) or r < 1:
        raise InputError(f"r: expected a positive integer, got {r!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise InputError(f"max_iter: expected a positive integer, got {max_iter!r}")
    if not tol > 0:
        raise InputError(f"tol: expected a positive tolerance, got {tol!r}")
    if method not in ("auto", "modal", "schur"):
        raise InputError(f"method: expected 'auto', 'modal' or 'schur', got {method!r}")
    if F.order <= r:
        check_order(r, torch.ones(1), F.dtype, F.order, name="r")
    T = Target(F.detach(), method)
    check_stable_poles(T.eigvals(), F.discrete, "F")
    Ar, Br, Cr, hsv = resolved_balanced_start(T, min(r, F.order))
    check_order(r, hsv, F.dtype, F.order, name="r")
    its = _irka_runs(T, models=(Ar[None], Br[None], Cr[None]), max_iter=max_iter, tol=tol)[0]
    if not its:
        raise ConvergenceError("irka: the first projection broke down (singular W^H V); use rarl2 or balanced_truncation")
    A, B, C, ok = irka_models(T, its[-1:])
    if not bool(ok[0]):
        raise ConvergenceError("irka: the final iterate has no real realization (ill-conditioned poles); use rarl2")
    sigma = its[-1][3]
    nxt = _interpolation_data(T, *(x[None] for x in its[-1][:3]))[0][0]
    key = (lambda s: torch.sort(s.real + 1e-3 * s.imag).values)
    converged = bool((key(nxt) - key(sigma)).abs().max() <= tol * key(sigma).abs().max())
    dt = F.dtype
    D = F.D.detach() if F.discrete else torch.zeros_like(F.D)
    model = F.with_matrices(A[0].to(dt), (B[0] * T.norm).to(dt), C[0].to(dt), D)
    if not decay_rate(model) > 0:
        raise ConvergenceError(f"irka: the model after {len(its)} iterations is unstable (IRKA does not "
                               "guarantee stability); use rarl2, which keeps its models stable")
    err = float(h2_error(F.detach(), model))
    return ReductionResult(model=model, error=err, relative_error=err / T.norm, grad_norm=float("nan"),
                           rel_grad=float("nan"), target_norm=T.norm, seconds=_time.perf_counter() - t0,
                           method=T.method, reductor="irka", stability_margin=decay_rate(model),
                           details={"iterations": len(its), "converged": converged, "shifts": sigma})
