"""The gallery: every ``examples/NN_*.py`` runs with ``--quick``, writes its figures to ``--out``
and prints the numbers it shows.

Each example runs in a subprocess (as a user runs it) with one BLAS/OpenMP thread. Together they
take a few minutes on a 2-core machine, so the test is ``slow``; CI runs the same quick gallery
through ``./dev examples`` (``.ci/run``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("[0-9][0-9]_*.py"))

pytest.importorskip("matplotlib")


def test_the_gallery_has_its_nine_examples_listed():
    assert [p.name[:2] for p in EXAMPLES] == [f"{i:02d}" for i in range(1, 10)]
    readme = (ROOT / "examples" / "README.md").read_text()
    page = (ROOT / "docs" / "examples.md").read_text()
    for p in EXAMPLES:
        assert p.name in readme, f"{p.name} missing from examples/README.md"
        assert p.name in page, f"{p.name} missing from docs/examples.md"
        doc = p.read_text()
        assert doc.startswith('"""') and "--quick" in doc and "--out" in doc


@pytest.mark.slow
@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_quick(script, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               MPLBACKEND="Agg")
    proc = subprocess.run([sys.executable, str(script), "--quick", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert proc.returncode == 0, f"{script.name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    figures = sorted(tmp_path.glob("*.png"))
    assert figures, f"{script.name} wrote no figure to --out"
    assert all(f.stat().st_size > 1000 for f in figures)
    assert re.search(r"\d\.\d+e[-+]\d\d", proc.stdout), f"{script.name} printed no numbers"


@pytest.mark.slow
def test_bessel_example_prints_the_reference_derivative(tmp_path):
    """Example 1's printed derivatives and stencil (a few seconds, most of it imports)."""
    script = ROOT / "examples" / "01_bessel_derivatives.py"
    proc = subprocess.run([sys.executable, str(script), "--quick", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    # Error model: each of forward mode, reverse mode and the manual rule sums the 60 series terms
    # (magnitudes <= |J'|, fast decaying), each term within a few ulps (lgamma, exp, log), so the
    # rounding error is below 60 eps |J'|. The 5-point difference at its adaptive step h ~ 1e-3:
    # rounding eps |J| / h ~ 1e-14 plus truncation h^4 |J^(5)| / 30 ~ 1e-14; 1e-11 leaves margin
    # for another step choice.
    rows = dict(re.findall(r"^(forward mode|reverse mode|manual rule|central_fdm\(5, 1\))\s.*?"
                           r"(-?0\.\d{17})\s", out, re.M))
    assert set(rows) == {"forward mode", "reverse mode", "manual rule", "central_fdm(5, 1)"}, out
    ref = 0.11985236384014333
    for name in ("forward mode", "reverse mode", "manual rule"):
        assert abs(float(rows[name]) - ref) <= 60 * 2.2e-16 * ref, (name, rows[name])
    assert abs(float(rows["central_fdm(5, 1)"]) - ref) <= 1e-11
    assert "['1/12', '-2/3', '0', '2/3', '-1/12']" in out
    assert (tmp_path / "01_bessel.png").is_file() and (tmp_path / "01_fd_error.png").is_file()
