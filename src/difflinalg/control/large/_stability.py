r"""Stability of a sparse (descriptor) system by a sparse eigensolver (ARPACK through
``scipy.sparse.linalg.eigs``), without forming a dense matrix.

Continuous time: the Cayley operator ``(A - s E)^{-1} (A + s E)`` (``s > 0``) maps a pole ``l`` to
``c = (l + s) / (l - s)``, with ``|c| > 1`` exactly when ``Re l > 0``; its eigenvalues of largest
magnitude are therefore the unstable poles if there are any (stiff stable poles crowd below
``|c| = 1``). ``s`` is the geometric mean of the pencil's Ritz-value magnitudes (``_gramians``),
so that both ends of the spectrum stay resolved. Discrete time: the largest poles of ``E^{-1} A``.
A pole is back-transformed by ``l = s (c + 1) / (c - 1)`` and its residual checked.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse.linalg as spla

from ..._errors import UnstableSystemError
from ..._utils import warn_once
from ..system._statespace import fmt_complex as _fmt_complex
from ._adi import adi_shifts
from ._solves import solver_of
from ._system import SparseSystem

N_EIGS = 6
MAX_RESTARTS = 10


def leading_poles(sys: SparseSystem, k: int = N_EIGS) -> np.ndarray:
    """``k`` poles of largest ``|c|`` (module docstring): the unstable ones if there are any. For a
    stable system they are the poles at either end of the spectrum (in continuous time both the
    slowest and the stiffest map close to ``|c| = 1``), not necessarily those nearest the boundary.

    Args:
        sys: a ``SparseSystem``.
        k: number of poles wanted (clipped to ``1 <= k <= N - 2``, ARPACK's limit).

    Returns:
        (k',) complex numpy array of poles (``k' <= k``: only the values ARPACK converged within
        ``MAX_RESTARTS`` restarts; empty, with a warning, if none did). Not ordered.

    Raises:
        FactorizationMemoryError: the shifted sparse LU would not fit in memory.
        InputError: the shifted matrix is singular (a pole at the shift).

    Example::

        from difflinalg.control.large import heat_2d, leading_poles

        poles = leading_poles(heat_2d(10), 3)
        assert poles.size <= 3 and (poles.real < 0).all()
    """
    N = sys.order
    k = max(1, min(k, N - 2))
    S = solver_of(sys)
    if sys.discrete:
        def op(x):
            return S.solve(0.0, 1.0, sys.apply_A(x)) if sys.E is not None else sys.apply_A(x)
        s = None
    else:
        s = math.exp(float(np.mean(np.log(np.abs(adi_shifts(sys))))))

        def op(x):
            return S.solve(1.0, -s, sys.apply_A(x) + s * sys.apply_E(x))
    dt = np.complex128 if sys.is_complex else np.float64
    L = spla.LinearOperator((N, N), matvec=lambda x: op(x.reshape(-1, 1)).ravel(), dtype=dt)
    try:
        # a pole outside the stable region is isolated at |c| > 1 and converges in few restarts; the
        # stable crowd below |c| = 1 need not converge (the converged values are used)
        c = spla.eigs(L, k=k, which="LM", return_eigenvectors=False, tol=1e-8,
                      v0=np.ones(N, dtype=dt), maxiter=MAX_RESTARTS, ncv=min(N, max(2 * k + 1, 24)))
    except spla.ArpackNoConvergence as exc:
        c = exc.eigenvalues
        if c.size == 0:
            warn_once(f"stability-{id(sys)}", "the sparse eigensolver did not converge within "
                      f"{MAX_RESTARTS} restarts: stability of the target is not verified. Poles near the imaginary "
                      "axis (lightly damped modes) crowd at |c| ~ 1 under the Cayley transform it searches, so "
                      "none separates; a pole well inside the right half plane maps to |c| > 1 and would "
                      "normally converge and be named. If the model is not stable by construction, check "
                      "it with difflinalg.control.large.leading_poles or on a coarser discretization",
                      UserWarning)
    if sys.discrete:
        return c
    c = c[np.abs(c - 1) > 0]
    return s * (c + 1) / (c - 1)


def check_stable_sparse(sys: SparseSystem, name: str = "target") -> None:
    """Raise ``UnstableSystemError`` naming the most unstable pole found by the sparse eigensolver
    (``leading_poles``); a system found stable is remembered in ``sys.cache``.

    Args:
        sys: a ``SparseSystem``.
        name: the argument's name in the message.

    Returns:
        None (it only raises).

    Raises:
        UnstableSystemError: a pole with ``Re >= 0`` (continuous) or ``|z| >= 1`` (discrete).
        FactorizationMemoryError, InputError: as ``leading_poles``.

    Example::

        import numpy as np
        import scipy.sparse as sps
        from difflinalg import UnstableSystemError
        from difflinalg.control.large import SparseSystem, check_stable_sparse, heat_2d

        check_stable_sparse(heat_2d(10))  # stable: returns None
        A = sps.diags(np.linspace(-50.0, 1.0, 50), format="csc")  # one pole at +1
        try:
            check_stable_sparse(SparseSystem(A, np.ones((50, 1)), np.ones((1, 50))))
        except UnstableSystemError:
            pass
        else:
            raise AssertionError("not detected")
    """
    if "stable" in sys.cache:
        return
    poles = leading_poles(sys)
    if poles.size:
        if sys.discrete:
            j = int(np.argmax(np.abs(poles)))
            bad = abs(poles[j]) >= 1
            what = f"|z| = {abs(poles[j]):.6g} >= 1"
        else:
            j = int(np.argmax(poles.real))
            bad = poles[j].real >= 0
            what = f"real part {poles[j].real:.6g} >= 0"
        if bad:
            raise UnstableSystemError(
                f"{name}: the sparse {sys.time}-time system is unstable: pole {_fmt_complex(poles[j])} ({what}), "
                "found by a sparse eigensolver (scipy.sparse.linalg.eigs); H2 reduction needs a stable target: "
                "remove or stabilize the unstable part first")
    sys.cache["stable"] = True
