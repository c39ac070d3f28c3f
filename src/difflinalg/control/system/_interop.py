r"""Systems from and to python-control, SciPy and pyMOR.

The three libraries and difflinalg describe the same object, ``x' = A x + B u, y = C x + D u``
(``x[k+1] = ...`` in discrete time), with different names for the time domain:

============================  ================================  ===========================
library                       continuous                        discrete, period ``T``
============================  ================================  ===========================
difflinalg ``StateSpace``     ``time="continuous"``, ``dt=0``   ``time="discrete"``, ``dt=T`` (``None``: unspecified)
python-control ``StateSpace`` ``dt=0``                          ``dt=T`` (``True``: unspecified)
``scipy.signal``              ``lti`` / ``StateSpace``          ``dlti(..., dt=T)``
pyMOR ``LTIModel``            ``sampling_time=0``               ``sampling_time=T``
============================  ================================  ===========================

pyMOR's descriptor form ``E x' = A x + ...`` is converted with ``E^{-1}`` applied to ``A`` and
``B`` (an LU of ``E``; a singular ``E`` is refused, since difflinalg's systems are not
descriptor systems). Transfer-function and zero-pole-gain objects of python-control and SciPy
are converted to a state-space realization by their own library first. The optional libraries
are imported only when one of these functions needs them.
"""

from __future__ import annotations

import importlib
import warnings
import numpy as np

from ..._errors import InputError

# (A, B, C, D, dt) as NumPy arrays and difflinalg's dt (0: continuous; None: discrete, period
# unspecified; T > 0: discrete with period T). StateSpace builds itself from it; this module does
# not import StateSpace, so that StateSpace's methods can use it without an import cycle.
Realization = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, "float | None"]


