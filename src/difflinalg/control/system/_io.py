"""Reading and writing systems: SLICOT-style MATLAB ``.mat`` files and NumPy ``.npz`` archives.

``.mat`` (``scipy.io.loadmat``): matrices ``A``, ``B``, ``C`` (case-insensitive), optional ``D``
(absent means zero) and ``E`` (a mass matrix: absent means the identity); dense or MATLAB-sparse,
any numeric type (``uint8``-stored matrices, as in several SLICOT files, are cast to float64). A
scalar sample time ``Ts``/``dt`` > 0 (or MATLAB's -1, unspecified) marks a discrete-time system, 0 a
continuous one. ``.npz``: the same names, plus an optional ``time`` entry (``"continuous"`` or
``"discrete"``); a sparse matrix ``X`` is stored as its CSC arrays ``X_csc_data``,
``X_csc_indices``, ``X_csc_indptr``, ``X_csc_shape``. ``save_model`` writes either format.

Sparse and descriptor models. A file with a sparse ``A`` or ``E`` of more than ``SPARSE_CROSSOVER``
states loads as a ``SparseSystem`` (``E`` kept, nothing dense N x N); otherwise as a dense
``StateSpace`` with ``E`` folded in (``StateSpace``'s ``E``: one LU, a singular ``E`` is an error
naming it). ``save_model`` of a ``SparseSystem`` writes ``A`` and ``E`` sparse (a dense
``StateSpace`` holds ``E^{-1} A``: there is no ``E`` left to write).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..._errors import InputError
from ._sparse import SparseSystem
from ._statespace import StateSpace, as_system

CSC_PARTS = ("data", "indices", "indptr", "shape")


def _numeric(x, keep_sparse: bool):
    """A float64/complex128 array, or a CSC matrix for a sparse ``x`` when ``keep_sparse``."""
    import scipy.sparse as sps

    if keep_sparse and sps.issparse(x):
        x = sps.csc_matrix(x)
        return x.astype(np.complex128 if np.iscomplexobj(x.data) else np.float64)
    return _dense(x)


def _dense(x) -> np.ndarray:
    if hasattr(x, "toarray"):
        x = x.toarray()
    x = np.asarray(x)
    if x.dtype == object:
        raise InputError(f"matrix entry of unsupported type {type(x)}")
    if np.iscomplexobj(x):
        return x.astype(np.complex128)
    return x.astype(np.float64)


def _pick(d: dict, name: str):
    for k, v in d.items():
        if k.lower() == name.lower():
            return v
    if all(f"{name}_csc_{part}".lower() in {k.lower() for k in d} for part in CSC_PARTS):
        import scipy.sparse as sps

        data, indices, indptr, shape = (_pick(d, f"{name}_csc_{part}") for part in CSC_PARTS)
        try:
            M = sps.csc_matrix((data, indices, indptr), shape=tuple(int(v) for v in shape))
            M.check_format(full_check=True)  # out-of-range indices would crash SuperLU later
            return M
        except (ValueError, TypeError) as exc:
            raise InputError(f"matrix {name}: its CSC arrays {name}_csc_* are inconsistent ({exc}); save the "
                             "model again") from None
    return None


def _sampling_period(d: dict, path: str) -> float | None:
    """The sample time a file states (``Ts`` or ``dt``) when it is a positive number, else None."""
    ts = _pick(d, "Ts") if _pick(d, "Ts") is not None else _pick(d, "dt")
    if ts is None:
        return None
    ts = np.asarray(ts)
    if ts.size != 1 or ts.dtype.kind not in "biuf":
        return None
    v = float(ts.reshape(-1)[0])
    return v if v > 0 and np.isfinite(v) else None


def _time_domain(d: dict, path: str) -> str:
    """The time domain a file states: its ``time`` entry, else its sample time ``Ts`` (or ``dt``):
    > 0 or -1 (MATLAB's "unspecified sample time") discrete, 0 continuous; absent: continuous."""
    t = _pick(d, "time")
    if t is not None:
        t = np.asarray(t)
        if t.size != 1 or t.dtype.kind not in "US":
            raise InputError(f"{path}: entry 'time' must be the string 'continuous' or 'discrete', got "
                             f"{t.dtype} array of shape {t.shape}; fix it or pass time=... to load_model")
        t = str(t.reshape(-1)[0])
        if t not in ("continuous", "discrete"):
            raise InputError(f"{path}: entry 'time' must be 'continuous' or 'discrete', got {t!r}; fix it "
                             "or pass time=... to load_model")
        return t
    name = "Ts" if _pick(d, "Ts") is not None else "dt"
    ts = _pick(d, name)
    if ts is None:
        return "continuous"
    ts = np.asarray(ts)
    if ts.size != 1 or ts.dtype.kind not in "biuf":
        raise InputError(f"{path}: the sample time {name} must be one real number (> 0 or -1: discrete, "
                         f"0: continuous), got {ts.dtype} array of shape {ts.shape}; fix it or pass "
                         "time='continuous'/'discrete' to load_model")
    v = float(ts.reshape(-1)[0])
    if not (v >= 0 or v == -1):  # NaN, or negative other than MATLAB's -1
        raise InputError(f"{path}: the sample time {name} = {v} is neither > 0 or -1 (discrete) nor 0 "
                         "(continuous); fix it or pass time='continuous'/'discrete' to load_model")
    return "continuous" if v == 0 else "discrete"


def _read_npz(p: Path, path: str) -> dict:
    """The arrays of a ``.npz`` archive, or an InputError saying what is wrong with the file."""
    with open(p, "rb") as fh:
        head = fh.read(4)
        if not head:
            raise InputError(f"{path}: the file is empty (0 bytes); save the model again")
        if head != b"PK\x03\x04":  # a .npz is a zip archive
            what = "a single NumPy array (.npy)" if head == b"\x93NUM" else "not a zip archive"
            raise InputError(f"{path}: not a NumPy .npz archive ({what}; it starts with bytes {head!r}); "
                             "save the model with numpy.savez(path, A=A, B=B, C=C) or save_model")
        fh.seek(0)
        try:
            with np.load(fh, allow_pickle=False) as z:
                d = {}
                for k in z.files:
                    try:
                        d[k] = z[k]
                    except ValueError:  # object arrays: not unpickled, they could run code
                        raise InputError(f"{path}: entry {k!r} holds pickled Python objects, which are not "
                                         "loaded (unsafe); store numeric arrays") from None
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001 - zipfile/zlib/format errors of a damaged archive
            raise InputError(f"{path}: the .npz archive is damaged or truncated ({type(exc).__name__}: "
                             f"{exc}); save the model again") from None
    return d


def _from_dict(d: dict, path: str, time: str | None, sparse: bool | None):
    mats = {}
    try:
        missing = [n for n in "ABC" if _pick(d, n) is None]
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    if missing:
        present = sorted(k for k in d if not k.startswith("__"))
        raise InputError(
            f"{path}: no matrix {', '.join(missing)} in the file (found {present}); a model file "
            "needs A, B and C (D optional): save them under these names"
        )
    try:
        for n in "ABCDE":
            v = _pick(d, n)
            if v is not None:
                try:
                    mats[n] = _numeric(v, keep_sparse=n in "AE")
                except (InputError, TypeError, ValueError) as exc:
                    raise InputError(f"matrix {n} could not be read as numbers ({exc})") from None
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    if time is None:
        time = _time_domain(d, path)
    cplx = any(np.iscomplexobj(m.data if hasattr(m, "tocsc") else m) for m in mats.values())
    for name in "BC":
        if mats[name].ndim == 1:
            raise InputError(f"{path}: matrix {name} is 1-D (shape {mats[name].shape}); store it as a 2-D matrix")
    if "D" in mats and mats["D"].size == 0:
        del mats["D"]
    dtype = np.complex128 if cplx else np.float64
    mats = {n: m.astype(dtype) for n, m in mats.items()}
    dt_file = _sampling_period(d, path) if time == "discrete" else None
    try:
        return StateSpace(*(mats.get(n) for n in "ABCDE"), time=time, dt=dt_file, sparse=sparse)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None


def load_model(path, *, time: str | None = None, sparse: bool | None = None):
    """Read a system from a ``.mat`` or ``.npz`` file (module docstring).

    Args:
        path: file path.
        time: override the time domain stored in (or implied by) the file: ``None`` (as stored),
            ``"continuous"`` or ``"discrete"``.
        sparse: ``None``: a ``SparseSystem`` for a sparse ``A`` or ``E`` of more than
            ``SPARSE_CROSSOVER`` states, else a dense ``StateSpace`` (module docstring);
            ``True``/``False``: always sparse / always dense (as ``StateSpace``'s ``sparse``).

    Returns:
        ``StateSpace`` (or ``SparseSystem``) in float64 (complex128 if a matrix is complex); a
        discrete-time file's positive ``Ts``/``dt`` becomes ``dt`` (else unspecified).

    Raises:
        InputError: unknown extension, a file that is not a readable archive (empty, truncated,
            damaged, pickled objects), missing A/B/C, inconsistent shapes, non-finite entries, a
            malformed ``time``/``Ts``/``dt`` entry; a directory; a bad ``time`` argument; a
            non-square, mismatched or singular ``E`` (its message names ``E``).
        FileNotFoundError: no such file.

    Example::

        import os, tempfile
        from difflinalg.control import builtin_model, load_model, save_model

        path = os.path.join(tempfile.mkdtemp(), "random.npz")
        save_model(builtin_model("random"), path)
        assert load_model(path).order == 30
    """
    if time not in (None, "continuous", "discrete"):
        raise InputError(f"time: expected None (as stored in the file), 'continuous' or 'discrete', got {time!r}")
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if p.is_dir():
        raise InputError(f"{path}: is a directory; give the path of a .mat or .npz model file")
    suffix = p.suffix.lower()
    if suffix == ".mat":
        import scipy.io

        try:
            d = scipy.io.loadmat(str(p))
        except Exception as exc:  # noqa: BLE001 - reported with the path
            raise InputError(f"{path}: not a readable MATLAB file ({exc})") from None
        return _from_dict(d, str(path), time, sparse)
    if suffix == ".npz":
        return _from_dict(_read_npz(p, str(path)), str(path), time, sparse)
    raise InputError(f"{path}: unknown model file type {suffix!r}; use .mat (MATLAB/SLICOT) or .npz")


def _sparse_mats(sys: SparseSystem) -> dict:
    if not hasattr(sys.A, "tocsc"):  # control.large.PymorSystem: operators, not matrices
        raise InputError(f"sys: its A is a {type(sys.A).__name__}, not a matrix: save the pyMOR model with "
                         "pyMOR, or a reduced model (res.model) with save_model")
    mats = {"A": sys.A, "B": sys.B, "C": sys.C, "D": sys.D}
    if sys.E is not None:
        mats["E"] = sys.E
    return mats


def _npz_entries(mats: dict) -> dict:
    """``.npz`` entries: sparse matrices as their CSC arrays (module docstring)."""
    out = {}
    for n, m in mats.items():
        if hasattr(m, "tocsc"):
            m = m.tocsc()
            out.update({f"{n}_csc_data": m.data, f"{n}_csc_indices": m.indices, f"{n}_csc_indptr": m.indptr,
                        f"{n}_csc_shape": np.array(m.shape)})
        else:
            out[n] = m
    return out


def save_model(sys, path) -> None:
    """Write a system to ``.npz`` (with its time domain and ``dt``) or ``.mat`` (``Ts``: 0 in
    continuous time, the sampling period in discrete time, MATLAB's -1 when it is unspecified).

    Args:
        sys: a system (``as_system`` converts foreign ones); its matrices are detached. A
            ``SparseSystem`` is written with its sparse ``A`` and ``E``.
        path: file path ending in ``.npz`` or ``.mat`` (the suffix picks the format).

    Returns:
        None; the file is written (overwritten if it exists).

    Raises:
        InputError: ``sys`` is not a system; another suffix.
        OSError: the file cannot be written.

    Example::

        import os, tempfile
        from difflinalg.control import builtin_model, load_model, save_model

        path = os.path.join(tempfile.mkdtemp(), "fir.mat")
        save_model(builtin_model("fir:5"), path)
        assert load_model(path).discrete
    """
    if isinstance(sys, SparseSystem):
        mats = _sparse_mats(sys)
    else:
        sys = as_system(sys, "sys")
        mats = {n: m.detach().cpu().resolve_conj().numpy() for n, m in zip("ABCD", sys.matrices())}
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".npz":
        extra = {"dt": np.array(sys.dt)} if sys.discrete and sys.dt else {}
        np.savez(str(p), **_npz_entries(mats), time=np.array(sys.time), **extra)
    elif suffix == ".mat":
        import scipy.io

        ts = (sys.dt or -1.0) if sys.discrete else 0.0
        scipy.io.savemat(str(p), dict(mats, Ts=np.array(ts)))
    else:
        raise InputError(f"{path}: unknown model file type {suffix!r}; use .npz or .mat")
