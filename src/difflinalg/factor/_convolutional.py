r"""``ConvolutionalSolver``: the x-update of convolutional sparse coding, one small system per frequency.

In ADMM for convolutional sparse coding (Bristow, Eriksson, Lucey, CVPR 2013; Wohlberg, "Efficient
algorithms for convolutional sparse representations", IEEE TIP 25(1), 2016) with ``M`` filters and
``C`` channels, the coefficient update is, in the DFT domain, one system per frequency ``f``::

    (rho I_M + D_f^H D_f) x_f = b_f,    D_f (C x M): the filters' DFTs at f,   b_f (M,)

Single channel (``C = 1``). ``D_f = d^T`` is a row (``d = D_hat[f, 0, :]``) and Sherman-Morrison
gives, with ``a = conj(d)`` and ``a^H b = sum(d * b)``::

    x = b / rho - a (a^H b) / (rho (rho + |a|^2))                              (Wohlberg, eq. 20)

elementwise over the frequencies: O(M) per frequency and right-hand side, no factorization. The
per-frequency scale ``q = 1 / (rho (rho + |a|^2))`` is computed once per ``(D_hat, rho)``. The
formula is a composition of differentiable torch operations, so its derivatives in ``D_hat`` and
``b_hat`` (reverse, forward, second order, ``torch.func``) are autograd's, exact.

Not in ``rho``: autograd differentiates ``b / rho`` and ``a c q`` separately, two terms of size
``|b| / rho^2`` that cancel to ``A^{-2} b``, of size ``|b| / (rho + |a|^2)^2`` along ``a``: a relative
error ``eps kappa_f^2`` instead of ``eps kappa_f`` (measured in complex64 at ``kappa eps ~ 1e-3``,
below the warning: the rho-gradient off by a factor 7, where the analytic rule
``grho = -Re sum(conj(z) y)`` is off by 3e-3). So ``method="auto"`` uses the closed form only when
``rho`` is a constant (a Python number or a tensor that carries no derivative: the usual
hyperparameter); when ``rho`` is differentiated (``requires_grad``, a forward-mode tangent, a
``torch.func`` transform) it uses the ``RegularizedSolver`` below with its 1 x 1 factor, whose rules
are analytic. ``method="sherman-morrison"`` forces the closed form and then warns
``PrecisionWarning`` from ``kappa^2`` for the rho-derivative.

Several channels (``C > 1``). Woodbury with the C x C matrix ``rho I_C + D_f D_f^H``: a
``RegularizedSolver(D_hat, rho, gram="DhD")`` (its ``method="auto"`` factors the C x C form when
``C < M``), factorized once, with its own rules (one factor shared by every solve and derivative).
The right-hand sides' extra leading dimensions (a batch of images) become the columns of one block
per frequency, so every solve is one batched product ``(F, C, M) @ (F, M, batch)``.

Error bound (single channel). The operator at ``f`` has eigenvalues ``rho`` (M - 1 times) and
``rho + |a|^2``, condition ``kappa_f = 1 + |a|^2 / rho``. Write ``b = b_perp + a beta``
(``beta = a^H b / |a|^2``); then ``x = b_perp / rho + a beta / (rho + |a|^2)``. The computed
``b - a w`` (``w = (a^H b) q rho``) has an absolute error ``~ 2 eps |b|`` (``|a w| <= |b|``) and
the rounding of ``s = rho + |a|^2`` perturbs ``a w`` by ``~ eps |a beta| <= eps |b|``; divided by
``rho`` this is ``<= 3 eps |b| / rho``, while ``|x| >= |b| / (rho + |a|^2)``. So

    |x_computed - x| / |x| <= (3 + M) eps kappa_f

(the ``M`` from the rounding of the sum ``a^H b``, which enters ``a w`` relative to ``|b| / rho``
too; it adds in quadrature in practice): the bound of a backward-stable solve, Sherman-Morrison
loses nothing against a factorization here. Measured in complex64 (400 frequencies, M = 4..64,
rho = 1..1e-3, against complex128): ``max err / (kappa_f eps)`` is 0.0-0.6 for random ``b`` and
1.4-3.0 for ``b`` in the range of ``D_f^H`` (where ``x`` is the small difference of two large terms),
the same for the Woodbury path at C = 3 with ``kappa_f = 1 + ||D_f||_2^2 / rho``
(``tests/factor/test_convolutional.py``).
The derivatives are solves with the same operator (``gb = A^{-1} g``; ``gD`` and ``grho`` products
of such solves), with the same relative bound. When ``rho`` falls below ``eps |a|^2`` the bound
reaches 1: ``s`` rounds to ``|a|^2`` and the component of ``x`` along ``a`` is pure rounding. The
solver warns ``PrecisionWarning`` (``_utils.check_precision``) when
``max_f kappa_f * eps > PRECISION_TOL`` (float32: ``rho < |a|^2 / 8.4e4``), measured on the
frequencies at construction (one reduction and one host synchronisation, skipped inside
``torch.func``). For ``C > 1`` the ``RegularizedSolver`` estimate (``max ||L[i, :]||^2 / rho``,
the same quantity) applies.
"""

