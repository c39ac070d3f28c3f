"""The benchmark scripts' contract: missing data is an error (never a silent "skipped" exit 0),
and the memory probe does not flood the output."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.parametrize("script", ["rarl2_slicot.py", "h2_yardstick.py"])
def test_missing_data_exits_nonzero(script, tmp_path):
    run = subprocess.run([sys.executable, str(BENCH / script), "--data", str(tmp_path / "absent")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert "not found" in run.stderr and "--data" in run.stderr


def test_peak_memory_is_quiet_and_counts():
    code = ("import sys; sys.path.insert(0, %r); import torch; from _common import peak_memory; "
            "print(peak_memory(lambda: torch.ones(1 << 20).sum()))" % str(BENCH))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert int(run.stdout.strip()) >= 4 << 20  # the 4 MiB tensor was seen
    assert "USDT" not in run.stderr and "profiler_start" not in run.stderr
