r"""``StateSpace``: a linear time-invariant system with validated matrices.

Continuous time: ``x' = A x + B u, y = C x + D u``, transfer function ``C (sI - A)^{-1} B + D``;
discrete time: ``x[k+1] = A x[k] + B u[k]``, transfer function ``C (zI - A)^{-1} B + D``.
Matrices are torch tensors of one dtype (float32/64 or complex64/128) with optional leading batch
dimensions that broadcast (``A`` (..., n, n), ``B`` (..., n, m), ``C`` (..., p, n), ``D`` (..., p, m)).
The analysis functions (``h2_norm``, ``frequency_response``, ...) are differentiable in the matrices.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._errors import InputError
from .._utils import as_tensor, check_matrix, check_same_dtype

TIMES = ("continuous", "discrete")


def _fmt_complex(z: complex) -> str:
    z = complex(z)
    if z.imag == 0:
        return f"{z.real:.6g}"
    return f"{z.real:.6g}{z.imag:+.6g}j"


def _to_tensor(x, name: str) -> Tensor:
    """A tensor from a tensor, numpy array or scipy sparse matrix (densified)."""
    if hasattr(x, "toarray") and not isinstance(x, Tensor):
        x = x.toarray()
    return as_tensor(x, name)


class StateSpace:
    """A (batch of) linear time-invariant system(s) ``(A, B, C, D)``.

    Args:
        A: (..., n, n) state matrix. B: (..., n, m) input matrix. C: (..., p, n) output matrix.
        D: (..., p, m) feedthrough (default zero). All of one floating dtype, real or complex;
            numpy arrays and scipy sparse matrices are converted (integer arrays are refused:
            convert them, e.g. ``A.astype(float)``; ``load_model`` does this for files).
        time: ``"continuous"`` or ``"discrete"``.

    Raises:
        InputError: wrong shapes, mixed dtypes, non-finite entries, unknown ``time``.
    """

    def __init__(self, A, B, C, D=None, *, time: str = "continuous"):
        if time not in TIMES:
            raise InputError(f"time: expected 'continuous' or 'discrete', got {time!r}")
        A = check_matrix(_to_tensor(A, "A"), "A", square=True)
        B = check_matrix(_to_tensor(B, "B"), "B")
        C = check_matrix(_to_tensor(C, "C"), "C")
        n = A.shape[-1]
        if B.shape[-2] != n:
            raise InputError(f"B: expected {n} rows to match A ({n} x {n}), got shape {tuple(B.shape)}")
        if C.shape[-1] != n:
            raise InputError(f"C: expected {n} columns to match A ({n} x {n}), got shape {tuple(C.shape)}")
        p, m = C.shape[-2], B.shape[-1]
        if D is None:
            D = torch.zeros(p, m, dtype=A.dtype, device=A.device)
        D = check_matrix(_to_tensor(D, "D"), "D")
        if tuple(D.shape[-2:]) != (p, m):
            raise InputError(f"D: expected shape (..., {p}, {m}) ({p} outputs, {m} inputs), got {tuple(D.shape)}")
        check_same_dtype(A=A, B=B, C=C, D=D)
        try:
            self.batch_shape = torch.broadcast_shapes(A.shape[:-2], B.shape[:-2], C.shape[:-2], D.shape[:-2])
        except RuntimeError:
            raise InputError(
                f"A, B, C, D: batch shapes {tuple(A.shape[:-2])}, {tuple(B.shape[:-2])}, "
                f"{tuple(C.shape[:-2])}, {tuple(D.shape[:-2])} do not broadcast"
            ) from None
        self.A, self.B, self.C, self.D = A, B, C, D
        self.time = time
        self._cache: dict = {}

    # -- sizes and types -----------------------------------------------------------------------
    @property
    def order(self) -> int:
        """Number of states n."""
        return self.A.shape[-1]

    @property
    def n_inputs(self) -> int:
        return self.B.shape[-1]

    @property
    def n_outputs(self) -> int:
        return self.C.shape[-2]

    @property
    def dtype(self) -> torch.dtype:
        return self.A.dtype

    @property
    def is_complex(self) -> bool:
        return self.A.is_complex()

    @property
    def discrete(self) -> bool:
        return self.time == "discrete"

    def matrices(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return self.A, self.B, self.C, self.D

    # -- derived systems -----------------------------------------------------------------------
    def to(self, dtype: torch.dtype | None = None, device=None) -> "StateSpace":
        """The same system with matrices converted (e.g. ``.to(torch.complex128)``)."""
        return StateSpace(*(x.to(dtype=dtype, device=device) for x in self.matrices()), time=self.time)

    def detach(self) -> "StateSpace":
        return StateSpace(*(x.detach() for x in self.matrices()), time=self.time)

    def similarity(self, T: Tensor, Tinv: Tensor | None = None) -> "StateSpace":
        """The realization ``(T^{-1} A T, T^{-1} B, C T, D)`` (same transfer function)."""
        Tinv = torch.linalg.inv(T) if Tinv is None else Tinv
        return StateSpace(Tinv @ self.A @ T, Tinv @ self.B, self.C @ T, self.D, time=self.time)

    def __sub__(self, other: "StateSpace") -> "StateSpace":
        """The error system ``self - other`` (block-diagonal state matrix, order n1 + n2)."""
        return error_system(self, other)

    # -- analysis (delegates to the functions of ``_analysis``) ----------------------------------
    def poles(self) -> Tensor:
        """Eigenvalues of A (complex)."""
        return torch.linalg.eigvals(self.A.detach())

    def is_stable(self) -> bool:
        from ._analysis import is_stable

        return is_stable(self)

    def stability_margin(self) -> float:
        from ._analysis import stability_margin

        return stability_margin(self)

    def h2_norm(self) -> Tensor:
        from ._analysis import h2_norm

        return h2_norm(self)

    def hankel_singular_values(self) -> Tensor:
        from ._analysis import hankel_singular_values

        return hankel_singular_values(self)

    def frequency_response(self, w) -> Tensor:
        from ._analysis import frequency_response

        return frequency_response(self, w)

    def __repr__(self) -> str:
        b = f", batch={tuple(self.batch_shape)}" if len(self.batch_shape) else ""
        return (f"StateSpace(order={self.order}, outputs={self.n_outputs}, inputs={self.n_inputs}, "
                f"time={self.time!r}, dtype={str(self.dtype).replace('torch.', '')}{b})")


def check_system(sys, name: str = "system") -> StateSpace:
    if not isinstance(sys, StateSpace):
        raise InputError(f"{name}: expected a difflinalg.control.StateSpace, got {type(sys).__name__}; "
                         "build one with StateSpace(A, B, C, D, time=...)")
    return sys


def check_comparable(F, H) -> None:
    """``F`` and ``H`` are StateSpaces of one time domain and one (outputs x inputs) size."""
    check_system(F, "F")
    check_system(H, "H")
    if F.time != H.time:
        raise InputError(f"F, H: time domains differ ({F.time} and {H.time}); both must be {F.time}")
    if (F.n_outputs, F.n_inputs) != (H.n_outputs, H.n_inputs):
        raise InputError(f"F, H: sizes differ: F is {F.n_outputs} x {F.n_inputs} (outputs x inputs), "
                         f"H is {H.n_outputs} x {H.n_inputs}")


def error_system(F: StateSpace, H: StateSpace) -> StateSpace:
    """The system ``F - H``: ``([A_F 0; 0 A_H], [B_F; B_H], [C_F, -C_H], D_F - D_H)``."""
    check_comparable(F, H)
    check_same_dtype(F=F.A, H=H.A)
    batch = torch.broadcast_shapes(F.batch_shape, H.batch_shape)
    nF, nH = F.order, H.order

    def ex(x, *tail):
        return x.expand(*batch, *x.shape[-2:])

    A = torch.cat([
        torch.cat([ex(F.A), torch.zeros(*batch, nF, nH, dtype=F.dtype, device=F.A.device)], -1),
        torch.cat([torch.zeros(*batch, nH, nF, dtype=F.dtype, device=F.A.device), ex(H.A)], -1),
    ], -2)
    B = torch.cat([ex(F.B), ex(H.B)], -2)
    C = torch.cat([ex(F.C), -ex(H.C)], -1)
    return StateSpace(A, B, C, F.D - H.D, time=F.time)
