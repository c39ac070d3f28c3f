r"""A target system prepared once for RARL2: normalized and factorized (its criterion, psi and the
adjoint gradient at a pair ``(C, A)``, is the mixin ``_target_criterion.TargetCriterion``).

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

The modal form is also prepared for psi by residues (``F`` at the mirror images of its poles, the
noise level ``eps_f``) and, for a real target, split into real modes and conjugate pairs (half the
sums for real models: ``_modal_data``).

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
from ....equations import SchurForm, observability_gramian
from ...analysis._modal import mirror_sums, modal_h2_norm2
from ...analysis._modal_form import modal_form
from ...system._statespace import StateSpace
from ._target_criterion import TargetCriterion, small_eig  # noqa: F401 - _starts and _irka_engine import small_eig from here
from ._work import WorkingCoordinates

MODAL_COND_MAX = 1e6


class Target(TargetCriterion, WorkingCoordinates):
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
        from ...analysis._frequency import frequency_response

        return frequency_response(self.F, w)
