r"""Conversions of ``StateSpace`` to and from python-control, scipy.signal and pyMOR (a mixin, so
that ``_statespace`` holds the system itself; the readers and writers are in ``_interop``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..._errors import InputError
from . import _interop

if TYPE_CHECKING:  # the mixin's class methods return the class they are mixed into
    from ._statespace import StateSpace


class ConversionsMixin:
    """``from_control``/``to_control``, ``from_scipy``/``to_scipy``, ``from_pymor``/``to_pymor``."""

    @classmethod
    def _from_realization(cls, real, dtype: torch.dtype | None) -> "StateSpace":
        *mats, dt = real
        if dtype is None:
            dtype = torch.complex128 if any(m.dtype.kind == "c" for m in mats) else torch.float64
        return cls(*(torch.tensor(m, dtype=dtype) for m in mats), time="continuous" if dt == 0 else "discrete", dt=dt)

    def _realization(self):
        if self.batch_shape != ():
            raise InputError(f"system: the other libraries hold one system, got a batch of shape "
                             f"{tuple(self.batch_shape)}; convert its members one at a time")
        return tuple(x.detach().cpu().resolve_conj().numpy() for x in self.matrices())

    @classmethod
    def from_control(cls, sys, *, dtype: torch.dtype | None = None) -> "StateSpace":
        """From a python-control ``StateSpace`` or ``TransferFunction``; ``sys.dt`` gives the time
        domain (``0`` or ``None``: continuous; ``True``: discrete, period unspecified; ``T``).
        ``dtype`` defaults to float64 (complex128 for complex matrices).

        Args:
            sys: a python-control ``StateSpace`` or ``TransferFunction``.
            dtype: the dtype of the matrices (default: float64, complex128 for complex ones).

        Returns:
            ``StateSpace`` (unbatched) with the realization of ``sys``.

        Raises:
            InputError: not a python-control system, or python-control is not installed.
        """
        return cls._from_realization(_interop.read_control(sys), dtype)

    def to_control(self):
        """The python-control ``StateSpace`` (``dt``: 0, the period, or ``True`` if unspecified).

        Raises:
            InputError: a batched system, or python-control is not installed.
        """
        return _interop.write_control(*self._realization(), self.discrete, self.dt)

    @classmethod
    def from_scipy(cls, sys, *, dtype: torch.dtype | None = None) -> "StateSpace":
        """From a ``scipy.signal`` ``lti`` or ``dlti`` (state space, transfer function or
        zeros-poles-gain); a ``dlti``'s ``dt`` becomes ``dt``.

        Args:
            sys: a ``scipy.signal`` ``lti`` or ``dlti``.
            dtype: the dtype of the matrices (default: float64, complex128 for complex ones).

        Returns:
            ``StateSpace`` (unbatched) with the state-space realization of ``sys``.

        Raises:
            InputError: not a ``scipy.signal`` LTI object.
        """
        return cls._from_realization(_interop.read_scipy(sys), dtype)

    def to_scipy(self):
        """The ``scipy.signal.StateSpace`` (a ``dlti`` with ``dt`` in discrete time).

        Raises:
            InputError: a batched system.
        """
        return _interop.write_scipy(*self._realization(), self.discrete, self.dt)

    @classmethod
    def from_pymor(cls, model, *, dtype: torch.dtype | None = None, sparse: bool | None = None):
        """From a pyMOR ``LTIModel`` (``sampling_time`` becomes ``dt``).

        NumPy-backed operators with sparse matrices (``to_matrix`` keeps ``scipy.sparse``) of more
        than ``SPARSE_CROSSOVER`` states give a ``SparseSystem`` (``E`` kept, no dense N x N matrix);
        smaller or dense ones a ``StateSpace`` with ``E`` folded in as ``(E^{-1} A, E^{-1} B, C, D)``.
        Operators that are not NumPy matrices (PETSc, FEniCS, NGSolve, or any ``Operator`` with only
        ``apply``/``apply_inverse``/``apply_adjoint``) give the adapter of
        ``control.large._pymor`` (``PymorSystem``), whose shifted solves go through pyMOR.

        Args:
            model: a pyMOR ``LTIModel``.
            dtype: the dtype of a dense result (default: float64, complex128 for complex ones).
            sparse: ``None`` (automatic, as above), ``True`` (always the sparse path) or ``False``
                (always dense; for operators that are not NumPy matrices by applying them to the
                identity, refused above ``DENSE_MAX`` states).

        Returns:
            ``StateSpace``, ``SparseSystem`` or ``PymorSystem`` (unbatched).

        Raises:
            InputError: not an ``LTIModel``, a singular ``E``, pyMOR is not installed, or
                ``sparse=False`` for operators that are not NumPy matrices of more than ``DENSE_MAX``
                states.
        """
        from ._route import SPARSE_CROSSOVER, backend
        from ._sparse import SparseSystem

        if sparse is not None and not isinstance(sparse, bool):
            raise InputError(f"sparse: expected None, True or False, got {sparse!r}")
        mats = _interop.read_pymor_matrices(model)
        if mats is None:  # not NumPy-backed: only pyMOR's operator interface can be used
            adapter = backend("pymor")(model)
            return adapter.to_dense() if sparse is False else adapter
        A, B, C, D, E, dt = mats
        stored_sparse = _interop.is_sparse(A) or _interop.is_sparse(E)
        if sparse or (sparse is None and stored_sparse and A.shape[0] > SPARSE_CROSSOVER):
            return SparseSystem(A, B, C, D, E, time="continuous" if dt == 0 else "discrete", dt=dt)
        return cls._from_realization(_interop.read_pymor(model), dtype)

    def to_pymor(self):
        """The pyMOR ``LTIModel`` (``sampling_time = dt``; needs a known period in discrete time).

        Raises:
            InputError: a batched system, a discrete-time one with unspecified ``dt``, or pyMOR is
                not installed.
        """
        return _interop.write_pymor(*self._realization(), self.discrete, self.dt)
