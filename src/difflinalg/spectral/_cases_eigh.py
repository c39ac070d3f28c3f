"""Verification cases of eigh, eigvalsh, eigh_subspace and subspace_projector (``difflinalg verify``).

The checked functions are gauge invariant: eigenvalues, ``|V|^2`` (phase free), spectral
projectors ``V_c V_c^H`` of separated groups. At degenerate points they are invariant under the
rotations the rules drop (inside an eigh cluster; inside the kept block and its complement for
the subspace ops), and depend on the eigenvalues of a repeated eigenvalue only through their sum
(the individual eigenvalues of a cluster are not differentiable there).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..check import randn, register_case
from ._eigh import eigh
from ._subspace import eigh_subspace, subspace_projector
from ._values import eigvalsh


def hermitian_with_spectrum(dtype, gen, w, batch=()) -> Tensor:
    """``Q diag(w) Q^H`` with a random unitary (orthogonal) ``Q``; exactly Hermitian."""
    w = torch.as_tensor(w, dtype=torch.float64)
    n = w.shape[-1]
    Q = torch.linalg.qr(randn(dtype, gen, *batch, n, n)).Q
    A = (Q * w.to(dtype)) @ Q.mH
    return 0.5 * (A + A.mH)


def clustered(spread: float) -> list[float]:
    """Spectrum with a cluster of three around 1 (``spread`` apart), a pair around 3 and a -2."""
    return [-2.0, 1.0, 1.0 + spread, 1.0 - 0.7 * spread, 3.0, 3.0 + 0.4 * spread]


def cluster_invariants(w: Tensor, V: Tensor, groups, V2: Tensor | None = None) -> tuple[Tensor, ...]:
    """Sums of eigenvalues and projectors of the given index groups (cluster-invariant).

    ``V2``: the eigenvectors of a second eigh call for the projectors (the eigenvalue sums use
    ``w``): one call whose cluster receives both an eigenvalue and an eigenvector cotangent is
    refused at a tie (the documented false alarm of ``_eigh_ties``), two calls are exact."""
    V2 = V if V2 is None else V2
    out = []
    for lo, hi in groups:
        out.append(w[..., lo:hi].sum(-1))
        out.append(V2[..., lo:hi] @ V2[..., lo:hi].mH)
    return tuple(out)


def _eigh_generic(A):
    w, V = eigh(A)
    return w, V.abs().square()


def _eigh_cluster(spread_tol):
    def fn(A):
        w = eigh(A, degeneracy_tol=spread_tol).eigenvalues
        V = eigh(A, degeneracy_tol=spread_tol).eigenvectors
        return cluster_invariants(w, None, [(0, 1), (1, 4), (4, 6)], V)
    return fn


register_case("eigh", "generic", _eigh_generic, lambda dt, g: (randn(dt, g, 4, 4),))
register_case("eigh", "batched", _eigh_generic, lambda dt, g: (randn(dt, g, 2, 3, 3, 3),))
register_case("eigh", "repeated_exact", _eigh_cluster(1e-10),
              lambda dt, g: (hermitian_with_spectrum(dt, g, clustered(0.0)),), hard=True, max_step=1e-2)
for _s in (1e-12, 1e-8, 1e-3):
    register_case("eigh", f"cluster_{_s:.0e}", _eigh_cluster(1e-2),
                  lambda dt, g, s=_s: (hermitian_with_spectrum(dt, g, clustered(s)),), hard=True,
                  max_step=1e-2)


def _eigvalsh_groups(A):
    """The simple eigenvalue (squared) and the cluster sums: symmetric in, and (second order)
    linear in, each cluster's values, so exact at ties in every mode (``_eigh_ties``)."""
    w = eigvalsh(A, degeneracy_tol=1e-2)
    return w[..., 0].square(), w[..., 1:4].sum(-1), w[..., 4:].sum(-1)


# Non-Hermitian points and directions (the Hermitian part is read, whatever UPLO says)
register_case("eigvalsh", "generic", eigvalsh, lambda dt, g: (randn(dt, g, 4, 4),))
register_case("eigvalsh", "batched_upper", lambda A: eigvalsh(A, "U"), lambda dt, g: (randn(dt, g, 2, 3, 3, 3),))
register_case("eigvalsh", "repeated_exact", _eigvalsh_groups,
              lambda dt, g: (hermitian_with_spectrum(dt, g, clustered(0.0)),), hard=True, max_step=1e-2)


def _sub(k, largest):
    def fn(A):
        w1, U1 = eigh_subspace(A, k, largest=largest)
        return w1, U1 @ U1.mH
    return fn


def _sub_degenerate(k, largest):
    def fn(A):  # the eigenvalue sum and the projector from separate calls (see _eigh_ties)
        w1 = eigh_subspace(A, k, largest=largest).eigenvalues
        U1 = eigh_subspace(A, k, largest=largest).eigenvectors
        return w1.sum(-1), U1 @ U1.mH
    return fn


# Kept block and complement both degenerate: [1, 1, 1 | 4, 4] and a flat floor under 2 signals.
_DEG = [1.0, 1.0, 1.0, 4.0, 4.0]
_FLOOR = [1.0] * 6 + [3.0, 5.0]

register_case("eigh_subspace", "generic", _sub(2, False), lambda dt, g: (randn(dt, g, 5, 5),))
register_case("eigh_subspace", "largest", _sub(2, True), lambda dt, g: (randn(dt, g, 5, 5),))
register_case("eigh_subspace", "batched", _sub(1, True), lambda dt, g: (randn(dt, g, 2, 2, 4, 4),))
register_case("eigh_subspace", "both_blocks_degenerate", _sub_degenerate(3, False),
              lambda dt, g: (hermitian_with_spectrum(dt, g, _DEG),), hard=True, max_step=1e-2)
register_case("eigh_subspace", "flat_noise_floor", _sub(2, True),
              lambda dt, g: (hermitian_with_spectrum(dt, g, _FLOOR),), hard=True, max_step=1e-2)
for _s in (1e-12, 1e-3):
    register_case("eigh_subspace", f"clusters_{_s:.0e}", _sub_degenerate(4, False),
                  lambda dt, g, s=_s: (hermitian_with_spectrum(dt, g, sorted(clustered(s))),),
                  hard=True, max_step=1e-2)

register_case("subspace_projector", "generic", lambda A: subspace_projector(A, 2),
              lambda dt, g: (randn(dt, g, 4, 4),))
register_case("subspace_projector", "batched_largest", lambda A: subspace_projector(A, 2, largest=True),
              lambda dt, g: (randn(dt, g, 3, 4, 4),))
register_case("subspace_projector", "flat_noise_floor", lambda A: subspace_projector(A, 2, largest=True),
              lambda dt, g: (hermitian_with_spectrum(dt, g, _FLOOR),), hard=True, max_step=1e-2)
register_case("subspace_projector", "repeated_signal", lambda A: subspace_projector(A, 2, largest=True),
              lambda dt, g: (hermitian_with_spectrum(dt, g, [0.5, 1.0, 1.0, 1.0 + 1e-9, 6.0, 6.0]),),
              hard=True, max_step=1e-2)
