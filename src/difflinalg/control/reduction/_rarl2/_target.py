r"""A target system prepared once for RARL2: normalized, factorized, with the criterion's solves.

Normalization. The optimizer works on ``F~`` with ``||F~||_2 = 1`` and, in continuous time,
frequencies scaled by ``omega`` (``F~(s) = F(omega s) sqrt(omega) / ||F||``, realization
``(A_F / omega, B_F / ||F||, C_F / sqrt(omega))``), so that the criterion is the squared relative
error and the parameters are O(1). A model ``(A, B, C)`` for ``F~`` is the model
``(omega A, ||F|| B, sqrt(omega) C)`` for ``F`` (output normality is preserved).

Factorizations (computed once; rarl2-math.md section 4):

* ``"modal"`` (default when the eigenvector basis of ``A_F`` is well conditioned, cond <=
  ``MODAL_COND_MAX``): ``A_F = W diag(lambda) W^{-1}``; block-diagonal ``A_F`` (modal-form models,
  detected from the zero pattern) are diagonalized block by block. The criterion only depends on the
  transfer function, so it is evaluated in the coordinates ``(diag(lambda), W^{-1} B_F, C_F W)``, where
  the cross Sylvester/Stein equation with the small ``A = V diag(mu) V^{-1}`` is solved by an
  elementwise division: O(N n (n + p + m)) per evaluation instead of O(N^2 n).
* ``"schur"``: ``A_F^H`` in Schur form once (``difflinalg.SchurForm``); each evaluation builds
  ``difflinalg.SylvesterOperator`` / ``SteinOperator`` with it and the small ``A`` (which factorizes
  only ``A``) and solves the cross equation and its adjoint: O(N^2 n + N n^2).

Both give psi (the concentrated criterion), the optimal ``B`` and the adjoint gradient::

    continuous: A_F^H Q12 + Q12 A + C_F^H C = 0,   A P12 + P12 A_F^H + B_hat B_F^H = 0
                grad_A = -2 (P12 Q12)^H,          grad_C = -2 C_F P12^H
    discrete:   Q12 = A_F^H Q12 A + C_F^H C,       P12 = A P12 A_F^H + B_hat B_F^H
                grad_A = -2 (P12 A_F^H Q12)^H,    grad_C = -2 C_F P12^H
    B_hat = Q12^H B_F,  psi = ||F||^2 - ||D_F||^2 - ||B_hat||_F^2   (D_hat = D_F, discrete)

For a real target the working coordinates of the start heuristics (``_work.WorkingCoordinates``)
are the real modal coordinates: a conjugate pair ``(w, conj w)`` of eigenvectors becomes
``(Re w, Im w)``, with 2 x 2 blocks ``[[Re l, Im l], [-Im l, Re l]]``, so real reduced models come
out real.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ...._errors import ConvergenceError
from ...._utils import eps
from ....equations import SchurForm, SteinOperator, SylvesterOperator, observability_gramian
from ...analysis._modal import mirror_sums, modal_form, modal_h2_norm2, recip_
from ...system._statespace import StateSpace
from ._work import WorkingCoordinates

MODAL_COND_MAX = 1e6
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


class Target(WorkingCoordinates):
    """The target of a reduction, normalized and factorized once (module docstring).

    Args:
        F: stable, unbatched ``StateSpace`` (continuous: D = 0).
        method: ``"auto"``, ``"modal"`` or ``"schur"``.
    """

    def __init__(self, F: StateSpace, method: str = "auto"):
        self.F = F
        self.discrete = F.discrete
        self.real = not F.is_complex
        self.dtype = F.dtype
        self.cdt = torch.promote_types(F.dtype, torch.complex64)
        self.N, self.p, self.m = F.order, F.n_outputs, F.n_inputs
        self.method = None
        A = F.A.detach()
        if method in ("auto", "modal"):
            self._try_modal(A, force=(method == "modal"))
        if self.method is None:
            self._setup_schur(A)
        self.omega = 1.0
        self._normalize()

    # -- setup -----------------------------------------------------------------------------------
    def _try_modal(self, A: Tensor, force: bool) -> None:
        F = self.F
        form = modal_form(A, F.B, F.C)
        lam, Bt, Ct, cond, _ = form
        self.modal_cond = cond
        # the modal form of the original target, kept for the yardstick (``_selection``): an
        # eigendecomposition of a large target costs as much as the rest of a run
        self.modal_form = tuple(x.clone() if isinstance(x, Tensor) else x for x in form)
        if not math.isfinite(cond) or (cond > MODAL_COND_MAX and not force):
            return
        self.method = "modal"
        self.lam, self.Bt, self.Ct = lam.to(self.cdt), Bt, Ct
        self.D = F.D.detach()
        if self.real:
            self._find_pairs()

    def _find_pairs(self) -> None:
        """Indices of conjugate pairs (i, i + 1) (LAPACK returns them adjacent, conjugate vectors)."""
        lam = self.lam
        im = lam.imag
        tol = 100 * eps(self.dtype) * max(float(lam.abs().max()), 1.0)
        pos = torch.nonzero(im > tol).reshape(-1)
        real_idx = torch.nonzero(im.abs() <= tol).reshape(-1)
        if pos.numel() and (int(pos.max()) + 1 >= lam.numel()
                            or not bool(((lam[pos + 1] - lam[pos].conj()).abs() <= tol).all())):
            raise ConvergenceError("target: the eigendecomposition of the real A_F did not return "
                                   "adjacent conjugate pairs; use method='schur'")
        # make the pairs exactly conjugate (the modal data of a real system), so that the real
        # working coordinates are exactly real
        for X, dim in ((self.Bt, 0), (self.Ct, 1)):
            a = X.index_select(dim, pos)
            b = X.index_select(dim, pos + 1)
            X.index_copy_(dim, pos, 0.5 * (a + b.conj()))
            X.index_copy_(dim, pos + 1, 0.5 * (a.conj() + b))
        # make the real eigenvalues exactly real (their vectors are real)
        self.lam = self.lam.clone()
        self.lam[real_idx] = self.lam[real_idx].real.to(self.cdt)
        self.lam[pos + 1] = self.lam[pos].conj()
        self.Bt[real_idx] = self.Bt[real_idx].real.to(self.cdt)
        self.Ct[:, real_idx] = self.Ct[:, real_idx].real.to(self.cdt)
        # reorder the modes as [real, upper members of the pairs, lower members]: the pair
        # transforms (_J, ...) and the half spectrum (_modal_data) are then slices, not gathers
        perm = torch.cat([real_idx, pos, pos + 1])
        self.lam, self.Bt, self.Ct = self.lam[perm], self.Bt[perm], self.Ct[:, perm]
        nr, npr = real_idx.numel(), pos.numel()
        self.real_idx = torch.arange(nr)
        self.pi, self.pj = torch.arange(nr, nr + npr), torch.arange(nr + npr, nr + 2 * npr)
        self._nr, self._np = nr, npr

    @property
    def _schur(self) -> SchurForm:
        """Schur form of ``A_F^H`` (normalized), computed on first use."""
        if getattr(self, "_schur_form", None) is None:
            self._schur_form = SchurForm(self.A_F.mH)
        return self._schur_form

    @_schur.setter
    def _schur(self, form: SchurForm) -> None:
        self._schur_form = form

    def _setup_schur(self, A: Tensor) -> None:
        self.method = "schur"
        F = self.F
        self.A_F, self.B_F, self.C_F, self.D = A, F.B.detach(), F.C.detach(), F.D.detach()

    def _normalize(self) -> None:
        """Scale to ||F|| = 1 (and store ||F||). Modal: ``||F||^2 = ||D||^2 + sum_i c_i^H M_i conj(b_i)``
        with ``M = mirror_sums(...)`` (``_modal``); otherwise ``B^H Q B`` with the Gramian ``Q``."""
        if self.method == "modal":
            # ||F||^2 by residues: F at the mirror images of its poles, O(N^2 p m) without an N x N
            # matrix, half of it for the conjugate pairs of a real target (``mirror_sums``)
            pairs = (self.pi, self.pj) if self.real else None
            self._mirror_sums = mirror_sums(self.lam, self.Bt, self.Ct, self.discrete, pairs)
            nrm2 = modal_h2_norm2(self.Bt, self.Ct, self._mirror_sums)
        else:
            Q = observability_gramian(self.A_F, self.C_F, discrete=self.discrete)
            nrm2 = float((self.B_F.conj() * (Q @ self.B_F)).sum().real)
        if self.discrete:
            nrm2 += float((self.D.abs() ** 2).sum())
        if not nrm2 > 0:
            raise ConvergenceError("target: the H2 norm is zero (nothing to approximate)")
        self.norm = math.sqrt(nrm2)
        s = 1.0 / self.norm
        if self.method == "modal":
            self.Bt = self.Bt * s
        else:
            self.B_F = self.B_F * s
        self.D = self.D * s
        self.d2 = float((self.D.abs() ** 2).sum()) if self.discrete else 0.0
        self._residues_ready = False
        self._half = None
        self._work_bc = None

    def _mirror(self, poles: Tensor) -> Tensor:
        return 1.0 / poles.conj() if self.discrete else -poles.conj()

    @property
    def F_mirror(self):
        """``F`` at the mirror images of its poles (None without a usable modal form)."""
        self._prepare_residues()
        return self._F_mirror

    @property
    def eps_f(self) -> float:
        """Absolute noise level of psi."""
        self._prepare_residues()
        return self._eps_f

    def _prepare_residues(self) -> None:
        """``F`` at the mirror images of its poles, for psi by residues (``_modal``), and the noise
        level ``eps_f`` of psi. Without a usable modal form (or with a discrete pole at 0) psi is
        ``1 - ||D||^2 - ||B_hat||^2``, whose noise is a few hundred ``eps`` (relative to ``||F||^2 = 1``)."""
        if self._residues_ready:  # computed on first use: once, after the frequency rescaling
            return
        self._residues_ready = True
        self._F_mirror = None
        self._eps_f = max(1e-12, 100.0 * self.N * eps(torch.float64))
        if self.method != "modal":
            return
        if self.discrete and float(self.lam.abs().min()) <= 1e-8:
            return
        F1 = self._mirror_values()  # = transfer_at(lam, Bt, Ct, mirror(lam)), from _normalize's sums
        self._F_mirror = F1
        # flattened residue data for _psi_residues: K[k] = vec(c_k b_k^T), weights conj(K[k])
        self._F_mirror_flat = F1.flatten(-2)
        self._K_target = (self.Ct.mT[:, :, None] * self.Bt[:, None, :]).flatten(-2)
        W = self._K_target.conj()
        self._W_target = W / self.lam.conj()[:, None] if self.discrete else W
        scale = torch.einsum("pk,kpm,km->k", self.Ct.abs(), F1.abs(), self.Bt.abs())
        if self.discrete:
            scale = scale / self.lam.abs()
        self._eps_f = 4.0 * eps(torch.float64) * max(float(scale.sum()), 1e-300)  # measured noise: ~1-3x eps * scale

    def _modal_data(self, real_model: bool):
        """``(lam, Bt, Ct, w, F_mirror_flat, K_target, W_target)`` over which the modal criterion sums.

        For a real target and a real model the terms of a conjugate pair of target modes are
        complex conjugates of each other (the rows of ``Q12``, the columns of ``P12`` and the samples of
        the error at the mirror images are conjugate), so every sum over the target's modes is the
        real part of the sum over its real modes (weight 1) and the upper members of its pairs
        (weight 2): half the work on targets with complex poles. ``w`` is None for the full sums;
        ``K_target`` and ``W_target`` of the half spectrum carry the weights."""
        self._prepare_residues()
        full = (self.lam, self.Bt, self.Ct, None, getattr(self, "_F_mirror_flat", None),
                getattr(self, "_K_target", None), getattr(self, "_W_target", None))
        if not (real_model and self.real and self.pi.numel()):
            return full
        h = getattr(self, "_half", None)
        if h is None:
            k = self._nr + self._np  # the real modes and the upper members of the pairs (_find_pairs)
            w = torch.ones(k, dtype=self.dtype)
            w[self._nr:] = 2.0
            pick = (lambda X, wt=1.0: None if X is None else wt * X[:k])
            wc = w[:, None].to(self.cdt)
            h = (self.lam[:k], self.Bt[:k], self.Ct[:, :k], w, pick(full[4]), pick(full[5], wc),
                 pick(full[6], wc))
            self._half = h
        return h

    def rescale(self, omega: float) -> None:
        """Set the frequency scale (continuous time): ``A_F -> A_F / omega``, ``C_F -> C_F / sqrt(omega)``
        relative to the original target (the H2 norm stays 1)."""
        if self.discrete:
            return
        f = self.omega / omega
        if self.method == "modal":
            self.lam = self.lam * f
            self.Ct = self.Ct * math.sqrt(f)
        else:
            self.A_F = self.A_F * f
            self.C_F = self.C_F * math.sqrt(f)
            self._schur_form = None
        self.omega = omega
        self._residues_ready = False
        self._half = None
        self._work_bc = None

    def eigvals(self) -> Tensor:
        """Poles of the target (in its original time scale)."""
        if self.method == "modal":
            return self.lam * (self.omega if not self.discrete else 1.0)
        return self._schur.eigvals.conj() * (self.omega if not self.discrete else 1.0)

    # -- modal helpers ---------------------------------------------------------------------------
    def _cauchy(self, x: Tensor, y: Tensor) -> Tensor:
        """``1 / (conj(x_i) + y_j)`` (continuous) or ``1 / (1 - conj(x_i) y_j)`` (discrete)."""
        if self.discrete:
            return recip_(1.0 - x.conj()[..., :, None] * y[..., None, :])
        return recip_(x.conj()[..., :, None] + y[..., None, :])

    def _mirror_values(self) -> Tensor:
        """The normalized (and rescaled) target at the mirror images of its poles, (N, p, m): equal to
        ``transfer_at(lam, Bt, Ct, _mirror(lam))`` (to rounding) but from the sums ``M`` that
        ``_normalize`` computed for ``||F||`` (no second O(N^2 p m) pass): ``F~ = sqrt(omega) F(omega s)
        / ||F||`` at ``-conj(lam) / omega`` is ``sqrt(omega) M / ||F||`` (continuous), and
        ``F~(1 / conj lam) = conj(lam) M / ||F||`` (discrete)."""
        M = self._mirror_sums / self.norm
        if self.discrete:
            return self.lam.conj()[:, None, None] * M
        return M * math.sqrt(self.omega)

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

    # -- frequency response of the original target (for plots) -----------------------------------
    def frequency_response(self, w: Tensor) -> Tensor:
        """``F(i w)`` / ``F(e^{i w})`` of the original (unnormalized) target, (K, p, m)."""
        w = w.to(torch.float64)
        if self.method == "modal":
            s = torch.polar(torch.ones_like(w), w) if self.discrete else 1j * w / self.omega
            Ct = self.Ct * (math.sqrt(self.omega) if not self.discrete else 1.0)
            Bt = self.Bt * self.norm
            G = 1.0 / (s.to(self.cdt)[:, None] - self.lam[None, :])  # K x N
            H = torch.einsum("pn,kn,nm->kpm", Ct, G, Bt)
            H = H / self.omega if not self.discrete else H
            return H + self.D.to(self.cdt) * self.norm
        from ...analysis._norms import frequency_response

        return frequency_response(self.F, w)
