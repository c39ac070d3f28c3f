"""Verification cases of svd, svd_truncated and svd_function (run by ``difflinalg verify``).

The checked functions are gauge invariant (singular values, products ``u_j v_j^H``, projectors
``U_r U_r^H`` onto separated groups, ``|U^H x|^2``): the singular vectors themselves are defined
only up to phases, and finite differences of LAPACK's choice would not be a derivative.
At degenerate points the functions are in the exact class of ``_svd_ties.py`` (invariant under
the rotations the masks drop, symmetric in a cluster's values, values and vectors of a cluster
from separate calls). ``svd_function`` is smooth everywhere (``f`` odd): its hard cases are
ties and zero singular values.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._utils import real_dtype
from ..check import randn, register_case
from ._svd import svd
from ._svd_function import svd_function
from ._svd_truncated import svd_truncated


def exact_tie(dtype, gen, s, m: int, n: int) -> Tensor:
    """A matrix with singular values exactly ``s`` (``r = len(s) <= min(m, n)``): a random
    signed partial permutation, so LAPACK returns exactly equal values for a repeated entry."""
    r = len(s)
    P = torch.eye(m, dtype=dtype)[:, torch.randperm(m, generator=gen)[:r]]
    Q = torch.eye(n, dtype=dtype)[:, torch.randperm(n, generator=gen)[:r]]
    signs = 1.0 - 2.0 * (torch.rand(r, generator=gen) < 0.5).double()
    d = torch.as_tensor(s, dtype=torch.float64) * signs
    return (P * d.to(dtype)) @ Q.mH


def with_spectrum(dtype, gen, s, m: int, n: int, batch=()) -> Tensor:
    """``U0 diag(s) V0^H`` with Haar-like random ``U0`` (m x r), ``V0`` (n x r), ``r = len(s)``."""
    s = torch.as_tensor(s, dtype=real_dtype(dtype))
    r = s.shape[-1]
    U0 = torch.linalg.qr(randn(dtype, gen, *batch, m, r)).Q
    V0 = torch.linalg.qr(randn(dtype, gen, *batch, n, r)).Q
    return (U0 * s.to(dtype)) @ V0.mH


def proj(Q: Tensor) -> Tensor:
    """Orthogonal projector ``Q Q^H`` onto the span of orthonormal columns."""
    return Q @ Q.mH


def invariants(U: Tensor, S: Tensor, Vh: Tensor, r: int = 1):
    """Singular values, the projectors onto the leading ``r`` left/right singular vectors, and
    ``U diag(S^2) Vh`` (smooth wherever the leading ``r`` are separated from the rest)."""
    k = S.shape[-1]
    M = (U[..., :k] * S.square().to(U.dtype)[..., None, :]) @ Vh[..., :k, :]
    return S, proj(U[..., :r]), proj(Vh[..., :r, :].mH), M


def cluster_invariants(values, vectors, lo: int, hi: int):
    """Functions of a cluster ``lo:hi`` in the exact class (``_svd_ties.py``), linear in its
    singular values: the values outside it and the cluster's sum (from the decomposition
    ``values``), its left and right projectors and ``U_c V_c^H`` (from ``vectors``). Two calls:
    one call whose cluster receives both a value and a vector cotangent is the documented false
    alarm of the coupling check (second order exact; a curved function of the cluster's values
    is not)."""
    _, S, _ = values
    U, _, Vh = vectors
    Sc = S[..., lo:hi].sum(-1, keepdim=True)
    Uc, Vc = U[..., lo:hi], Vh[..., lo:hi, :].mH
    return torch.cat([S[..., :lo], Sc, S[..., hi:]], -1), proj(Uc), proj(Vc), Uc @ Vc.mH


def _twice(fn):
    """``A -> cluster_invariants(fn(A), fn(A), ...)`` helper: two decompositions of ``A``."""
    return lambda A, lo, hi: cluster_invariants(fn(A), fn(A), lo, hi)


def rank_invariants(U: Tensor, S: Tensor, Vh: Tensor, r: int):
    """For a matrix of rank ``r``: the nonzero singular values, the sum of squares of the others,
    the projectors onto the range and the co-range, ``U_r S_r V_r^H``, and the projectors onto
    the null spaces where the thin factor is square (otherwise its columns past ``r`` are an
    arbitrary part of the null space: a gauge dependence)."""
    m, n = U.shape[-2], Vh.shape[-1]
    Ur, Vr = U[..., :r], Vh[..., :r, :].mH
    M = (Ur * S[..., :r].to(U.dtype)[..., None, :]) @ Vr.mH
    out = [S[..., :r], S[..., r:].square().sum(-1), proj(Ur), proj(Vr), M]
    if m <= n:
        out.append(proj(U[..., r:]))
    if n <= m:
        out.append(proj(Vh[..., r:, :].mH))
    return tuple(out)


def phase_invariant(U: Tensor, S: Tensor, Vh: Tensor):
    """``|U[:, 0]^H x|^2``, ``|Vh[0] y|^2`` and ``u_0 v_0^H`` for fixed ``x``, ``y``."""
    m, n = U.shape[-2], Vh.shape[-1]
    x = torch.linspace(-1.0, 1.0, m, dtype=U.dtype) * (1 + 0.5j if U.is_complex() else 1.0)
    y = torch.cos(torch.arange(n, dtype=real_dtype(Vh.dtype))).to(Vh.dtype)
    a = (U[..., :, 0].conj() * x).sum(-1).abs().square()
    b = (Vh[..., 0, :] * y).sum(-1).abs().square()
    return a, b, U[..., :, :1] @ Vh[..., :1, :]


# Second order is exact at masked clusters away from zero (for losses linear in each cluster's
# singular values); at masked zero singular values only the first-order rules are exact
# (module notes of ``_svd.py``).
FIRST_ORDER = ("vjp", "jvp")


def _reg(name, fn, make, hard=False, **kw):
    register_case("svd", name, fn, make, hard=hard, **kw)


# --- svd -----------------------------------------------------------------------------------------
_reg("generic", lambda A: invariants(*svd(A), r=2), lambda dt, g: (randn(dt, g, 4, 4),))
_reg("batched", lambda A: invariants(*svd(A)), lambda dt, g: (randn(dt, g, 2, 3, 4, 3),))
_reg("tall", lambda A: invariants(*svd(A, full_matrices=False), r=2), lambda dt, g: (randn(dt, g, 6, 3),))
_reg("wide", lambda A: invariants(*svd(A, full_matrices=False), r=2), lambda dt, g: (randn(dt, g, 3, 6),))
_reg("phase_invariant", lambda A: phase_invariant(*svd(A)), lambda dt, g: (randn(dt, g, 5, 4),))
_reg("full_matrices", lambda A: (*invariants(*svd(A, full_matrices=True)),
                                 proj(svd(A, full_matrices=True)[0][..., 3:])),
     lambda dt, g: (randn(dt, g, 5, 3),))
_reg("full_matrices_wide", lambda A: proj(svd(A, full_matrices=True)[2][..., 2:, :].mH),
     lambda dt, g: (randn(dt, g, 2, 5),))
_reg("repeated", lambda A: _twice(lambda A: svd(A, degeneracy_tol=1e-8))(A, 1, 3),
     lambda dt, g: (with_spectrum(dt, g, [3.0, 2.0, 2.0, 1.0], 4, 4),), hard=True,
     max_step=1e-3)
_reg("repeated_tall", lambda A: _twice(lambda A: svd(A, degeneracy_tol=1e-8))(A, 0, 3),
     lambda dt, g: (with_spectrum(dt, g, [2.0, 2.0, 2.0, 0.5], 6, 4),), hard=True,
     max_step=1e-3)
_reg("cluster_1e-12", lambda A: _twice(lambda A: svd(A, degeneracy_tol=1e-8))(A, 1, 4),
     lambda dt, g: (with_spectrum(dt, g, [3.0, 2 + 1e-12, 2.0, 2 - 1e-12, 1.0], 5, 5),),
     hard=True, max_step=1e-3)
_reg("cluster_1e-3", lambda A: _twice(lambda A: svd(A, degeneracy_tol=1e-2))(A, 1, 4),
     lambda dt, g: (with_spectrum(dt, g, [3.0, 2 + 1e-3, 2.0, 2 - 1e-3, 1.0], 5, 5),),
     hard=True, max_step=1e-3)
_reg("cluster_1e-6", lambda A: _twice(lambda A: svd(A, degeneracy_tol=1e-4))(A, 1, 4),
     lambda dt, g: (with_spectrum(dt, g, [3.0, 2 + 1e-6, 2.0, 2 - 1e-6, 1.0], 5, 5),),
     hard=True, max_step=1e-3)
_reg("cluster_1e-3_unmasked", lambda A: _twice(svd)(A, 1, 3),
     lambda dt, g: (with_spectrum(dt, g, [3.0, 2 + 1e-3, 2.0, 1.0], 4, 4),),
     hard=True, max_step=1e-5)
# Ties at the default tolerance (rounding level): a rounding-split tie and an exact one.
_reg("rounding_tie", lambda A: _twice(svd)(A, 1, 3),
     lambda dt, g: (with_spectrum(dt, g, [3.0, 2.0, 2.0, 1.0], 5, 4),), hard=True, max_step=1e-3)
_reg("exact_tie", lambda A: _twice(svd)(A, 0, 3),
     lambda dt, g: (exact_tie(dt, g, [2.0, 2.0, 2.0, 0.5], 4, 5),), hard=True, max_step=1e-3)
_reg("rank_deficient", lambda A: rank_invariants(*svd(A, degeneracy_tol=1e-10), 2),
     lambda dt, g: (with_spectrum(dt, g, [3.0, 1.5], 4, 4),), hard=True, modes=FIRST_ORDER,
     max_step=1e-3)
_reg("rank_deficient_tall", lambda A: rank_invariants(*svd(A, degeneracy_tol=1e-10), 2),
     lambda dt, g: (with_spectrum(dt, g, [2.0, 1.0], 6, 4),), hard=True, modes=FIRST_ORDER,
     max_step=1e-3)
_reg("rank_deficient_wide", lambda A: rank_invariants(*svd(A, degeneracy_tol=1e-10), 2),
     lambda dt, g: (with_spectrum(dt, g, [2.0, 1.0], 4, 6),), hard=True, modes=FIRST_ORDER,
     max_step=1e-3)
_reg("single_zero_real", lambda A: rank_invariants(*svd(A, degeneracy_tol=1e-10), 3),
     lambda dt, g: (with_spectrum(dt, g, [3.0, 1.5, 1.0], 4, 4),), dtypes=(torch.float64,),
     hard=True, max_step=1e-3)


# --- svd_truncated ---------------------------------------------------------------------------------
def _trunc(name, fn, make, hard=False, **kw):
    register_case("svd_truncated", name, fn, make, hard=hard, **kw)


def _decaying(dt, g, m, n, batch=()):
    k0 = min(m, n)
    return with_spectrum(dt, g, 0.7 ** torch.arange(k0, dtype=torch.float64), m, n, batch)


_trunc("full_square", lambda A: invariants(*svd_truncated(A, 2, method="full")),
       lambda dt, g: (randn(dt, g, 5, 5),))
_trunc("full_tall", lambda A: invariants(*svd_truncated(A, 2, method="full")),
       lambda dt, g: (randn(dt, g, 6, 4),))
_trunc("full_wide_batched", lambda A: invariants(*svd_truncated(A, 2, method="full")),
       lambda dt, g: (randn(dt, g, 2, 3, 5),))
_trunc("phase_invariant", lambda A: phase_invariant(*svd_truncated(A, 1, method="full")),
       lambda dt, g: (randn(dt, g, 5, 4),))
_trunc("keep_all_wide", lambda A: invariants(*svd_truncated(A, 3, method="full"), r=3),
       lambda dt, g: (randn(dt, g, 3, 5),))
# The iterative path (a data-dependent number of iterations) runs under grad/jvp, not vmap.
_trunc("iterative_tall", lambda A: invariants(*svd_truncated(A, 2, method="iterative")),
       lambda dt, g: (_decaying(dt, g, 40, 30),))
_trunc("iterative_wide", lambda A: invariants(*svd_truncated(A, 2, method="iterative")),
       lambda dt, g: (_decaying(dt, g, 30, 40),))
_trunc("discarded_degenerate",
       lambda A: invariants(*svd_truncated(A, 2, method="full"), r=2),
       lambda dt, g: (with_spectrum(dt, g, [3.0, 2.0, 1.0, 1.0], 5, 5),), hard=True, max_step=1e-3)
_trunc("kept_cluster", lambda A: _twice(lambda A: svd_truncated(A, 3, method="full",
                                                                degeneracy_tol=1e-8))(A, 1, 3),
       lambda dt, g: (with_spectrum(dt, g, [3.0, 2.0, 2.0, 1.0], 5, 4),), hard=True,
       max_step=1e-3)
_trunc("rank_deficient", lambda A: invariants(*svd_truncated(A, 2, method="full"), r=2),
       lambda dt, g: (with_spectrum(dt, g, [2.0, 1.0], 5, 4),), hard=True, max_step=1e-3)
_trunc("rounding_tie_kept", lambda A: _twice(lambda A: svd_truncated(A, 3, method="full"))(A, 0, 2),
       lambda dt, g: (with_spectrum(dt, g, [2.0, 2.0, 1.0, 0.5], 6, 5),), hard=True,
       max_step=1e-3)


# --- svd_function ----------------------------------------------------------------------------------
def _fn(name, fn, make, hard=False, **kw):
    register_case("svd_function", name, fn, make, hard=hard, **kw)


def sin_svd(A: Tensor) -> Tensor:
    return svd_function(A, torch.sin, torch.cos)


def tanh_svd(A: Tensor) -> Tensor:
    return svd_function(A, torch.tanh, lambda s: 1.0 - torch.tanh(s).square())


_fn("generic", sin_svd, lambda dt, g: (randn(dt, g, 4, 4),))
_fn("batched_tall", tanh_svd, lambda dt, g: (randn(dt, g, 2, 5, 3),))
_fn("wide", sin_svd, lambda dt, g: (randn(dt, g, 3, 5),))
_fn("rounding_tie", sin_svd, lambda dt, g: (with_spectrum(dt, g, [5.0, 3.0, 1.0, 1.0], 4, 4),),
    hard=True, max_step=1e-3)
_fn("exact_tie", sin_svd, lambda dt, g: (exact_tie(dt, g, [2.0, 1.0, 1.0], 3, 4),), hard=True,
    max_step=1e-3)
_fn("rank_deficient", sin_svd, lambda dt, g: (with_spectrum(dt, g, [2.0, 1.0], 4, 4),),
    hard=True, max_step=1e-3)
_fn("rank_deficient_tall", tanh_svd, lambda dt, g: (with_spectrum(dt, g, [1.5, 1.5], 5, 3),),
    hard=True, max_step=1e-3)
_fn("zero", sin_svd, lambda dt, g: (torch.zeros(3, 4, dtype=dt),), hard=True, max_step=1e-3)
