r"""H2 errors beyond double precision: a yardstick for comparing approximations at tiny errors.

The squared H2 error of ``E = F - H`` follows from H2 inner products by residues (``_modal``):
for ``G_a = sum_k R^a_k / (s - nu_k)`` and a stable ``G_b``,

    continuous:  <G_a, G_b> = sum_k <R^a_k, G_b(-conj nu_k)>
    discrete:    <G_a, G_b> = sum_k <R^a_k, G_b(1 / conj nu_k)> / conj nu_k

(``<X, Y> = sum conj(X) Y``), and ``||F - H||^2 = ||F||^2 + (||H||^2 - 2 Re <H, F>)`` (plus
``||D_F - D_H||^2`` in discrete time). The parts are of the size of ``||F||^2`` and cancel to
``||F - H||^2``: for the heat-equation model of the SLICOT set reduced to order 12 (relative error
6e-9) some 3e16 times, so that in double precision the result is noise and NumPy's extended
precision (64-bit significand) still leaves relative errors of ~0.3%, enough to misorder
approximations that differ by 1e-7 (measured against a 45-digit mpmath sum).

Here the bracket runs in double-double arithmetic (a float64 pair ``hi + lo``, ~32 significant
digits; Dekker's error-free products and Knuth's two-sum, vectorized in NumPy): O((N n + n^2) p m)
operations for orders N and n. ``||F||^2``, a sum with little cancellation of its own, is taken in
long double with a rounding-error estimate, and again in double-double where that estimate is not
small against the result (O(N^2 p m), once per target). The poles and residues are first refined
(``refine_modal``: Newton steps on the eigenpairs with residuals in extended precision), since
LAPACK's eigenvalues carry absolute errors of ``eps ||A||``: relative 1e-12 for the slow modes of a
stiff system, which moves its transfer function by more than such tiny errors. With both, the
heat-equation error above is reproduced to 12 digits.

References: T. J. Dekker, "A floating-point technique for extending the available precision",
Numer. Math. 18 (1971); Y. Hida, X. S. Li, D. H. Bailey, "Library for double-double and quad-double
arithmetic" (2000: the accurate addition and the division used here); N. J. Higham, T. Mary, "A
new approach to probabilistic rounding error analysis", SIAM J. Sci. Comput. 41 (2019).
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from ..._errors import PrecisionWarning
from ._ddarith import (  # noqa: F401 - dd_div, dd_mul: tests reach them here
    _account, _bcast, _index, cdd, cdd_add, cdd_conj, cdd_mul, cdd_recip, cdd_sub, cdd_sum, dd_add, dd_div,
    dd_mul, dd_neg, dd_sum,
)

_LD = np.longdouble
_CLD = np.clongdouble


# -- refined modal data --------------------------------------------------------------------------
def ext_matmul(A: np.ndarray, V: np.ndarray, max_elements: float = 2e6) -> np.ndarray:
    """``A @ V`` in extended precision (``V`` a long double array; ``A`` double): from the non-zeros of
    ``A`` where at most an eighth of its entries are non-zero (sparse discretizations: O(nnz K) for
    ``K`` columns, about ``max_elements`` products held at a time), else by a long double product
    (O(N^2 K) without BLAS: ~3 s for a real 1000 x 1000 x 1000 product). ``ext_work`` counts it."""
    rows, cols = np.nonzero(A)
    N, K = A.shape[0], V.shape[1]
    dt = np.result_type(V.dtype, _CLD if np.iscomplexobj(A) else _LD)
    if rows.size > A.size // 8:
        if np.iscomplexobj(A) or not np.iscomplexobj(V):
            return A.astype(dt) @ V.astype(dt)
        Al = A.astype(_LD)  # a real A times a complex V: two real products (a complex one costs four)
        return (Al @ V.real + 1j * (Al @ V.imag)).astype(dt)
    out = np.zeros((N, K), dtype=dt)
    if not rows.size:
        return out
    chunk = max(1, int(max_elements // rows.size))
    vals = A[rows, cols].astype(dt)
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    for k in range(0, K, chunk):
        out[rows[starts], k:k + chunk] = np.add.reduceat(vals[:, None] * V[cols, k:k + chunk], starts, axis=0)
    return out


def ext_work(A: np.ndarray) -> int:
    """Extended-precision operations of one ``ext_matmul(A, V)`` with ``V`` square: ``nnz(A) N`` on
    the sparse path, ``N^3`` on the dense one (complex ``V``: twice that)."""
    N = A.shape[0]
    nnz = int(np.count_nonzero(A))
    return nnz * N if nnz <= A.size // 8 else N ** 3


def refine_modal(A: np.ndarray, B: np.ndarray, C: np.ndarray, lam: np.ndarray, V: np.ndarray,
                 steps: int = 2, report: bool = False, Vi: np.ndarray | None = None):
    """Poles and residue factors ``(lam, W^{-1} B, C W)`` of ``(A, B, C)`` in extended precision
    (complex long double arrays) from the eigendecomposition ``A V = V diag(lam)`` (double):
    Newton steps on all eigenpairs at once, ``R = A V - V diag(lam)`` formed in extended precision
    (``ext_matmul``), ``E = V^{-1} R``, ``lam_i += E_ii``, ``V += V X`` with
    ``X_ij = E_ij / (lam_j - lam_i)`` (i != j); then ``V^{-1} B`` by iterative refinement (residual in
    extended precision). Only the residuals need the extra digits: ``E``, ``V X`` and the corrections of
    ``V^{-1} B`` are of size ``eps`` relative, so double-precision (BLAS) products with the first
    ``V^{-1}`` change them by ``eps^2 kappa`` -- far below long double's roundoff. Quadratic convergence
    for simple eigenvalues separated by more than the errors; within a cluster (gaps below
    ``1e-8 |lam|``) the vectors are left as they are (a Hermitian cluster's eigenvalues still get
    their correction: the residual of its basis is orthogonal to it), and if the steps do not shrink
    the residual the double-precision data are returned (in long double). Cost: ``steps`` times
    ``ext_work(A)`` extended-precision operations plus O(N^3) in BLAS. ``report``: a fourth element,
    True if the steps were kept (the data are accurate to long double's unit roundoff times the
    eigenvector condition number, else to double's). ``Vi``: ``V^{-1}`` if the caller has it."""
    Vi = np.linalg.inv(V) if Vi is None else Vi
    V_, lam_ = V.astype(_CLD), lam.astype(_CLD)
    B_, C_ = B.astype(_CLD), C.astype(_CLD)
    plain = (lam_, (Vi @ B).astype(_CLD), C_ @ V_)
    scale = np.abs(lam).max() if lam.size else 0.0
    sizes = []
    for _ in range(steps):
        E = Vi @ (ext_matmul(A, V_) - V_ * lam_[None, :]).astype(np.complex128)
        sizes.append(float(np.abs(E).max(initial=0.0)))
        lam_ = lam_ + np.diagonal(E)
        G = (lam_[None, :] - lam_[:, None]).astype(np.complex128)
        near = np.abs(G) <= 1e-8 * np.maximum(np.abs(lam_.astype(np.complex128))[None, :], 1e-3 * scale)
        G[near] = 1
        X = E / G
        X[near] = 0
        V_ = V_ + (V_.astype(np.complex128) @ X).astype(_CLD)
    if not (np.isfinite(sizes).all() and (len(sizes) < 2 or sizes[-1] <= sizes[0])):
        return (*plain, False) if report else plain
    Bt = plain[1]
    for _ in range(2):
        Bt = Bt + (Vi @ (B_ - V_ @ Bt).astype(np.complex128)).astype(_CLD)
    out = (lam_, Bt, C_ @ V_)
    return (*out, True) if report else out


def rayleigh_hermitian(A: np.ndarray, B: np.ndarray, C: np.ndarray, max_elements: float = 2e6):
    """Modal data ``(lam, V^H B, C V)`` (complex long double) of a Hermitian ``A`` too large for
    ``refine_modal``'s ``eig`` and inverse: ``eigh``'s orthonormal ``V`` and the Rayleigh quotients
    ``lam_k = v_k^H A v_k`` formed in extended precision, accurate to ``eps_ld ||A||`` plus
    ``||r_k||^2 / gap_k`` (``r_k = A v_k - lam_k v_k``, of size ``eps ||A||``), where ``eigh``'s own
    eigenvalues carry ``eps ||A||``: relative 1e-13 for the slow modes of the N = 1024 heat
    equation, which moved its order-18 error by 17-35%. ``A V`` by ``ext_matmul``: O(nnz N) for
    sparse discretizations, else O(N^3) in long double (~4 s at N = 1024)."""
    V = np.linalg.eigh(A)[1]
    Vl = V.astype(_CLD if np.iscomplexobj(A) or np.iscomplexobj(V) else _LD)
    N = A.shape[0]
    lam = np.empty(N, dtype=_LD)
    chunk = max(1, int(max_elements // max(N, 1)))  # A V by column blocks: no second N x N array
    for k in range(0, N, chunk):
        Vk = Vl[:, k:k + chunk]
        lam[k:k + chunk] = (np.conj(Vk) * ext_matmul(A, Vk, max_elements)).sum(0).real
    lam = lam / (np.abs(Vl) ** 2).sum(0)
    return lam.astype(_CLD), np.conj(Vl).T @ B.astype(_CLD), C.astype(_CLD) @ Vl


# -- H2 inner products by residues ----------------------------------------------------------------
#: relative rounding error of the squared error accepted from a target's norm in long double
#: (``squared_error``); above it (tiny errors), the norm is computed in double-double arithmetic
SUM_RTOL = 1e-8


class Residues:
    """A strictly proper transfer function ``G(s) = sum_k R_k / (s - nu_k)`` by its poles and
    rank-one residues ``R_k = c_k b_k^T`` (``Ct`` (p, K) columns ``c_k``, ``Bt`` (K, m) rows ``b_k^T``;
    complex double or long double NumPy arrays); ``discrete``: the residue formulas of discrete time
    (module docstring). Holds them in long double and, when first needed, in double-double."""

    def __init__(self, lam, Bt, Ct, discrete: bool, data_eps: float = float(np.finfo(np.float64).eps),
                 kappa: float = 1.0, anorm: float | None = None, mode_cond=None, residue_eps: float | None = None):
        #: unit roundoff of the modal data (long double after refinement): with the eigenvector
        #: condition number ``kappa``, the eigenvalue condition numbers ``mode_cond`` (``||x_k||
        #: ||y_k|| / |y_k^H x_k|``, default ``kappa`` for each) and ``||A||`` (``anorm``; default: the
        #: spectral radius), the accuracy of the transfer function they represent (``data_error``)
        self.data_eps, self.kappa = data_eps, kappa
        #: unit roundoff of the residues where it differs from the eigenvalues' (``rayleigh_hermitian``)
        self.residue_eps = data_eps if residue_eps is None else residue_eps
        self.mode_cond = np.full(np.shape(lam)[0], kappa) if mode_cond is None else np.asarray(mode_cond, float)
        self.nu = np.asarray(lam).astype(_CLD)
        self.K, self.discrete = self.nu.shape[0], discrete
        self.R = (np.asarray(Ct).astype(_CLD).T[:, :, None] * np.asarray(Bt).astype(_CLD)[:, None, :]).reshape(self.K, -1)
        self.pts = 1 / np.conj(self.nu) if discrete else -np.conj(self.nu)
        self.anorm = float(np.abs(self.nu).max(initial=0.0)) if anorm is None else anorm
        self._dd = None
        self._norm2 = {}
        self._abs = self._rss = None
        self.dd_run = [0.0, 0.0]

    def dd(self):
        """``(nu, R, pts)`` in double-double (cached)."""
        if self._dd is None:
            nu = cdd(self.nu)
            pts = cdd_recip(cdd_conj(nu)) if self.discrete else cdd_conj(_bcast(nu, np.negative))
            self._dd = (nu, cdd(self.R), pts)
        return self._dd

    def abs_norm2(self) -> float:
        """``abs_inner(self, self)`` (cached)."""
        if self._abs is None:
            self._abs = abs_inner(self, self)
        return self._abs

    def rss_norm2(self) -> float:
        """``abs_inner(self, self, power=2)`` (cached)."""
        if self._rss is None:
            self._rss = abs_inner(self, self, power=2)
        return self._rss

    def norm2(self, double_double: bool):
        """``||G||^2``: ``(value, error bound)`` in long double, or a double-double real (cached;
        its running rounding bound in ``dd_run``, ``dd_bound``)."""
        if double_double not in self._norm2:
            if double_double:
                self.dd_run = [0.0, 0.0]
                self._norm2[True] = inner_dd(self, self, run=self.dd_run)[0]
            else:
                self._norm2[False] = inner_ld(self, self)
        return self._norm2[double_double]


def abs_inner(a: Residues, b: Residues, max_elements: float = 2e6, power: int = 1) -> float:
    """``sum_k |R^a_k| sum_j |R^b_j| / |s_k - nu^b_j|`` (``/ |nu^a_k|`` in discrete time; entrywise
    over the p x m residues): the sum of the absolute values of ``inner_ld``'s terms, which scales
    the rounding errors of any evaluation of ``<G_a, G_b>`` by residues (large for non-normal
    systems, whose residues cancel). ``power = 2``: the sum of their squares. Float64;
    O(K_a K_b p m) operations, in chunks of about ``max_elements`` kernel entries."""
    chunk = max(1, int(max_elements // max(b.K, 1)))
    Ra, Rb = np.abs(a.R).astype(np.float64) ** power, np.abs(b.R).astype(np.float64) ** power
    pts, nu = a.pts.astype(np.complex128), b.nu.astype(np.complex128)
    absum = 0.0
    for k in range(0, a.K, chunk):
        sl = slice(k, k + chunk)
        absterms = ((np.abs(1 / (pts[sl, None] - nu[None, :])) ** power @ Rb) * Ra[sl]).sum(1)
        if a.discrete:
            absterms = absterms / np.abs(a.nu[sl]).astype(np.float64) ** power
        absum += float(absterms.sum())
    return absum


def inner_ld(a: Residues, b: Residues, max_elements: float = 2e6) -> tuple[complex, float]:
    """``<G_a, G_b> = sum_k <R^a_k, G_b(s_k)>`` (``/ conj nu^a_k`` in discrete time) at the mirror
    points ``s_k`` of the poles of ``G_a`` (``_modal``'s residue formula) in long double, and the
    estimate ``4 (sqrt(K_a) + sqrt(K_b)) eps_ld abs_inner(a, b)`` of its rounding error (the
    probabilistic bound of Higham and Mary, SIAM J. Sci. Comput. 41 (2019), for the inner and the
    outer sum: rounding errors of a sum of K terms grow like sqrt(K), the worst case K needs errors
    that all have one sign): O(K_a K_b p m) operations, in chunks of about ``max_elements`` kernel
    entries."""
    chunk = max(1, int(max_elements // max(b.K, 1)))
    total = _CLD(0)
    for k in range(0, a.K, chunk):
        sl = slice(k, k + chunk)
        G = 1 / (a.pts[sl, None] - b.nu[None, :])
        terms = ((G @ b.R) * np.conj(a.R[sl])).sum(1)
        if a.discrete:
            terms = terms / np.conj(a.nu[sl])
        total += terms.sum()
    return complex(total), 4 * (math.sqrt(a.K) + math.sqrt(b.K)) * float(np.finfo(_LD).eps) * (
        a.abs_norm2() if a is b else abs_inner(a, b))


def inner_dd(a: Residues, b: Residues, max_elements: float = 2e5, run: list | None = None):
    """``inner_ld`` in double-double arithmetic (a double-double complex number): the same
    O(K_a K_b p m) operations, each some 20 NumPy passes. ``run``: the account (``_account``) of the running
    rounding bound (units of ``EPS_DD``) of the sums and of the products after them (``dd_bound``)."""
    (anu, aR, apts), (bnu, bR, _) = a.dd(), b.dd()
    chunk = max(1, int(max_elements // max(b.K * b.R.shape[1], 1)))
    total = ((np.zeros(()), np.zeros(())), (np.zeros(()), np.zeros(())))
    for k in range(0, a.K, chunk):
        sl = slice(k, k + chunk)
        G = cdd_recip(cdd_sub(_bcast(_index(apts, sl), lambda x: x[:, None]), _bcast(bnu, lambda x: x[None, :])))
        # running bounds weighted by what multiplies each partial result later: |R^a_k| (and
        # 1 / |nu^a_k| in discrete time)
        wk = 1 / np.abs(a.nu[sl]).astype(np.float64) if a.discrete else np.ones(a.nu[sl].shape[0])
        wa = np.abs(a.R[sl]).astype(np.float64) * wk[:, None] if run is not None else None
        vals = cdd_sum(cdd_mul(_bcast(G, lambda x: x[:, :, None]), _bcast(bR, lambda x: x[None])), axis=1,
                       run=run, weight=wa)
        prods = cdd_mul(vals, cdd_conj(_index(aR, sl)))
        terms = cdd_sum(prods, axis=1, run=run, weight=None if run is None else wk)
        if a.discrete:
            terms = cdd_mul(terms, cdd_recip(cdd_conj(_index(anu, sl))))
        if run is not None:  # complex products: 4 roundings of their result's size each
            _account(run, 4 * np.hypot(prods[0][0], prods[1][0]) * wk[:, None])
            _account(run, 4 * np.hypot(terms[0][0], terms[1][0]))
        total = cdd_add(total, cdd_sum(terms, axis=0, run=run))
    return total


#: unit roundoff of double-double arithmetic (Hida, Li, Bailey: 2^-104 up to small constants)
EPS_DD = 2.0 ** -104


#: Hoeffding's factor of the probabilistic part of ``dd_bound``: exceeded with probability at most
#: ``2 exp(-HOEFFDING_LAMBDA^2 / 2)`` (3e-8)
HOEFFDING_LAMBDA = 6.0


def dd_bound(a: Residues, b: Residues, run: list) -> float:
    """Rounding bound of ``inner_dd(a, b)`` given its running account ``run`` (``[sum, sum of
    squares]`` of the bounds, units of ``EPS_DD``, of the pairwise sums and the products after them,
    from the computed partial results) and the elementary products ``G_kj R^b_j conj(R^a_k)``, each
    ``G_kj`` a reciprocal and a product in double-double (about 8 roundings of ``EPS_DD`` relative to
    the product: ``abs_inner``). The worst case adds them all; in the model of Higham and Mary
    (SIAM J. Sci. Comput. 41 (2019): rounding errors independent, of mean zero) Hoeffding's
    inequality bounds their sum by ``HOEFFDING_LAMBDA`` times the root of the sum of their squares
    (``abs_inner(power=2)``), the smaller of the two is returned. For the cancelling residues of
    non-normal systems (``abs_inner(F, F)`` 1e11 ``||F||^2`` for an upwind convection-diffusion model
    at N = 256) the worst case is 1e2-1e4 times what is measured."""
    absum, rss2 = (a.abs_norm2(), a.rss_norm2()) if a is b else (abs_inner(a, b), abs_inner(a, b, power=2))
    worst = run[0] + 8 * absum
    return EPS_DD * min(worst, HOEFFDING_LAMBDA * math.sqrt(run[1] + 64 * rss2))


def squared_error(F: Residues, H: Residues, DE=None, bound: bool = False):
    """``||F - H||^2 = ||F||^2 + (||H||^2 - 2 Re <H, F>)`` (plus ``||D_F - D_H||_F^2`` in discrete
    time). The bracket, where the cancellation happens, in double-double arithmetic (O((N n + n^2)
    p m) operations); ``||F||^2``, a sum without much cancellation, in long double (O(N^2 p m), once
    per ``F``), and again in double-double where its bound (``inner_ld``) exceeds SUM_RTOL of the
    result. Models compared with one target share its norm, so their differences keep the digits
    of the bracket either way. ``bound``: ``(value, rounding bound of the value)``, the bound from
    the absolute sums of the three parts (``abs_inner``: for non-normal systems, whose residues
    cancel, far above ``||F||^2``, so that even double-double sums lose tiny errors)."""
    run = [0.0, 0.0]
    c = inner_dd(H, F, run=run)[0]
    part = dd_add(H.norm2(True), dd_neg(dd_add(c, c)))
    nF, eF = F.norm2(False)
    val = float(part[0] + part[1]) + nF.real
    if not abs(val) * SUM_RTOL >= eF:
        v = dd_add(F.norm2(True), part)
        val = v[0] + v[1]
        eF = dd_bound(F, F, F.dd_run)
    out = float(val)
    if F.discrete and DE is not None:
        out += float((np.abs(np.asarray(DE)) ** 2).sum())
    if not bound:
        return out
    return out, eF + 2 * dd_bound(H, F, run) + dd_bound(H, H, H.dd_run)


#: safety factor of ``data_error``'s first-order estimate (measured gaps against the sparse error
#: system's Gramian and a quadrature: up to 3x the estimate without it)
DATA_SAFETY = 10.0


def data_error(G: Residues) -> float:
    """Estimated ``||G - G_exact||_2`` from the accuracy of the modal data: eigenvalues with errors
    of ``u s_k ||A||`` (``u = G.data_eps``, ``s_k = G.mode_cond`` the eigenvalue condition numbers,
    at most the eigenvector basis' ``kappa``; the error of a backward-stable eigensolver, or of Newton
    refinement to ``u``) and residues with relative errors of ``u s_k``. A mode ``R / (s - nu)`` moves by ``R dnu / (s - nu)^2``, of H2 norm
    ``|R| dnu g1(nu)``, ``g1 = 1 / (2 |Re nu|^{3/2})`` (continuous time; discrete:
    ``sqrt(1 + |nu|^2) / (1 - |nu|^2)^{3/2}``), against the mode's own ``|R| g(nu)``,
    ``g = 1 / sqrt(2 |Re nu|)`` (``1 / sqrt(1 - |nu|^2)``). The relative change, averaged over the
    modes with weights ``|R_k| g(nu_k)``, times ``||G||`` (not the sum over the modes: the residues of
    a non-normal system cancel, their errors are those of a perturbation ``dA`` of ``A``, which do
    not add up mode by mode -- the triangle inequality read 1e6 times the measured gaps)::

        data_error = DATA_SAFETY u ||G|| sum_k w_k s_k (||A|| g1_k / g_k + 1),  w_k ~ |R_k|_F g_k.

    Slow modes of a stiff system (``||A|| / |Re nu|`` large) dominate: LAPACK's eigenvalues of the
    N = 1024 heat equation move its transfer function by ~1e-13 relative. O(K p m) after ``||G||``."""
    rn = np.sqrt((np.abs(G.R).astype(np.float64) ** 2).sum(1))
    nu = G.nu.astype(np.complex128)
    if G.discrete:
        q = np.maximum(1 - np.abs(nu) ** 2, 1e-300)
        g, g1 = 1 / np.sqrt(q), np.sqrt(1 + np.abs(nu) ** 2) / q ** 1.5
    else:
        a = np.maximum(-nu.real, 1e-300)
        g, g1 = 1 / np.sqrt(2 * a), 1 / (2 * a ** 1.5)
    w = rn * g
    if not w.sum() > 0:
        return 0.0
    norm = math.sqrt(max(G.norm2(False)[0].real, 0.0))
    avg = float((w * G.mode_cond * (G.data_eps * G.anorm * g1 / g + G.residue_eps)).sum() / w.sum())
    return DATA_SAFETY * norm * avg


def error_resolution(F: Residues, H: Residues, val: float, delta: float) -> float:
    """Absolute uncertainty of ``||F - H|| = sqrt(val)`` for a squared error ``val`` with rounding
    bound ``delta`` (``squared_error(..., bound=True)``): the data errors of both systems
    (``data_error``: a model's matter too -- a BT model with eigenvector condition 9e6 of an upwind
    convection-diffusion target read 1.250139e-7 against 1.250132e-7 by the Gramian formula and
    1.250127e-7 by a quadrature) plus ``sqrt(val + delta) - sqrt(max(val - delta, 0))``."""
    v = max(val, 0.0)
    return data_error(F) + data_error(H) + math.sqrt(v + delta) - math.sqrt(max(v - delta, 0.0))


#: ``precise=True`` warns (PrecisionWarning) where its resolution (``_precise.error_resolution``)
#: exceeds PRECISE_WARN_RTOL of the error it returns: fewer than one correct digit
PRECISE_WARN_RTOL = 0.1


def check_resolution(val: float, res: float) -> float:
    """``val`` (the squared error by the precise yardstick), after a PrecisionWarning naming its
    resolution ``res`` (absolute, on the error) if that exceeds PRECISE_WARN_RTOL of the error."""
    err = math.sqrt(max(val, 0.0))
    if not res <= PRECISE_WARN_RTOL * err:
        warnings.warn(
            f"h2_error(precise=True): the (absolute) error {err:.6g} is resolved only to +-{res:.2g} (the target's "
            "modal data: eigenvalue errors of a stiff or non-normal state matrix, and the residue sums' "
            "rounding, large where the residues cancel); for a sparse or non-normal target measure it by "
            "the error system's Gramian, control.large.h2_error_sparse(SparseSystem(F.A, F.B, F.C), H)",
            PrecisionWarning, stacklevel=4)
    return val


def residue_work(N: int, n: int, p: int, m: int) -> int:
    """Operations, ``(N + n)^2 p m``, of ``squared_error`` for the error between systems of orders
    ``N`` and ``n`` with ``p`` outputs and ``m`` inputs, the target's norm included (callers
    compare it with their budget; later models of one target cost O((N + n) n p m))."""
    return (N + n) ** 2 * p * m
