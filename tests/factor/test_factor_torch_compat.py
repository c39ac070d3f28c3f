"""torch.linalg's conventions for the factorizations whose names coincide (issue 21, item 2):
``qr`` and ``cholesky`` take torch.linalg's parameters (names, order, kinds, defaults), ``qr``
returns a named tuple with torch's fields (``Q`` empty in mode "r", as torch's) and the same shapes,
dtypes and values up to the phases of the normalization; ``lq`` (no torch counterpart) follows ``qr``."""

from __future__ import annotations

import inspect

import pytest
import torch

import difflinalg
from difflinalg import LQResult, QRResult
from difflinalg.check import randn

from _helpers import gen, torch_parameters

F32, F64, C64, C128 = torch.float32, torch.float64, torch.complex64, torch.complex128
SHAPES = [(4, 4), (5, 3), (3, 5), (2, 3, 4, 3), (0, 3, 3)]


@pytest.mark.parametrize("name", ["qr", "cholesky"])
def test_signature_matches_torch(name):
    ours = list(inspect.signature(getattr(difflinalg, name)).parameters.values())
    theirs = [p for p in torch_parameters(name) if p.name != "out"]
    assert [(p.name, p.kind, p.default) for p in ours] == [(p.name, p.kind, p.default) for p in theirs]


def test_result_types_have_torch_fields():
    assert QRResult._fields == torch.return_types.linalg_qr.__match_args__ == ("Q", "R")
    assert LQResult._fields == ("L", "Q")


@pytest.mark.parametrize("dtype", [F32, F64, C64, C128])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("mode", [None, "reduced", "complete", "r"])
def test_qr_matches_torch(dtype, shape, mode):
    """Same type and field shapes/dtypes in every mode; R equal to torch's after rotating torch's
    diagonal phases to positive reals (difflinalg's normalization), Q = A R^{-1} up to those phases."""
    A = randn(dtype, gen(3), *shape)
    args = () if mode is None else (mode,)
    out, ref = difflinalg.qr(A, *args), torch.linalg.qr(A, *args)
    assert isinstance(out, QRResult)
    Q, R = out  # unpacks like a tuple
    for f in QRResult._fields:
        a, b = getattr(out, f), getattr(ref, f)
        assert (a.shape, a.dtype, a.device) == (b.shape, b.dtype, b.device), f
    if A.numel() == 0:
        return
    k = min(shape[-2:])
    d = ref.R.diagonal(dim1=-2, dim2=-1)[..., :k]
    s = d / d.abs()
    tol = dict(rtol=0.0, atol=100 * torch.finfo(dtype).eps)
    torch.testing.assert_close(R[..., :k, :], s.conj()[..., :, None] * ref.R[..., :k, :], **tol)
    if mode != "r":
        torch.testing.assert_close(Q[..., :k], ref.Q[..., :k] * s[..., None, :], **tol)


@pytest.mark.parametrize("mode", ["reduced", "complete", "r"])
def test_lq_is_qr_of_the_adjoint(mode):
    A = randn(C128, gen(4), 3, 5)
    L, Q = difflinalg.lq(A, mode)
    Qq, Rq = difflinalg.qr(A.mH, mode)
    torch.testing.assert_close(L, Rq.mH, rtol=0, atol=0)
    torch.testing.assert_close(Q, Qq.mH if mode != "r" else Qq, rtol=0, atol=0)
    assert (Q.numel() == 0) == (mode == "r")


def test_cholesky_matches_torch_and_upper_is_keyword_only():
    B = randn(C128, gen(5), 2, 4, 4)
    A = B @ B.mH + 4 * torch.eye(4, dtype=C128)
    for upper in (False, True):
        torch.testing.assert_close(difflinalg.cholesky(A, upper=upper), torch.linalg.cholesky(A, upper=upper))
    with pytest.raises(TypeError):
        difflinalg.cholesky(A, True)
