"""The ties table of ``svd`` and ``svd_truncated`` (``docs/ties_svd.md``), every cell tested.

Losses x points x dtypes -> "exact" (the gradient matches central finite differences of the same
smooth loss written without an SVD, in float64) or a named error (plain autograd raises it;
inside ``torch.func`` the gradient is NaN). Points: singular values ``(4, 3, 1, 1)`` with the
repeated pair exactly equal (a signed permutation with phases), rotated by random unitaries
(the tie split at rounding level), or split by 1e-10 or 1e-6; ``svd_truncated`` keeps ``k = 4``
of a 6 x 5 matrix with a fifth value 0.25. Run this file as a script to print the table.

Tolerance of an "exact" cell (error model of ``docs/conventions.md``): relative error at most
``10 kappa eps + 1e-7`` (float64; ``kappa = s_max / gap`` for a gap the loss resolves, 1 at a
masked tie; the constant covers the finite-difference error) and ``100 n eps s_max / 2``
(float32: rounding amplified by the gap 2 between the clusters).
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from difflinalg import DegenerateSpectrumError, svd, svd_truncated
from difflinalg.check import randn

F32, F64, C128 = torch.float32, torch.float64, torch.complex128
POINTS = {"exact tie": 0.0, "rotated tie": None, "gap 1e-10": 1e-10, "gap 1e-6": 1e-6}
LOSSES = ("projector", "spectral", "sum", "coupled")
OPS = ("svd", "svd_truncated")
DTYPES = (F64, C128, F32)
DSE = "DegenerateSpectrumError"


def expected(op: str, loss: str, point: str, dtype: torch.dtype) -> str:
    """The table: exact for the losses of the exact class and wherever the pair is resolved;
    a named error for couplings at ties. In float32 a split of 1e-10 or 1e-6 is below the tie
    tolerance ``4 max(m, n) eps s_max`` (7.6e-6 for svd, 1.1e-5 for svd_truncated): a tie."""
    tie = point in ("exact tie", "rotated tie") or dtype == F32
    if loss in ("projector", "sum") or not tie:
        return "exact"
    return DSE


def matrix(op: str, point: str, dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    m, n = (4, 4) if op == "svd" else (6, 5)
    s = [4.0, 3.0, 1.0, 1.0] + ([0.25] if op == "svd_truncated" else [])
    split = POINTS[point]
    if split:
        s[2] += split
    hi = C128 if dtype.is_complex else F64
    st = torch.tensor(s, dtype=F64)
    if point == "exact tie":  # a signed permutation with phases: the values are exact
        ph = torch.exp(1j * torch.arange(1.0, len(s) + 1, dtype=F64)) if dtype.is_complex else torch.ones(len(s))
        P = torch.eye(m, dtype=hi)[:, torch.randperm(m, generator=gen)[: len(s)]]
        Q = torch.eye(n, dtype=hi)[:, torch.randperm(n, generator=gen)[: len(s)]]
        A = (P * (st * ph).to(hi)) @ Q.mH
    else:
        P = torch.linalg.qr(randn(hi, gen, m, len(s))).Q
        Q = torch.linalg.qr(randn(hi, gen, n, len(s))).Q
        A = (P * st.to(hi)) @ Q.mH
    return A.to(dtype)


def weights(A: torch.Tensor, seed: int = 1):
    """Fixed weights of the losses, drawn in double precision (the same in every dtype)."""
    gen = torch.Generator().manual_seed(seed)
    m, n = A.shape
    hi = C128 if A.is_complex() else F64
    ws = (randn(hi, gen, m, m), randn(hi, gen, n, n), randn(hi, gen, m, n), randn(hi, gen, m),
          randn(hi, gen, n))
    return tuple(w.to(A.dtype) for w in ws)


def via_svd(op: str, loss: str, A: torch.Tensor) -> torch.Tensor:
    """The loss through the op (the pair is ``2:4``)."""
    Wu, Wv, W, x, y = weights(A)
    U, S, Vh = svd(A) if op == "svd" else svd_truncated(A, 4, method="full")
    V = Vh.mH
    if loss == "projector":
        return (Wu * (U[:, 2:4] @ U[:, 2:4].mH)).real.sum() + (Wv * (V[:, 2:4] @ V[:, 2:4].mH)).real.sum()
    if loss == "spectral":
        return (W.conj() * ((U * torch.sin(S).to(U.dtype)) @ Vh)).real.sum()
    if loss == "sum":
        return S.sum()
    ux, vy = (U.mH @ x).abs().square(), (V.mH @ y).abs().square()
    return (S.square() * ux).sum() + (S * vy).sum()


def _heval(X: torch.Tensor):
    w, Q = torch.linalg.eigh(X)
    return w, Q


def smooth(op: str, loss: str, A: torch.Tensor) -> torch.Tensor:
    """The same loss without an SVD (float64): eigh of the Gram matrices (their eigenvalues
    near 1 are separated from the rest by at least 8), a series for ``U sin(S) V^H``."""
    Wu, Wv, W, x, y = weights(A)
    G, K = A @ A.mH, A.mH @ A
    if loss == "projector":
        wu, Qu = _heval(G)
        wv, Qv = _heval(K)
        Pu = Qu[:, wu.shape[-1] - 4:wu.shape[-1] - 2]
        Pv = Qv[:, wv.shape[-1] - 4:wv.shape[-1] - 2]
        return (Wu * (Pu @ Pu.mH)).real.sum() + (Wv * (Pv @ Pv.mH)).real.sum()
    if loss == "spectral":  # U sin(S) V^H = sum_k (-1)^k A (A^H A)^k / (2k+1)!
        term, F = A, A.clone()
        for k in range(1, 40):
            term = -(term @ K) / ((2 * k) * (2 * k + 1))
            F = F + term
        if op == "svd_truncated":  # keep the leading 4 triplets: subtract the 5th
            wv, Qv = _heval(K)
            s5 = wv[0].clamp_min(0).sqrt()
            v5 = Qv[:, :1]
            u5 = A @ v5 / s5
            F = F - torch.sin(s5) * (u5 @ v5.mH)
        return (W.conj() * F).real.sum()
    wv, Qv = _heval(K)
    sv = wv.clamp_min(0).sqrt()
    keep = slice(1, None) if op == "svd_truncated" else slice(None)
    if loss == "sum":
        return sv[keep].sum()
    # sum_i s_i^2 |u_i^H x|^2 = |A^H x|^2 over the kept triplets; sum_i s_i |v_i^H y|^2
    Qk, sk = Qv[:, keep], sv[keep]
    ax = (Qk.mH @ (A.mH @ x)).abs().square().sum()
    return ax + (sk * (Qk.mH @ y).abs().square()).sum()


def fd_gradient(f, A: torch.Tensor, h: float = 1e-5) -> torch.Tensor:
    """Central differences in PyTorch's complex convention (real and imaginary parts)."""
    g = torch.zeros_like(A)
    units = (1.0, 1j) if A.is_complex() else (1.0,)
    for idx in range(A.numel()):
        for u in units:
            E = torch.zeros_like(A).reshape(-1)
            E[idx] = u
            E = E.reshape(A.shape)
            d = (f(A + h * E) - f(A - h * E)) / (2 * h)
            g.reshape(-1)[idx] += d * u
    return g


