"""Argument checks of the regularized solves (``regularized_solve``, ``RegularizedSolver``): named
errors for bad ``D``, ``x``, ``rho``, ``gram``, ``method``, raised before any factorization."""

from __future__ import annotations

import torch
from torch import Tensor

from .._errors import InputError
from .._utils import (
    as_tensor,
    broadcast_shapes,
    check_finite,
    check_finite_sum,
    check_matrix,
    check_same_dtype,
    is_wrapped,
    real_dtype,
    reject_meta,
)

GRAMS = ("DhD", "DDh")
METHODS = ("auto", "direct", "woodbury")


def _as_rho(rho, D: Tensor) -> Tensor:
    """``rho`` as a real tensor of D's real dtype; raises for complex, non-positive or non-finite."""
    rdt = real_dtype(D.dtype)
    if isinstance(rho, complex) or (isinstance(rho, Tensor) and rho.is_complex()):
        raise InputError(
            f"rho: expected a positive real scalar or a real tensor of batch shape, got a complex "
            f"value {rho!r}; pass its real part (e.g. rho.real) if that is what you mean"
        )
    if isinstance(rho, Tensor):
        if not rho.is_floating_point():
            raise InputError(
                f"rho: dtype {str(rho.dtype).replace('torch.', '')} is not supported; expected "
                f"{str(rdt).replace('torch.', '')} (convert with rho.to({rdt}))"
            )
        if rho.dtype != rdt:
            raise InputError(
                f"rho: dtype {str(rho.dtype).replace('torch.', '')} does not match D's real dtype "
                f"{str(rdt).replace('torch.', '')}; convert it with rho.to({rdt})"
            )
        r = rho
    else:
        try:  # straight to rdt: through the default dtype (float32) a Python float would be rounded
            r = torch.as_tensor(rho, dtype=rdt, device=D.device)
        except (TypeError, RuntimeError, ValueError) as exc:
            raise InputError(
                f"rho: expected a positive real scalar or a real tensor, got {type(rho).__name__}"
            ) from exc
    check_finite(r, "rho")
    # a Python number is checked as such: inside torch.func its tensor may come out wrapped
    number = isinstance(rho, (int, float)) and not isinstance(rho, bool)
    if (number and not rho > 0) or (not number and not is_wrapped(r) and r.numel() and bool((r <= 0).any())):
        raise InputError(
            f"rho: must be positive (rho I + Gram is then positive definite), got min(rho) = "
            f"{float(r.min()):.3g}; use rho > 0 (e.g. a small multiple of |D|^2 as a floor)"
        )
    return r


def check_gram_method(gram: str, method: str) -> None:
    if gram not in GRAMS:
        raise InputError(f"gram: expected one of {GRAMS}, got {gram!r}")
    if method not in METHODS:
        raise InputError(f"method: expected one of {METHODS}, got {method!r}")


def prepare_D_rho(D: Tensor, rho) -> tuple[Tensor, Tensor]:
    """Validated ``D`` and ``rho`` as a real tensor of shape (..., 1, 1) (before any factorization)."""
    reject_meta("D", D)
    reject_meta("rho", rho)
    D = check_matrix(D, "D", finite=False)
    check_finite_sum(D, "D")
    r = _as_rho(rho, D)
    return D, r.reshape(*r.shape, 1, 1)


def prepare_rhs(D: Tensor, x, r: Tensor, gram: str) -> tuple[Tensor, bool]:
    """``x`` as a block (..., k, r) and whether it was a vector; checks dtype, shape and that the
    batch shapes of ``D``, ``x`` and ``rho`` broadcast."""
    reject_meta("x", x)
    x = as_tensor(x, "x")
    check_same_dtype(D=D, x=x)
    check_finite_sum(x, "x")
    m, n = D.shape[-2:]
    k = n if gram == "DhD" else m
    if x.ndim == 0:
        raise InputError(f"x: expected a vector (..., {k}) or a block (..., {k}, r), got a scalar")
    vector = x.ndim == 1 or (x.ndim == D.ndim - 1 and x.shape[:-1] == D.shape[:-2])
    if vector:
        x = x.unsqueeze(-1)
    if x.shape[-2] != k:
        side = "D^H D" if gram == "DhD" else "D D^H"
        kind = "vector" if vector else "block"
        raise InputError(
            f"x: shape {tuple(x.shape[:-1] if vector else x.shape)} does not match D of shape "
            f"{tuple(D.shape)}: gram={gram!r} ({side}, {k} x {k}) needs a {kind} with "
            f"{'last' if vector else 'second-to-last'} dimension {k}"
            + ("" if vector or x.ndim != D.ndim - 1 else
               " (x is read as a block because x.shape[:-1] != D.shape[:-2])")
            + ("" if gram == "DDh" else "; for (rho I + D D^H)^{-1} x use gram='DDh'")
        )
    try:
        broadcast_shapes(D.shape[:-2], x.shape[:-2], r.shape[:-2])
    except RuntimeError as exc:
        raise InputError(
            f"x, rho: batch shapes D {tuple(D.shape[:-2])}, x {tuple(x.shape[:-2])}, rho "
            f"{tuple(r.shape[:-2])} do not broadcast; make them equal or 1 where they differ"
        ) from exc
    # Lazily conjugated / negated inputs trip a torch assert on forward-mode views in the nested
    # jvp (jvp of jvp): materialize them (a no-op without the bits).
    return x.resolve_conj().resolve_neg(), vector
