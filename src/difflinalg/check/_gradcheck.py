r"""``gradcheck``: reverse, forward and second-order derivatives against finite differences.

For a function ``fn(*inputs)`` returning one tensor or a (nested) tuple of tensors, each
differentiable input ``x_i`` is perturbed along a random direction ``u`` (a complex input along a
purely real and a purely imaginary direction, so that a missing conjugate or a wrong sign of an
imaginary part cannot cancel). ``derivative`` gives the column ``J u`` of the realified Jacobian
(real and imaginary parts of every output) with an error estimate, and

* ``"jvp"``: ``torch.func.jvp`` must reproduce the whole column ``J u``;
* ``"vjp"``: for a random cotangent ``w``, ``<J^T w, u>`` from reverse mode must equal ``w . J u``
  (complex gradients in PyTorch's convention: ``dL = Re sum(conj(g) du)``);
* ``"hvp"``: forward-over-reverse, ``jvp(grad(phi))`` with ``phi = Re <w, fn>``, must equal the
  finite-difference derivative of the reverse-mode gradient along ``u`` (the column ``H u``);
* ``"hvp_rev"``: reverse-over-reverse (double backward), ``u . grad(<v, grad phi>) = v^T H u`` for
  a random ``v``, against ``v . (H u)`` from finite differences.
* ``"jvp2"``: forward-over-forward, ``jvp(x -> jvp(fn, x, u), x, u)``, the second directional
  derivative of every output along ``u``, against the finite-difference derivative of the JVP column.
  It catches JVP rules that drop the tangents of an outer forward level (a ``torch.autograd.Function``
  runs its ``jvp`` with forward AD off: see ``difflinalg._nested``).

``full=True`` replaces the random directions by every real coordinate (and every imaginary one of a
complex input): ``"jvp"`` and ``"hvp"`` then compare the full Jacobian and Hessian; ``"vjp"`` builds
the Jacobian row by row in reverse mode (one backward pass per real output coordinate) and
``"hvp_rev"`` the Hessian of ``phi`` row by row by double backward, and compare them with the
finite-difference columns. It is meant for small inputs and outputs.

A comparison passes when, for every compared component,
``|ad - fd| <= atol + rtol * scale + FD_SAFETY * fd_error`` (``FD_SAFETY = 4``) where ``scale`` is
the size of the quantities compared (so a derivative that happens to be near zero is not judged by
a tiny denominator) and ``fd_error`` the finite-difference error estimate of that component. For
the projections ``w . J u`` and ``v . H u`` the error estimate is that of the projected derivative
(``Derivative.dot``), not the sum of componentwise bounds, which grows with the output size and
would loosen the check on large outputs.

Why the model holds on every BLAS kernel and thread count. The two sides have different errors:

* ``ad`` is one evaluation of the rule: its rounding error is ``~ eps kappa |ad|`` for a rule whose
  computation has condition number ``kappa`` (first order) and ``~ eps kappa^2`` for a second
  derivative through the same solve. ``rtol * scale`` with ``rtol = 1e-7`` (float64) covers that
  up to ``kappa ~ 1e4`` for second derivatives and ``~ 1e8`` for first ones; a rule that is
  noisier than that is not "exact" in the sense of this library and should say so in its own
  tolerance (``Case.rtol``).
* ``fd`` is ``sum_i c_i f(x + o_i h u) / h^q`` with error ``T + N``: truncation
  ``T ~ C_t f^(q+k) h^k`` (estimated from a wider stencil) and rounding
  ``|N| <= sum |c_i| sigma_f / h^q``, ``sigma_f`` the noise of one evaluation of ``f``. Different
  kernels (MKL's AVX2 vs AVX512 code paths, one or two threads) change the rounding of every
  evaluation, i.e. they draw another ``N``: a bound must hold for the *distribution* of ``N``,
  not for one draw. ``sigma_f`` is ``eps |f|`` only for a well-conditioned ``f``; a solve with
  condition ``kappa`` is noisy at ``~ eps kappa |f|``, and in the second-order modes ``f`` is
  itself a derivative computed by the rule (the gradient in ``"hvp"``/``"hvp_rev"``, the JVP in
  ``"jvp2"``), whose rounding error is propagated into the difference quotient divided by
  ``h^q``. So ``derivative`` measures ``sigma_f`` from the samples it already has (the residuals of
  a polynomial fit of the ``2p - 1`` values at the step and at the check step, see
  ``difflinalg.check._fd_error``), takes the largest of that, the ``eps |f|`` model and the
  difference of the two steps, and, where the measured noise exceeds the model, re-chooses the
  step ``h* = (q sum|c| sigma_f / (k C_t |f^(q+k)|))^(1/(k+q))`` and pools the residuals of both
  steps. ``fd_error = |T| + sum |c_i| sigma_f / h^q`` is then a 1-norm bound on a noise whose
  standard deviation is ``sqrt(sum c_i^2) sigma_f / h^q`` (a factor 1.6 smaller for the 5-point
  stencil), and ``FD_SAFETY = 4`` leaves room for the few degrees of freedom of ``sigma_f``'s
  estimate: over 2,400 synthetic noisy functions (white or fully correlated noise, 1 to 50
  outputs, projections) the largest ``|fd - exact| / fd_error`` was 3.2, where the ``eps |f|``
  model alone exceeded 4 in 736 of them (up to 3,400).

What the model still catches: a first derivative off by ``1e-6`` (relative) and a second derivative
off by ``3e-6`` at the ill-conditioned point ``regularized_solve(D, x, 1e-3)`` (``kappa ~ 1e4``)
fail in every mode that sees them (``tests/check/test_gradcheck.py``); at a well-conditioned point
the floor is ``rtol = 1e-7``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .._errors import InputError
from .._utils import real_dtype
from ._gradcheck_steps import FD_SAFETY, Checker, is_diff
from ._report import GradcheckError, GradcheckReport

MODES = ("vjp", "jvp", "hvp", "hvp_rev", "jvp2")
# Mixed into the seed: with the plain seed, the directions and cotangents would repeat the stream of
# a test that built its inputs from torch.Generator().manual_seed(seed) (the same seed is common),
# e.g. a cotangent equal to the input, which can hide a missing conjugate.
_SEED_MIX = 0x5DEECE66D


def default_tolerances(dtype: torch.dtype) -> tuple[float, float]:
    """(rtol, atol) for comparing derivatives with finite differences in ``dtype``.

    Args:
        dtype: a floating or complex torch dtype (the inputs' least precise one).

    Returns:
        ``(rtol, atol)``: ``(1e-7, 1e-12)`` for float64/complex128, ``(2e-3, 1e-6)`` for
        float32/complex64, ``(2e-2, 1e-3)`` for half precisions. ``gradcheck`` adds the measured
        finite-difference error on top (its module docstring: the tolerance model).

    Raises:
        TypeError: ``dtype`` is not a torch dtype.

    Example::

        import torch
        from difflinalg.check import default_tolerances

        assert default_tolerances(torch.complex128) == (1e-7, 1e-12)
    """
    real = real_dtype(dtype)
    if real == torch.float64:
        return 1e-7, 1e-12
    if real == torch.float32:
        return 2e-3, 1e-6
    return 2e-2, 1e-3


def _check_tol(name: str, value) -> None:
    if value is not None and not (isinstance(value, (int, float)) and value >= 0):
        raise InputError(f"{name}: expected a non-negative number or None (from the dtype), got {value!r}")


def _check_modes(modes) -> tuple[str, ...]:
    if isinstance(modes, str):
        modes = (modes,)
    modes = tuple(modes)
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise InputError(f"modes: unknown mode(s) {bad}; choose from {MODES}")
    return modes


def _check_wrt(wrt, inputs: list) -> list[int]:
    """The indices of the differentiated inputs (default: every floating/complex tensor)."""
    if wrt is None:
        wrt = [i for i, x in enumerate(inputs) if is_diff(x)]
    else:
        wrt = list(wrt)
        for i in wrt:
            if not isinstance(i, int) or not (0 <= i < len(inputs)) or not is_diff(inputs[i]):
                raise InputError(
                    f"wrt: input {i!r} is not a floating-point or complex tensor among the "
                    f"{len(inputs)} inputs; pass indices of such inputs"
                )
        if len(set(wrt)) != len(wrt):
            raise InputError(f"wrt: repeated indices {wrt}")
    if not wrt:
        bad_dt = [str(x.dtype) for x in inputs if isinstance(x, Tensor)]
        raise InputError(
            "inputs: no floating-point or complex tensor to differentiate"
            + (f" (got dtypes {bad_dt}; convert with .double())" if bad_dt else "")
        )
    return wrt


def _check_arguments(fn, inputs: list, modes, rtol, atol, wrt, names, n_directions):
    """Argument validation, before any evaluation: ``(modes, wrt, names, rtol, atol)`` with the
    tolerances defaulted from the least precise differentiated input."""
    modes = _check_modes(modes)
    if not callable(fn):
        raise InputError(f"fn: expected a callable, got {type(fn).__name__}")
    _check_tol("rtol", rtol)
    _check_tol("atol", atol)
    if isinstance(n_directions, bool) or not isinstance(n_directions, int) or n_directions < 1:
        raise InputError(f"n_directions: expected an integer >= 1, got {n_directions!r}")
    wrt = _check_wrt(wrt, inputs)
    if names is None:
        names = [f"input {i}" for i in range(len(inputs))]
    elif len(names) != len(inputs):
        raise InputError(f"names: got {len(names)} names for {len(inputs)} inputs; name every input")
    for i in wrt:
        if not bool(torch.isfinite(inputs[i]).all()):
            raise InputError(f"{names[i]}: contains non-finite values; gradcheck needs a finite point")
    dtypes = [inputs[i].dtype for i in wrt]
    rt, at = default_tolerances(max(dtypes, key=lambda d: torch.finfo(real_dtype(d)).eps))
    return modes, wrt, names, rt if rtol is None else rtol, at if atol is None else atol


def _raise_if_failed(report: GradcheckReport) -> None:
    """``GradcheckError`` naming the worst failure (input, mode, direction, size against allowance)."""
    if report.passed:
        return
    worst = max(report.failures(), key=lambda r: r.ratio)
    raise GradcheckError(
        f"gradcheck failed: {worst.mode} of {worst.input} (direction {worst.direction}) differs "
        f"from finite differences by {worst.max_abs_err:.3e} (relative {worst.max_rel_err:.3e}), "
        f"{worst.ratio:.3g} times the allowed {worst.tol:.3e} (atol + rtol * scale + "
        f"{FD_SAFETY:g} * finite-difference error estimate {worst.fd_err:.3e}); "
        f"{len(report.failures())} of {len(report.records)} checks failed\n{report}",
        report,
    )


#: torch.autograd.gradcheck options without a counterpart here, and what to use instead
_TORCH_ONLY = {
    "eps": "the finite-difference step is chosen adaptively; max_step bounds it",
    "nondet_tol": "set rtol/atol (the finite-difference error is estimated, not assumed)",
    "fast_mode": "use n_directions (random projections are the default; full=True for the full Jacobian)",
    "check_undefined_grad": "undefined gradients are materialized as zeros (the rules' convention)",
    "check_grad_dtypes": "gradients are checked in the inputs' dtypes",
    "check_batched_grad": "batch the inputs (the rules are checked batched in difflinalg verify)",
    "check_batched_forward_grad": "batch the inputs (the rules are checked batched in difflinalg verify)",
    "masked": "no counterpart (dense inputs only)",
}


def _torch_call(inputs: tuple, modes: Sequence[str], raise_on_failure: bool,
                options: dict) -> tuple[list, Sequence[str], bool]:
    """torch.autograd.gradcheck's call shape and option names mapped onto this function's."""
    for name in options:
        if name in _TORCH_ONLY:
            raise InputError(f"{name}: a torch.autograd.gradcheck option without a counterpart in "
                             f"difflinalg.check.gradcheck ({_TORCH_ONLY[name]})")
        if name not in ("raise_exception", "check_backward_ad", "check_forward_ad"):
            raise InputError(f"{name}: unknown option of gradcheck (see help(difflinalg.check.gradcheck))")
    if len(inputs) == 1 and isinstance(inputs[0], (tuple, list)) and \
            any(isinstance(x, Tensor) for x in inputs[0]):
        inputs = tuple(inputs[0])  # torch's gradcheck(fn, (x, y))
    if "raise_exception" in options:
        raise_on_failure = bool(options["raise_exception"])
    modes = list(modes) if not isinstance(modes, str) else modes
    for name, mode in (("check_backward_ad", "vjp"), ("check_forward_ad", "jvp")):
        if name in options and not isinstance(modes, str):
            if options[name] and mode not in modes:
                modes.append(mode)
            elif not options[name] and mode in modes:
                modes.remove(mode)
    return list(inputs), modes, raise_on_failure


def gradcheck(
    fn: Callable,
    *inputs,
    modes: Sequence[str] = ("vjp", "jvp", "hvp"),
    rtol: float | None = None,
    atol: float | None = None,
    wrt: Sequence[int] | None = None,
    names: Sequence[str] | None = None,
    full: bool = False,
    n_directions: int = 1,
    p: int = 5,
    max_step: float = 0.1,
    seed: int = 0,
    raise_on_failure: bool = True,
    **torch_options,
) -> GradcheckReport:
    """Compare the derivatives of ``fn`` at ``inputs`` with finite differences.

    Called as ``torch.autograd.gradcheck`` is, it means the same: ``gradcheck(fn, (x, y))`` (one
    tuple or list of inputs) is ``gradcheck(fn, x, y)``; ``raise_exception`` is ``raise_on_failure``;
    ``check_backward_ad`` / ``check_forward_ad`` add or remove the ``"vjp"`` / ``"jvp"`` mode; the
    report's truth value is its verdict. torch's other options (``eps``, ``nondet_tol``,
    ``fast_mode``, ...) have no counterpart here (the step is chosen adaptively, every check is
    exact-vs-finite-difference): they raise ``InputError`` naming the replacement.

    Args:
        fn: function of the inputs returning a tensor or a (nested) tuple/list of tensors.
        inputs: the point; floating and complex tensors are differentiated (or those in ``wrt``),
            other arguments are passed through unchanged.
        modes: any of "vjp", "jvp", "hvp" (forward-over-reverse), "hvp_rev" (double backward),
            "jvp2" (forward-over-forward).
        rtol, atol: tolerances; default from the inputs' dtype (``default_tolerances``).
        wrt: indices of the inputs to differentiate (default: all floating/complex tensors).
        names: names of all the inputs, for the report and error messages.
        full: compare full Jacobians and Hessians instead of random projections (small inputs).
        n_directions: random directions per input (complex inputs get a real and an imaginary
            direction for each).
        p: stencil size of the finite differences.
        max_step: largest finite-difference step along a direction ``u`` (entries ~ N(0, 1)); the
            stencil reaches ``(p - 1) / 2 * max_step * u``: keep that inside fn's domain.
        seed: seed of the random directions and cotangents.
        raise_on_failure: raise ``GradcheckError`` on a mismatch (else only report it).
        torch_options: ``raise_exception``, ``check_backward_ad``, ``check_forward_ad`` (torch's
            names, above).

    Returns:
        A ``GradcheckReport`` with one record per input, direction and mode.

    Raises:
        GradcheckError: naming the input, the mode, the direction and the size of the mismatch.

    Example::

        import torch
        from difflinalg.check import gradcheck

        x = torch.randn(3, dtype=torch.float64)
        report = gradcheck(torch.sin, x, modes=("vjp", "jvp"))
        assert report.passed
    """
    inputs, modes, raise_on_failure = _torch_call(inputs, modes, raise_on_failure, torch_options)
    modes, wrt, names, rtol, atol = _check_arguments(fn, inputs, modes, rtol, atol, wrt, names, n_directions)
    gen = torch.Generator().manual_seed(_SEED_MIX ^ int(seed))
    check = Checker(fn, inputs, wrt, modes, full, n_directions, p, max_step, gen, rtol, atol)
    check.reverse_quantities()
    for j, i in enumerate(wrt):
        check.check_input(j, names[i], MODES)
    if raise_on_failure:
        _raise_if_failed(check.report)
    return check.report
