r"""RARL2: H2-optimal model reduction over output-normal pairs (rarl2-math.md).

For a stable target ``F`` and an order ``n``, minimize the concentrated criterion

    psi(C, A) = ||F||^2 - ||B_hat||_F^2 = min_{B, D} ||F - (A, B, C, D)||_2^2

over output-normal pairs ``(C, A)`` (the optimal ``B_hat = Q12^H B_F`` and ``D_hat`` are explicit):

1. the target is normalized (``||F|| = 1``, frequency scale ``omega``) and factorized once
   (``_target.Target``: modal or Schur form), so each evaluation of psi and of its adjoint gradient
   costs O(N n (n + p + m)) (modal) or O(N^2 n) (Schur); a target whose realization is too far from
   normal for its Gramians (``SingularEquationError``) is first re-realized in balanced form from its
   Markov parameters (``_realize``: measured H2 distance <= 1e-11 ||F||, else a named error), and
   the errors are then measured against the original target
   (``ReductionResult.details["realization"]``);
2. output-normal pairs are parametrized exactly (``_charts``): ``A = S - C^H C / 2`` (continuous),
   its Cayley image (discrete); stability holds by construction;
3. BFGS in gauge-free affine-slice charts re-centred when they degenerate (``_bfgs``), to a
   stationary point (relative gradient below ``tol``);
4. from several starts (``_starts``): balanced truncation, IRKA from it, from spread shifts and
   from modal truncation (dominant poles), random pairs, and lower-order solutions extended by the
   best approximation of their error; the best result is kept and every start is reported. The
   starts are optimized from the most promising one; a start far above the best result is skipped,
   one that falls behind is abandoned, one that reaches a minimum already found is stopped
   ("joined"); degree continuation (the order n-1 solution extended by one state; never skipped
   or abandoned for its distance to the best) runs from two extensions whether the starts agree or
   not -- when they agree both with the new pole placed by the criterion (the lowest over a scan of
   the target's band, then the lowest a decade away from it), when they disagree one so placed and
   one random -- and, only when they disagree, with two random starts and perturbation rounds from the best
   result (the damping of one pole scaled, or two real poles merged into a conjugate pair), then
   two rounds that replace one pole by a dominant target mode (modal targets), then one random
   jump from the best (every pole's damping scaled by a random factor).

Precision. For tiny errors (relative ~1e-5 and below) psi, computed in double precision, carries
rounding noise ``eps_f`` comparable to the differences between good models
(``ReductionResult.resolution``). The optimizer then decides on the gradient (which has no such
cancellation), and the search stops once psi is at its noise level. Where the criterion does not
resolve the relative error to 1e-8, the results tied within the noise, their starting points and
balanced truncation of the original target are compared, and the error is reported, by the
extended-precision yardstick of ``h2_error(..., precise=True)`` (``_selection``; with its accuracy
in ``ReductionResult.error_resolution``; a criterion at its noise level is never reported as 0).
Where the resolution is coarser than 1e-6, the best result is also polished by IRKA iterations,
whose fixed point (the interpolation conditions of a stationary point) needs no value of psi, and
IRKA runs from the fixed and the spread shifts; their iterates, as output-normal pairs and in their
own realizations (which keep digits the output-normal form loses there), are kept if better by the
yardstick.

The returned model ``H = (A, B_hat, C, D_hat)`` has output-normal ``(C, A)`` (residual at rounding
level), is stable, and its error is no larger than that of any start (each optimization only
decreases psi). In the tiny-error regime (``_selection``) it may be balanced truncation itself, in
its balanced realization, where that is better by the yardstick than every model of the search.
"""

from __future__ import annotations

import math
import time as _time
from collections.abc import Sequence

import torch
from torch import Tensor

from ...._errors import InputError, SingularEquationError
from ...._utils import eps, pinned_threads
from ...analysis._stability import check_h2, check_stable_poles
from .._balanced import check_order
from . import _policy
from ._charts import output_normal_residual
from ._policy import START_KINDS
from ._progress import Progress as _Progress
from ._run import _Run
from ._search import _search
from ._selection import Choice, is_bound, model_of, reported_error, select
from ._starts import resolved_balanced_start, to_pair
from ...system._interop import library_of
from ...system._markov import markov_system
from .._results import ReductionResult
from ...system._route import sparse_route
from ...system._statespace import StateSpace, as_system
from ._realize import Realization
from ._target import Target
from ._validate import validated_rarl2

