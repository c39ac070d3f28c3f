"""The random system families of ``rarl2_generalization.py`` (its docstring): ``make_system`` and
the order of each case (``pick_order``), deterministic in the seed."""

from __future__ import annotations

import numpy as np
import torch

from difflinalg.control import StateSpace, as_system

ORDERS = (2, 4, 8, 12)
SIZES = (30, 45, 60, 80, 100, 120, 150, 200, 300)
SHAPES = ((1, 1), (2, 2), (3, 2))
TINY_HSV = 1e-9
FAMILIES = ("dense-c", "dense-d", "dense-d-D", "modal-light-c", "modal-heavy-c", "modal-light-d",
            "modal-heavy-d", "rss", "drss", "msd", "heat1d")
CONTINUOUS = {"dense-c", "modal-light-c", "modal-heavy-c", "rss", "msd", "heat1d"}


def _orthogonal(g: np.random.Generator, n: int) -> np.ndarray:
    q, r = np.linalg.qr(g.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def _modal(g: np.random.Generator, n: int, discrete: bool, light: bool) -> np.ndarray:
    """Real block-diagonal A with the family's poles (module docstring), orthogonally rotated."""
    blocks = []
    k = 0
    while k < n:
        real = (n - k == 1) or (not light and g.random() < 0.3)
        if discrete:
            rho = g.uniform(0.95, 0.999) if light else g.uniform(0.2, 0.9)
            if real:
                blocks.append(np.array([[rho * g.choice([-1.0, 1.0])]]))
                k += 1
                continue
            th = g.uniform(0.02, np.pi - 0.02)
            c, s = rho * np.cos(th), rho * np.sin(th)
        else:
            w = 10 ** g.uniform(-1, 1)
            if real:
                blocks.append(np.array([[-w]]))
                k += 1
                continue
            z = 10 ** g.uniform(-3, np.log10(3e-2)) if light else g.uniform(0.3, 0.9)
            c, s = -z * w, w * np.sqrt(1 - z * z)
        blocks.append(np.array([[c, s], [-s, c]]))
        k += 2
    A = np.zeros((n, n))
    at = 0
    for b in blocks:
        A[at:at + len(b), at:at + len(b)] = b
        at += len(b)
    Q = _orthogonal(g, n)
    return Q @ A @ Q.T


def _pymor_lti(fom, mu=None) -> StateSpace:
    """A pyMOR LTIModel (parametric: at ``mu``) as a StateSpace (``E^{-1}`` folded in)."""
    def dense(op):
        M = op.assemble(mu).matrix if mu is not None else op.matrix
        return M.toarray() if hasattr(M, "toarray") else np.asarray(M)

    A, B, C = dense(fom.A), dense(fom.B), dense(fom.C)
    E = dense(fom.E) if hasattr(fom.E, "matrix") else np.eye(A.shape[0])
    A, B = np.linalg.solve(E, A), np.linalg.solve(E, B)
    return StateSpace(torch.tensor(A), torch.tensor(B), torch.tensor(C), torch.zeros(C.shape[0], B.shape[1],
                                                                                     dtype=torch.float64))


def make_system(family: str, seed: int) -> StateSpace:
    """The system of ``(family, seed)`` (module docstring); deterministic in the seed."""
    g = np.random.default_rng([seed, FAMILIES.index(family)])
    n = int(SIZES[g.integers(len(SIZES))])
    p, m = SHAPES[g.integers(len(SHAPES))]
    discrete = family not in CONTINUOUS
    if family in ("rss", "drss"):
        import control

        np.random.seed(seed % 2**32)
        sys_ = control.rss(n, p, m, strictly_proper=True) if family == "rss" else control.drss(n, p, m)
        return as_system(sys_)
    if family == "msd":
        from pymor.models.examples import msd_example

        n = 2 * int(g.integers(15, 151))  # 30..300 states
        fom = msd_example(n, 1 if p == 1 else 2, m_i=g.uniform(1, 8), k_i=g.uniform(1, 8), c_i=g.uniform(0.2, 3),
                          as_lti=True)
        return as_system(fom)
    if family == "heat1d":
        from pymor.models.examples import heat_equation_1d_example

        nodes = int(g.integers(30, 201))
        fom = heat_equation_1d_example(diameter=1 / nodes).to_lti()
        return _pymor_lti(fom, fom.parameters.parse({"diffusion": float(10 ** g.uniform(-1, 1))}))
    if family.startswith("dense"):
        A = g.standard_normal((n, n)) / np.sqrt(n)
        ev = np.linalg.eigvals(A)
        if discrete:
            A *= g.uniform(0.5, 0.98) / np.abs(ev).max()
        else:
            A -= (ev.real.max() + g.uniform(0.02, 0.5)) * np.eye(n)
    else:
        A = _modal(g, n, discrete, "light" in family)
    B, C = g.standard_normal((n, m)), g.standard_normal((p, n))
    D = g.standard_normal((p, m)) if discrete and family != "dense-d" else np.zeros((p, m))
    t = torch.tensor
    return StateSpace(t(A), t(B), t(C), t(D), time="discrete" if discrete else "continuous")


def pick_order(hsv: torch.Tensor, family: str, seed: int) -> int | None:
    """The order of case ``(family, seed)``: drawn from ORDERS, lowered while
    ``sigma_{r+1} < 1e-9 sigma_1`` or ``r`` is not below the system's order; None if none qualifies."""
    k = int(np.random.default_rng([seed, FAMILIES.index(family), 1]).integers(len(ORDERS)))
    for r in reversed(ORDERS[:k + 1]):
        if r < len(hsv) and float(hsv[r]) > TINY_HSV * float(hsv[0]):
            return r
    return None
