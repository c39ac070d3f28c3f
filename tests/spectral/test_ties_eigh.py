"""The ties table of ``eigh``, ``eigh_subspace`` and ``subspace_projector`` (``docs/ties.md``),
every cell tested.

Losses x points x dtypes -> "exact" (the gradient matches central finite differences of the same
smooth loss written without the op: ``torch.linalg.eigh`` projectors onto the separated pair, a
power series for ``sin``, in float64) or a named error (plain autograd raises it; inside
``torch.func`` the gradient is NaN). Points: eigenvalues ``(1, 1, 3, 5)`` with the repeated pair
exactly equal (a permutation with phases), rotated by a random unitary (the tie split at
rounding level), or split by 1e-10 or 1e-6 (``w_2 = 1 + gap``). The subspace ops keep ``k = 2``
(the pair). Run this file as a script to print the table.

Tolerance of an "exact" cell (error model of ``docs/conventions.md``): relative error at most
``10 kappa eps + 1e-7`` (float64; ``kappa = max|w| / gap`` for a gap the loss resolves, 1 at a
masked tie; the constant covers the finite-difference error) and ``100 n eps max|w| / 2`` in
float32 (rounding amplified by the gap 2 between the pair and the rest).
"""

from __future__ import annotations

import warnings

import pytest
import torch

if __name__ == "__main__":  # run as a script to print the table: the shared helpers live in tests/
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _helpers import run_table_cell, table_cell_id

from difflinalg import eigh, eigh_subspace, subspace_projector
from difflinalg.check import randn
from difflinalg.spectral._cases_eigh import hermitian_with_spectrum

F32, F64, C128 = torch.float32, torch.float64, torch.complex128
POINTS = {"exact tie": 0.0, "rotated tie": None, "gap 1e-10": 1e-10, "gap 1e-6": 1e-6}
LOSSES = ("projector", "spectral", "sum", "coupled")
OPS = ("eigh", "eigh_subspace", "subspace_projector")
DTYPES = (F64, C128, F32)
DSE, GE = "DegenerateSpectrumError", "GaugeError"
SPECTRUM = [1.0, 1.0, 3.0, 5.0]


def expected(op: str, loss: str, point: str, dtype: torch.dtype) -> str:
    """Exact for the losses of the exact class and wherever the pair is resolved; a named error
    for couplings at ties (DegenerateSpectrumError) and, for eigh_subspace, for losses of the
    kept basis at a resolved pair (GaugeError: it does not differentiate the basis). In float32 a
    split of 1e-10 or 1e-6 is below the tie tolerance ``4 n eps max|w| = 9.5e-6``: a tie."""
    tie = point in ("exact tie", "rotated tie") or dtype == F32
    if op == "subspace_projector" or loss in ("projector", "sum"):
        return "exact"
    if tie:
        return DSE
    return GE if op == "eigh_subspace" else "exact"


