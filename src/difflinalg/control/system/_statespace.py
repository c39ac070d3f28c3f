r"""``StateSpace``: a linear time-invariant system with validated matrices.

Continuous time: ``x' = A x + B u, y = C x + D u``, transfer function ``C (sI - A)^{-1} B + D``;
discrete time: ``x[k+1] = A x[k] + B u[k]``, transfer function ``C (zI - A)^{-1} B + D``.
Discrete-time systems carry their sampling period ``dt`` (python-control's name; ``None`` when
unspecified); continuous-time systems have ``dt = 0``.
Matrices are torch tensors of one dtype (float32/64 or complex64/128) with optional leading batch
dimensions that broadcast (``A`` (..., n, n), ``B`` (..., n, m), ``C`` (..., p, n), ``D`` (..., p, m)).
The analysis functions (``h2_norm``, ``frequency_response``, ...) are differentiable in the matrices.

Layering: this module is the bottom of ``control`` (docs/architecture.md). ``StateSpace``'s analysis
methods (``h2_norm``, ``decay_rate``, ...) are thin: they call the functions that
``control.analysis`` registers in ``ANALYSES`` when it is imported (``difflinalg.control`` imports
it), so the system layer never imports the layer above it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..._errors import InputError
from ..._utils import as_tensor, check_matrix, check_same_dtype, is_wrapped, warn_once
from . import _interop
from ._base import TIMES, LTISystem, check_time, fmt_complex
from ._conversions import ConversionsMixin
from ._descriptor import fold_descriptor, is_sparse_matrix

_check_time = check_time  # the name the sparse backend imported before the split
__all__ = ["ANALYSES", "TIMES", "StateSpace", "as_system", "check_system", "fmt_complex"]

#: name -> the analysis function a ``StateSpace`` method of that name calls (filled by
#: ``control.analysis.register_methods`` at import; module docstring, "Layering")
ANALYSES: dict[str, Callable] = {}


def _analysis(name: str) -> Callable:
    try:
        return ANALYSES[name]
    except KeyError:  # only reachable by importing this module without ``difflinalg.control``
        raise RuntimeError(f"StateSpace.{name}: the analysis layer is not loaded; import difflinalg.control") from None


def _to_tensor(x, name: str) -> Tensor:
    """A tensor from a tensor, numpy array or scipy sparse matrix (densified)."""
    if hasattr(x, "toarray") and not isinstance(x, Tensor):
        x = x.toarray()
    return as_tensor(x, name)


def _wants_sparse(A, E, sparse) -> bool:
    """Whether ``StateSpace(A, ..., E=E, sparse=sparse)`` is a ``SparseSystem`` (its docstring)."""
    if sparse is not None and not isinstance(sparse, bool):
        raise InputError(f"sparse: expected None, True or False, got {sparse!r}")
    if sparse is not None:
        return sparse
    if not (is_sparse_matrix(A) or is_sparse_matrix(E)):
        return False
    from ._route import SPARSE_CROSSOVER

    n = (A if hasattr(A, "shape") else E).shape[-1]
    return n > SPARSE_CROSSOVER


class StateSpace(ConversionsMixin, LTISystem):
    """A (batch of) linear time-invariant system(s) ``(A, B, C, D)``, or ``E x' = A x + B u``.

    Args:
        A: (..., n, n) state matrix. B: (..., n, m) input matrix. C: (..., p, n) output matrix.
        D: (..., p, m) feedthrough (default zero). All of one floating dtype, real or complex;
            numpy arrays and scipy sparse matrices are converted (integer arrays are refused:
            convert them, e.g. ``A.astype(float)``; ``load_model`` does this for files).
        E: (..., n, n) invertible mass matrix of a descriptor system (default: the identity). A
            dense ``E`` is folded in at construction: the system holds ``(E^{-1} A, E^{-1} B, C, D)``
            (``_descriptor``: one LU, differentiable).
        time: ``"continuous"`` or ``"discrete"``; default: discrete when ``dt`` is positive.
        dt: sampling period of a discrete-time system (seconds; ``None`` or ``True``: unspecified);
            ``0`` or ``None`` for continuous time. Carried through every derived system and
            conversion (``to_control``, ``to_scipy``, ``to_pymor``).
        sparse: ``None`` (default): a ``scipy.sparse`` ``A`` or ``E`` of more than
            ``SPARSE_CROSSOVER`` states gives a ``SparseSystem`` (no dense N x N matrix is formed;
            ``_route``), smaller ones a dense ``StateSpace``; ``True``: always a ``SparseSystem``
            (float64/complex128, unbatched); ``False``: always dense.

    Returns:
        A ``StateSpace``, or a ``SparseSystem`` where ``sparse`` says so (both are ``LTISystem``;
        ``isinstance(x, StateSpace)`` means dense torch tensors).

    Raises:
        InputError: wrong shapes, mixed dtypes, non-finite entries, unknown ``time``, a negative
            ``dt`` or a positive one with ``time="continuous"``; a non-square or numerically
            singular ``E`` (with its condition number).

    Warns:
        PrecisionWarning: ``E`` is ill-conditioned (``cond(E) eps > PRECISION_TOL``; the message
            gives the condition number).

    Example::

        import torch
        from difflinalg.control import StateSpace

        E = torch.tensor([[2.0, 0.0], [0.0, 4.0]])
        F = StateSpace(-E.clone(), torch.ones(2, 1, dtype=E.dtype), torch.ones(1, 2, dtype=E.dtype), E=E)
        assert torch.allclose(F.A, -torch.eye(2)) and torch.allclose(F.B, torch.tensor([[0.5], [0.25]]))
    """

    def __new__(cls, A=None, B=None, C=None, D=None, E=None, *, time: str | None = None, dt=None,
                sparse: bool | None = None):
        if cls is StateSpace and _wants_sparse(A, E, sparse):
            from ._sparse import SparseSystem

            return SparseSystem(A, B, C, D, E, time=time, dt=dt)
        return super().__new__(cls)

    def __init__(self, A, B, C, D=None, E=None, *, time: str | None = None, dt=None, sparse: bool | None = None):
        time, dt = check_time(time, dt)
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
        if E is not None:
            A, B = fold_descriptor(A, B, _to_tensor(E, "E"))
        try:
            self.batch_shape = torch.broadcast_shapes(A.shape[:-2], B.shape[:-2], C.shape[:-2], D.shape[:-2])
        except RuntimeError:
            raise InputError(
                f"A, B, C, D: batch shapes {tuple(A.shape[:-2])}, {tuple(B.shape[:-2])}, "
                f"{tuple(C.shape[:-2])}, {tuple(D.shape[:-2])} do not broadcast"
            ) from None
        self.A, self.B, self.C, self.D = A, B, C, D
        self.time = time
        self.dt: float | None = dt
        self._cache: dict = {}  # written only through ``cached``

    # -- cache -----------------------------------------------------------------------------------
    def cacheable(self) -> bool:
        """True when derived data can be cached on the system: no matrix requires grad or is a
        ``torch.func`` wrapper (a cached value would hide the dependence on the matrices)."""
        return not any(x.requires_grad or is_wrapped(x) for x in self.matrices())

    def cached(self, key, make: Callable, *, values_only: bool = False):
        """The value cached under ``key``, computed by ``make()`` on first use (a Gramian, a Schur
        or modal form, ...). The matrices of a ``StateSpace`` are never reassigned by this package,
        so an entry stays valid for the object's lifetime.

        Args:
            key: a hashable key (the analysis functions use short strings and tuples).
            make: computes the value.
            values_only: the value depends on the matrices' values only (it is not differentiated,
                e.g. a detached eigendecomposition), so it is cached even when the system is not
                ``cacheable()``; otherwise such a system recomputes it every time.

        Returns:
            The cached (or freshly computed, when not cacheable) value of ``make()``.
        """
        if not values_only and not self.cacheable():
            return make()
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    # -- sizes and types -----------------------------------------------------------------------
    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the matrices (one for all four)."""
        return self.A.dtype

    @property
    def is_complex(self) -> bool:
        """True when the matrices are complex."""
        return self.A.is_complex()

    def matrices(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(A, B, C, D)``, the tensors themselves (not copies)."""
        return self.A, self.B, self.C, self.D

    # -- derived systems -----------------------------------------------------------------------
    def with_matrices(self, A, B, C, D) -> "StateSpace":
        """A system of the same time domain and sampling period with new matrices.

        Args:
            A, B, C, D: the new matrices, shapes and dtype as for ``StateSpace``.

        Returns:
            A new ``StateSpace`` (``time`` and ``dt`` of this one).

        Raises:
            InputError: as ``StateSpace`` for inconsistent matrices.
        """
        return StateSpace(A, B, C, D, time=self.time, dt=self.dt)

    def to(self, dtype: torch.dtype | None = None, device=None) -> "StateSpace":
        """The same system with matrices converted (e.g. ``.to(torch.complex128)``).

        Args:
            dtype: the new dtype (``None``: keep it).
            device: the new device (``None``: keep it).

        Returns:
            A new ``StateSpace``; differentiable (``Tensor.to``).
        """
        return self.with_matrices(*(x.to(dtype=dtype, device=device) for x in self.matrices()))

    def detach(self) -> "StateSpace":
        """The same system with detached matrices (no autograd history)."""
        return self.with_matrices(*(x.detach() for x in self.matrices()))

    def similarity(self, T: Tensor, Tinv: Tensor | None = None) -> "StateSpace":
        """The realization ``(T^{-1} A T, T^{-1} B, C T, D)`` (same transfer function).

        Args:
            T: (..., n, n) invertible state transformation, the dtype of the system.
            Tinv: its inverse when known (default: ``torch.linalg.inv(T)``).

        Returns:
            A new ``StateSpace``; differentiable in ``T`` and the matrices.
        """
        Tinv = torch.linalg.inv(T) if Tinv is None else Tinv
        return self.with_matrices(Tinv @ self.A @ T, Tinv @ self.B, self.C @ T, self.D)

    def __sub__(self, other: "StateSpace") -> "StateSpace":
        """The error system ``self - other`` (block-diagonal state matrix, order n1 + n2)."""
        from ._error_system import error_system  # here: that module builds on this one

        return error_system(self, other)

    # -- analysis (thin: the functions of ``control.analysis``, module docstring) ------------------
    def poles(self) -> Tensor:
        """Eigenvalues of A (complex)."""
        return torch.linalg.eigvals(self.A.detach())

    def is_stable(self) -> bool:
        """``control.is_stable(self)``."""
        return _analysis("is_stable")(self)

    def decay_rate(self) -> float:
        """``control.decay_rate(self)``: distance of the poles to the stability boundary."""
        return _analysis("decay_rate")(self)

    def stability_margin(self) -> float:
        """Deprecated name of ``decay_rate`` (python-control's ``stability_margins`` are gain and
        phase margins); warns ``DeprecationWarning`` once."""
        warn_once("StateSpace.stability_margin", "StateSpace.stability_margin() is deprecated: use "
                  "decay_rate() (the same value; python-control's stability_margins are gain/phase margins)",
                  DeprecationWarning)
        return self.decay_rate()

    def h2_norm(self) -> Tensor:
        """``control.h2_norm(self)``: the H2 norm, a real tensor of the batch shape.

        Raises:
            UnstableSystemError: the system is not stable. InputError: continuous time with D != 0.
        """
        return _analysis("h2_norm")(self)

    def hankel_singular_values(self, k: int | None = None) -> Tensor:
        """``control.hankel_singular_values(self, k)``.

        Args:
            k: only the leading ``k`` values (default: all ``n``).

        Returns:
            (..., n) (or (..., k)) real tensor, descending.

        Raises:
            UnstableSystemError: the system is not stable.
        """
        return _analysis("hankel_singular_values")(self, k)

    def frequency_response(self, w) -> Tensor:
        """``control.frequency_response(self, w)``.

        Args:
            w: (K,) real finite frequencies (radians per sample in discrete time).

        Returns:
            (..., K, p, m) complex tensor of transfer-function values.
        """
        return _analysis("frequency_response")(self, w)

    def __repr__(self) -> str:
        b = f", batch={tuple(self.batch_shape)}" if len(self.batch_shape) else ""
        return (f"StateSpace(order={self.order}, outputs={self.n_outputs}, inputs={self.n_inputs}, "
                f"time={self.time!r}{f', dt={self.dt:g}' if self.dt else ''}, dtype={str(self.dtype).replace('torch.', '')}{b})")


def as_system(sys, name: str = "system") -> StateSpace:
    """``sys`` as a ``StateSpace``: a ``StateSpace`` as is; a python-control, ``scipy.signal`` or
    pyMOR system converted (``StateSpace.from_control``, ``from_scipy``, ``from_pymor``).

    Args:
        sys: a ``StateSpace``; a ``SparseSystem`` (made dense by ``to_dense``: functions that have
            a sparse path take it without this conversion); or a python-control ``StateSpace``/``TransferFunction``, a
            ``scipy.signal`` ``lti``/``dlti`` or a pyMOR ``LTIModel`` (converted to float64, or
            complex128 for complex matrices; its ``dt`` is kept).
        name: the argument's name in error messages.

    Returns:
        ``StateSpace``: ``sys`` itself when it is one (not copied), else the converted system.

    Raises:
        InputError: anything else, naming ``name``; a tuple or array is never guessed to be
            matrices or Markov parameters: build ``StateSpace(A, B, C, D)`` or ``markov_system(F)``;
            a foreign system the conversion cannot read.

    Example::

        import scipy.signal
        from difflinalg.control import as_system

        sys = as_system(scipy.signal.lti([[-1.0]], [[1.0]], [[2.0]], [[0.0]]))
        assert sys.order == 1 and sys.time == "continuous"
    """
    if isinstance(sys, StateSpace):
        return sys
    from ._sparse import SparseSystem

    if isinstance(sys, SparseSystem):  # made dense: refused, naming the order, above DENSE_MAX
        try:
            return sys.to_dense()
        except InputError as exc:
            raise InputError(f"{name}: {str(exc).removeprefix('system: ')}") from None
    lib = _interop.library_of(sys)
    if lib == "pymor":  # a large sparse or operator model is not folded densely behind our back
        try:
            G = StateSpace.from_pymor(sys)
        except InputError as exc:
            raise InputError(f"{name}: {exc}") from None
        return G if isinstance(G, StateSpace) else as_system(G, name)
    if lib is not None:
        try:
            return StateSpace._from_realization(_interop.READERS[lib](sys), None)
        except InputError as exc:
            raise InputError(f"{name}: {exc}") from None
    hint = ("StateSpace(A, B, C, D) for matrices, markov_system(F) for Markov parameters"
            if isinstance(sys, (tuple, list)) or hasattr(sys, "shape") else
            "StateSpace(A, B, C, D, dt=...), or pass a python-control, scipy.signal or pyMOR system")
    raise InputError(f"{name}: expected a system, got {type(sys).__name__}; build one with {hint}")


def check_system(sys, name: str = "system") -> StateSpace:
    """The system ``sys`` as a ``StateSpace`` (see ``as_system``)."""
    return as_system(sys, name)
