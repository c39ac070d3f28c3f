r"""``RegularizedSolver``: factorize ``rho I + D^H D`` (or its Woodbury partner) once, solve many times.

The unrolled-ADMM / dictionary-learning z-update solves ``(rho I + D^H D) z = x_t`` at every
iteration ``t`` with the same ``D`` and ``rho``. ``regularized_solve`` would factorize at every
call; this object holds one Cholesky factor ``L`` and applies the rules of
``_regularized_solve`` (forward, reverse, forward mode, second order: see that module) to every
``solve``.

One factor in the graph. ``L`` is computed once, without autograd, and enters each solve's
``torch.autograd.Function`` as a constant input; the Function's rules differentiate through the
dependence of ``L`` on ``(D, rho)`` analytically (``gD = -D (y z^H + z y^H)`` for ``DhD``, eq. 21
of the seed note, summed by autograd over the solves; ``grho = -Re sum(conj(z) y)``), and every
backward and JVP solves with the same ``L``. So the graph holds ``D``, ``rho``, ``L`` once and one
``y`` per solve, and the backward never refactorizes or differentiates through a factorization
(``torch.cholesky_solve``'s own backward costs an O(m^3) product per solve for the factor's
gradient; this rule's per-solve cost is O(m n r)).

Everything about ``(D, rho)`` once per solver. In the Woodbury forms the solver also keeps
``V = F^{-1} D`` (``F`` the factored m x m matrix; ``F^{-1} D^H`` for ``gram="DDh"``), formed once
from ``L`` at construction (``_regularized_solve.woodbury_operator``). Then a first-order solve
is ``t = V x``, ``y = (x - D^H t) / rho`` and its backward ``u = V g``,
``z = (g - D^H u) / rho``, ``gD = -[t, u] [z, y]^H``: five thin products per solve and backward
(``6 m n r`` multiply-adds), no triangular solve, where plain-torch factor-once pays ``6 m n r +
3 m^2 r + m^3`` (two triangular solves forward, two backward and the factor's gradient). The
memory for ``V`` (one more m x n matrix per solver) is not per solve. Under ``torch.func`` and
in second-order derivatives the rules solve with ``L`` as before. A 2-D block ``x`` for a 2-D
``D`` and a scalar ``rho`` skips the general shape logic (the dtype, size and finiteness checks
remain): at 8 x 16 that is ~15 us of ~60 us per call.

The factor is a snapshot of ``(D, rho)`` at construction: changing ``D`` in place afterwards
makes the solves (and autograd's version check on the saved ``D``) inconsistent; build a new
solver after each update of ``D`` (once per training step in dictionary learning).

Capture by ``binomial_loop``. The solves dispatch ``__torch_function__`` before applying the
Function (``_regularized_solve.solve_with``), so the loop's capture mode sees ``D`` and ``rho``
as the arguments of a torch call and cuts each taped step at them, as for any torch op.
"""

from __future__ import annotations

from torch import Tensor

import torch

from .._utils import check_finite_sum, is_wrapped
from ._regularized_inputs import check_gram_method, prepare_D_rho, prepare_rhs
from ._regularized_gram import factorize, woodbury_operator
from ._regularized_solve import solve_with


