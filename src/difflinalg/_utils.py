"""Shared helpers for rules: validation with actionable messages, and small linear-algebra pieces.

Validation runs on plain tensors only. Inside ``torch.func`` transforms (vmap, grad, jvp) the
tensors are wrapped and value-dependent checks would force data-dependent control flow, so the
value checks (finiteness) are skipped there; shape and dtype checks always run.
"""

from __future__ import annotations

import cmath
import contextlib
import functools
import operator
import warnings
from collections.abc import Sequence

import torch
from torch import Tensor

from ._errors import InputError, PrecisionWarning

_FLOATING = (torch.float32, torch.float64, torch.complex64, torch.complex128)


def is_wrapped(x: Tensor) -> bool:
    """True for tensors wrapped by a ``torch.func`` transform (vmap/grad/jvp levels)."""
    return torch._C._functorch.is_functorch_wrapped_tensor(x)


def as_tensor(x, name: str) -> Tensor:
    if isinstance(x, Tensor):
        return x
    try:
        return torch.as_tensor(x)
    except Exception as exc:  # noqa: BLE001 - re-raised with the argument's name
        raise InputError(f"{name}: expected a tensor, got {type(x).__name__} ({exc})") from exc


def check_dtype(x: Tensor, name: str, allowed: Sequence[torch.dtype] = _FLOATING) -> None:
    if x.dtype not in allowed:
        names = ", ".join(str(d).replace("torch.", "") for d in allowed)
        raise InputError(
            f"{name}: dtype {str(x.dtype).replace('torch.', '')} is not supported; "
            f"expected one of {names} (convert with {name}.to(torch.float64) or .to(torch.complex128))"
        )


def check_finite(x: Tensor, name: str) -> None:
    """Raise if ``x`` has NaN or inf entries (skipped inside torch.func transforms)."""
    if is_wrapped(x) or x.numel() == 0:
        return
    if not bool(torch.isfinite(x).all()):
        n_bad = int((~torch.isfinite(x)).sum())
        raise InputError(
            f"{name}: contains {n_bad} non-finite value(s) (NaN or inf); "
            "clean the input (e.g. torch.nan_to_num) or find where it was produced"
        )


def check_matrix(
    x: Tensor,
    name: str,
    *,
    square: bool = False,
    finite: bool = True,
    allowed: Sequence[torch.dtype] = _FLOATING,
) -> Tensor:
    """Validate a (batched) matrix argument of shape (..., m, n) and return it as a tensor (meta
    tensors refused by name: every rule reads values, see ``reject_meta``)."""
    x = as_tensor(x, name)
    reject_meta(name, x)
    check_dtype(x, name, allowed)
    if x.ndim < 2:
        raise InputError(
            f"{name}: expected a matrix of shape (..., m, n), got shape {tuple(x.shape)}; "
            f"add a dimension with {name}.reshape(1, -1) or {name}[..., None]"
        )
    if square and x.shape[-1] != x.shape[-2]:
        raise InputError(f"{name}: expected a square matrix (..., n, n), got shape {tuple(x.shape)}")
    if finite:
        check_finite(x, name)
    return x


def reject_meta(arg_name: str, t: Tensor) -> None:
    """Raise ``InputError`` for a tensor on the meta device.

    Rules that read values (checks, host factorizations, data-dependent branches) cannot run on
    meta tensors, which carry shapes only; before this the call failed deep inside with
    ".item() cannot be called on meta tensors" (issue 16 item 5)."""
    if isinstance(t, Tensor) and t.device.type == "meta":
        raise InputError(
            f"{arg_name}: meta tensors are not supported (this rule reads values: singularity, "
            "eigenvalue or precision checks, or a host factorization, so it cannot propagate shapes "
            "alone); call it on tensors with data (e.g. torch.zeros(shape, device='cpu'))"
        )


def check_same_dtype(**tensors: Tensor) -> torch.dtype:
    dtypes = {k: v.dtype for k, v in tensors.items()}
    if len(set(dtypes.values())) > 1:
        desc = ", ".join(f"{k}: {str(d).replace('torch.', '')}" for k, d in dtypes.items())
        raise InputError(
            f"arguments must share one dtype, got {desc}; convert them with .to(dtype) first"
        )
    return next(iter(dtypes.values()))


def real_dtype(dtype: torch.dtype) -> torch.dtype:
    """The real dtype of ``dtype``'s precision (complex64 -> float32; a real dtype maps to itself).

    The one place for this mapping: ``torch.dtype.to_real`` (torch >= 2.1) allocates nothing."""
    return dtype.to_real()


def eps(dtype: torch.dtype) -> float:
    return torch.finfo(real_dtype(dtype)).eps


def eye_like(x: Tensor, n: int | None = None) -> Tensor:
    """Identity of size n (default: x's last dimension) with x's dtype and device."""
    n = x.shape[-1] if n is None else n
    return torch.eye(n, dtype=x.dtype, device=x.device)


def herm(x: Tensor) -> Tensor:
    """Hermitian part (X + X^H) / 2."""
    # the transpose made contiguous first: adding a transposed (conjugate) view directly is
    # 3-4x slower on CPU for batched n x n (cache-unfriendly strides); the values are the same
    return 0.5 * (x + x.mH.contiguous())


