r"""The criterion of a prepared target at a pair ``(C, A)``: a mixin of ``Target`` (``_target``).

Modal target (``A_F = W diag(lambda) W^{-1}``, coordinates ``(diag(lambda), W^{-1} B_F, C_F W)``): the
cross Sylvester/Stein equation with the small ``A = V diag(mu) V^{-1}`` is an elementwise division by a
Cauchy matrix, O(N n (n + p + m)) per evaluation, batched over pairs; psi by residues
(``_psi_residues``) keeps the digits of a small error. Schur-form target: ``SylvesterOperator`` /
``SteinOperator`` with the Schur form of ``A_F^H`` solve the cross equation and its adjoint,
O(N^2 n + N n^2). Both give psi (the concentrated criterion), the optimal ``B`` and the adjoint gradient::

    continuous: A_F^H Q12 + Q12 A + C_F^H C = 0,   A P12 + P12 A_F^H + B_hat B_F^H = 0
                grad_A = -2 (P12 Q12)^H,          grad_C = -2 C_F P12^H
    discrete:   Q12 = A_F^H Q12 A + C_F^H C,       P12 = A P12 A_F^H + B_hat B_F^H
                grad_A = -2 (P12 A_F^H Q12)^H,    grad_C = -2 C_F P12^H
    B_hat = Q12^H B_F,  psi = ||F||^2 - ||D_F||^2 - ||B_hat||_F^2   (D_hat = D_F, discrete)

The methods read the attributes ``Target`` sets up (``method``, ``real``, ``cdt``, ``dtype``,
``discrete``, ``N``, ``p``, ``m``, ``d2``, the modal data ``_modal_data``, ``F_mirror``, the Schur form
and the normalized ``A_F``, ``B_F``, ``C_F``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ....equations import SchurForm, SteinOperator, SylvesterOperator
from ...analysis._modal import recip_

SMALL_EIG_COND_MAX = 1e6
#: batched evaluations are split into chunks whose intermediates hold at most about this many
#: complex elements (64 MB)
BATCH_ELEMENTS = 4e6


def small_eig(A: Tensor):
    """``(mu, V, V^{-1}, ok)`` of small matrices ``A`` (..., n, n) (batched; unit-norm eigenvector
    columns, as LAPACK returns them); ``ok`` is False where the eigenvector basis is singular or worse
    conditioned (1-norm) than ``SMALL_EIG_COND_MAX``, whose modal forms lose too many digits. A real
    ``A`` is decomposed as such (LAPACK's real ``geev``: twice as fast as the complex one, and
    conjugate pairs come out exactly conjugate)."""
    mu, V = torch.linalg.eig(A)
    Vi, info = torch.linalg.inv_ex(V)
    cond = torch.linalg.matrix_norm(V, 1) * torch.linalg.matrix_norm(Vi, 1)
    return mu, V, Vi, (info == 0) & (cond <= SMALL_EIG_COND_MAX)  # also False for nan


class TargetCriterion:
    """Mixin of ``Target``: psi, its adjoint gradient and ``B_hat`` at output-normal pairs (module
    docstring)."""

    def _cauchy(self, x: Tensor, y: Tensor) -> Tensor:
        """``1 / (conj(x_i) + y_j)`` (continuous) or ``1 / (1 - conj(x_i) y_j)`` (discrete)."""
        if self.discrete:
            return recip_(1.0 - x.conj()[..., :, None] * y[..., None, :])
        return recip_(x.conj()[..., :, None] + y[..., None, :])

    # -- the criterion ---------------------------------------------------------------------------
    def criterion(self, C: Tensor, A: Tensor, grad: bool = True):
        """``(psi, grad_A, grad_C, B_hat)`` at the output-normal pair ``(C, A)`` of the normalized
        target (``grad_*`` None if not ``grad``); real pairs give real gradients and ``B_hat``."""
        if self.method == "modal":
            psi, gA, gC, Bh = self._criterion_modal(C, A, grad)
            psi = float(psi)
        else:
            psi, gA, gC, Bh = self._criterion_schur(C, A, grad)
        return (psi, *self._realify(C, gA, gC, Bh, grad))

    def criterion_batch(self, C: Tensor, A: Tensor, psi: bool = True) -> tuple[Tensor, Tensor, Tensor]:
        """``(psi, grad_A, grad_C)`` for a batch of pairs ``C`` (B, p, n), ``A`` (B, n, n): batched
        evaluations (modal form; the finite-difference Hessian evaluates 2 d points at once, and an
        evaluation is dominated by the overhead of its small operations, not by its flops), in
        chunks of bounded memory. ``psi`` is a float64 tensor (B,); with ``psi=False`` it is
        ``1 - ||D||^2 - ||B_hat||^2`` (no residue sum: the finite-difference Hessian needs the
        gradients only)."""
        if self.method != "modal":
            out = [self.criterion(C[b], A[b]) for b in range(C.shape[0])]
            return (torch.tensor([o[0] for o in out], dtype=torch.float64),
                    torch.stack([o[1] for o in out]), torch.stack([o[2] for o in out]))
        outs = [self._modal_batch(Ck, Ak, True, psi) for Ck, Ak in self._chunks(C, A)]
        return tuple(torch.cat(t) for t in zip(*outs))

    def psi_batch(self, C: Tensor, A: Tensor) -> Tensor:
        """The criterion at a batch of output-normal pairs (float64 tensor (B,))."""
        if self.method != "modal":
            return torch.tensor([self.criterion(C[b], A[b], grad=False)[0] for b in range(C.shape[0])],
                                dtype=torch.float64)
        return torch.cat([self._modal_batch(Ck, Ak, False, True)[0] for Ck, Ak in self._chunks(C, A)])

    def _chunks(self, C: Tensor, A: Tensor):
        n = A.shape[-1]
        per = 4 * self.N * max(n, self.p * self.m)  # complex elements of the live intermediates
        k = max(1, int(BATCH_ELEMENTS // per))
        return ((C[i:i + k], A[i:i + k]) for i in range(0, A.shape[0], k))

    def _modal_batch(self, C: Tensor, A: Tensor, grad: bool, residues: bool):
        """One batched modal evaluation; members whose eigenvector basis is too ill-conditioned
        for the eigen path are evaluated one by one (dense-solve path)."""
        mu, V, Vi, ok = small_eig(A)
        if bool(ok.all()):
            out = self._criterion_modal(C, A, grad, residues, eig=(mu, V, Vi))
        else:
            out = [self._criterion_modal(C[b], A[b], grad, residues) for b in range(A.shape[0])]
            out = [torch.stack(t) if t[0] is not None else None for t in zip(*out)]
        psi, gA, gC, Bh = out
        if not grad:
            return (psi.to(torch.float64),)
        gA, gC, _ = self._realify(C, gA, gC, Bh, True)
        return psi.to(torch.float64), gA, gC

    @staticmethod
    def _realify(C, gA, gC, Bh, grad):
        if not C.is_complex():
            Bh = Bh.real
            if grad:
                gA, gC = gA.real, gC.real
        return gA, gC, Bh

    def _small_eig(self, A: Tensor):
        """``(mu, V, V^{-1})`` of the small ``A`` (``small_eig``), None unless all are ok."""
        mu, V, Vi, ok = small_eig(A)
        return (mu, V, Vi) if bool(ok.all()) else None

    def _criterion_modal(self, C: Tensor, A: Tensor, grad: bool, residues: bool = True, eig=None):
        """Modal criterion for ``C`` (..., p, n), ``A`` (..., n, n); ``psi`` is a real tensor (...);
        ``eig``: ``(mu, V, V^{-1})`` of ``A`` if already computed (and well conditioned). A real model of
        a real target sums over half the target's modes (``_modal_data``): the weighted sums are
        complex, their real parts (taken here for ``B_hat`` and by ``_realify`` for the gradients) are
        the full sums."""
        half = not C.is_complex()
        lam, Bt, Ct, w, *_ = self._modal_data(half)
        Cc = C.to(self.cdt)
        R = Ct.mH @ Cc  # (..., N, n)
        sgn = 1.0 if self.discrete else -1.0
        e = eig if eig is not None else self._small_eig(A)
        if e is not None:
            mu, V, Vi = e
            G = self._cauchy(lam, mu)  # (..., N, n)
            Q12 = (sgn * (R @ V) * G) @ Vi
        else:  # defective / ill-conditioned A: N small dense solves (rows of Q12)
            Ac = A.to(self.cdt)
            I = torch.eye(A.shape[-1], dtype=self.cdt)
            lc = lam.conj()[:, None, None]
            M = (I - lc * Ac[..., None, :, :]) if self.discrete else (lc * I + Ac[..., None, :, :])
            LU, piv = torch.linalg.lu_factor(M)
            Q12 = sgn * torch.linalg.lu_solve(LU, piv, R.conj()[..., None], adjoint=True)[..., 0].conj()
        if w is None:
            Bh = Q12.mH @ Bt  # (..., n, m)
        else:
            Bh = (Q12.mH @ (w[:, None] * Bt)).real.to(self.cdt)
        if residues and e is not None and self.F_mirror is not None:
            psi = self._psi_residues(mu, Cc @ V, Vi @ Bh, G, half)
        else:
            psi = 1.0 - self.d2 - (Bh.abs() ** 2).sum((-2, -1))
        if not grad:
            return psi, None, None, Bh
        S = Bh @ Bt.mH  # (..., n, N)
        if e is not None:
            P12 = V @ (sgn * (Vi @ S) * G.mT)
        else:
            P12 = sgn * torch.linalg.lu_solve(LU, piv, S.mT[..., None])[..., 0].mT
        if w is not None:
            Q12, Ct = w[:, None] * Q12, w * Ct
        if self.discrete:
            gA = -2 * (P12 @ (lam.conj()[:, None] * Q12)).mH
        else:
            gA = -2 * (P12 @ Q12).mH
        gC = -2 * Ct @ P12.mH
        return psi, gA, gC, Bh

    def _psi_residues(self, mu: Tensor, cH: Tensor, bH: Tensor, G: Tensor, half: bool = False) -> Tensor:
        """``||F - H||^2`` for ``H = sum_j cH_j bH_j^T / (s - mu_j)`` (+ ``D_F``) by residues
        (``_modal``), reusing the Cauchy matrix ``G`` of the cross equation: at the mirror images
        the resolvent kernels are ``-G`` and ``-conj(G)^T`` (continuous) or ``conj(lam) G`` and
        ``conj(mu) conj(G)^T`` (discrete). Batched over leading dimensions (real tensor (...)).

        The rank-one residues are flattened to rows (``K[j] = vec(cH_j bH_j^T)``, ``p m`` long), so
        that each error sample is one matrix product; the error ``E = F - H`` is formed pointwise
        before the weighted sum (that is what keeps the digits of a small error). ``half``: ``G`` is over
        the half spectrum of ``_modal_data`` (real model of a real target; the real part of the
        weighted half sums is the full sum)."""
        lam, _, _, _, Fm, Kt, Wt = self._modal_data(half)
        if self.discrete:
            G1, G2 = lam.conj()[:, None] * G, mu.conj()[..., :, None] * G.mH
        else:
            G1, G2 = -G, -G.mH
        K = (cH.mT[..., :, :, None] * bH[..., :, None, :]).flatten(-2)  # (..., n, p m)
        # E at the mirror images of the target's poles (N points) and of the model's (n points)
        E1 = Fm - G1 @ K  # (..., N, p m)
        s2 = self._mirror(mu)
        G3 = 1.0 / (s2[..., :, None] - mu[..., None, :])
        E2 = G2 @ Kt - G3 @ K  # (..., n, p m)
        t1 = (E1 * Wt).sum((-2, -1))  # weights conj(c_k) conj(b_k)^T (/ conj(lam_k))
        w2 = K.conj() / mu.conj()[..., :, None] if self.discrete else K.conj()
        t2 = (E2 * w2).sum((-2, -1))
        return (t1 - t2).real

    def _criterion_schur(self, C: Tensor, A: Tensor, grad: bool):
        dt = torch.promote_types(self.dtype, A.dtype)
        Af, Bf, Cf = (x.to(dt) for x in (self.A_F, self.B_F, self.C_F))
        form = self._schur if dt == self.dtype else SchurForm(Af.mH)
        R = Cf.mH @ C.to(dt)
        if self.discrete:
            op = SteinOperator(form, A.to(dt), check=False)
            Q12 = op.solve(R)
        else:
            op = SylvesterOperator(form, A.to(dt), check=False)
            Q12 = op.solve(-R)
        Bh = Q12.mH @ Bf
        psi = 1.0 - self.d2 - float((Bh.abs() ** 2).sum())
        if not grad:
            return psi, None, None, Bh
        S = Bf @ Bh.mH  # N x n: right side of the adjoint equation for P12^H
        P12h = op.solve_adjoint(S if self.discrete else -S)
        if self.discrete:
            gA = -2 * Q12.mH @ (Af @ P12h)
        else:
            gA = -2 * Q12.mH @ P12h
        gC = -2 * Cf @ P12h
        return psi, gA, gC, Bh