class RegularizedSolver:
    """Solves ``(rho I + D^H D) y = x`` (``gram="DhD"``) or ``(rho I + D D^H) y = x`` (``"DDh"``) for
    any number of right-hand sides with one Cholesky factorization.

    Args:
        D: (..., m, n) float32, float64, complex64 or complex128, finite.
        rho: positive real: a Python number, a 0-d tensor, or a real tensor whose shape broadcasts
            with the batch shape of ``D`` (one rho per problem), of D's real dtype.
        gram: which operator, ``"DhD"`` (n x n) or ``"DDh"`` (m x m).
        method: ``"direct"`` factorizes the operator's own Gram matrix, ``"woodbury"`` the other
            one (Woodbury identity), ``"auto"`` (default) the smaller of the two (ties: direct),
            which is also the better conditioned one.

    Every ``solve`` is differentiable with respect to ``D``, ``rho`` (as passed here) and its
    ``x``: reverse mode, forward mode, second order, ``torch.func`` transforms, and inside
    ``difflinalg.checkpoint.binomial_loop`` steps; all of them use the one factor.

    Raises:
        InputError: bad ``D``/``rho``/``gram``/``method`` (shape, dtype, non-finite, ``rho <= 0``,
            complex ``rho``, meta tensors), checked before the factorization.
        NotPositiveDefiniteError: if rounding makes ``rho I + Gram`` numerically indefinite.

    Warns:
        PrecisionWarning: when the factor's condition estimate times ``eps`` exceeds
            ``PRECISION_TOL`` (see ``regularized_solve``): compute in float64.

    Example::

        import torch
        from difflinalg import RegularizedSolver

        g = torch.Generator().manual_seed(0)
        D = torch.randn(8, 16, dtype=torch.float64, generator=g, requires_grad=True)
        s = torch.randn(8, dtype=torch.float64, generator=g)
        solver = RegularizedSolver(D, 1.0)           # factorizes once: rho I + D D^T (8 x 8)
        z = torch.zeros(16, dtype=torch.float64)
        for _ in range(3):                           # unrolled iterations, no refactorization
            z = solver.solve(D.mT @ s + z)
        z.square().sum().backward()                  # D.grad through all three solves
        assert solver.factored == "DDh" and D.grad.shape == (8, 16)
    """

    def __init__(self, D: Tensor, rho, *, gram: str = "DhD", method: str = "auto"):
        check_gram_method(gram, method)
        D, r = prepare_D_rho(D, rho)
        self._L, self._factored = factorize(D, r, gram, method)
        self._D = D.resolve_conj().resolve_neg()
        self._rho = r
        # Woodbury forms: the inner solve as one matrix, V = F^{-1} D (or F^{-1} D^H), once per
        # solver, so that each eager first-order solve and backward is products only (no
        # triangular solves per call; benchmarks/admm.py). Under torch.func the rules use L.
        self._V = self._rinv = None
        # The common call, one unbatched block x (k, r) for an unbatched D and a scalar rho, takes a
        # shorter path in ``solve`` (the same checks, ~15 us less Python per call).
        self._plain_k = (self._D.shape[-1] if gram == "DhD" else self._D.shape[-2]) \
            if self._D.ndim == 2 and r.shape == (1, 1) else None
        if self._factored != gram and not (is_wrapped(D) or is_wrapped(r)):
            with torch.no_grad():
                self._V = woodbury_operator(self._D.detach(), self._L, gram)
                if r.numel() == 1:  # 1 / rho as a number for the fused addmm (one host read, here)
                    self._rinv = 1.0 / float(r)
        self.gram = gram
        self.method = method

    @property
    def D(self) -> Tensor:
        """The matrix ``D`` (..., m, n) as passed (lazily conjugated views materialized); the
        solves are differentiable with respect to it."""
        return self._D

    @property
    def rho(self) -> Tensor:
        """``rho`` as a real tensor of shape (..., 1, 1) in ``D``'s real dtype (a 0-d ``rho`` gives
        (1, 1)); the solves are differentiable with respect to it if it was a tensor with
        ``requires_grad``."""
        return self._rho

    @property
    def factored(self) -> str:
        """Which Gram matrix the factor is of: ``"DhD"`` (``rho I + D^H D``, n x n) or ``"DDh"``
        (``rho I + D D^H``, m x m); differs from ``gram`` when the Woodbury form is used."""
        return self._factored

    @property
    def factor(self) -> Tensor:
        """The lower Cholesky factor ``L`` of ``rho I + Gram`` for ``factored``: (..., n, n) or
        (..., m, m) in ``D``'s dtype, batch shape that of ``D`` broadcast with ``rho``'s; computed
        once at construction, without an autograd graph."""
        return self._L

    def solve(self, x: Tensor) -> Tensor:
        """``(rho I + Gram)^{-1} x`` with the stored factor (no refactorization).

        Args:
            x: same dtype as ``D``, finite; a vector (..., k) or a block (..., k, r) with k = n
                for ``"DhD"`` and k = m for ``"DDh"``, read as in ``regularized_solve``; its batch
                dimensions broadcast with those of ``D`` and ``rho``.

        Returns:
            ``y`` in ``D``'s dtype with the shape of ``x`` broadcast with the batch shape,
            differentiable with respect to ``x``, ``D`` and ``rho``.

        Raises:
            InputError: ``x`` of another dtype than ``D``, of the wrong size, with a batch shape
                that does not broadcast, with non-finite values, or a meta tensor.

        Example::

            import torch
            from difflinalg import RegularizedSolver

            D = torch.tensor([[1.0, 2.0], [0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
            solver = RegularizedSolver(D, 0.5)
            X = torch.eye(2, dtype=torch.float64)        # a block of two right-hand sides
            Y = solver.solve(X)                          # (rho I + D^T D)^{-1}
            assert torch.allclose(Y, torch.linalg.inv(0.5 * X + D.mT @ D))
        """
        if (type(x) is Tensor and x.ndim == 2 and x.shape[0] == self._plain_k and x.dtype == self._D.dtype
                and not (x.is_meta or x.is_conj() or x.is_neg())):
            # What prepare_rhs checks and does, for this case: a 2-D x is a block (D is 2-D), the
            # dtype and size match, the batch shapes are empty; finiteness remains.
            check_finite_sum(x, "x")
            return solve_with(self._D, x, self._rho, self._L, self.gram, self._factored, self._V, self._rinv)
        x, vector = prepare_rhs(self._D, x, self._rho, self.gram)
        y = solve_with(self._D, x, self._rho, self._L, self.gram, self._factored, self._V, self._rinv)
        return y.squeeze(-1) if vector else y

    __call__ = solve

    def __repr__(self) -> str:
        m, n = self._D.shape[-2:]
        return (f"RegularizedSolver(D: {tuple(self._D.shape)} {str(self._D.dtype).replace('torch.', '')}, "
                f"gram={self.gram!r}, factored={self._factored!r} ({m if self._factored == 'DDh' else n}"
                f" x {m if self._factored == 'DDh' else n}))")