def skew(x: Tensor) -> Tensor:
    """Skew-Hermitian part (X - X^H) / 2."""
    return 0.5 * (x - x.mH.contiguous())


def diag_embed_real(d: Tensor, like: Tensor) -> Tensor:
    """Diagonal matrix from a (real) vector, in like's dtype."""
    return torch.diag_embed(d.to(like.dtype))


def check_finite_sum(x: Tensor, name: str) -> None:
    """``check_finite`` at the cost of one reduction when every entry is finite (the usual case).

    A sum is finite only if all entries are (NaN and inf propagate), so a finite sum proves the input
    clean; otherwise (a bad entry, or a sum of finite entries that overflows) ``check_finite`` decides
    and counts. On a 512 x 16 x 256 complex64 tensor this is ~20x cheaper than ``check_finite``.
    """
    if is_wrapped(x) or x.numel() == 0:
        return
    # On the Python number: torch.isfinite on a complex 0-d tensor costs ~40 us, this ~5 us.
    if not cmath.isfinite(complex(x.sum().item())):
        check_finite(x, name)


def broadcast_shapes(*shapes: Sequence[int]) -> tuple[int, ...]:
    """``torch.broadcast_shapes`` in plain Python (raises ``RuntimeError`` likewise); ~100x cheaper
    on CPU (torch's goes through its Python reference implementation), for per-call checks."""
    ndim = max((len(s) for s in shapes), default=0)
    out = [1] * ndim
    for s in shapes:
        for i, d in enumerate(s, start=ndim - len(s)):
            if d != 1:
                if out[i] not in (1, d):
                    raise RuntimeError(f"shapes {[tuple(t) for t in shapes]} do not broadcast")
                out[i] = d
    return tuple(out)


def check_int(x, name: str, expected: str = "an integer") -> int:
    """``x`` as a Python int: ints and integer-like objects (``__index__``, e.g. NumPy integers),
    never a bool. The message says ``name: expected <expected>``; range checks are the caller's."""
    if isinstance(x, bool):
        raise InputError(f"{name}: expected {expected}, got {x!r}")
    try:
        return operator.index(x)
    except TypeError:
        raise InputError(f"{name}: expected {expected}, got {type(x).__name__} ({x!r})") from None


# ----------------------------------------------------------------------------------------------
# Warnings shared by the rules.

PRECISION_TOL = 1e-2
"""Predicted relative error (``kappa * eps``) above which a rule emits ``PrecisionWarning``:
beyond it the result keeps fewer than two correct digits (``docs/conventions.md``)."""

_warned: set[str] = set()


def warn_once(key: str, message: str, category: type[Warning] = UserWarning, stacklevel: int = 3) -> None:
    """``warnings.warn`` only the first time ``key`` is seen in this process (for warnings that
    would otherwise repeat every iteration of a training loop, e.g. a check skipped under
    ``torch.func``)."""
    if key in _warned:
        return
    _warned.add(key)
    warnings.warn(message, category, stacklevel=stacklevel)


def check_precision(op: str, kappa: Tensor | float, dtype: torch.dtype, what: str) -> None:
    """The single-precision policy: warn ``PrecisionWarning`` when ``kappa * eps(dtype)`` exceeds
    ``PRECISION_TOL``.

    ``kappa`` is the rule's cheap condition estimate for ``what`` (e.g. "the eigenvector
    derivative: inverse relative gap"), a float or a tensor (its largest entry counts; one host
    synchronisation, skipped inside ``torch.func`` transforms where the value cannot be read).
    """
    if isinstance(kappa, Tensor):
        if is_wrapped(kappa) or kappa.numel() == 0 or kappa.device.type == "meta":
            return
        kappa = float(kappa.detach().abs().amax())
    predicted = kappa * eps(dtype)
    if not predicted > PRECISION_TOL:
        return
    name = str(dtype).replace("torch.", "")
    warnings.warn(
        f"{op}: {what} has condition ~{kappa:.2e}, so in {name} (eps {eps(dtype):.1e}) it may carry a "
        f"relative error up to ~{min(predicted, 1e300):.1e}; compute in double precision "
        f"(x.to(torch.float64) / torch.complex128) or regularize the problem",
        PrecisionWarning,
        stacklevel=3,
    )


@functools.cache
def blas_controller():
    """threadpoolctl's ``ThreadpoolController`` of the BLAS libraries loaded (NumPy's and SciPy's),
    found once per process; None without threadpoolctl. Its scan walks the loaded libraries through
    a ctypes callback, where a Ctrl-C is printed and dropped instead of raised (the CLI's interrupt
    was lost about once in 30 runs when it landed there), so it is made once, early, not per call."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    import scipy.linalg  # noqa: F401  (the scan finds only the libraries already loaded)

    return ThreadpoolController()


@contextlib.contextmanager
def blas_threads(n: int):
    """At most ``n`` threads in the BLAS libraries of ``blas_controller`` inside the block (restored
    afterwards; nothing without threadpoolctl)."""
    controller = blas_controller()
    if controller is None:
        yield
        return
    with controller.limit(limits=n):
        yield


@contextlib.contextmanager
def pinned_threads(n: int = 1):
    """Run with ``n`` intra-op threads in torch and at most ``n`` in NumPy's and SciPy's BLAS
    (``blas_threads``), restored afterwards."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with blas_threads(n):
            yield
    finally:
        torch.set_num_threads(old)
