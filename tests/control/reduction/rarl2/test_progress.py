"""RARL2's progress bar and the status line of one-shot stages (drawn by tqdm)."""

import math
import re
import time

from difflinalg.control.reduction._rarl2._progress import Progress, Status


def _frames(err: str) -> list[str]:
    return [f for f in re.split(r"[\r\n]", err) if f.strip()]


def test_bar_never_counts_past_the_starts_and_ends_at_n_of_n(capsys):
    p = Progress(True, 6)
    for k, name in enumerate(["bt", "irka", "perturb"]):
        p.update(name, 1, 0.5 / (k + 1), force=False)
        p.last = 0.0  # no throttling in the test
        p.update(name, 3, 0.4 / (k + 1))
        p.done += 1
        p.update(name, 3, 0.4 / (k + 1), force=True)
    p.close()
    frames = _frames(capsys.readouterr().err)
    counts = [tuple(map(int, re.search(r"start (\d+)/(\d+)", f).groups())) for f in frames]
    assert all(k <= n for k, n in counts)
    assert counts[-1] == (3, 3)  # the adaptive search ran 3 of 6: the bar ends full
    assert re.match(r"RARL2 \|#{20}\| start 3/3, perturb ", frames[-1])
    assert "rel. err 1.333333e-01 best rel. err 1.333333e-01" in frames[-1]


def test_bar_prints_dash_for_non_finite_errors(capsys):
    p = Progress(True, 2)
    p.update("bt", 0, math.nan, force=True)
    p.update("bt", 1, math.inf, force=True)
    err = capsys.readouterr().err
    assert "nan" not in err and "inf" not in err
    assert "rel. err - best rel. err -" in err


def test_disabled_bar_and_status_are_silent(capsys):
    p = Progress(False, 3)
    p.update("bt", 1, 0.1, force=True)
    p.close()
    with Status("balanced truncation", False):
        pass
    assert capsys.readouterr().err == ""


def test_status_ticks_and_ends_with_its_time(capsys):
    with Status("balanced truncation", True, interval=0.01):
        time.sleep(0.1)
    frames = _frames(capsys.readouterr().err)
    assert frames[0].strip() == "balanced truncation ..."
    assert any(re.fullmatch(r"balanced truncation \.\.\. +\d+\.\d s *", f) for f in frames[1:-1])
    assert re.fullmatch(r"balanced truncation: \d+\.\d\d s *", frames[-1])


def test_progress_bar_ends_a_status_line(capsys):
    with Status("RARL2: factorizing the target", True, interval=0.01) as st:
        time.sleep(0.05)
        Progress(True, 2).update("bt", 0, 0.5, force=True)
        assert st._thread is None  # stopped: one line at a time
        time.sleep(0.05)
    err = capsys.readouterr().err
    assert re.search(r"best rel. err 5.000000e-01 \[\d\d:\d\d\]$", err.rstrip())
    assert "RARL2: factorizing the target:" not in err  # cleared, not ended with a time