# -- targets --------------------------------------------------------------------------------------
def _as_target(target) -> StateSpace:
    """The target as a StateSpace: a StateSpace or a python-control / scipy.signal / pyMOR system
    (``as_system``), or Markov parameters given as a tensor or array (K+1, p, m). A tuple or list is
    refused: ``(A, B, C, D)`` and a list of Markov parameters look alike, and guessing is how a
    state-space tuple was once read as an impulse response."""
    if isinstance(target, (str, bytes)) or hasattr(target, "__fspath__"):
        raise InputError(f"target: expected a StateSpace or Markov parameters (K+1, p, m), got the path "
                         f"{str(target)!r}; read a model file with load_model(path) first")
    if isinstance(target, (tuple, list)):
        raise InputError("target: a tuple or list is ambiguous (state-space matrices or Markov parameters); "
                         "pass StateSpace(A, B, C, D) for matrices or markov_system(F) for Markov parameters")
    if isinstance(target, StateSpace) or library_of(target) is not None:
        target = as_system(target, "target")
        if target.batch_shape != ():
            raise InputError(f"target: rarl2 reduces one system, got a batch of shape {tuple(target.batch_shape)}")
        return target
    try:
        return markov_system(target)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"target: expected a StateSpace or Markov parameters (K+1, p, m), got "
                         f"{type(target).__name__}") from exc


def _parse_starts(starts, seed) -> list[str]:
    if starts is None:
        return list(_policy.POLICY.default_starts)
    if isinstance(starts, bool) or not isinstance(starts, (int, Sequence)) or isinstance(starts, str):
        raise InputError(f"starts: expected a number of starts or a list of start kinds from {START_KINDS}, "
                         f"got {starts!r}")
    if isinstance(starts, int):
        if starts < 1:
            raise InputError(f"starts: expected at least 1 start, got {starts}")
        base = ["bt", "irka-bt", "irka", "irka-modal", "perturb", "extend", "perturb", "modal"]
        return base[:starts] + ["random"] * max(0, starts - len(base))
    names = list(starts)
    bad = [s for s in names if s not in START_KINDS]
    if bad or not names:
        raise InputError(f"starts: unknown start kind(s) {bad}; choose from {START_KINDS}")
    return names


@sparse_route("rarl2")
def rarl2(
    target,
    order: int,
    *,
    starts: int | Sequence[str] | None = None,
    seed: int | None = None,
    max_iter: int = 2000,
    tol: float = 1e-9,
    progress: bool = False,
    method: str = "auto",
    max_time: float | None = None,
) -> ReductionResult:
    """H2-optimal reduced model of a stable system (RARL2, module docstring).

    Args:
        target: a stable ``StateSpace`` or ``SparseSystem`` (above ``SPARSE_CROSSOVER`` states:
            ``rarl2_large`` of ``control.large``, the other options go to its dense RARL2 on the
            surrogate; the result's ``method`` is ``"sparse"``) (continuous time with D = 0, or
            discrete time; real or complex; several inputs and outputs), or discrete-time Markov parameters
            ``F_0, ..., F_K`` as an array (K+1, p, m) (or (K+1,)). Single precision is reduced in
            double precision and the model returned in the target's dtype (``_validate``).
        order: the reduced order n, below the target's minimal order.
        starts: a list of start kinds from ``"bt"`` (balanced truncation), ``"irka-bt"`` (IRKA
            from it), ``"irka"`` (IRKA from shifts spread over the target's band), ``"modal"``
            (modal truncation to the most dominant target modes), ``"irka-modal"`` (IRKA from it),
            ``"irka-fixed"`` (IRKA from shifts ``logspace(-1, 1, n)`` in the target's frequency
            units; continuous time only, no start in discrete time), ``"perturb"`` (a perturbation
            round from the best result so far), ``"extend"`` (the order n-1 solution plus one
            state in a random direction), ``"extend-pole"`` (the order n-1 solution plus one state
            whose real pole is placed by the criterion: a run's first such start at the lowest
            criterion over a scan of the target's band, each next one at the lowest a decade away
            from the earlier ones), ``"random"``; or their number K (the first K of bt,
            irka-bt, irka, irka-modal, perturb, extend, perturb, modal, then random). Default: bt,
            irka-bt, irka, irka-modal, irka-fixed, then degree continuation from one order n-1
            solution: two ``extend-pole`` if the first five agree; if they reach different minima,
            one ``extend-pole`` and one ``extend``, two random starts, four perturbation rounds,
            two pole-swap rounds and one random jump from the best (``_policy.SearchPolicy``).
        seed: seed of the random starts.
        max_iter: BFGS iterations per start.
        tol: stop a start when the relative gradient ``||grad|| / (2 sqrt(psi))`` is below it.
        progress: print a progress bar on stderr.
        method: target factorization: ``"auto"``, ``"modal"`` or ``"schur"`` (``_target``).
        max_time: stop starting new work after this many seconds (the best so far is returned).

    Returns:
        ``ReductionResult`` (the model, its absolute and relative H2 errors with their accuracy
        ``error_resolution``, the gradient norm at exit, each start's result and the history of the
        best one). Where the double-precision criterion cannot resolve the error (tiny errors), the
        error is measured, and the candidates compared, beyond double precision (``_selection``).

    Raises:
        UnstableSystemError: the target is unstable (names the pole).
        SingularEquationError: the target's realization is too far from normal for Gramians in
            double precision and cannot be re-realized accurately at bounded cost (spectral radius
            too close to 1: ``_realize.HANKEL_MAX``); the message quotes ``||A||`` against the
            spectral radius and names the remedy (a balanced realization, e.g. ERA from the Markov
            parameters). Where it can be, ``details["realization"]`` says so (``_realize.Realization``).
        InputError: continuous-time target with non-zero D; order not below the target's minimal
            order; malformed target or arguments.

    Example::

        from difflinalg.control import builtin_model, rarl2

        res = rarl2(builtin_model("random"), 2, starts=["bt", "irka-bt"])
        assert res.model.order == 2 and 0 < res.relative_error < 1
    """
    # one thread in torch and BLAS: RARL2's operations are many small ones (n x n, N x n), where
    # thread hand-offs cost more than they gain (on a loaded machine a multi-threaded 20 x 20
    # eigendecomposition was measured 100x slower than a single-threaded one); the Schur path's
    # triangular solves run in SciPy's BLAS (``equations._schur_solve``): with its default threads
    # ``rarl2`` on 1200 Markov parameters took 248 s, on 300 of them 19.6 s against 1.2 s with one
    with pinned_threads(1):
        return validated_rarl2(_rarl2, target, order, starts, seed, max_iter, tol, progress, method, max_time)


