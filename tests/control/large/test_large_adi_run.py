"""The resumable ADI iteration (_adi_run): stopping and going on is the same iteration."""

import numpy as np
import pytest

from difflinalg.control.large import convection_diffusion_2d, msd_descriptor
from difflinalg.control.large._adi_run import AdiRun, adi_run, recorded_run


@pytest.mark.parametrize("make", [lambda: msd_descriptor(60), lambda: convection_diffusion_2d(9)], ids=["msd", "convdiff"])
def test_resumed_run_equals_one_run(make):
    s = make()
    whole, parts = [], []
    adi_run(s, False, 1e-15, 600, whole.append)
    run = AdiRun(s)
    adi_run(s, False, 1e-6, 600, parts.append, run=run)
    first = len(parts)
    adi_run(s, False, 1e-15, 600, parts.append, run=run)
    assert 0 < first < len(parts) == len(whole)
    for a, b in zip(whole, parts):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13 * np.abs(a).max())


def test_record_holds_outputs_and_residuals():
    """Each recorded step: C times its blocks and W^H W after it (the residual the error system needs)."""
    s = msd_descriptor(40)
    blocks = []
    run = recorded_run(s, False)
    adi_run(s, False, 1e-12, 600, blocks.append, run=run)
    assert recorded_run(s, False) is run and recorded_run(s, True) is not run
    outs = [o for st in run.record for o in st.outputs]
    assert len(outs) == len(blocks)
    for o, b in zip(outs, blocks):
        np.testing.assert_allclose(o, s.C @ b, rtol=1e-14, atol=0)
    res = np.linalg.norm(run.record[-1].gram, 2) / run.res0
    assert res == pytest.approx(run.res, rel=1e-12) and res <= 1e-12
    assert run.record[0].cycle_start and sum(st.cycle_start for st in run.record) >= 1
