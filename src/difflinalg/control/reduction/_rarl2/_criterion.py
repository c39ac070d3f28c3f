r"""The concentrated criterion of RARL2 as a differentiable function (rarl2-math.md, sections 3-4).

For a target ``F = (A_F, B_F, C_F, D_F)`` and a pair ``(C, A)``::

    Q12 = A_F^H Q12 A + C_F^H C            (discrete: solve_stein(A_F^H, A, C_F^H C))
    A_F^H Q12 + Q12 A + C_F^H C = 0        (continuous: solve_sylvester(A_F^H, A, -C_F^H C))
    B_hat = Q12^H B_F,   psi = Tr(B_F^H Q_F B_F) - ||B_hat||_F^2

At an output-normal pair, ``psi`` is the squared H2 error of the best model ``(A, B_hat, C, D_F)``
(continuous: ``D = 0``). Everything goes through ``difflinalg``'s differentiable Sylvester/Stein
solvers, so ``torch.autograd`` / ``torch.func`` give every derivative (gradient, Hessian) with respect
to ``(C, A)`` and the target's matrices; RARL2 itself uses the closed-form adjoint gradient
(``_target.Target.criterion``), which ``tests/control`` checks against this function and against
finite differences::

    grad_A = -2 (P12 A_F^H Q12)^H (discrete) or -2 (P12 Q12)^H (continuous),  grad_C = -2 C_F P12^H
    with P12 = A P12 A_F^H + B_hat B_F^H  (discrete)  or  A P12 + P12 A_F^H + B_hat B_F^H = 0.
"""

from __future__ import annotations

from torch import Tensor

from ...._errors import InputError
from ...._utils import check_matrix, check_same_dtype
from ....equations import observability_gramian, solve_stein, solve_sylvester
from ...system._statespace import StateSpace, check_system


def h2_projection(F: StateSpace, C: Tensor, A: Tensor) -> tuple[Tensor, Tensor]:
    """``(psi, B_hat)``: the concentrated criterion and the optimal input matrix (module docstring).

    Args:
        F: stable target (continuous time with D = 0, or discrete time).
        C: (..., p, n) and A: (..., n, n), the same dtype as ``F``; batch dimensions broadcast.

    Returns:
        ``psi`` (real, the batch shape) and ``B_hat`` (..., n, m); differentiable in ``C``, ``A`` and
        the matrices of ``F`` (reverse, forward and higher order).

    Raises:
        InputError: ``F`` is not a system; ``C`` or ``A`` not a matrix of the right shape (``A``
            square; ``C`` with ``F``'s outputs as rows and ``A``'s order as columns), non-finite,
            or of another dtype than ``F``.
        SingularEquationError: the Sylvester/Stein equation for ``Q_12`` (or the Gramian's) is
            singular: a pole of ``A`` is ``-conj(lambda)`` (discrete: ``1 / conj(lambda)``) for a
            pole ``lambda`` of ``F``; it cannot happen when ``F`` and ``A`` are stable.

    Example::

        import math
        from difflinalg.control import builtin_model, h2_error, h2_projection, rarl2

        F = builtin_model("random")
        H = rarl2(F, 2, starts=["bt"]).model  # an output-normal pair (C, A)
        psi, B = h2_projection(F, H.C, H.A)  # psi = ||F - (A, B, C)||^2 at this pair
        assert B.shape == (2, 2) and math.isclose(float(psi), float(h2_error(F, H)) ** 2, rel_tol=1e-6)
    """
    F = check_system(F, "F")
    A = check_matrix(A, "A", square=True)
    C = check_matrix(C, "C")
    check_same_dtype(F=F.A, C=C, A=A)
    if C.shape[-1] != A.shape[-1] or C.shape[-2] != F.n_outputs:
        raise InputError(f"C: expected shape (..., {F.n_outputs}, {A.shape[-1]}) for {F.n_outputs} outputs "
                         f"and A of order {A.shape[-1]}, got {tuple(C.shape)}")
    R = F.C.mH @ C
    AFh = F.A.mH
    if F.discrete:
        Q12 = solve_stein(AFh, A, R)
    else:
        Q12 = solve_sylvester(AFh, A, -R)
    Bh = Q12.mH @ F.B
    QF = observability_gramian(F.A, F.C, discrete=F.discrete)
    nF2 = (F.B.conj() * (QF @ F.B)).sum((-2, -1)).real
    psi = nF2 - (Bh.abs() ** 2).sum((-2, -1))
    return psi, Bh