def _rarl2(target, order, starts, seed, max_iter, tol, progress, method, max_time) -> ReductionResult:
    t_start = _time.perf_counter()
    F = _as_target(target)
    check_h2(F, "target", stability=False)  # stability: from the target's factorization below
    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise InputError(f"order: expected a positive integer, got {order!r}")
    if method not in ("auto", "modal", "schur"):
        raise InputError(f"method: expected 'auto', 'modal' or 'schur', got {method!r}")
    names = _parse_starts(starts, seed)
    adaptive = starts is None
    if F.order <= order:
        check_order(order, torch.ones(1), F.dtype, F.order)
    deadline = None if max_time is None else t_start + max_time
    T, (Ar, Br, Cr, hsv), realization = _prepare(F, method, order)
    check_order(order, hsv, F.dtype, T.N)
    if not T.discrete:
        # frequency scale: geometric mean of the balanced-truncation pole magnitudes
        mags = torch.linalg.eigvals(Ar).abs()
        omega = float(torch.exp(torch.log(mags.clamp_min(1e-300)).mean()))
        if math.isfinite(omega) and omega > 0:
            T.rescale(omega)
            Ar, Cr = Ar / omega, Cr / math.sqrt(omega)
    gen = torch.Generator().manual_seed(0 if seed is None else int(seed))
    run = _Run(T, order, tol, max_iter, deadline)
    prog = _Progress(progress, len(names))
    interrupted = False
    bt_model = (Ar, Br, Cr)
    try:
        _search(run, names, bt_model, gen, prog, adaptive)
    except KeyboardInterrupt:
        interrupted = True
        if not run.results:  # interrupted before any start was optimized: keep balanced truncation
            pair = to_pair(T, Ar, Cr)
            if pair is not None:
                run.record_unoptimized("bt", pair)
    finally:
        prog.close()
    choice = select(run, polish=not interrupted)
    if choice is None:
        raise InputError("rarl2: no start produced a stable model (all were interrupted or failed)"
                         + _conditioning_hint(hsv, order))
    res = _result(F, T, run, choice, interrupted, _time.perf_counter() - t_start)
    if realization is not None:
        _measure_original(res, realization)
    return res