def matrix(point: str, dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    w = list(SPECTRUM)
    split = POINTS[point]
    if split:
        w[1] += split
    hi = C128 if dtype.is_complex else F64
    if point == "exact tie":  # a permutation with phases: the eigenvalues come out exact
        ph = torch.ones(4, dtype=hi)
        if dtype.is_complex:
            ph = torch.exp(1j * torch.arange(1.0, 5.0, dtype=F64))
        P = torch.eye(4, dtype=hi)[:, torch.randperm(4, generator=gen)] * ph
        A = (P * torch.tensor(w, dtype=F64).to(hi)) @ P.mH
    else:
        A = hermitian_with_spectrum(hi, gen, w)
    return A.to(dtype)


def weights(A: torch.Tensor, seed: int = 1):
    """Fixed weights (drawn in double precision, the same in every dtype): W Hermitian, x."""
    gen = torch.Generator().manual_seed(seed)
    hi = C128 if A.is_complex() else F64
    W, x = randn(hi, gen, 4, 4), randn(hi, gen, 4)
    return (W + W.mH).to(A.dtype), x.to(A.dtype)


def _inner(W: torch.Tensor, F: torch.Tensor) -> torch.Tensor:
    return (W.conj() * F).real.sum()


def via_op(op: str, loss: str, A: torch.Tensor) -> torch.Tensor:
    """The loss through the op (the pair is the two smallest eigenvalues)."""
    W, x = weights(A)
    if op == "subspace_projector":
        P = subspace_projector(A, 2)
        H = 0.5 * (A + A.mH)  # the op decomposes herm(A): the loss uses the same matrix
        B = P @ H @ P
        return {"projector": lambda: _inner(W, P),
                "spectral": lambda: _inner(W, B - B @ B @ B / 6),
                "sum": lambda: torch.diagonal(H @ P).real.sum(),
                "coupled": lambda: (B @ x).abs().square().sum()}[loss]()
    if op == "eigh":
        w, V = eigh(A)
        U, wk = V[:, :2], w[:2]
    else:
        w, V = eigh_subspace(A, 2)
        U, wk = V, w
    if loss == "projector":
        return _inner(W, U @ U.mH)
    if loss == "spectral":
        return _inner(W, (V * torch.sin(w).to(V.dtype)) @ V.mH)
    if loss == "sum":
        return wk.sum()
    return (w.square() * (V.mH @ x).abs().square()).sum()


def _sin(B: torch.Tensor) -> torch.Tensor:
    term, F = B, B.clone()
    for k in range(1, 40):
        term = -(term @ B @ B) / ((2 * k) * (2 * k + 1))
        F = F + term
    return F


def smooth(op: str, loss: str, A: torch.Tensor) -> torch.Tensor:
    """The same loss without the op (float64): the projector onto the pair (separated from the
    rest by 2) from torch.linalg.eigh, a power series for sin."""
    W, x = weights(A)
    H = 0.5 * (A + A.mH)
    Q = torch.linalg.eigh(H)[1][:, :2]
    P = Q @ Q.mH
    if loss == "projector":
        return _inner(W, P)
    if loss == "sum":
        return torch.diagonal(H @ P).real.sum()
    if op == "subspace_projector":
        B = P @ H @ P
        return _inner(W, B - B @ B @ B / 6) if loss == "spectral" else (B @ x).abs().square().sum()
    if op == "eigh":
        return _inner(W, _sin(H)) if loss == "spectral" else (H @ x).abs().square().sum()
    return _inner(W, _sin(H) @ P) if loss == "spectral" else (P @ H @ x).abs().square().sum()


def tolerance(point: str, dtype: torch.dtype) -> float:
    if dtype == F32:
        return 100 * 4 * torch.finfo(F32).eps * 5 / 2
    split = POINTS[point]
    kappa = 5.0 / split if split else 1.0
    return 10 * kappa * torch.finfo(F64).eps + 1e-7


def run_cell(op: str, loss: str, point: str, dtype: torch.dtype) -> tuple[str, float]:
    """(outcome, relative error): outcome "exact" or the error's class name."""
    return run_table_cell(lambda X: via_op(op, loss, X), lambda B: smooth(op, loss, B), matrix(point, dtype))

CELLS = [(op, loss, point, dt) for op in OPS for loss in LOSSES for point in POINTS for dt in DTYPES]


_id = table_cell_id


@pytest.mark.parametrize("cell", CELLS, ids=_id)
def test_cell(cell):
    op, loss, point, dtype = cell
    want = expected(*cell)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no PrecisionWarning in any cell of the table
        outcome, err = run_cell(*cell)
    assert outcome == want, (outcome, err)
    if want == "exact":
        assert err <= tolerance(point, dtype), err


@pytest.mark.parametrize("cell", [c for c in CELLS if expected(*c) != "exact" and c[3] != F32][::2],
                         ids=_id)
def test_cell_inside_torch_func_is_nan(cell):
    """The error cells inside ``torch.func.grad``: no exception can be raised there, NaN instead
    (the projector of the same matrix stays finite)."""
    op, loss, point, dtype = cell
    A = matrix(point, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = torch.func.grad(lambda A: via_op(op, loss, A))(A)
        g_ok = torch.func.grad(lambda A: via_op(op, "projector", A))(A)
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
                    cells.append(f"exact ({err:.0e})" if outcome == "exact" else f"**{outcome}**")
                rows.append(f"| {op} | {loss} | {point} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


if __name__ == "__main__":
    torch.set_num_threads(1)
    print(markdown())
