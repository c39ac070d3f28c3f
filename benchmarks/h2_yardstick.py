"""The H2-error yardstick at tiny errors: ``h2_error(..., precise=True)`` against a 45-digit mpmath
sum, and the scatter of double-precision measurements.

For the SLICOT heat model (../shared/data/slicot/heat-cont.mat) reduced to orders 8 and 12 by
``rarl2`` and by pyMOR's IRKA (the ``bench`` extra), in the same run:

* ``precise``: ``h2_error(F, H, relative=True, precise=True)`` (refined residues, double-double sums);
* ``mpmath``: the residue formula summed with 45 significant digits (mpmath), from the target's
  poles and residues refined in extended precision (``_precise.refine_modal``, itself checked
  against mpmath's eigendecomposition in tests/control/test_precise.py) and the reduced model's
  eigendecomposition in mpmath: a reference for the double-double sums of ``precise``, where the
  digits cancel;
* ``double min .. max``: pyMOR's ``(fom - rom).h2_norm() / fom.h2_norm()`` (double precision) over
  realizations ``(T^-1 A T, T^-1 B, C T)`` of the model (random ``T``, condition <= e^2): the spread
  of double-precision measurements of one model, against which best-known values measured that way
  are to be read (heat-cont order 8: 5.9559791e-6).

Run: ``./dev bench h2_yardstick [--json PATH|-]`` (CPU, ~1 min).
"""

from __future__ import annotations

import sys
from pathlib import Path

from _common import add_data_argument, parser, print_table, require_data, setup, write_json

import numpy as np  # noqa: E402
import torch  # noqa: E402

from difflinalg.control import StateSpace, h2_error, load_model, rarl2  # noqa: E402
from difflinalg.control.analysis._precise import refine_modal  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data" / "slicot" / "heat-cont.mat"
DIGITS = 45


def mp_relative_error(F: StateSpace, H: StateSpace) -> float:
    """``||F - H|| / ||F||`` by residues with DIGITS significant digits (mpmath)."""
    import mpmath as mp

    mp.mp.dps = DIGITS
    A, B, C = (x.numpy() for x in (F.A, F.B, F.C))
    lam, V = np.linalg.eig(A)
    lr, Br, Cr = refine_modal(A, B, C, lam, V)
    res_F = [mp.mpc(str(c.real), str(c.imag)) * mp.mpc(str(b.real), str(b.imag)) for c, b in zip(Cr[0], Br[:, 0])]
    lam_F = [mp.mpc(str(x.real), str(x.imag)) for x in lr]
    ev, ER = mp.eig(mp.matrix(H.A.numpy().tolist()))
    bt = ER ** -1 * mp.matrix(H.B.numpy().tolist())
    ct = mp.matrix(H.C.numpy().tolist()) * ER
    lam_H = [ev[k] for k in range(len(ev))]
    res_H = [-ct[0, k] * bt[k, 0] for k in range(len(ev))]

    def norm2(lams, ress):
        tot = mp.mpc(0)
        for lk, rk in zip(lams, ress):
            s = -mp.conj(lk)
            tot += mp.conj(rk) * mp.fsum(rj / (s - lj) for lj, rj in zip(lams, ress))
        return tot.real

    return float(mp.sqrt(norm2(lam_F + lam_H, res_F + res_H) / norm2(lam_F, res_F)))


def double_spread(fom, F: StateSpace, H: StateSpace, k: int = 20) -> tuple[float, float]:
    from pymor.models.iosys import LTIModel

    rng = np.random.default_rng(0)
    A, B, C = (x.numpy() for x in (H.A, H.B, H.C))
    nf = fom.h2_norm()
    vals = []
    for _ in range(k):
        T = np.linalg.qr(rng.standard_normal(A.shape))[0] @ np.diag(np.exp(rng.uniform(-1, 1, A.shape[0])))
        Ti = np.linalg.inv(T)
        vals.append((fom - LTIModel.from_matrices(Ti @ A @ T, Ti @ B, C @ T)).h2_norm() / nf)
    return min(vals), max(vals)


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    add_data_argument(p, DATA, "the SLICOT heat-cont.mat file")
    args = p.parse_args()
    setup(args)
    require_data(args.data, "h2_yardstick")
    F = load_model(args.data)
    try:
        from pymor.core.logger import set_log_levels
        from pymor.models.iosys import LTIModel
        from pymor.reductors.h2 import IRKAReductor

        from difflinalg.control.cli._reduce import pymor_to_statespace

        set_log_levels({"pymor": "ERROR"})
        fom = LTIModel.from_matrices(*(x.numpy() for x in (F.A, F.B, F.C)))
    except ImportError:
        fom = None
    rows = []
    for r in (8, 12):
        models = [("rarl2", rarl2(F, r).model)]
        if fom is not None:
            models.append(("pyMOR IRKA", pymor_to_statespace(IRKAReductor(fom).reduce(r))))
        for name, H in models:
            row = {"order": r, "method": name, "precise": float(h2_error(F, H, relative=True, precise=True)),
                   "mpmath": mp_relative_error(F, H)}
            row["precise/mpmath - 1"] = row["precise"] / row["mpmath"] - 1
            if fom is not None:
                row["double min"], row["double max"] = double_spread(fom, F, H)
            rows.append(row)
            print(row, file=sys.stderr, flush=True)
    shown = [{k: (f"{v:.10e}" if k in ("precise", "mpmath") else f"{v:.7e}" if k.startswith("double") else
                  f"{v:.1e}" if isinstance(v, float) else v) for k, v in row.items()} for row in rows]
    print_table(shown, list(rows[0]), title="heat-cont: relative H2 errors by three yardsticks")
    write_json(rows, args.json)
    return 0


if __name__ == "__main__":
    torch.set_default_dtype(torch.float64)
    sys.exit(main())
