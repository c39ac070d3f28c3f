"""Factorizations of equation coefficients, computed once and reused by every solve (no autograd).

* ``SchurForm(A)``: ``A = U T U^H`` with ``U`` unitary and ``T`` upper triangular (complex form) or
  upper quasi-triangular with 2 x 2 blocks for complex-conjugate pairs (real form, real ``A``).
  Computed on the host with LAPACK ``?gees`` (SciPy's wrapper; PyTorch has no Schur decomposition
  on any device); for a tensor on another device the factors are moved back to it. LAPACK has no
  batched Schur, so a batch is factorized matrix by matrix (about 10 us per 8 x 8 matrix). ``.mH`` gives the form of
  ``A^H = U T^H U^H`` without refactorizing.
* ``EigForm(A)``: ``A = V diag(lambda) V^{-1}`` from ``torch.linalg.eig`` (batched, any device),
  with the condition number of ``V``, which bounds the accuracy of the eigenvector-based solve.
* ``kron_lu(A, B, kind)``: the LU factors of the (m n) x (m n) Kronecker matrix of the equation, for
  tiny sizes only (batched, any device).

The factors are constants: gradients with respect to the coefficients are carried by the equation's
autograd rule (``_rule.py``), which uses the coefficients themselves, not their factors.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .._errors import ConvergenceError, InputError
from .._rule import Rule
from .._utils import check_matrix, eps, is_wrapped, reject_meta
from ._checks import broadcast


def to_numpy(x: Tensor) -> np.ndarray:
    """A host numpy copy/view of a plain tensor (resolves lazy conjugation and negation)."""
    return x.detach().resolve_conj().resolve_neg().cpu().numpy()


def schur_eigvals(T: np.ndarray) -> np.ndarray:
    """Eigenvalues (..., n), complex, of triangular or real quasi-triangular Schur factors."""
    d = np.diagonal(T, axis1=-2, axis2=-1)
    cdt = np.complex64 if T.dtype in (np.float32, np.complex64) else np.complex128
    w = d.astype(cdt)
    if np.iscomplexobj(T) or T.shape[-1] < 2:
        return w
    sub = np.diagonal(T, -1, axis1=-2, axis2=-1)
    sup = np.diagonal(T, 1, axis1=-2, axis2=-1)
    a, b = d[..., :-1], d[..., 1:]
    half = 0.5 * (a + b)
    root = np.sqrt((0.25 * (a - b) ** 2 + sup * sub).astype(cdt))
    start = sub != 0  # a 2 x 2 block starts at index k (blocks never overlap)
    w[..., :-1] = np.where(start, half + root, w[..., :-1])
    w[..., 1:] = np.where(start, half - root, w[..., 1:])
    return w


class _SchurFn(Rule):
    """Host Schur factorization ``A = U T U^H`` and the eigenvalues; outputs are constants.

    A custom ``vmap`` rule calls the batched forward on the underlying tensor, so ``SchurForm`` can
    be built inside ``torch.func.vmap`` although the forward leaves torch for LAPACK.
    """

    generate_vmap_rule = False

    @staticmethod
    def forward(A: Tensor, complex_form: bool) -> tuple[Tensor, Tensor, Tensor]:
        a = to_numpy(A)
        n = a.shape[-1]
        if complex_form and not np.iscomplexobj(a):
            a = a.astype(np.complex64 if a.dtype == np.float32 else np.complex128)
        flat = a.reshape(int(np.prod(a.shape[:-2], dtype=np.int64)), n, n)
        T = np.empty_like(flat)
        U = np.empty_like(flat)
        if flat.shape[0] and n:
            # LAPACK ?gees directly (one workspace query per batch): it is not batched, and the
            # per-call validation of scipy.linalg.schur would dominate for small matrices.
            import scipy.linalg  # on first use: import difflinalg stays light

            gees = scipy.linalg.get_lapack_funcs("gees", (flat,))
            keep = lambda *_: None  # noqa: E731 - no eigenvalue reordering
            lwork = max(int(gees(keep, flat[0], lwork=-1)[-2][0].real), 3 * n, 1)
            for i in range(flat.shape[0]):
                res = gees(keep, flat[i], lwork=lwork)
                if res[-1] != 0:
                    raise ConvergenceError(
                        f"A: the Schur decomposition (LAPACK ?gees) did not converge (info {res[-1]}"
                        f"{f', batch element {i}' if flat.shape[0] > 1 else ''}); check the matrix scaling"
                    )
                T[i], U[i] = res[0], res[-3]
        shape = a.shape
        T = T.reshape(shape)
        w = schur_eigvals(T)
        # T column-major per matrix: LAPACK (?trsyl, BLAS ?trsv) then reads it in place instead of
        # receiving a Fortran-ordered copy of an N x N matrix at every call.
        Tf = np.swapaxes(np.ascontiguousarray(np.swapaxes(T, -1, -2)), -1, -2)
        dev = A.device
        return (torch.from_numpy(Tf).to(dev), torch.from_numpy(U.reshape(shape)).to(dev),
                torch.from_numpy(w).to(dev))

    @staticmethod
    def save(ctx, inputs, output):
        ctx.mark_non_differentiable(*output)
        return ()

    @staticmethod
    def gradients(ctx, *grads):
        return ()

    @staticmethod
    def tangents(ctx, *tangents):
        return ()

    @staticmethod
    def vmap(info, in_dims, A, complex_form):
        out = _SchurFn.apply(A.movedim(in_dims[0], 0), complex_form)
        return out, (0, 0, 0)


class SchurForm:
    """Schur factorization ``A = U T U^H`` of a coefficient, for reuse across many solves.

    Pass it instead of a tensor to ``SylvesterOperator`` / ``SteinOperator``: a large coefficient
    that stays fixed (RARL2's ``A_F``) is then factorized once, and each operator built with it
    only factorizes its other (small) coefficient. Gradients with respect to ``matrix`` still flow
    through the solves (the factors themselves are constants).

    Args:
        A: (..., n, n) real or complex; or ``SchurForm`` attributes via ``.mH``.
        complex_form: triangular complex Schur form (``True``) or real quasi-triangular form of a
            real matrix (``False``). Default: the real form for a real matrix on the CPU (LAPACK
            ``trsyl`` solves with it, and it is 2-3x cheaper), complex otherwise (the torch
            triangular solves of other devices need a triangular factor).

    Attributes:
        matrix: the coefficient (``A``, or ``A^H`` for a form obtained with ``.mH``).
        T, U: the factors of the original ``A`` (``adjoint`` says whether ``matrix = U T^H U^H``).
        eigvals: eigenvalues of ``matrix`` (..., n), complex.

    Raises:
        InputError: ``A`` not a square matrix (..., n, n), of an unsupported dtype, non-finite or
            a meta tensor; ``complex_form=False`` for a complex ``A``.
        ConvergenceError: LAPACK ``?gees`` did not converge.

    Example::

        import torch
        import difflinalg

        A = torch.tensor([[1.0, 2.0], [-2.0, 1.0]], dtype=torch.float64)  # eigenvalues 1 +- 2i
        F = difflinalg.SchurForm(A)
        assert torch.allclose(F.U @ F.T @ F.U.mH, A)
        assert torch.allclose(F.eigvals.imag.abs(), torch.tensor([2.0, 2.0], dtype=torch.float64))
        G = F.mH  # the form of A^H, without refactorizing
    """

    def __init__(self, A: Tensor, complex_form: bool | None = None, *, _factors=None):
        if _factors is not None:
            self.matrix, self.T, self.U, self._eigvals, self.adjoint = A, *_factors
            self.complex_form = self.T.is_complex()
            return
        reject_meta("A", A)
        A = check_matrix(A, "A", square=True)
        if complex_form is None:
            complex_form = A.is_complex() or A.device.type != "cpu"
        if A.is_complex() and not complex_form:
            raise InputError("complex_form: a complex matrix has only the complex Schur form; "
                             "pass complex_form=True or leave it as None")
        self.matrix = A
        self.T, self.U, self._eigvals = _SchurFn.apply(A, bool(complex_form))
        self.adjoint = False
        self.complex_form = bool(complex_form) or A.is_complex()

    @property
    def mH(self) -> "SchurForm":
        """The Schur form of ``matrix^H`` (same factors; no new factorization)."""
        return SchurForm(self.matrix.mH, _factors=(self.T, self.U, self._eigvals, not self.adjoint))

    @property
    def eigvals(self) -> Tensor:
        """Eigenvalues of ``matrix`` (..., n), complex (from the diagonal blocks of ``T``)."""
        ev = self._eigvals
        return ev.conj().resolve_conj() if self.adjoint else ev

    @property
    def shape(self) -> torch.Size:
        """Shape of ``matrix``, (..., n, n)."""
        return self.matrix.shape

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of ``matrix``."""
        return self.matrix.dtype

    @property
    def device(self) -> torch.device:
        """Device of ``matrix``."""
        return self.matrix.device

    def to_complex(self) -> "SchurForm":
        """The complex (triangular) form; refactorizes once if this is the real form."""
        if self.complex_form:
            return self
        cached = getattr(self, "_complex", None)
        if cached is None:  # factorize the original matrix once per form object
            base = self.matrix.mH if self.adjoint else self.matrix
            cached = SchurForm(base, complex_form=True)
            self._complex = cached
        return cached.mH if self.adjoint else cached

    def __repr__(self) -> str:
        form = "complex" if self.complex_form else "real"
        return f"SchurForm(shape={tuple(self.shape)}, dtype={self.dtype}, form={form}, adjoint={self.adjoint})"


class EigForm:
    """Eigendecomposition ``A = V diag(lam) V^{-1}`` (``torch.linalg.eig``; batched, any device).

    ``cond`` is the 1-norm condition number of ``V``: the eigenvector-based solve loses about
    ``log10(cond_A * cond_B)`` digits, so it suits (nearly) normal coefficients. ``.mH`` is the form
    of ``A^H = V^{-H} diag(conj lam) V^H``.
    """

    def __init__(self, A: Tensor, *, _factors=None):
        if _factors is not None:
            self.matrix, self.V, self.W, self.lam, self.cond = A, *_factors
            return
        self.matrix = A
        lam, V = torch.linalg.eig(A.detach())
        self.V, self.lam = V, lam
        self.W = torch.linalg.inv(V)
        # 1-norm condition number: within a factor n of the 2-norm one, without an SVD
        self.cond = torch.linalg.matrix_norm(V, 1) * torch.linalg.matrix_norm(self.W, 1)

    @property
    def mH(self) -> "EigForm":
        return EigForm(self.matrix.mH, _factors=(self.W.mH, self.V.mH, self.lam.conj(), self.cond))

    @property
    def eigvals(self) -> Tensor:
        return self.lam


def eig_accuracy_check(fa: EigForm, fb: EigForm, names=("A", "B")) -> None:
    """Raise if the eigenvector bases are too ill-conditioned for the eig method to give at least
    half the working digits (``eps * cond(V_A) * cond(V_B) > sqrt(eps)``)."""
    if any(is_wrapped(t) for t in (fa.cond, fb.cond)):
        return
    e = eps(fa.matrix.dtype)
    c = (fa.cond.to(torch.float64)[..., None] * fb.cond.to(torch.float64)[..., None]).reshape(-1)
    worst = float(c.max()) if c.numel() else 1.0
    if not np.isfinite(worst) or e * worst > e ** 0.5:
        raise InputError(
            f"{names[0]}, {names[1]}: the eigenvector matrices are too ill-conditioned for "
            f"method='eig' (cond(V_{names[0]}) * cond(V_{names[1]}) = {worst:.3e}, so the solution "
            f"would lose about {np.log10(max(worst, 1.0)):.0f} digits); use method='schur' (stable "
            "for any coefficients)"
        )


def kron_matrix(A: Tensor, B: Tensor, kind: str) -> Tensor:
    """The (m n) x (m n) matrix of the equation in row-major ``vec`` (``x = X.reshape(-1)``):
    ``A X + X B -> (A kron I + I kron B^T) x``, ``X - A X B -> (I - A kron B^T) x``."""
    m, n = A.shape[-1], B.shape[-1]
    batch = broadcast(A.shape[:-2], B.shape[:-2])
    if kind == "sylvester" and (is_wrapped(A) or is_wrapped(B)):
        # inside torch.func transforms (no in-place writes into an unbatched buffer)
        In = torch.eye(n, dtype=A.dtype, device=A.device)
        Im = torch.eye(m, dtype=A.dtype, device=A.device)
        M = A[..., :, None, :, None] * In[:, None, :] + Im[:, None, :, None] * B.mT[..., None, :, None, :]
    elif kind == "sylvester":
        # M[i, j, k, l] = A[i, k] delta_jl + delta_ik B[l, j]: written into diagonal views (the
        # broadcast product above costs about 4x more for a batch of 1000 8 x 8 pairs).
        M = torch.zeros(*batch, m, n, m, n, dtype=A.dtype, device=A.device)
        M.diagonal(dim1=-3, dim2=-1).copy_(A[..., :, :, None].expand(*batch, m, m, n))
        M.diagonal(dim1=-4, dim2=-2).add_(B.mT[..., :, :, None].expand(*batch, n, n, m))
    else:
        M = torch.eye(m * n, dtype=A.dtype, device=A.device).reshape(m, n, m, n) \
            - A[..., :, None, :, None] * B.mT[..., None, :, None, :]
    return M.reshape(*M.shape[:-4], m * n, m * n)


def kron_lu(A: Tensor, B: Tensor, kind: str) -> tuple[Tensor, Tensor]:
    """Batched LU factors (with partial pivoting) of the Kronecker matrix of the equation."""
    # ``_ex``: a singular matrix is reported by our eigenvalue test, not by a generic RuntimeError.
    LU, piv, _ = torch.linalg.lu_factor_ex(kron_matrix(A.detach(), B.detach(), kind))
    return LU, piv


def kron_eigvals(A: Tensor, B: Tensor) -> tuple[Tensor, Tensor]:
    """Eigenvalues of both coefficients for the singularity test of the Kronecker path (batched
    ``torch.linalg.eigvals``, any device; O(m^3 + n^3), nothing Kronecker-sized)."""
    return torch.linalg.eigvals(A.detach()), torch.linalg.eigvals(B.detach())
