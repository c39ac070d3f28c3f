"""``SylvesterOperator`` and ``SteinOperator``: factorize the coefficients once, solve many times.

What runs where (``method``; ``op.method`` then names the path that runs: ``"lapack"``,
``"torch"``, ``"eig"`` or ``"kron"``):

================= ============================================  =====================================
method            factorization (once)                          each solve / adjoint solve
================= ============================================  =====================================
``"schur"``       Schur forms of A and B: LAPACK ``?gees`` via  CPU: one LAPACK ``?trsyl`` (real
                  SciPy on the host (real form for real data    quasi-triangular forms), else a column
                  on the CPU; complex form elsewhere, moved     recurrence of BLAS ``?trsv`` with a
                  back to the device). Batches: per matrix.     shifted diagonal (``_schur_solve.py``);
                                                                other devices: the torch recurrence
``"schur-torch"`` as ``"schur"``, complex form                  the torch column recurrence of batched
                                                                triangular solves (any device)
``"eig"``         ``torch.linalg.eig`` of A and B (batched,     elementwise division, 4 matmuls
                  any device); refused if the eigenvectors
                  are too ill-conditioned
                  (``eps cond(V_A) cond(V_B) > sqrt(eps)``)
``"kron"``        batched LU of the (m n) x (m n) Kronecker     LU solve (adjoint: ``adjoint=True``)
                  matrix (tiny sizes only)
``"auto"``        ``"kron"`` for tiny sizes (``m n <= KRON_MAX = 64``; on the CPU
                  ``m n <= 36`` for batches of 50 or more pairs: measured crossovers,
                  ``benchmarks/sylvester.py --only crossover``), else ``"schur"``
================= ============================================  =====================================

All are backward (Schur, LU) or conditionally (eig) stable, and all solve the adjoint equation
from the same factors. With a ``SchurForm`` for a coefficient that stays fixed (and large, N),
each operator factorizes only its other (small, n) coefficient and a solve costs
``O(N^2 n + N n^2)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._errors import InputError
from .._utils import check_matrix, check_same_dtype, reject_meta
from ._checks import broadcast, check_nonsingular, check_same_device, equation_text, validate_coefficients
from ._factor import EigForm, SchurForm, eig_accuracy_check, kron_eigvals, kron_lu
from ._solution_check import check_solution
from ._rule import MatrixEquation, _Spec

METHODS = ("auto", "schur", "schur-torch", "eig", "kron")

#: ``method="auto"`` uses the Kronecker LU when ``m * n <= KRON_MAX``, except for CPU batches of
#: ``KRON_BATCH`` or more coefficient pairs, where it does only for ``m * n <= KRON_MAX_BATCHED``
#: (crossovers measured on the CPU with ``benchmarks/sylvester.py --only crossover``: the O((mn)^3)
#: LU loses to per-matrix Schur factorizations at 8 x 8 from a batch of about 100).
KRON_MAX = 64
KRON_MAX_BATCHED = 36
KRON_BATCH = 50


def resolve_method(method: str, m: int, n: int, device: torch.device, has_schur_form: bool,
                   batch: int = 1) -> str:
    """The internal method (``lapack``/``torch``/``eig``/``kron``) for a public ``method``;
    ``batch`` is the number of coefficient pairs (broadcast batch size of A and B)."""
    if method not in METHODS:
        raise InputError(f"method: unknown method {method!r}; choose from {METHODS}")
    if has_schur_form and method not in ("auto", "schur", "schur-torch"):
        raise InputError(f"method: a SchurForm coefficient needs method 'schur' or 'schur-torch', got {method!r}")
    if method == "auto":
        limit = KRON_MAX_BATCHED if device.type == "cpu" and batch >= KRON_BATCH else KRON_MAX
        method = "schur" if has_schur_form or m * n > limit or m * n == 0 else "kron"
    if method == "schur":
        return "lapack" if device.type == "cpu" else "torch"
    if method == "schur-torch":
        return "torch"
    return method


def _matrix(x) -> Tensor:
    return x.matrix if isinstance(x, (SchurForm, EigForm)) else x


class _EquationOperator:
    kind = ""

    def __init__(self, A, B, *, method: str = "auto", check: bool = True, names=("A", "B"),
                 _hint: str = "", _validated: bool = False, _eigvals=None):
        self.names = names
        a_t, b_t = _matrix(A), _matrix(B)
        if not _validated:  # the solve_* functions validate once for all arguments
            a_t, b_t = validate_coefficients(a_t, b_t, names)
        m, n = a_t.shape[-1], b_t.shape[-1]
        has_schur = isinstance(A, SchurForm) or isinstance(B, SchurForm)
        if isinstance(A, EigForm) or isinstance(B, EigForm):
            method = "eig"
        nbatch = math.prod(broadcast(a_t.shape[:-2], b_t.shape[:-2]))
        self.method = resolve_method(method, m, n, a_t.device, has_schur, nbatch)
        self.A, self.B = a_t, b_t
        eig_a = eig_b = None
        op_a = op_b = False
        if self.method in ("lapack", "torch"):
            need_complex = self.method == "torch" or a_t.is_complex()
            fa = A if isinstance(A, SchurForm) else SchurForm(a_t, complex_form=need_complex)
            fb = B if isinstance(B, SchurForm) else SchurForm(b_t, complex_form=need_complex)
            if need_complex or fa.complex_form != fb.complex_form:
                fa, fb = fa.to_complex(), fb.to_complex()
            self.forms = (fa, fb)
            factors = (fa.T, fa.U, fb.T, fb.U)
            op_a, op_b = fa.adjoint, fb.adjoint
            eig_a, eig_b = fa.eigvals, fb.eigvals
        elif self.method == "eig":
            fa = A if isinstance(A, EigForm) else EigForm(a_t)
            fb = B if isinstance(B, EigForm) else EigForm(b_t)
            if check:
                eig_accuracy_check(fa, fb, names)
            self.forms = (fa, fb)
            factors = (fa.V, fa.W, fa.lam, fb.V, fb.W, fb.lam)
            eig_a, eig_b = fa.lam, fb.lam
        else:
            LU, piv = kron_lu(a_t, b_t, self.kind)
            self.forms = None
            factors = (LU, piv)
            if check:
                # LU pivots do not reveal a singular Kronecker matrix reliably (issue 16: 16-66% of
                # exactly singular equations passed a pivot test): use the eigenvalues, as Schur does.
                eig_a, eig_b = _eigvals if _eigvals is not None else kron_eigvals(a_t, b_t)
        self.check = check
        self._hint = _hint
        self._eig = (eig_a, eig_b)
        # The separation estimate scale / min gap: raises here when the eigenvalues already show a
        # singular equation; each solve adds the a posteriori estimate from the solution's growth.
        self._kappa = self._scale = None
        if check:
            self._kappa, self._scale = check_nonsingular(self.kind, eig_a, eig_b, a_t, b_t, names, _hint)
        self._spec = _Spec(self.kind, self.method, op_a, op_b)
        self._factors = factors

    # -- solves --------------------------------------------------------------------------------
    def _rhs(self, C) -> Tensor:
        reject_meta("C", C)
        C = check_matrix(C, "C")
        check_same_dtype(**{self.names[0]: self.A, "C": C})
        check_same_device(**{self.names[0]: self.A, "C": C})
        m, n = self.shape
        if tuple(C.shape[-2:]) != (m, n):
            raise InputError(f"C: expected shape (..., {m}, {n}) for this {m} x {n} operator, got {tuple(C.shape)}")
        try:
            broadcast(C.shape[:-2], self.A.shape[:-2], self.B.shape[:-2])
        except ValueError:
            raise InputError(
                f"C: batch shape {tuple(C.shape[:-2])} does not broadcast with the coefficients' "
                f"{tuple(self.A.shape[:-2])} and {tuple(self.B.shape[:-2])}"
            ) from None
        return C

    def _apply(self, C: Tensor, adjoint: bool) -> Tensor:
        spec = self._spec.flipped() if adjoint else self._spec
        X = MatrixEquation.apply(self.A, self.B, C, spec, *self._factors)
        if not self.check:
            return X
        return check_solution(self, X, C)

    def solve(self, C: Tensor) -> Tensor:
        """The solution ``X`` of the equation with right side ``C``.

        Args:
            C: (..., m, n), the operator's dtype and device; its batch dimensions broadcast with
                the coefficients'.

        Returns:
            ``X`` (..., m, n), differentiable in ``C`` and in the coefficients (if they require
            grad), to any order.

        Raises:
            InputError: ``C`` of another shape, dtype or device, non-finite or a meta tensor.
            SingularEquationError: (with ``check=True``) the solution's growth proves the equation
                numerically singular.
        """
        return self._apply(self._rhs(C), False)

    def solve_adjoint(self, C: Tensor) -> Tensor:
        """The solution of the adjoint equation (conjugate-transposed coefficients) with right side
        ``C``, from the same factors.

        Args:
            C: (..., m, n), as for ``solve``.

        Returns:
            ``X`` (..., m, n), differentiable as for ``solve``.

        Raises:
            InputError, SingularEquationError: as for ``solve``.
        """
        return self._apply(self._rhs(C), True)

    # -- misc ----------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        """``(m, n)``: the shape of ``X``."""
        return self.A.shape[-1], self.B.shape[-1]

    @property
    def eigvals(self) -> tuple[Tensor, Tensor]:
        """Eigenvalues of ``A`` and ``B`` (computed if the method has no spectral factors)."""
        if self.forms is not None:
            return self.forms[0].eigvals, self.forms[1].eigvals
        return torch.linalg.eigvals(self.A.detach()), torch.linalg.eigvals(self.B.detach())

    def __repr__(self) -> str:
        m, n = self.shape
        return (f"{type(self).__name__}({equation_text(self.kind, *self.names)}, m={m}, n={n}, "
                f"dtype={self.A.dtype}, method={self.method!r})")


class SylvesterOperator(_EquationOperator):
    """The Sylvester operator ``X -> A X + X B``, factorized once for many solves.

    Args:
        A: (..., m, m) tensor, or a ``SchurForm`` of it (reused, not refactorized).
        B: (..., n, n) tensor or ``SchurForm``; same dtype and device as ``A``.
        method: ``"auto"``, ``"schur"``, ``"schur-torch"``, ``"eig"`` or ``"kron"`` (module docstring).
        check: raise ``SingularEquationError`` if ``A`` and ``-B`` share an eigenvalue (to
            ``4 max(m, n) eps (||A||_F + ||B||_F)``), naming the closest pair, or if a solution
            proves the equation numerically singular (``(||A||_F + ||B||_F) ||X|| / ||C|| >=
            1 / (4 max(m, n) eps)``, non-normal coefficients); warn ``PrecisionWarning`` when the
            condition estimate predicts fewer than two correct digits (``docs/conventions.md``).
            Inside ``torch.func``: NaN for singular batch elements and ``TransformCheckWarning``.

    ``solve(C)`` solves ``A X + X B = C``; ``solve_adjoint(C)`` solves ``A^H X + X B^H = C``.
    Both are differentiable with respect to ``C`` and, when they require grad, ``A`` and ``B``
    (reverse, forward and higher order; the adjoint solves reuse the factors).

    Raises:
        InputError: non-square coefficients, mixed dtypes or devices, batch shapes that do not
            broadcast, non-finite values, meta tensors, an unknown ``method`` (or one other than
            "schur"/"schur-torch" with a ``SchurForm``); with ``method="eig"``, eigenvector
            matrices too ill-conditioned for it.
        SingularEquationError: (``check=True``) ``A`` and ``-B`` share an eigenvalue.
        ConvergenceError: the Schur decomposition (LAPACK ``?gees``) did not converge.

    Example (RARL2-shaped: a fixed large ``A_F``, small varying ``B``)::

        import torch
        import difflinalg

        gen = torch.Generator().manual_seed(0)
        A_F = torch.randn(50, 50, generator=gen, dtype=torch.float64) - 10 * torch.eye(50, dtype=torch.float64)
        AF = difflinalg.SchurForm(A_F)                  # O(N^3), once
        for _ in range(3):
            B = torch.randn(4, 4, generator=gen, dtype=torch.float64) - 10 * torch.eye(4, dtype=torch.float64)
            op = difflinalg.SylvesterOperator(AF, B)    # factorizes only B
            C = torch.randn(50, 4, generator=gen, dtype=torch.float64)
            X = op.solve(C)                             # O(N^2 n + N n^2)
            assert torch.allclose(op(X), C)
    """

    kind = "sylvester"

    def __call__(self, X: Tensor) -> Tensor:
        """Apply the operator: ``A X + X B``.

        Args:
            X: (..., m, n), the coefficients' dtype.

        Returns:
            ``A X + X B`` (..., m, n).
        """
        return self.A @ X + X @ self.B

    def apply_adjoint(self, X: Tensor) -> Tensor:
        """Apply the adjoint operator: ``A^H X + X B^H``.

        Args:
            X: (..., m, n), the coefficients' dtype.

        Returns:
            ``A^H X + X B^H`` (..., m, n).
        """
        return self.A.mH @ X + X @ self.B.mH


class SteinOperator(_EquationOperator):
    """The Stein (discrete-time Sylvester) operator ``X -> X - A X B``, factorized once.

    Arguments as for ``SylvesterOperator``; ``check`` raises ``SingularEquationError`` if a product
    of eigenvalues ``lambda_i(A) mu_j(B)`` equals 1 (to ``4 max(m, n) eps (1 + ||A||_F ||B||_F)``).
    ``solve(C)`` solves ``X - A X B = C``; ``solve_adjoint(C)`` solves ``X - A^H X B^H = C``.

    Raises:
        InputError, ConvergenceError: as for ``SylvesterOperator``.
        SingularEquationError: (``check=True``) a product ``lambda_i(A) mu_j(B)`` equals 1.

    Example::

        import torch
        import difflinalg

        A = torch.tensor([[0.5, 0.2], [0.0, 0.4]], dtype=torch.float64)
        op = difflinalg.SteinOperator(A, A.mH)   # X - A X A^H: a discrete Lyapunov operator
        X = op.solve(torch.eye(2, dtype=torch.float64))
        assert torch.allclose(op(X), torch.eye(2, dtype=torch.float64))
    """

    kind = "stein"

    def __call__(self, X: Tensor) -> Tensor:
        """Apply the operator: ``X - A X B``.

        Args:
            X: (..., m, n), the coefficients' dtype.

        Returns:
            ``X - A X B`` (..., m, n).
        """
        return X - self.A @ X @ self.B

    def apply_adjoint(self, X: Tensor) -> Tensor:
        """Apply the adjoint operator: ``X - A^H X B^H``.

        Args:
            X: (..., m, n), the coefficients' dtype.

        Returns:
            ``X - A^H X B^H`` (..., m, n).
        """
        return X - self.A.mH @ X @ self.B.mH

