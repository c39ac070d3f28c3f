r"""The working coordinates of a prepared target, in which the start heuristics (IRKA, balanced
truncation from low-rank Gramian factors, modal truncation) operate: a mixin of ``Target``.

For a modal target they are the modal coordinates ``(diag(lambda), W^{-1} B_F, C_F W)``, made real
for a real target: a conjugate pair ``(w, conj w)`` of eigenvectors becomes ``(Re w, Im w)``, so
real reduced models come out real (``J`` maps real-coordinate rows to modal rows, ``Jinv`` back,
``JH``/``JinvH`` their adjoints). A Schur-form target works in its original coordinates.
The methods read the attributes ``Target`` sets up (``method``, ``real``, ``cdt``, ``dtype``,
``lam``, ``Bt``, ``Ct``, ``A_F``, ``B_F``, ``C_F``, ``N``, ``discrete``, the pair indices and the
Schur form).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ....equations import observability_gramian
from ...analysis._cauchy import cauchy_pivoted_cholesky


class WorkingCoordinates:
    """Mixin of ``Target``: its normalized realization in the start heuristics' coordinates."""

    # -- working coordinates for the start heuristics (real for real targets) ---------------------
    def _pairs_of(self, X: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The rows of ``X`` (..., N, k) (complex) for the real modes, the upper and the lower members
        of the pairs."""
        X = X.to(self.cdt)
        nr, npr = self._nr, self._np
        return X[..., :nr, :], X[..., nr:nr + npr, :], X[..., nr + npr:, :]

    # the conjugate pairs (rows a = upper, b = lower member) and the real coordinates of a real
    # system: J maps real-coordinate rows (Re, Im) to modal rows, Jinv back; JH, JinvH their adjoints
    def _J(self, X: Tensor) -> Tensor:
        x, a, b = self._pairs_of(X)
        return torch.cat([x, (a - 1j * b) / 2, (a + 1j * b) / 2], -2)

    def _Jinv(self, X: Tensor) -> Tensor:
        x, a, b = self._pairs_of(X)
        return torch.cat([x, a + b, 1j * (a - b)], -2)

    def _JH(self, X: Tensor) -> Tensor:
        x, a, b = self._pairs_of(X)
        return torch.cat([x, (a + b) / 2, 1j * (a - b) / 2], -2)

    def _JinvH(self, X: Tensor) -> Tensor:
        x, a, b = self._pairs_of(X)
        return torch.cat([x, a - 1j * b, a + 1j * b], -2)

    def work_BC(self, diagonal: bool = False) -> tuple[Tensor, Tensor]:
        """``(B_w, C_w)`` of the normalized target in working coordinates; ``diagonal``: in the
        coordinates where ``A`` is diagonal (complex modal coordinates), where the target has them
        (``work_*`` of a Schur-form target ignore it)."""
        if self.method == "schur":
            return self.B_F, self.C_F
        if self.real and not diagonal:
            if self._work_bc is None:  # kept until the next rescaling (the starts ask often)
                self._work_bc = (self._Jinv(self.Bt).real.to(self.dtype), self._JH(self.Ct.mH).mH.real.to(self.dtype))
            return self._work_bc
        return self.Bt, self.Ct

    def work_apply_A(self, X: Tensor, diagonal: bool = False) -> Tensor:
        if self.method == "schur":
            return self.A_F.to(X.dtype) @ X
        if self.real and not diagonal:
            Y = self._Jinv(self.lam[:, None] * self._J(X.to(self.cdt)))
            return Y.real.to(X.dtype) if not X.is_complex() else Y
        return self.lam[:, None] * X

    def work_shifted_solve(self, sigma: Tensor, X: Tensor, adjoint: bool = False, diagonal: bool = False) -> Tensor:
        """Columns ``(sigma_k I - A_w)^{-1} x_k`` (or ``(sigma_k I - A_w)^{-H} x_k``), complex; batched
        over the leading dimensions of ``sigma`` (..., k) and ``X`` (..., N, k); ``diagonal``: in
        the complex modal coordinates (``work_BC``)."""
        X = X.to(self.cdt)
        sigma = sigma.to(self.cdt)
        if self.method == "schur":
            form = self._schur  # Schur form of A_F^H: A_F^H = U T U^H (complex form needed here)
            if not form.complex_form:
                form = form.to_complex()
                self._schur = form
            T, U = form.T, form.U  # of the original matrix A_F^H (adjoint flag False)
            # A_F = U T^H U^H; (s I - A_F)^{-1} x = U (s I - T^H)^{-1} U^H x
            Tm = T.mH if not adjoint else T
            Y = U.mH @ X
            sig = sigma.conj() if adjoint else sigma
            Y2, S2 = Y.reshape(-1, *Y.shape[-2:]), sig.reshape(-1, sig.shape[-1])
            out = torch.empty_like(Y2)
            I = torch.eye(self.N, dtype=self.cdt)
            # one O(N^2) triangular solve per shift (a batched solve would hold an N x N matrix per
            # shift and problem); this is the fallback for targets without a usable modal form
            for b in range(Y2.shape[0]):
                for k in range(Y2.shape[-1]):
                    out[b, :, k] = torch.linalg.solve_triangular(S2[b, k] * I - Tm, Y2[b, :, k:k + 1],
                                                                 upper=adjoint)[:, 0]
            return U @ out.reshape(Y.shape)
        lam = self.lam
        if self.real and not diagonal:
            if adjoint:
                return self._JH(self._JinvH(X) / (sigma.conj()[..., None, :] - lam.conj()[:, None]))
            return self._Jinv(self._J(X) / (sigma[..., None, :] - lam[:, None]))
        if adjoint:
            return X / (sigma.conj()[..., None, :] - lam.conj()[:, None])
        return X / (sigma[..., None, :] - lam[:, None])

    def work_gramian_factors(self, tol: float = 1e-15, max_rank: int | None = None) -> tuple[Tensor, Tensor]:
        """Low-rank factors ``(L_P, L_Q)`` of the Gramians of the normalized target in working
        coordinates (pivoted Cholesky to ``tol`` times the largest diagonal entry, at most
        ``max_rank`` columns: low-rank square-root balanced truncation for large targets); modal:
        ``cauchy_pivoted_cholesky``, O(N k (p + m + k))."""
        if self.method == "schur":
            from ...analysis._hankel import gramian_factor
            from ....equations import controllability_gramian

            P = controllability_gramian(self.A_F, self.B_F, discrete=self.discrete)
            Q = observability_gramian(self.A_F, self.C_F, discrete=self.discrete)
            return gramian_factor(P), gramian_factor(Q)
        # modal Gramians P_ij = -b_i^T conj(b_j) / (lam_i + conj lam_j), Q_ij = -c_i^H c_j / (conj lam_i
        # + lam_j) (continuous; discrete: 1 / (1 - ...)), factored without forming them; working
        # coordinates of a real target: J^{-1} P J^{-H} and J^H Q J (real), as the pairs demand
        kw = dict(discrete=self.discrete, tol=tol, max_rank=max_rank, real=self.real,
                  pairs=(self.pi, self.pj) if self.real else None)
        return (cauchy_pivoted_cholesky(self.Bt, self.lam, scale=1.0, **kw),
                cauchy_pivoted_cholesky(self.Ct.mH, self.lam.conj(), scale=0.5, **kw))
