r"""Principal square root and logarithm of (batched) upper-triangular matrices.

Square root (Bjorck and Hammarling 1983; Higham, "Functions of Matrices", Alg. 6.3): ``R = sqrt(T)``
has ``R_ii = sqrt(T_ii)`` and, from ``(R^2)_ij = T_ij``,

    R_ij = (T_ij - sum_{k=i+1}^{j-1} R_ik R_kj) / (R_ii + R_jj),

computed one superdiagonal at a time, all entries of a superdiagonal (and all batch elements) at
once: n vectorized torch steps, O(n^3 / 6) multiply-adds, stable for the principal root, on any
device. One large matrix on the CPU takes the recursive blocked form instead (Deadman, Higham and
Ralha 2013): ``R11 R12 + R12 R22 = T12`` is a triangular Sylvester equation (LAPACK ``trsyl``), and
a real Schur form keeps real arithmetic (Higham 1987: 2 x 2 blocks are never split).

Logarithm by inverse scaling and squaring (Higham, Alg. 11.10; Al-Mohy and Higham 2012): take
``k`` square roots until ``X = T^(1/2^k) - I`` has ``|X|_1 <= theta_m``, then

    log(T) = 2^k r_m(X),    r_m(X) = sum_j w_j X (I + x_j X)^{-1}

(the [m/m] Pade approximant of ``log(I + X)`` in partial fractions: Gauss-Legendre nodes ``x_j``
and weights ``w_j`` on [0, 1]; Higham, eq. 11.18), where ``theta_m`` bounds the backward error of
the approximant by the unit roundoff of double precision (Higham, Table 11.1). The diagonal of
``X`` is formed without cancellation (``r - 1 = (r_prev - 1) / (sqrt(r_prev) + 1)``), and the
diagonal of the result is set to the exact ``log(T_ii)``.

``(k, m)`` is chosen once for a batch (``log_plan``) and can be given, so that the same
algorithm, applied to the block-triangular matrix ``[[T, E], [0, T]]``, returns the exact Frechet
derivative of the computed logarithm in its upper-right block.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .._utils import real_dtype

# theta_m of the [m/m] Pade approximant of log(1 + x) (double precision), m = 1..16.
_THETA = (1.59e-5, 2.31e-3, 1.94e-2, 6.21e-2, 1.28e-1, 2.06e-1, 2.88e-1, 3.67e-1, 4.39e-1,
          5.03e-1, 5.60e-1, 6.09e-1, 6.52e-1, 6.89e-1, 7.21e-1, 7.49e-1)
_MAX_ROOTS = 60
_LAPACK_MIN_N = 64  # below this the batched recurrence is as fast as the LAPACK recursion


def _as_batch(T: Tensor) -> tuple[Tensor, tuple[int, ...]]:
    batch = T.shape[:-2]
    return T.reshape(-1, *T.shape[-2:]).contiguous(), batch


def sqrt_triangular(T: Tensor) -> Tensor:
    """Principal square root of upper-triangular ``T`` (..., n, n) (no eigenvalue on (-inf, 0]).

    A single large matrix on the CPU goes through LAPACK (``_sqrt_triangular_lapack``); batches
    and other devices through the batched superdiagonal recurrence.
    """
    n = T.shape[-1]
    if T.device.type == "cpu" and n >= _LAPACK_MIN_N and T.shape[:-2].numel() == 1:
        return _sqrt_triangular_lapack(T)
    return _sqrt_triangular_torch(T)


def _sqrt_triangular_lapack(T: Tensor, leaf: int = 32) -> Tensor:
    """Recursive blocked square root of one triangular matrix (``_blocked_sqrt_lapack``)."""
    return _blocked_sqrt_lapack(T, quasi=False, leaf=leaf)


def _middle(t: np.ndarray, lo: int, hi: int, quasi: bool) -> int:
    """Where the recursion splits [lo, hi): the middle, moved past a 2 x 2 block of a real Schur
    form that it would cut (``quasi``)."""
    mid = (lo + hi) // 2
    return mid + 1 if quasi and t[mid, mid - 1] != 0 else mid


def _blocked_sqrt_lapack(T: Tensor, quasi: bool, leaf: int = 32) -> Tensor:
    """Recursive blocked square root (Deadman, Higham and Ralha 2013) of one triangular matrix, or
    (``quasi``) of one real Schur form kept real (Higham 1987).

    ``sqrt([[T11, T12], [0, T22]]) = [[R11, R12], [0, R22]]`` with ``R11 R12 + R12 R22 = T12``, a
    (quasi-)triangular Sylvester equation (LAPACK ``trsyl``). The halving (``_middle``) never cuts
    a 2 x 2 block; the leaves of the recursion (<= ``leaf``) are computed together, as one batch of
    the superdiagonal recurrence (quasi: through their complex triangular forms), padded with
    identities, whose square roots are identities.
    """
    shape, n = T.shape, T.shape[-1]
    t = T.detach().reshape(n, n).resolve_conj().numpy()

    def leaves(lo: int, hi: int) -> list[tuple[int, int]]:
        if hi - lo <= leaf:
            return [(lo, hi)]
        mid = _middle(t, lo, hi, quasi)
        return leaves(lo, mid) + leaves(mid, hi)

    pieces = leaves(0, n)
    s = max(hi - lo for lo, hi in pieces)
    L = np.broadcast_to(np.eye(s, dtype=t.dtype), (len(pieces), s, s)).copy()
    for k, (lo, hi) in enumerate(pieces):
        L[k, : hi - lo, : hi - lo] = t[lo:hi, lo:hi]
    leaf_sqrt = sqrt_quasi_triangular if quasi else _sqrt_triangular_torch
    RL = leaf_sqrt(torch.from_numpy(L)).numpy()
    R = np.zeros_like(t)
    for k, (lo, hi) in enumerate(pieces):
        R[lo:hi, lo:hi] = RL[k, : hi - lo, : hi - lo]
    if quasi:
        # The square root has T's quasi-triangular pattern: clear the rounding outside it, which
        # trsyl would otherwise read as (overlapping) 2 x 2 blocks.
        sub = np.arange(n - 1)
        keep = np.where(np.diagonal(t, -1) != 0, np.diagonal(R, -1), 0.0)
        R = np.triu(R)
        R[sub + 1, sub] = keep
    import scipy.linalg  # on first use: import difflinalg stays light

    (trsyl,) = scipy.linalg.get_lapack_funcs(("trsyl",), (t,))

    def merge(lo: int, hi: int) -> None:
        if hi - lo <= leaf:
            return
        mid = _middle(t, lo, hi, quasi)
        merge(lo, mid)
        merge(mid, hi)
        x, scale, info = trsyl(R[lo:mid, lo:mid], R[mid:hi, mid:hi], t[lo:mid, mid:hi])
        R[lo:mid, mid:hi] = x / scale

    merge(0, n)
    return torch.from_numpy(R).reshape(shape)


def _sqrt_triangular_torch(T: Tensor) -> Tensor:
    """The superdiagonal recurrence, batched (n vectorized steps)."""
    Tb, batch = _as_batch(T)
    B, n = Tb.shape[0], Tb.shape[-1]
    R = torch.zeros_like(Tb)
    r = Tb.diagonal(dim1=-2, dim2=-1).sqrt()
    R.diagonal(dim1=-2, dim2=-1).copy_(r)
    for d in range(1, n):
        t = Tb.diagonal(offset=d, dim1=-2, dim2=-1)
        if d > 1:
            # R[i, i+1 : i+d] and R[i+1 : i+d, i+d] for i = 0..n-d-1, as strided views of R.
            row = R.as_strided((B, n - d, d - 1), (n * n, n + 1, 1), 1)
            col = R.as_strided((B, n - d, d - 1), (n * n, n + 1, n), n + d)
            t = t - (row * col).sum(-1)
        R.diagonal(offset=d, dim1=-2, dim2=-1).copy_(t / (r[:, : n - d] + r[:, d:]))
    return R.reshape(*batch, n, n)


Rotation = tuple[Tensor, Tensor, Tensor]  # diagonal, superdiagonal, subdiagonal


def rotation(T: Tensor) -> Rotation:
    """The unitary ``G`` that makes a real Schur form ``T`` complex triangular (``G T G^H``).

    One Givens rotation per 2 x 2 block (those of ``scipy.linalg.rsf2csf``); they act on disjoint
    pairs of rows and columns, so they commute and form one block-diagonal ``G``, kept as its
    diagonal, superdiagonal and subdiagonal: applying it costs O(n^2), batched.
    """
    ct = torch.complex128 if T.dtype == torch.float64 else torch.complex64
    a, b = T.diagonal(0, -2, -1)[..., :-1], T.diagonal(1, -2, -1)
    c, d = T.diagonal(-1, -2, -1), T.diagonal(0, -2, -1)[..., 1:]
    block = c != 0  # a 2 x 2 block in rows (m, m + 1)
    # Eigenvalue of [[a, b], [c, d]] minus d, and the rotation that zeros c.
    half = (0.5 * (a - d)).to(ct)
    mu = half + torch.sqrt(half * half + (b * c).to(ct))
    r = torch.where(block, torch.sqrt(mu.abs() ** 2 + c**2), torch.ones_like(c))
    cs = torch.where(block, mu / r, torch.ones_like(mu))
    sn = torch.where(block, c / r, torch.zeros_like(c)).to(ct)
    one = torch.ones((*cs.shape[:-1], 1), dtype=cs.dtype, device=cs.device)
    # G[m, m] = conj(cs_m), G[m+1, m+1] = cs_m, G[m, m+1] = sn_m, G[m+1, m] = -sn_m (else I).
    g0 = torch.cat([cs.conj(), one], -1) * torch.cat([one, cs], -1)
    return g0, sn, -sn


def rotation_h(g: Rotation) -> Rotation:
    g0, gp, gm = g
    return g0.conj(), gm.conj(), gp.conj()


def rotate_left(g: Rotation, X: Tensor) -> Tensor:
    """``G X``."""
    g0, gp, gm = g
    Y = g0[..., :, None] * X
    Y[..., :-1, :] += gp[..., :, None] * X[..., 1:, :]
    Y[..., 1:, :] += gm[..., :, None] * X[..., :-1, :]
    return Y


def rotate_right_h(g: Rotation, X: Tensor) -> Tensor:
    """``X G^H``."""
    g0, gp, gm = g
    Y = X * g0.conj()[..., None, :]
    Y[..., :, :-1] += X[..., :, 1:] * gp.conj()[..., None, :]
    Y[..., :, 1:] += X[..., :, :-1] * gm.conj()[..., None, :]
    return Y


def _complex_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.complex128 if dtype == torch.float64 else torch.complex64


def to_complex_triangular(T: Tensor) -> tuple[Tensor, Rotation]:
    """``(G T G^H, G)``: the complex triangular form of a real Schur form ``T``."""
    g = rotation(T)
    Tc = rotate_right_h(g, rotate_left(g, T.to(_complex_dtype(T.dtype))))
    return Tc.triu(), g


def from_complex_triangular(F: Tensor, g: Rotation) -> Tensor:
    """``Re(G^H F G)``: back from the complex triangular basis (a real function value)."""
    gh = rotation_h(g)
    return rotate_right_h(gh, rotate_left(gh, F)).real


def quasi_eigvals(T: Tensor) -> Tensor:
    """Eigenvalues (complex) of a triangular or real quasi-triangular ``T`` (..., n, n)."""
    d = T.diagonal(dim1=-2, dim2=-1)
    if T.is_complex() or T.shape[-1] < 2:
        return d.to(_complex_dtype(T.dtype)) if not T.is_complex() else d
    a, b = d[..., :-1], T.diagonal(1, -2, -1)
    c, e = T.diagonal(-1, -2, -1), d[..., 1:]
    ct = _complex_dtype(T.dtype)
    half = (0.5 * (a - e)).to(ct)
    disc = torch.sqrt(half * half + (b * c).to(ct))
    mid = (0.5 * (a + e)).to(ct)
    block = c != 0
    zero = torch.zeros_like(d[..., :1], dtype=ct)
    first = torch.cat([torch.where(block, mid + disc, 0), zero], -1)  # at m, the block's start
    second = torch.cat([zero, torch.where(block, mid - disc, 0)], -1)  # at m + 1
    start = torch.cat([block, torch.zeros_like(block[..., :1])], -1)
    end = torch.cat([torch.zeros_like(block[..., :1]), block], -1)
    return torch.where(start, first, torch.where(end, second, d.to(ct)))


def sqrt_quasi_triangular(T: Tensor) -> Tensor:
    """Real square root of a real Schur form ``T`` (..., n, n).

    A single large matrix on the CPU stays real (``_sqrt_quasi_triangular_lapack``, as SciPy);
    otherwise ``Re(G^H sqrt(G T G^H) G)`` through the complex triangular form.
    """
    n = T.shape[-1]
    if T.device.type == "cpu" and n >= _LAPACK_MIN_N and T.shape[:-2].numel() == 1:
        return _sqrt_quasi_triangular_lapack(T)
    if n < 2:
        return T.sqrt()
    Tc, g = to_complex_triangular(T)
    return from_complex_triangular(sqrt_triangular(Tc), g)


def _sqrt_quasi_triangular_lapack(T: Tensor, leaf: int = 32) -> Tensor:
    """Recursive blocked real square root of one real Schur form (``_blocked_sqrt_lapack``)."""
    return _blocked_sqrt_lapack(T, quasi=True, leaf=leaf)


def _gauss_legendre(m: int, dtype: torch.dtype, device) -> tuple[Tensor, Tensor]:
    x, w = np.polynomial.legendre.leggauss(m)
    nodes = torch.as_tensor((x + 1.0) / 2.0, dtype=dtype, device=device)
    weights = torch.as_tensor(w / 2.0, dtype=dtype, device=device)
    return nodes, weights


def _norm1(X: Tensor) -> float:
    return float(X.abs().sum(-2).amax()) if X.numel() else 0.0


def log_plan(T: Tensor) -> tuple[int, int]:
    """Number of square roots ``k`` and Pade degree ``m`` for ``log_triangular`` of a batch."""
    n = T.shape[-1]
    eye = torch.eye(n, dtype=T.dtype, device=T.device)
    k = 0
    while _norm1(T - eye) > _THETA[-1] and k < _MAX_ROOTS:
        T = sqrt_triangular(T)
        k += 1
    x = _norm1(T - eye)
    m = next((j + 1 for j, th in enumerate(_THETA) if x <= th), len(_THETA))
    return k, m


def log_triangular(T: Tensor, k: int, m: int) -> Tensor:
    """Principal logarithm of upper-triangular ``T`` by ``k`` square roots and an [m/m] Pade."""
    n = T.shape[-1]
    eye = torch.eye(n, dtype=T.dtype, device=T.device)
    t = T.diagonal(dim1=-2, dim2=-1)
    z = t - 1.0  # diagonal of T^(1/2^j) - I, without cancellation
    R = T
    for _ in range(k):
        r = R.diagonal(dim1=-2, dim2=-1)
        z = z / (r.sqrt() + 1.0)
        R = sqrt_triangular(R)
    X = R - eye
    X = X - torch.diag_embed(X.diagonal(dim1=-2, dim2=-1)) + torch.diag_embed(z)
    nodes, weights = _gauss_legendre(m, real_dtype(T.dtype), T.device)
    L = torch.zeros_like(X)
    for xj, wj in zip(nodes, weights):
        L = L + wj * torch.linalg.solve_triangular(eye + xj * X, X, upper=True)
    L = (2.0**k) * L
    return L - torch.diag_embed(L.diagonal(dim1=-2, dim2=-1)) + torch.diag_embed(torch.log(t))