def _conditioning_hint(hsv: Tensor, order: int) -> str:
    """Why every start can fail at an order far down the Hankel spectrum: a model's output-normal
    form takes a Cholesky factor of its observability Gramian, of condition about
    ``sigma_1 / sigma_order``, which costs that many digits (a random discrete target of 50 states:
    orders 41 to 43, at 7e-12 to 1e-12 of the first, succeed; 44, at 2e-13, fails with some BLAS
    code paths and succeeds with others)."""
    if hsv.numel() < order or not float(hsv[0]) > 0:
        return ""
    ratio = float(hsv[order - 1] / hsv[0])
    if ratio > math.sqrt(eps(torch.float64)):
        return ""
    return (f": at order {order} the Hankel singular values fall to {ratio:.1e} of the first, and the "
            f"output-normal form of such models takes a Cholesky factor of condition about {1 / ratio:.0e}, "
            f"which leaves few or no digits in double precision; use balanced_truncation at this order, "
            f"or rarl2 at a lower one")


def _prepare(F: StateSpace, method: str, order: int):
    """``(Target, balanced truncation, Realization or None)``. Where the target's Gramians cannot be
    solved (``SingularEquationError`` of a stable target: its realization is too far from normal),
    the target is re-realized from its Markov parameters (``_realize``; that raises, with the cause
    and the remedy, where it cannot be done accurately at bounded cost)."""
    try:
        T = Target(F, method)
        check_stable_poles(T.eigvals(), F.discrete, "target")
        return T, resolved_balanced_start(T, min(order, F.order)), None
    except SingularEquationError as exc:
        realization = Realization(F, exc)
    G = realization.system
    T = Target(G, method)
    return T, resolved_balanced_start(T, min(order, G.order)), realization


def _measure_original(res: ReductionResult, realization: Realization) -> None:
    """Report the errors against the original target (the re-realization only fed the optimizer):
    Markov-parameter sums (``Realization.distance2``); the resolution covers the target's truncated
    tail and the disagreement with the criterion's value (against the re-realization, which is within
    ``delta`` of the target)."""
    d2, tail = realization.distance2(res.model)
    err, norm = math.sqrt(max(d2, 0.0)), math.sqrt(realization.norm2)
    acc = tail + abs(err - res.error)
    res.details.pop("error_is_bound", None)  # measured anew below, against the original target
    res.details["realization"] = dict(realization.info, criterion_error=res.relative_error)
    res.error, res.relative_error, res.target_norm = err, err / norm, norm
    res.error_resolution = max(res.error_resolution, acc)


def _result(F: StateSpace, T: Target, run: _Run, choice: Choice, interrupted: bool,
            seconds: float) -> ReductionResult:
    f, sr, x, sigma, hist = choice.best
    run.space.sigma = sigma
    C, A = run.space.pair(x)
    psi = choice.psi
    rel = math.sqrt(max(psi, 0.0))
    bound = choice.measured and is_bound(psi, choice.error_resolution)
    if bound:  # below the yardstick's resolution: its upper bound, never 0 (``reported_error``)
        rel = reported_error(psi, choice.error_resolution)
    if choice.polished:  # the gradient of the polished model itself
        g = run.fg(x)[1]
        grad_norm = float(g.norm())
    else:
        grad_norm = sr.grad_norm
    # relative gradient at the reported error (a criterion at its noise level is no denominator)
    rel_grad = grad_norm / (2 * max(rel, math.sqrt(run.eps_f) if not choice.measured else 1e-300))
    if choice.model is not None:  # balanced truncation itself (``_selection.bt_model``)
        model = choice.model
        grad_norm = rel_grad = res_on = math.nan  # not a point of the charts; not output-normal
    else:
        res_on = output_normal_residual(C, A, T.discrete)
        model = model_of(T, C, A)  # back to the units of F: (omega A, ||F|| B, sqrt(omega) C)
    ev = torch.linalg.eigvals(model.A)
    margin = float(1 - ev.abs().max()) if T.discrete else float(-ev.real.max())
    return ReductionResult(
        model=model, error=rel * T.norm, relative_error=rel, grad_norm=grad_norm, rel_grad=rel_grad,
        starts=[t[1] for t in run.results], best_start=sr.name, history=hist,
        output_normal_residual=res_on, stability_margin=margin, target_norm=T.norm, seconds=seconds,
        interrupted=interrupted, method=T.method, resolution=run.eps_f / (2 * max(psi, rel * rel, 1e-300)),
        polished=choice.polished, error_resolution=choice.error_resolution * T.norm,
        precise=choice.measured, details={"error_is_bound": True} if bound else {},
    )
