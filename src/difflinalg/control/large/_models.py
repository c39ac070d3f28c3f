r"""Generated large sparse benchmark models (finite differences, first-order descriptor form).

* ``heat_2d(n)``: the heat equation ``u_t = Laplace(u)`` on the unit square, zero Dirichlet
  boundary, the 5-point stencil on an n x n interior grid (N = n^2, h = 1/(n+1)); the input heats
  the strip of nodes next to the left edge, the output is the mean temperature of the strip next to
  the right edge. Symmetric negative definite ``A``.
* ``convection_diffusion_2d(n, velocity)``: ``u_t = Laplace(u) - v . grad(u)`` with first-order
  upwind differences for the convection (non-symmetric, non-normal ``A``; the Peclet number
  ``|v| h / 2`` grows with the velocity); input and output strips as for the heat equation.
  Upwind differences keep ``A + A^T`` negative definite (dissipative).
* ``msd_descriptor(n)``: a chain of n masses with a consistent (tridiagonal, finite-element type)
  mass matrix ``M``, springs ``K`` and Rayleigh damping ``alpha M + beta K``, in first-order form
  ``E = diag(I, M)``, ``A = [[0, I], [-K, -(alpha M + beta K)]]`` (N = 2n); force on the first mass,
  output its velocity (collocated; from the first to the last mass the chain transmits almost
  nothing that a model of order 20 could capture: balanced truncation errors ~0.9).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sps

from ..._errors import InputError
from ._system import SparseSystem


def _check_n(n, name: str = "n", least: int = 2) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < least:
        raise InputError(f"{name}: expected an integer >= {least}, got {n!r}")
    return int(n)


def _strips(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Input column (left strip, unit total heat) and output row (mean of the right strip)."""
    N = n * n
    B = np.zeros((N, 1))
    C = np.zeros((1, N))
    rows = np.arange(n)
    B[rows * n, 0] = 1.0 / np.sqrt(n)          # node (i, 0): next to the left edge
    C[0, rows * n + n - 1] = 1.0 / np.sqrt(n)  # node (i, n-1): next to the right edge
    return B, C


def _laplacian_1d(n: int, h: float) -> sps.csc_matrix:
    return sps.diags([np.ones(n - 1), -2.0 * np.ones(n), np.ones(n - 1)], [-1, 0, 1], format="csc") / h**2


def heat_2d(n: int) -> SparseSystem:
    """2-D heat equation on an n x n grid (N = n^2 states, one input, one output; module docstring).

    Args:
        n: interior grid points per direction, an integer >= 2.

    Returns:
        Continuous-time float64 ``SparseSystem`` of order ``n^2`` (E = identity, D = 0).

    Raises:
        InputError: ``n`` not an integer >= 2.

    Example::

        from difflinalg.control.large import heat_2d

        F = heat_2d(10)
        assert (F.order, F.n_inputs, F.n_outputs) == (100, 1, 1)
    """
    n = _check_n(n)
    h = 1.0 / (n + 1)
    L = _laplacian_1d(n, h)
    eye = sps.identity(n, format="csc")
    A = (sps.kron(eye, L) + sps.kron(L, eye)).tocsc()
    B, C = _strips(n)
    return SparseSystem(A, B, C)


def convection_diffusion_2d(n: int, velocity: tuple[float, float] = (20.0, 10.0)) -> SparseSystem:
    """2-D upwind convection-diffusion on an n x n grid (N = n^2; module docstring).

    Args:
        n: interior grid points per direction, an integer >= 2.
        velocity: ``(v_x, v_y)``, two finite numbers of any signs.

    Returns:
        Continuous-time float64 ``SparseSystem`` of order ``n^2`` (E = identity, D = 0).

    Raises:
        InputError: ``n`` not an integer >= 2; ``velocity`` not two finite numbers.

    Example::

        from difflinalg.control.large import convection_diffusion_2d

        F = convection_diffusion_2d(10, velocity=(20.0, -5.0))
        assert F.order == 100 and (F.A != F.A.T).nnz > 0  # non-symmetric
    """
    n = _check_n(n)
    try:
        vx, vy = (float(v) for v in velocity)
    except (TypeError, ValueError):
        raise InputError(f"velocity: expected two numbers (v_x, v_y), got {velocity!r}") from None
    if not (np.isfinite(vx) and np.isfinite(vy)):
        raise InputError(f"velocity: expected finite numbers, got {velocity!r}")
    h = 1.0 / (n + 1)
    eye = sps.identity(n, format="csc")
    L = _laplacian_1d(n, h)

    def upwind(v: float) -> sps.csc_matrix:
        # -v du/dx by one-sided differences against the flow: (u_i - u_{i-1}) / h for v > 0
        if v >= 0:
            D = sps.diags([np.ones(n), -np.ones(n - 1)], [0, -1], format="csc") / h
        else:
            D = sps.diags([-np.ones(n), np.ones(n - 1)], [0, 1], format="csc") / h
        return -v * D

    # x runs along the fast index (within a row of the grid), y along the slow one
    A = (sps.kron(eye, L + upwind(vx)) + sps.kron(L + upwind(vy), eye)).tocsc()
    B, C = _strips(n)
    return SparseSystem(A, B, C)


def msd_descriptor(n: int, alpha: float = 0.5, beta: float = 0.05) -> SparseSystem:
    """Mass-spring-damper chain of n masses in descriptor form (N = 2n, E = diag(I, M); module
    docstring).

    Args:
        n: number of masses, an integer >= 2.
        alpha, beta: Rayleigh damping ``alpha M + beta K``, non-negative, not both 0.

    Returns:
        Continuous-time float64 ``SparseSystem`` of order ``2 n`` with a sparse ``E`` (one input,
        one output; the springs and masses are drawn from a fixed seed: reproducible).

    Raises:
        InputError: ``n`` not an integer >= 2; a negative ``alpha``/``beta`` or both 0.

    Example::

        from difflinalg.control.large import msd_descriptor

        F = msd_descriptor(20)
        assert F.order == 40 and F.E is not None
    """
    n = _check_n(n)
    if not (alpha >= 0 and beta >= 0 and alpha + beta > 0):
        raise InputError(f"alpha, beta: expected non-negative damping coefficients, not both 0, got {alpha}, {beta}")
    rng = np.random.default_rng(0)
    k = 1.0 + 0.5 * rng.random(n + 1)  # spring constants (masses fixed to walls at both ends)
    mass = 1.0 + 0.5 * rng.random(n)
    K = sps.diags([-k[1:n], k[:n] + k[1:], -k[1:n]], [-1, 0, 1], format="csc")
    # consistent mass matrix: lumped masses smeared onto the neighbours (tridiagonal, SPD)
    off = mass[:-1] * mass[1:] / (mass[:-1] + mass[1:]) / 6
    M = sps.diags([off, 2 * mass / 3 + np.r_[off, 0] / 2 + np.r_[0, off] / 2, off], [-1, 0, 1], format="csc")
    I = sps.identity(n, format="csc")
    Z = sps.csc_matrix((n, n))
    E = sps.block_diag([I, M], format="csc")
    A = sps.bmat([[Z, I], [-K, -(alpha * M + beta * K)]], format="csc")
    B = np.zeros((2 * n, 1))
    B[n, 0] = 1.0
    C = np.zeros((1, 2 * n))
    C[0, n] = 1.0  # collocated: the velocity of the forced mass
    return SparseSystem(A, B, C, E=E)