def tolerance(point: str, dtype: torch.dtype, n: int) -> float:
    if dtype == F32:
        return 100 * n * torch.finfo(F32).eps * 4 / 2
    split = POINTS[point]
    kappa = 4.0 / split if split else 1.0
    return 10 * kappa * torch.finfo(F64).eps + 1e-7


def run_cell(op: str, loss: str, point: str, dtype: torch.dtype) -> tuple[str, float]:
    """(outcome, relative error): outcome "exact" or the error's class name."""
    A = matrix(op, point, dtype)
    A1 = A.clone().requires_grad_()
    try:
        g, = torch.autograd.grad(via_svd(op, loss, A1), A1)
    except Exception as exc:  # noqa: BLE001 - the table records which error
        return type(exc).__name__, math.nan
    hi = C128 if dtype.is_complex else F64
    ref = fd_gradient(lambda B: smooth(op, loss, B), A.to(hi))
    return "exact", float((g.to(hi) - ref).norm() / ref.norm())


CELLS = [(op, loss, point, dt) for op in OPS for loss in LOSSES for point in POINTS for dt in DTYPES]


def _id(cell) -> str:
    op, loss, point, dt = cell
    return f"{op}-{loss}-{point.replace(' ', '_')}-{str(dt).replace('torch.', '')}"


@pytest.mark.parametrize("cell", CELLS, ids=_id)
def test_cell(cell):
    op, loss, point, dtype = cell
    want = expected(*cell)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no PrecisionWarning in any cell of the table
        outcome, err = run_cell(*cell)
    assert outcome == want, (outcome, err)
    if want == "exact":
        assert err <= tolerance(point, dtype, 6 if op == "svd_truncated" else 4), err


@pytest.mark.parametrize("cell", [c for c in CELLS if expected(*c) == DSE and c[3] != F32][::3],
                         ids=_id)
def test_cell_inside_torch_func_is_nan(cell):
    """The same cells inside ``torch.func.grad``: no exception can be raised there, NaN instead
    (the projector and sum cells stay finite: ``test_cell`` covers their values)."""
    op, loss, point, dtype = cell
    A = matrix(op, point, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = torch.func.grad(lambda A: via_svd(op, loss, A))(A)
        g_ok = torch.func.grad(lambda A: via_svd(op, "projector", A))(A)
    assert torch.isnan(g).all()
    assert torch.isfinite(g_ok).all()


def markdown() -> str:
    rows = ["| op | loss | point | float64 | complex128 | float32 |", "|---|---|---|---|---|---|"]
    for op in OPS:
        for loss in LOSSES:
            for point in POINTS:
                cells = []
                for dt in DTYPES:
                    outcome, err = run_cell(op, loss, point, dt)
                    cells.append(f"exact ({err:.0e})" if outcome == "exact" else outcome)
                rows.append(f"| {op} | {loss} | {point} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


if __name__ == "__main__":
    torch.set_num_threads(1)
    print(markdown())
