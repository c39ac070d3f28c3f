r"""Shifted sparse solves ``(a A + b E)^{-1} X`` and their adjoints, factorized once per shift.

Every large computation of this package (IRKA bases, low-rank ADI Gramians, the cross
Sylvester/Stein solutions of the H2 inner product) reduces to solves with pencil combinations
``a A + b E``. ``ShiftedSolver`` keeps the sparse LU factorizations (SuperLU through
``scipy.sparse.linalg.splu``) keyed by the normalized shift ``c = b / a`` (``A + c E``), so a shift
that repeats (IRKA at convergence, cyclic ADI shifts, the mirrored poles of a model measured against
the full target) costs two triangular solves, and one factorization serves both ``M x = y`` and
``M^H x = y``. For a real pencil the factorization of ``A + conj(c) E`` is the conjugate of that of
``A + c E``, so one factorization serves a conjugate pair (``x = conj(M^{-1} conj(y))``).

Cache. Factorizations are kept (least recently used first out) up to a memory budget in bytes
(``cache_bytes``, default a quarter of the available memory, at least ``CACHE_BYTES``, at most the
memory limit; the newest one is always kept), measured from each factorization's own nonzero count. ``transient()`` marks a phase whose
factorizations do not repeat later (an IRKA shift): they are freed when it ends and evict nothing
(memory: the budget plus the phase's own factorizations).

Memory. Before the first factorization the fill of the factors is estimated by a probe: the LU of
the leading ``k x k`` principal block (``k = max(PROBE_MIN, N / 16)``) gives the fill per row, scaled
by ``(N / k)^{1/3}`` (nested-dissection growth of 3-D meshes: an over-estimate for 2-D meshes and
banded matrices, where the fill per row grows like ``log N`` or not at all). If the estimate exceeds
the memory limit (half the available memory by default) a ``FactorizationMemoryError`` says how much
is needed before anything is allocated; the cache then holds as many factorizations as fit.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from contextlib import contextmanager, nullcontext

import numpy as np
import scipy.sparse as sps
import scipy.sparse.linalg as spla

from ..._errors import DifflinalgError, InputError
from ._system import SparseSystem, lu_solve

PROBE_MIN = 4000
#: default memory budget of the factorization cache: 1 / CACHE_SHARE of the available memory, at
#: least CACHE_BYTES (at most the memory limit). Enough for the ADI shifts' factorizations (16) at
#: N = 1e5 on 2-D meshes (1.7 GB complex); below that, ADI refactors every step (pyMOR's way: slower)
CACHE_BYTES = 512 << 20
CACHE_SHARE = 4
#: column ordering for SuperLU: minimum degree on A^T + A (pencils from PDEs are structurally
#: symmetric; measured 2x less fill and time than COLAMD on 2-D grids)
PERMC = "MMD_AT_PLUS_A"


def entry_bytes(complex_factors: bool) -> int:
    """Bytes per stored nonzero of SuperLU's factors: the value (16 complex, 8 real) and its index."""
    return (16 if complex_factors else 8) + 4


class FactorizationMemoryError(DifflinalgError, MemoryError):
    """A sparse factorization would not fit in the memory allowed (``memory_limit``)."""


