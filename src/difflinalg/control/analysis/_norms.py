r"""H2 norms and errors (Hankel singular values: ``_hankel``; the frequency response: ``_frequency``).

H2 norm (rarl2-math.md, section 1), with the observability Gramian ``Q``::

    continuous:  ||F||^2 = Tr(B^H Q B),            A^H Q + Q A + C^H C = 0   (D must be 0)
    discrete:    ||F||^2 = ||D||_F^2 + Tr(B^H Q B), Q = A^H Q A + C^H C

``h2_error(F, H)`` is the norm of the error system ``F - H`` (block-diagonal state matrix
``diag(A_F, A_H)``, input ``[B_F; B_H]``, output ``[C_F, -C_H]``), computed from the blocks of its
observability Gramian ``[[Q_F, Q_12], [Q_12^H, Q_H]]``::

    ||F - H||^2 = Tr(B_F^H Q_F B_F) + 2 Re Tr(B_F^H Q_12 B_H) + Tr(B_H^H Q_H B_H) (+ ||D_F - D_H||^2)
    continuous:  A_F^H Q_12 + Q_12 A_H = C_F^H C_H      discrete:  Q_12 - A_F^H Q_12 A_H = -C_F^H C_H

It uses nothing but the two systems (no optimizer quantity). The Schur form of ``A_F`` and ``Q_F``
are cached on ``F`` (when ``F`` does not require grad), so comparing many reduced models with one
large target costs one O(N^3) factorization and then O(N^2 n) per model. Everything is
differentiable (the Gramians come from ``difflinalg``'s Lyapunov/Sylvester rules).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..._errors import InputError
from ..._utils import eps, is_wrapped
from ...equations import (
    SchurForm,
    SteinOperator,
    SylvesterOperator,
    controllability_gramian,
    observability_gramian,
)
from ..system._route import sparse_route
from ..system._error_system import check_comparable
from ..system._statespace import StateSpace, check_system
from ._stability import check_h2, check_stable


# -- Gramians and H2 ------------------------------------------------------------------------------
def observability_gramian_of(sys: StateSpace) -> Tensor:
    return observability_gramian(sys.A, sys.C, discrete=sys.discrete)


def controllability_gramian_of(sys: StateSpace) -> Tensor:
    return controllability_gramian(sys.A, sys.B, discrete=sys.discrete)


def _trace_quad(B: Tensor, Q: Tensor, B2: Tensor | None = None) -> Tensor:
    """Re Tr(B^H Q B2) (batched)."""
    B2 = B if B2 is None else B2
    return (B.conj() * (Q @ B2)).sum((-2, -1)).real


#: ``B`` and ``C`` whose largest entries are outside ``2^{+-SCALE_EXPONENT}`` are scaled by powers of
#: two before the H2 norm and error (exact: no rounding changes), so that ``B^H Q B``, a product of
#: four such factors, neither under- nor overflows (1e-200 or 1e160 entries would)
SCALE_EXPONENT = 60


def _scale_exponent(*Xs: Tensor) -> int:
    """``k`` with ``2^k max |X|`` about 1, or 0 if all entries of the ``Xs`` are within
    ``2^{+-SCALE_EXPONENT}`` (or not readable: inside torch.func, or zero/non-finite)."""
    if any(is_wrapped(X) for X in Xs):
        return 0
    m = max((float(X.detach().abs().max()) for X in Xs if X.numel()), default=0.0)
    if not (m > 0 and math.isfinite(m)):
        return 0
    k = math.frexp(m)[1]
    return -k if abs(k) > SCALE_EXPONENT else 0


def _scaled(sys: StateSpace, kB: int, kC: int) -> StateSpace:
    """The strictly proper part of ``sys`` with ``B * 2^kB`` and ``C * 2^kC`` (its transfer function
    times ``2^(kB + kC)``; ``D`` is left out: the callers add its norm, which has its own scale);
    cached on ``sys`` (its Gramian and modal data stay reusable)."""
    return sys.cached(("scaled", kB, kC), lambda: sys.with_matrices(
        sys.A, sys.B * 2.0 ** kB, sys.C * 2.0 ** kC, torch.zeros_like(sys.D)))


def _frobenius(X: Tensor) -> Tensor:
    """``||X||_F`` over the last two dimensions without under- or overflow (power-of-two scaling)."""
    k = _scale_exponent(X)
    return torch.linalg.matrix_norm(X * 2.0 ** k if k else X) * 2.0 ** -k


@sparse_route("h2_norm")
def h2_norm(sys: StateSpace) -> Tensor:
    """H2 norm of a stable system (real tensor of the batch shape); differentiable.

    ``B`` and ``C`` far from unit size are scaled by powers of two first (``SCALE_EXPONENT``;
    exact), so norms in the floating-point range are returned in range (``B`` of size 1e-200 or
    1e160 would under- or overflow ``B^H Q B``).

    Args:
        sys: a ``StateSpace`` (or a system ``as_system`` converts), real or complex, batched or not;
            or a ``SparseSystem`` (above ``SPARSE_CROSSOVER`` states: from low-rank Gramian factors,
            ``control.large``).

    Returns:
        Real tensor of the batch shape (the real dtype of the system); differentiable in the
        matrices (reverse, forward and higher order: the Lyapunov rules of ``equations``).

    Raises:
        UnstableSystemError: naming the pole, if the system is not stable.
        InputError: for a continuous-time system with non-zero D (infinite H2 norm); not a system.

    Example::

        import torch
        from difflinalg.control import StateSpace, h2_norm

        # 1 / (s + 1): ||F||_2^2 = 1/2
        one = torch.ones(1, 1, dtype=torch.float64)
        assert torch.allclose(h2_norm(StateSpace(-one, one, one)), torch.tensor(0.5 ** 0.5, dtype=torch.float64))
    """
    sys = check_system(sys)
    check_h2(sys, "system")
    kB, kC = _scale_exponent(sys.B), _scale_exponent(sys.C)
    if kB or kC:
        val = h2_norm(_scaled(sys, kB, kC)) * 2.0 ** -(kB + kC)
        return torch.hypot(val, _frobenius(sys.D)) if sys.discrete else val
    Q = sys.cached("Q", lambda: observability_gramian_of(sys))
    val = _trace_quad(sys.B, Q)
    if sys.discrete:
        val = val + (sys.D.abs() ** 2).sum((-2, -1))
    return val.clamp_min(0).sqrt()


@sparse_route("h2_error")
def h2_error(F: StateSpace, H: StateSpace, *, relative: bool = False, method: str = "auto",
             precise: bool = False) -> Tensor:
    """H2 norm of the error system ``F - H`` (relative: divided by ``||F||``).

    Computed from the error system only, independently of how ``H`` was obtained, by

    * ``"gramian"``: the blocks of its observability Gramian (module docstring); differentiable;
      rounding errors of about ``eps ||F||^2`` in ``||F - H||^2``;
    * ``"residues"``: its poles and residues (``_modal``), for diagonalizable ``A_F`` and ``A_H``
      (eigenvector condition numbers <= 1e8); rounding errors of about ``eps ||F|| ||F - H||``, so
      small errors keep their digits (an error of 1e-5 ||F|| loses ~10 digits with the Gramian);
      not differentiated;
    * ``"auto"``: in continuous time ``"residues"`` when possible, no input requires grad, and their
      estimated rounding error (``_modal._rounding_bound``: ``eps`` times the eigenvector condition
      numbers times the absolute residue sums) is below the Gramian formula's (``(N + n) eps`` times
      the same sums), else ``"gramian"``: non-normal targets (eigenvector
      condition 1e7, where the residues were 5x wrong) get the Gramian. In discrete time the residue
      terms carry a factor ``1 / conj(nu)`` that amplifies rounding for poles near 0, so the Gramian
      is the default there. (Nearly) repeated poles of a non-normal block have no modal form
      (``_modal_form.near_repeated``): the Gramian too. Where the chosen value's rounding bound exceeds
      ``AUTO_PRECISE_RTOL`` of it (tiny errors: it may read 0) and no input requires grad, the
      error is measured as with ``precise=True`` when that applies and is affordable
      (``AUTO_PRECISE_MAX_WORK``).

    ``precise=True`` (residues only; CPU, NumPy; not differentiable) is the yardstick for comparing
    approximations at tiny errors (``_precise``): the poles and residues of ``F`` and ``H`` refined
    by Newton steps with extended-precision residuals (Hermitian ``A`` up to order 400, above it
    Rayleigh quotients in long double; non-Hermitian up to ``_modal.REFINE_MAX_WORK`` operations,
    e.g. dense N = 500 or a sparse-patterned N = 2,000; beyond, LAPACK's data, whose eigenvalue
    errors of ``eps ||A||`` limit tiny errors of stiff systems: the resolution says so), and the sums that cancel in
    double-double arithmetic (~32 digits). Relative errors down to ~1e-9 ``||F||`` keep ~10 digits
    (the SLICOT heat model reduced to order 12, error 6.0199e-9: equal to a 45-digit mpmath sum to
    12 digits, where double precision gives noise and extended precision alone 0.3% errors). The
    first call for an ``F`` costs O(N^3) (refinement) and O(N^2 p m) (its norm); later calls
    O((N + n) n p m). Its resolution (``_precise.error_resolution``: the modal data's accuracy,
    eigenvalue errors of ``u s_k ||A||`` that move the slow modes of stiff targets, and the sums'
    rounding, which the cancelling residues of non-normal targets amplify) is computed with it;
    where it exceeds ``_precise.PRECISE_WARN_RTOL`` (0.1) of the error, a PrecisionWarning says
    so (measured: the N = 1024 heat model at order 18, 7.6e-13 against 6.49e-13; an upwind
    convection-diffusion model at N = 256 with eigenvector condition 3e6, 9.4e-12 against 5.4e-12).

    Args:
        F, H: stable systems (``as_system`` converts foreign ones; ``F`` may be a
            ``SparseSystem``: above ``SPARSE_CROSSOVER`` states by a low-rank Gramian and shifted
            solves, ``control.large``) of one time domain, size
            (outputs x inputs) and dtype; orders may differ; batch shapes broadcast (the residue
            methods and ``precise`` take single systems).
        relative: divide by ``h2_norm(F)``.
        method: ``"auto"``, ``"gramian"`` or ``"residues"`` (above).
        precise: measure by the extended-precision yardstick (above).

    Returns:
        Real tensor of the broadcast batch shape: ``||F - H||_2`` (or ``/ ||F||_2``);
        differentiable with ``"gramian"`` (which ``"auto"`` picks when an input requires grad).

    Raises:
        UnstableSystemError: ``F`` or ``H`` is not stable (names the pole).
        PrecisionWarning (a warning): ``precise`` and its resolution above ``_precise.PRECISE_WARN_RTOL``.
        InputError: time domains, sampling periods, sizes or dtypes differ; a continuous-time
            error system with ``D_F != D_H``; an unknown ``method``; ``precise`` with
            ``"gramian"``; ``"residues"``/``precise`` for batched systems or systems that require
            grad, or where the state matrices are not diagonalizable with well-conditioned
            eigenvectors (or, in discrete time, have a pole at 0).

    Example::

        from difflinalg.control import balanced_truncation, builtin_model, h2_error

        F = builtin_model("random")
        H = balanced_truncation(F, 6)
        err = h2_error(F, H, relative=True)
        assert 0 < float(err) < 1
    """
    F, H = check_comparable(F, H)
    if F.dtype != H.dtype:
        raise InputError(f"F, H: dtypes differ ({F.dtype} and {H.dtype}); convert one with .to(dtype)")
    check_stable(F, "F")
    check_stable(H, "H")
    if not F.discrete:
        dD = F.D - H.D
        if not is_wrapped(dD) and bool((dD != 0).any()):
            raise InputError("F, H: the continuous-time error system has a non-zero feedthrough "
                             "D_F - D_H, so its H2 norm is infinite; give H the feedthrough of F")
    if method not in ("auto", "gramian", "residues"):
        raise InputError(f"method: expected 'auto', 'gramian' or 'residues', got {method!r}")
    if precise and method == "gramian":
        raise InputError("precise: extended precision is for method='residues' (or 'auto'), not 'gramian'")
    kB, kC = _scale_exponent(F.B, H.B), _scale_exponent(F.C, H.C)
    if kB or kC:  # exact power-of-two scaling (h2_norm), the same for both systems
        err = h2_error(_scaled(F, kB, kC), _scaled(H, kB, kC), method=method, precise=precise) * 2.0 ** -(kB + kC)
        if F.discrete:
            err = torch.hypot(err, _frobenius(F.D - H.D))
        return err / h2_norm(F) if relative else err
    use_res = method == "residues" or (method == "auto" and not F.discrete) or precise
    if use_res and F.batch_shape == () and H.batch_shape == () and F.cacheable() and H.cacheable():
        from ._modal import squared_h2_error_residues

        auto = method == "auto" and not precise
        val = squared_h2_error_residues(F, H, precise=precise, bound=auto, resolution=precise)
        if precise and val is not None:
            from ._precise import check_resolution

            val = check_resolution(*val)
        if auto and val is not None:
            # the residues only where their rounding bound is below the Gramian formula's,
            # (N + n) eps times the same absolute sums, i.e. where the eigenvector condition
            # numbers (weighted) are below N + n: non-normal targets (condition 1e7: the residues
            # were 5x wrong) get the Gramian, normal ones keep the digits of small errors
            val, est, absum = val
            if not est <= (F.order + H.order) * absum:
                val = None
            elif est > AUTO_PRECISE_RTOL * max(val, 0.0):
                val = _precise_or(F, H, val)
        if val is not None:
            err = torch.tensor(max(val, 0.0) ** 0.5, dtype=torch.empty((), dtype=F.dtype).real.dtype)
            return err / h2_norm(F) if relative else err
        if method == "residues" or precise:
            raise InputError("F, H: method='residues' (and precise=True) needs diagonalizable state matrices with "
                             "well-conditioned eigenvectors (and, in discrete time, no pole at 0); "
                             "use method='gramian'")
    elif method == "residues" or precise:
        raise InputError("F, H: method='residues' (and precise=True) is for single systems that do not require grad; "
                         "use method='gramian'")
    QF = F.cached("Q", lambda: observability_gramian_of(F))
    QH = observability_gramian_of(H)
    AFh = F.cached("schur_AH", lambda: SchurForm(F.A.mH)) if F.batch_shape == () else F.A.mH
    R = F.C.mH @ H.C
    if F.discrete:
        Q12 = SteinOperator(AFh, H.A).solve(-R)
    else:
        Q12 = SylvesterOperator(AFh, H.A).solve(R)
    val = _trace_quad(F.B, QF) + 2 * _trace_quad(F.B, Q12, H.B) + _trace_quad(H.B, QH)
    if F.discrete:
        val = val + ((F.D - H.D).abs() ** 2).sum((-2, -1))
    if method == "auto" and F.batch_shape == () and H.batch_shape == () and F.cacheable() and H.cacheable():
        # the Gramian formula's rounding: (N + n) eps times its terms' absolute values
        absum = sum(float(_trace_quad(X.abs(), Y.abs(), Z.abs())) for X, Y, Z in
                    ((F.B, QF, F.B), (F.B, Q12, H.B), (F.B, Q12, H.B), (H.B, QH, H.B)))
        if (F.order + H.order) * eps(F.dtype) * absum > AUTO_PRECISE_RTOL * max(float(val), 0.0):
            val = torch.as_tensor(_precise_or(F, H, float(val)), dtype=val.dtype)
    err = val.clamp_min(0).sqrt()
    if relative:
        err = err / h2_norm(F)
    return err


#: ``h2_error``'s default measures in extended precision (``precise=True``) where the rounding
#: bound of the double-precision value exceeds AUTO_PRECISE_RTOL of it (the squared error: the
#: error itself then has fewer than ~3 correct digits, or none: it may read 0) and the
#: extended-precision work (``_precise.residue_work``) is at most AUTO_PRECISE_MAX_WORK (its
#: refinement costs O(N^3) without BLAS: seconds at N = 400, not worth it for the fourth digit)
AUTO_PRECISE_RTOL = 1e-3
AUTO_PRECISE_MAX_WORK = 2e7


def _precise_or(F: StateSpace, H: StateSpace, val: float) -> float:
    """The squared error by the extended-precision yardstick where it applies and is affordable,
    else ``val`` (the double-precision value)."""
    from ._modal import squared_h2_error_residues
    from ._precise import residue_work

    if residue_work(F.order, H.order, F.n_outputs, F.n_inputs) > AUTO_PRECISE_MAX_WORK:
        return val
    v = squared_h2_error_residues(F, H, precise=True)
    return val if v is None else v