from __future__ import annotations

import math

import torch
import torch.autograd.forward_ad as _fwAD
from torch import Tensor

from .._errors import InputError, TransformCheckWarning
from .._utils import (
    as_tensor,
    broadcast_shapes,
    check_finite,
    check_finite_sum,
    check_matrix,
    check_precision,
    check_same_dtype,
    is_wrapped,
    reject_meta,
    warn_once,
)
from ._regularized_inputs import prepare_D_rho
from ._regularized_solver import RegularizedSolver

METHODS = ("auto", "sherman-morrison", "woodbury", "direct")


def _differentiated(rho) -> bool:
    """Whether ``rho`` (as passed: a Python number is a constant) may carry a derivative:
    ``requires_grad``, a forward-mode tangent, or a ``torch.func`` level (differentiated or
    batched: which one cannot be told from inside)."""
    if not isinstance(rho, Tensor):
        return False
    return rho.requires_grad or is_wrapped(rho) or _fwAD.unpack_dual(rho).tangent is not None


class ConvolutionalSolver:
    """Solves ``(rho I_M + D_f^H D_f) x_f = b_f`` at every frequency ``f`` (the convolutional sparse
    coding x-update in the DFT domain), factorized once per ``(D_hat, rho)``.

    Args:
        D_hat: (..., C, M): the DFTs of ``M`` filters with ``C`` channels at every frequency; the
            leading dimensions are the frequency axes (e.g. ``H x (W // 2 + 1)`` from
            ``torch.fft.rfft2``) and any batch of problems. complex64 or complex128 (float32 and
            float64 are accepted too), finite. From spatial filters ``d`` of shape
            (M, C, h, w) and images of size ``H x W``:
            ``torch.fft.rfft2(d, s=(H, W)).permute(2, 3, 1, 0)`` (H, W // 2 + 1, C, M).
        rho: positive real: a Python number, a 0-d tensor, or a real tensor (D_hat's real dtype)
            whose shape broadcasts with ``D_hat.shape[:-2]`` (e.g. one rho per problem, with
            trailing 1s over the frequency axes).
        method: ``"auto"`` (default): Sherman-Morrison for ``C = 1`` with a constant ``rho``, else
            the ``RegularizedSolver`` that factors the smaller of ``rho I_C + D D^H`` (Woodbury) and
            ``rho I_M + D^H D`` (module docstring: the closed form's derivative in ``rho`` is
            inaccurate); ``"sherman-morrison"`` (needs ``C = 1``), ``"woodbury"`` (C x C Cholesky)
            or ``"direct"`` (M x M Cholesky) force one form. The form used: ``.method``.

    Every ``solve`` is differentiable with respect to ``D_hat``, ``rho`` (as passed here) and its
    ``b_hat``: reverse mode, forward mode, second order, ``torch.func`` transforms, and inside
    ``difflinalg.checkpoint.binomial_loop`` steps (the solver's tensors are captured like any torch
    op's arguments). Like ``RegularizedSolver`` it is a snapshot of ``(D_hat, rho)``: build a new
    one after each update of the filters.

    Raises:
        InputError: ``D_hat`` not a (batched) C x M matrix, of an unsupported dtype, non-finite or a
            meta tensor; ``rho`` complex, of another real dtype, ``<= 0``, non-finite, or of a
            shape that does not broadcast with the frequencies; an unknown ``method``, or
            ``"sherman-morrison"`` with ``C > 1``. All checked before any work.
        NotPositiveDefiniteError: (``C > 1``) if rounding makes a C x C system indefinite.

    Warns:
        PrecisionWarning: when ``max_f (1 + |D_f|^2 / rho) * eps > PRECISION_TOL`` (the module's
            error bound; float32: ``rho`` below ``|D_f|^2 / 8.4e4``): compute in complex128; with
            ``method="sherman-morrison"`` and a differentiated ``rho``, from the square of that
            condition (the closed form's rho-derivative).

    Example::

        import torch
        from difflinalg import ConvolutionalSolver

        g = torch.Generator().manual_seed(0)
        M, C, H, W = 4, 1, 8, 8
        d = torch.randn(M, C, 3, 3, dtype=torch.float64, generator=g, requires_grad=True)
        D_hat = torch.fft.rfft2(d, s=(H, W)).permute(2, 3, 1, 0)     # (8, 5, 1, 4)
        b_hat = torch.randn(2, H, W // 2 + 1, M, dtype=torch.complex128, generator=g)
        solver = ConvolutionalSolver(D_hat, 0.5)                      # Sherman-Morrison
        x_hat = solver.solve(b_hat)                                   # (2, 8, 5, 4)
        A = 0.5 * torch.eye(M, dtype=torch.complex128) + D_hat.mH @ D_hat
        assert torch.allclose(x_hat, torch.linalg.solve(A, b_hat.unsqueeze(-1)).squeeze(-1))
        x_hat.abs().square().sum().backward()                        # gradient wrt the filters
        assert d.grad.shape == (M, C, 3, 3)
    """

    def __init__(self, D_hat: Tensor, rho, *, method: str = "auto"):
        if method not in METHODS:
            raise InputError(f"method: expected one of {METHODS}, got {method!r}")
        reject_meta("D_hat", D_hat)
        D_hat = check_matrix(D_hat, "D_hat", finite=False)
        check_finite_sum(D_hat, "D_hat")
        C, M = D_hat.shape[-2:]
        if method == "sherman-morrison" and C != 1:
            raise InputError(
                f"method: 'sherman-morrison' needs a single channel (D_hat.shape[-2] == 1), got "
                f"C = {C} (D_hat of shape {tuple(D_hat.shape)}); use method='auto' or 'woodbury'"
            )
        if isinstance(rho, (int, float)) and not isinstance(rho, bool) and not rho > 0:
            # a number's sign is known even where torch.func wraps the tensor made from it
            raise InputError(f"rho: must be positive (rho I + D_f^H D_f is then positive definite), "
                             f"got {rho!r}; use rho > 0")
        _, r = prepare_D_rho(D_hat, rho)  # rho's checks (real, positive, finite, dtype): (..., 1, 1)
        try:
            self._batch = broadcast_shapes(D_hat.shape[:-2], r.shape[:-2])
        except RuntimeError as exc:
            raise InputError(
                f"rho: shape {tuple(r.shape[:-2])} does not broadcast with D_hat's frequency/batch "
                f"shape {tuple(D_hat.shape[:-2])}; pass a scalar, or one rho per problem with "
                f"trailing 1s over the frequency axes"
            ) from exc
        self._D = D_hat.resolve_conj().resolve_neg()
        self._rho = r[..., 0, 0]
        self.channels, self.filters = C, M
        if method == "sherman-morrison" or (method == "auto" and C == 1 and not _differentiated(rho)):
            self.method = "sherman-morrison"
            self._inner = None
            self._sherman_morrison_setup(_differentiated(rho), isinstance(rho, Tensor) and is_wrapped(rho))
        else:
            self.method = "woodbury" if method == "auto" and C < M else ("direct" if method == "auto" else method)
            self._inner = RegularizedSolver(self._D, rho, gram="DhD", method=self.method)

    def _sherman_morrison_setup(self, rho_differentiated: bool, rho_unchecked: bool) -> None:
        """The per-frequency constants: ``a = conj(d)`` and ``q = 1 / (rho (rho + |d|^2))``, with
        autograd (the solves' derivatives in ``D_hat`` and ``rho`` flow through them)."""
        d = self._D[..., 0, :]
        rho = self._rho
        s = rho + d.abs().square().sum(dim=-1)
        if rho_unchecked:
            # rho's sign could not be checked (torch.func): a rho <= 0 would give a finite, wrong x
            warn_once("convolutional-transform-rho",
                      "ConvolutionalSolver: inside torch.func rho > 0 cannot be checked: the solution "
                      "(and its derivatives) for a rho <= 0 is NaN instead of an InputError",
                      TransformCheckWarning)
            s = torch.where(rho > 0, s, torch.full_like(s, math.nan))
        with torch.no_grad():
            kappa = s / rho
            check_precision("ConvolutionalSolver", kappa, d.dtype,
                            "the per-frequency solve (rho I + D_f^H D_f)^{-1} b (Sherman-Morrison)")
            if rho_differentiated:
                check_precision("ConvolutionalSolver", kappa.square(), d.dtype,
                                "the derivative in rho of the Sherman-Morrison closed form "
                                "(use method='auto': analytic rule)")
        self._d = d
        self._a = d.conj().resolve_conj()
        self._q = (rho * s).reciprocal().unsqueeze(-1)
        self._rho_inv = rho.reciprocal().unsqueeze(-1)

    @property
    def D_hat(self) -> Tensor:
        """The filters' DFTs (..., C, M) as passed (lazily conjugated views materialized)."""
        return self._D

    @property
    def rho(self) -> Tensor:
        """``rho`` as a real tensor in ``D_hat``'s real dtype (0-d for a scalar)."""
        return self._rho

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """``D_hat.shape[:-2]`` (the frequency axes and any batch of problems) broadcast with
        ``rho``'s shape."""
        return self._batch

    def _check_rhs(self, b_hat) -> Tensor:
        reject_meta("b_hat", b_hat)
        b = as_tensor(b_hat, "b_hat")
        if self._D.is_complex() and not b.is_complex() and b.dtype.is_floating_point:
            raise InputError(
                f"b_hat: expected {str(self._D.dtype).replace('torch.', '')} like D_hat, got "
                f"{str(b.dtype).replace('torch.', '')}: b_hat is a DFT (e.g. torch.fft.rfft2 of "
                f"the right-hand side over the image axes, with the filters last)"
            )
        check_same_dtype(D_hat=self._D, b_hat=b)
        if b.ndim == 0 or b.shape[-1] != self.filters:
            raise InputError(
                f"b_hat: expected shape (..., {self.filters}) (the number of filters M = "
                f"D_hat.shape[-1] last, after the frequency axes), got {tuple(b.shape)}"
            )
        try:
            broadcast_shapes(b.shape[:-1], self._batch)
        except RuntimeError as exc:
            raise InputError(
                f"b_hat: batch shape {tuple(b.shape[:-1])} does not broadcast with the frequency "
                f"shape {self._batch} of D_hat (and rho); b_hat is (..., *frequencies, M) with "
                f"the frequency axes of D_hat.shape[:-2] right before M"
            ) from exc
        return b.resolve_conj().resolve_neg()

    def solve(self, b_hat: Tensor) -> Tensor:
        """``x_f = (rho I + D_f^H D_f)^{-1} b_f`` at every frequency, with the stored factorization.

        Args:
            b_hat: (..., M) of ``D_hat``'s dtype, finite: the right-hand sides at every frequency
                (M = the number of filters last, the frequency axes of ``D_hat`` before it, any
                batch of images before those).

        Returns:
            ``x_hat`` of shape ``b_hat.shape`` broadcast with ``batch_shape + (M,)``,
            differentiable with respect to ``b_hat``, ``D_hat`` and ``rho``.

        Raises:
            InputError: ``b_hat`` of another dtype (a real ``b_hat`` is named as a missing DFT),
                without ``M`` last, of a batch shape that does not broadcast, non-finite, or meta.
        """
        b = self._check_rhs(b_hat)
        if self._inner is None:
            # a^H b = sum(d * b): every b entry enters a finite product with a finite d, so a finite
            # sum of it proves b finite (NaN and inf propagate, also times 0), saving a pass over b
            c = (self._d * b).sum(dim=-1, keepdim=True)
            if not is_wrapped(c) and c.numel():
                total = complex(c.detach().sum().item())
                if not (math.isfinite(total.real) and math.isfinite(total.imag)):
                    check_finite(b, "b_hat")
            return torch.addcmul(b * self._rho_inv, self._a, c * self._q, value=-1)
        check_finite_sum(b, "b_hat")
        return self._block_solve(b)

    def _block_solve(self, b: Tensor) -> Tensor:
        """``RegularizedSolver.solve`` with the image batch as the columns of one block per
        frequency: b (*extra, *batch, M) -> (*batch, M, prod(extra))."""
        k = b.ndim - 1 - len(self._batch)
        if k <= 0:  # no extra dimensions: one column (pad to the solver's batch rank, see below)
            blk = b.reshape((1,) * -k + tuple(b.shape[:-1]) + (self.filters, 1))
            return self._inner.solve(blk)[..., 0]
        # (a block of rank >= D_hat's is never read as a vector by RegularizedSolver.solve).
        # Contiguous: the solve's batched products and their backward then run on packed
        # (F, M, columns) operands (measured ~5% faster per solve than on the strided view).
        extra = b.shape[:k]
        blk = b.reshape(math.prod(extra), *b.shape[k:]).movedim(0, -1).contiguous()
        y = self._inner.solve(blk)
        return y.movedim(-1, 0).reshape(*extra, *y.shape[:-2], self.filters)

    __call__ = solve

    def __repr__(self) -> str:
        return (f"ConvolutionalSolver(D_hat: {tuple(self._D.shape)} "
                f"{str(self._D.dtype).replace('torch.', '')}, C={self.channels}, M={self.filters}, "
                f"method={self.method!r})")