def available_memory() -> int:
    """Bytes of memory available now (``MemAvailable`` of /proc/meminfo; else the physical memory)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def lu_memory_estimate(M: sps.spmatrix, complex_factors: bool) -> int:
    """Estimated bytes of the sparse LU factors of ``M`` (module docstring: probe and scaling).

    Args:
        M: (N, N) scipy.sparse matrix; only its sparsity pattern is used (a leading block is
            factored with diagonally dominant values).
        complex_factors: estimate for complex factors (16-byte entries) instead of real (8).

    Returns:
        The estimate in bytes (an int; a heuristic with a 1.5x margin, not a bound).

    Raises:
        ValueError: ``M`` cannot be converted to a sparse matrix (scipy's error).

    Example::

        from difflinalg.control.large import heat_2d, lu_memory_estimate

        A = heat_2d(20).A
        assert 0 < lu_memory_estimate(A, False) < lu_memory_estimate(A, True)
    """
    M = sps.csc_matrix(M)
    N = M.shape[0]
    k = min(N, max(PROBE_MIN, N // 16))
    probe = M[:k, :k].tocsc()
    # the probe's values: a diagonally dominant matrix of the same pattern (no zero pivots)
    probe = abs(probe).astype(np.float64)
    probe = probe + sps.diags(np.asarray(probe.sum(axis=1)).ravel() + 1.0, format="csc")
    lu = spla.splu(probe, permc_spec=PERMC)
    per_row = (lu.L.nnz + lu.U.nnz) / k
    # 1.5: safety margin for a probe block less dense than the rest (block-structured pencils)
    nnz = 1.5 * per_row * N * (N / k) ** (1 / 3)
    return int(nnz * entry_bytes(complex_factors) + 24 * N)


def _gb(x: float) -> str:
    return f"{x / 2**30:.2f} GiB"


class ShiftedSolver:
    """Cached sparse LU solves with ``a A + b E`` of a ``SparseSystem`` (module docstring).

    Args:
        sys: the system. memory_limit: bytes one factorization may use (default: half of the
            available memory). max_cached: at most this many factorizations are kept.
            cache_bytes: memory budget of the cache (default: module docstring;
            least recently used factorizations are freed beyond it, the newest is always kept).

    Raises:
        FactorizationMemoryError: one factorization is estimated to need more than ``memory_limit``.
    """

    def __init__(self, sys: SparseSystem, memory_limit: int | None = None, max_cached: int = 64,
                 cache_bytes: int | None = None):
        self.sys = sys
        self.memory_limit = int(memory_limit) if memory_limit is not None else available_memory() // 2
        self.max_cached = max_cached
        if cache_bytes is None:
            cache_bytes = min(self.memory_limit, max(CACHE_BYTES, available_memory() // CACHE_SHARE))
        self.cache_bytes = int(cache_bytes)
        self.cache: OrderedDict = OrderedDict()
        self.sizes: dict = {}
        self.factorizations = 0
        self.solves = 0
        self.peak_cached_bytes = 0
        self._bytes: dict[bool, int] = {}
        self._transient = 0
        self._complex: dict = {}  # key -> complex factors (``lu.L`` would copy L to find out)

    @property
    def cached_bytes(self) -> int:
        """Bytes held by the cached factorizations (nonzeros of L and U with their indices)."""
        return sum(self.sizes.values())

    def clear(self) -> None:
        """Free every cached factorization."""
        self.cache.clear()
        self.sizes.clear()
        self._complex.clear()

    @contextmanager
    def transient(self):
        """A phase whose new factorizations are freed when it ends (they do not repeat later)."""
        before = set(self.cache)
        self._transient += 1
        try:
            yield self
        finally:
            self._transient -= 1
            for key in [k for k in self.cache if k not in before]:
                del self.cache[key]
                self.sizes.pop(key, None)
                self._complex.pop(key, None)

    def slots(self, complex_factors: bool) -> int:
        """How many factorizations of the pencil (complex or real factors) the cache holds: the
        largest factorization made so far sets the size (a real one scaled by the entry sizes for
        complex factors), else the fill estimate (``check_memory``, pessimistic on 2-D meshes).

        Args:
            complex_factors: count complex factorizations (complex shifts) rather than real ones.

        Returns:
            The number of such factorizations that fit in ``cache_bytes`` (an int, possibly 0).
        """
        made = [(size, self._complex[k]) for k, size in self.sizes.items() if k[0] == "A"]
        if made:
            size = max(sz * entry_bytes(complex_factors) / entry_bytes(c) for sz, c in made)
        else:
            size = self.check_memory(complex_factors)
        return int(self.cache_bytes // max(size, 1))

    def check_memory(self, complex_factors: bool = True) -> int:
        """The estimated bytes of one factorization; raises if it exceeds the memory limit.

        Args:
            complex_factors: estimate for complex factors (complex shifts) rather than real ones.

        Returns:
            The estimate in bytes (``lu_memory_estimate`` of the pencil's pattern; cached).

        Raises:
            FactorizationMemoryError: the estimate exceeds ``memory_limit``.
        """
        if complex_factors not in self._bytes:
            s = self.sys
            pattern = abs(s.A) + (abs(s.E) if s.E is not None else sps.identity(s.order, format="csc"))
            self._bytes[complex_factors] = lu_memory_estimate(pattern, complex_factors)
        need = self._bytes[complex_factors]
        if need > self.memory_limit:
            raise FactorizationMemoryError(
                f"sys: a sparse LU factorization of the {self.sys.order} x {self.sys.order} pencil "
                f"(A: {self.sys.A.nnz} nonzeros) needs an estimated {_gb(need)}, above the memory limit of "
                f"{_gb(self.memory_limit)} (available now: {_gb(available_memory())}); run on a machine with "
                f"at least {_gb(2 * need)} of free memory, pass a larger memory_limit if the estimate is "
                "pessimistic for this structure, or reduce a coarser model")
        return need

    def _key(self, a: complex, b: complex) -> tuple[tuple, bool]:
        """``(key, conj)``: the cache key of ``A + (b/a) E`` (or ``E``), and whether the wanted
        matrix is the conjugate of the keyed one (real pencil, shift with negative imaginary part)."""
        if a == 0:
            return ("E",), False
        c = complex(b) / complex(a)
        c = complex(float(f"{c.real:.15g}"), float(f"{c.imag:.15g}"))
        if c.imag < 0 and not self.sys.is_complex:
            return ("A", c.conjugate()), True
        return ("A", c), False

    def _factor(self, key: tuple):
        if key in self.cache:
            self.cache.move_to_end(key)
            return self.cache[key]
        s = self.sys
        if key[0] == "E":
            if s.E is None:
                return None
            M = s.E
            cplx = s.is_complex
        else:
            c = key[1]
            cplx = s.is_complex or c.imag != 0
            shift = c if cplx else c.real
            M = (s.A + shift * s.E_or_identity).tocsc()
            if cplx:
                M = M.astype(np.complex128)
        self.check_memory(cplx)
        try:
            lu = spla.splu(M, permc_spec=PERMC)
        except RuntimeError as exc:
            raise SingularShiftError(key, exc) from None
        self.factorizations += 1
        size = int(lu.nnz) * entry_bytes(cplx) + 16 * M.shape[0]
        # free least recently used factorizations beyond the budget (the new one always stays); a
        # transient one (freed at the end of its phase) evicts nothing: the kept ones repeat later
        while self.cache and not self._transient and (len(self.cache) >= self.max_cached or self.cached_bytes + size > self.cache_bytes):
            old, _ = self.cache.popitem(last=False)
            self.sizes.pop(old, None)
            self._complex.pop(old, None)
        self.cache[key] = lu
        self.sizes[key] = size
        self._complex[key] = cplx
        self.peak_cached_bytes = max(self.peak_cached_bytes, self.cached_bytes)
        return lu

    def solve(self, a: complex, b: complex, X: np.ndarray, adjoint: bool = False) -> np.ndarray:
        """``(a A + b E)^{-1} X``, or ``(a A + b E)^{-H} X`` with ``adjoint``.

        Args:
            a, b: the coefficients (complex numbers, not both 0); the factorization of
                ``A + (b/a) E`` (or ``E``) is cached and reused.
            X: (N,) or (N, k) numpy array.
            adjoint: solve with the conjugate transpose.

        Returns:
            A numpy array of the shape of ``X``.

        Raises:
            InputError: ``a = b = 0``, or the shifted matrix is singular.
            FactorizationMemoryError: the factorization would not fit in ``memory_limit``.
        """
        if a == 0 and b == 0:
            raise InputError("solve: the combination 0 A + 0 E is singular")
        key, conj = self._key(a, b)
        lu = self._factor(key)
        scale = complex(a) if key[0] == "A" else complex(b)
        if adjoint:
            scale = scale.conjugate()
        self.solves += 1
        X = np.asarray(X)
        if lu is None:  # E = identity
            Y = X.copy()
        elif conj:  # M = conj(M_key): M^{-1} X = conj(M_key^{-1} conj(X)) (the same for M^H)
            Y = lu_solve(lu, X.conj(), "H" if adjoint else "N", self._complex[key]).conj()
        else:
            Y = lu_solve(lu, X, "H" if adjoint else "N", self._complex[key])
        if scale.imag == 0:
            return Y / scale.real
        return Y / scale

    def shifted(self, mu: complex, X: np.ndarray, adjoint: bool = False) -> np.ndarray:
        """``(A - mu E)^{-1} X`` (or its adjoint solve).

        Args:
            mu: the shift (complex).
            X: (N,) or (N, k) numpy array.
            adjoint: solve with ``(A - mu E)^H``.

        Returns:
            A numpy array of the shape of ``X``.
        """
        return self.solve(1.0, -mu, X, adjoint)


class SingularShiftError(InputError):
    """A shifted matrix ``A + c E`` is singular: the shift is an eigenvalue of the pencil."""

    def __init__(self, key, exc):
        what = "E" if key[0] == "E" else f"A + ({key[1]:.6g}) E"
        super().__init__(f"sys: the shifted matrix {what} is singular ({exc}): the shift "
                         f"{-key[1] if key[0] == 'A' else 0} is an eigenvalue of the pencil (A, E); "
                         "the target is not stable or a shift coincides with a pole")


def transient_phase(solver):
    """``solver.transient()`` where the solver has it (an adapter with only ``solve``/``shifted``,
    e.g. one over pyMOR operators, gets a no-op phase)."""
    phase = getattr(solver, "transient", None)
    return phase() if phase is not None else nullcontext()


def release(solver) -> None:
    """``solver.clear()`` where the solver has it (frees the cached factorizations)."""
    clear = getattr(solver, "clear", None)
    if clear is not None:
        clear()


def solver_of(sys: SparseSystem, memory_limit: int | None = None, cache_bytes: int | None = None) -> ShiftedSolver:
    """The system's shared ``ShiftedSolver`` (created on first use; factorizations are shared by every
    function called on the same system object); a new one where ``memory_limit`` or ``cache_bytes``
    is given and differs from the shared one's."""
    if cache_bytes is not None and (isinstance(cache_bytes, bool) or not isinstance(cache_bytes, int)
                                    or cache_bytes < 1):
        raise InputError(f"cache_bytes: expected a positive integer (bytes), got {cache_bytes!r}")
    s = sys.cache.get("solver")
    if (s is None or (memory_limit is not None and s.memory_limit != memory_limit)
            or (cache_bytes is not None and getattr(s, "cache_bytes", None) != cache_bytes)):
        s = ShiftedSolver(sys, memory_limit, cache_bytes=cache_bytes)
        sys.cache["solver"] = s
    return s