def _require(module: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        root = module.split(".")[0]
        raise InputError(f"converting a system needs the optional package {root!r}: install it with "
                         f"`pip install difflinalg[{root}]` (or `pip install {root}`)") from None


def library_of(obj) -> str | None:
    """``"control"``, ``"scipy"`` or ``"pymor"`` when ``obj``'s class comes from that library
    (read off the class's module: nothing is imported), else ``None``."""
    mod = type(obj).__module__ or ""
    for root in ("control", "scipy", "pymor"):
        if mod == root or mod.startswith(root + "."):
            return root
    return None


def _numpy(x, name: str) -> np.ndarray:
    if hasattr(x, "toarray"):
        x = x.toarray()
    x = np.asarray(x)
    if x.dtype.kind in "biu":
        x = x.astype(float)
    if x.dtype.kind not in "fc":
        raise InputError(f"{name}: expected a real or complex matrix, got dtype {x.dtype}")
    return x


def _dt_out(discrete: bool, dt: float | None):
    """difflinalg's dt in python-control's and SciPy's convention (``True``: unspecified)."""
    return (dt if dt else True) if discrete else 0


# -- python-control ------------------------------------------------------------------------------
def read_control(sys) -> Realization:
    """Realization of a python-control ``StateSpace`` or ``TransferFunction`` (``dt``: ``0``
    continuous, ``True`` discrete with unspecified period, ``T``; python-control's ``None``,
    "either domain", is read as continuous)."""
    ct = _require("control")
    if isinstance(sys, ct.TransferFunction):
        sys = ct.ss(sys)
    if not isinstance(sys, ct.StateSpace):
        raise InputError(f"sys: expected a python-control StateSpace or TransferFunction, got {type(sys).__name__}")
    dt = None if sys.dt is True else float(sys.dt or 0)
    return (*(_numpy(x, n) for x, n in zip((sys.A, sys.B, sys.C, sys.D), "ABCD")), dt)


def write_control(A, B, C, D, discrete: bool, dt: float | None):
    """python-control ``StateSpace``."""
    return _require("control").ss(A, B, C, D, _dt_out(discrete, dt))


# -- SciPy ---------------------------------------------------------------------------------------
def read_scipy(sys) -> Realization:
    """Realization of a ``scipy.signal`` ``lti``/``dlti`` (state space, transfer function or
    zeros-poles-gain)."""
    sig = _require("scipy.signal")
    if not isinstance(sys, (sig.lti, sig.dlti)):
        raise InputError(f"sys: expected a scipy.signal lti or dlti system, got {type(sys).__name__}")
    if isinstance(sys, sig.dlti):
        dt = None if sys.dt is True or sys.dt is None else float(sys.dt)
    else:
        dt = 0.0
    ss = sys.to_ss()
    return (*(_numpy(x, n) for x, n in zip((ss.A, ss.B, ss.C, ss.D), "ABCD")), dt)


def write_scipy(A, B, C, D, discrete: bool, dt: float | None):
    """``scipy.signal.StateSpace`` (an ``lti``, or a ``dlti`` with ``dt``)."""
    sig = _require("scipy.signal")
    return sig.StateSpace(A, B, C, D, dt=_dt_out(discrete, dt)) if discrete else sig.StateSpace(A, B, C, D)


# -- pyMOR ---------------------------------------------------------------------------------------
def read_pymor(model) -> Realization:
    """Realization of a pyMOR ``LTIModel``; a descriptor matrix ``E`` is folded in as
    ``(E^{-1} A, E^{-1} B, C, D)`` by one LU of ``E`` (a singular ``E`` is refused)."""
    iosys = _require("pymor.models.iosys")
    if not isinstance(model, iosys.LTIModel):
        raise InputError(f"model: expected a pyMOR LTIModel, got {type(model).__name__}")
    A, B, C, D, E = model.to_matrices()
    A, B, C = _numpy(A, "A"), _numpy(B, "B"), _numpy(C, "C")
    D = np.zeros((C.shape[0], B.shape[1]), dtype=np.result_type(B, C)) if D is None else _numpy(D, "D")
    if E is not None:
        import scipy.linalg as sla

        E = _numpy(E, "E")
        if not np.array_equal(E, np.eye(E.shape[0])):
            with warnings.catch_warnings():  # a singular E is reported below, by name
                warnings.simplefilter("ignore", sla.LinAlgWarning)
                lu = sla.lu_factor(E)
            if np.abs(np.diag(lu[0])).min() <= np.finfo(float).eps * E.shape[0] * np.abs(E).max():
                raise InputError("model: E is singular (a differential-algebraic system); difflinalg's "
                                 "StateSpace needs an invertible E: remove the algebraic part first")
            A, B = sla.lu_solve(lu, A), sla.lu_solve(lu, B)
    return A, B, C, D, float(model.sampling_time)


def is_sparse(x) -> bool:
    """True for a ``scipy.sparse`` matrix."""
    import scipy.sparse as sps

    return x is not None and sps.issparse(x)


def _numpy_backed(op) -> bool:
    """True for pyMOR operators made of NumPy matrices (``to_matrix`` converts them exactly)."""
    from pymor.operators.constructions import ConcatenationOperator, IdentityOperator, LincombOperator, ZeroOperator
    from pymor.operators.numpy import NumpyMatrixOperator

    if isinstance(op, (NumpyMatrixOperator, IdentityOperator, ZeroOperator)):
        return True
    if isinstance(op, (LincombOperator, ConcatenationOperator)):
        return all(_numpy_backed(o) for o in op.operators)
    return False


def read_pymor_matrices(model):
    """``(A, B, C, D, E, dt)`` of a pyMOR ``LTIModel`` with NumPy-backed operators, sparse matrices
    kept sparse (``D``, ``E`` may be None); ``None`` when an operator is not NumPy-backed
    (``to_matrix`` cannot convert it: distributed or matrix-free operators)."""
    iosys = _require("pymor.models.iosys")
    if not isinstance(model, iosys.LTIModel):
        raise InputError(f"model: expected a pyMOR LTIModel, got {type(model).__name__}")
    # decided by type, not by trying to_matrix: it would apply a small operator of any backend to
    # the identity (a dense N x N matrix), and fails only above pyMOR's as_array_max_length
    if not (_numpy_backed(model.A) and _numpy_backed(model.E)):
        return None
    A, B, C, D, E = model.to_matrices()
    if not is_sparse(A):
        A = _numpy(A, "A")
    if E is not None and not is_sparse(E):
        E = _numpy(E, "E")
    return A, B, C, D, E, float(model.sampling_time)


def write_pymor(A, B, C, D, discrete: bool, dt: float | None, E=None):
    """pyMOR ``LTIModel`` (``sampling_time`` from ``dt``; pyMOR needs a value for a discrete system);
    ``A`` and ``E`` may be ``scipy.sparse`` (kept so)."""
    iosys = _require("pymor.models.iosys")
    if discrete and not dt:
        raise InputError("system: pyMOR needs the sampling period of a discrete-time system; build it "
                         "with StateSpace(..., dt=T)")
    return iosys.LTIModel.from_matrices(A, B, C, D, E=E, sampling_time=dt or 0)


READERS = {"control": read_control, "scipy": read_scipy, "pymor": read_pymor}
