"""``difflinalg reduce``: table, JSON, output file, plot, errors."""

import json
from pathlib import Path

import pytest

from difflinalg.cli import main
from difflinalg.control import h2_error, load_model
from difflinalg.control.system._models import builtin_model


def test_reduce_builtin_json_output_plot(tmp_path, capsys):
    out = tmp_path / "h.npz"
    png = tmp_path / "p.png"
    js = tmp_path / "r.json"
    rc = main(["reduce", "msd:12", "--order", "4", "--compare", "bt", "--json", str(js),
               "--output", str(out), "--plot", str(png), "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "balanced-trunc" in text and "rarl2" in text and "relative" in text
    rows = {r["method"]: r for r in json.loads(js.read_text())["rows"]}
    assert rows["rarl2"]["relative_h2_error"] <= rows["balanced-trunc"]["relative_h2_error"] * (1 + 1e-9)
    assert rows["rarl2"]["stability_margin"] > 0
    H = load_model(out)
    F = builtin_model("msd:12")
    assert float(h2_error(F, H, relative=True)) == pytest.approx(rows["rarl2"]["relative_h2_error"], rel=1e-9)
    assert png.stat().st_size > 1000


def test_reduce_json_stdout_discrete(capsys):
    rc = main(["reduce", "fir:8", "--order", "2", "--compare", "bt,irka", "--json", "-", "--no-progress"])
    assert rc == 0
    cap = capsys.readouterr()
    payload = json.loads(cap.out)
    assert [r["method"] for r in payload["rows"]] == ["balanced-trunc", "rarl2"]
    assert "continuous-time only" in cap.err


def test_reduce_errors(capsys, tmp_path):
    assert main(["reduce", "nosuchmodel", "--order", "2"]) == 2
    assert "neither a model file nor a built-in model" in capsys.readouterr().err
    assert main(["reduce", "msd:5", "--order", "10"]) == 2
    assert "not below the target's order 10" in capsys.readouterr().err
    assert main(["reduce", "msd:5", "--order", "2", "--compare", "hinf"]) == 2
    assert "unknown method(s) ['hinf']" in capsys.readouterr().err
    assert main(["reduce", str(tmp_path / "missing.mat"), "--order", "2"]) == 2
    assert "no such file" in capsys.readouterr().err


# -- output paths checked before any work ---------------------------------------------------------
@pytest.fixture
def no_work(monkeypatch):
    """Fail if the command gets as far as loading the model."""
    from difflinalg.control.cli import _reduce as _cli

    def boom(*a, **k):
        raise AssertionError("the model was loaded before the output paths were checked")

    monkeypatch.setattr(_cli, "_load", boom)


@pytest.mark.parametrize("flag, name", [("--output", "m.npz"), ("--json", "r.json"), ("--plot", "p.png")])
def test_output_paths_checked_before_work(no_work, tmp_path, capsys, flag, name):
    base = ["reduce", "msd:6", "--order", "2", "--no-progress"]
    assert main(base + [flag, str(tmp_path)]) == 2
    example = {"--output": "reduced.npz", "--json": "results.json", "--plot": "plot.png"}[flag]
    assert f"{flag}: {tmp_path} is a directory; give a file path, e.g. {tmp_path / example}" in capsys.readouterr().err
    missing = tmp_path / "no" / "such" / name
    assert main(base + [flag, str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"{flag}: the directory {missing.parent} of {missing} does not exist; create it first" in err
    (tmp_path / "afile").write_text("x")
    assert main(base + [flag, str(tmp_path / "afile" / name)]) == 2
    assert f"{flag}: {tmp_path / 'afile'} (in {tmp_path / 'afile' / name}) is not a directory" in capsys.readouterr().err
    assert not (tmp_path / name).exists()  # the writability probe leaves nothing behind


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc (not writable even for root)")
def test_output_path_not_writable(no_work, capsys):
    assert main(["reduce", "msd:6", "--order", "2", "--json", "/proc/difflinalg-test.json"]) == 2
    assert "--json: cannot write /proc/difflinalg-test.json (" in capsys.readouterr().err


def test_output_types_and_clashes_checked_before_work(no_work, tmp_path, capsys):
    base = ["reduce", "msd:6", "--order", "2"]
    assert main(base + ["--output", str(tmp_path / "m.txt")]) == 2
    assert "--output: unknown model file type '.txt'" in capsys.readouterr().err
    assert main(base + ["--plot", str(tmp_path / "p.xyz")]) == 2
    assert "--plot: unknown image type '.xyz'" in capsys.readouterr().err
    same = str(tmp_path / "same.npz")
    assert main(base + ["--output", same, "--json", same]) == 2
    assert f"--output and --json: both name {same}" in capsys.readouterr().err
    existing = tmp_path / "old.json"
    existing.write_text("keep")
    assert main(base + ["--json", str(existing), "--compare", "x"]) == 2  # fails later: file untouched
    assert existing.read_text() == "keep"


@pytest.mark.parametrize("args, msg", [
    (["--max-time", "nan"], "max_time: expected a positive number of seconds"),
    (["--max-time", "0"], "max_time: expected a positive number of seconds"),
    (["--starts", "0"], "starts: expected at least 1 start, got 0"),
    (["--compare", "bt,hinf"], "--compare: unknown method(s) ['hinf']"),
])
def test_arguments_checked_before_work(no_work, capsys, args, msg):
    assert main(["reduce", "msd:6", "--order", "2"] + args) == 2
    assert msg in capsys.readouterr().err


# -- interrupts -----------------------------------------------------------------------------------
def _one_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert "Traceback" not in err
    return lines[-1]


def test_ctrl_c_during_balanced_truncation(monkeypatch, tmp_path, capsys):
    from difflinalg.control.reduction import _balanced

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(_balanced, "balanced_truncation", interrupted)
    out = tmp_path / "m.npz"
    rc = main(["reduce", "msd:6", "--order", "2", "--compare", "bt", "--output", str(out), "--no-progress"])
    assert rc == 130
    assert _one_line(capsys.readouterr().err) == \
        "difflinalg reduce: interrupted (Ctrl-C) during balanced truncation; nothing saved"
    assert not out.exists()


def test_ctrl_c_during_rarl2_saves_best_so_far(monkeypatch, tmp_path, capsys):
    from difflinalg.control.reduction._rarl2 import _api as _rarl2

    real = _rarl2._Progress.update

    def update(self, name, it, err, force=False):
        if self.done >= 1 and it >= 1 and not force:  # inside the second optimization
            raise KeyboardInterrupt
        return real(self, name, it, err, force)

    monkeypatch.setattr(_rarl2._Progress, "update", update)
    out, js = tmp_path / "m.npz", tmp_path / "r.json"
    rc = main(["reduce", "msd:12", "--order", "3", "--compare", "", "--starts", "4", "--output", str(out),
               "--json", str(js), "--no-progress"])
    cap = capsys.readouterr()
    assert rc == 130
    assert _one_line(cap.err) == ("difflinalg reduce: RARL2 interrupted (Ctrl-C): the table and files hold "
                                  "its best model so far")
    assert "interrupted: best so far" in cap.out
    payload = json.loads(js.read_text())
    assert payload["interrupted"] is True
    H = load_model(out)
    assert H.is_stable()
    err = float(h2_error(builtin_model("msd:12"), H, relative=True))
    assert err == pytest.approx(payload["rows"][-1]["relative_h2_error"], rel=1e-9)


def test_threads_pinned_for_every_method(monkeypatch, capsys):
    """Balanced truncation is timed under RARL2's thread setting (one thread), restored after."""
    import torch

    from difflinalg.control.reduction import _balanced

    seen = []
    real = _balanced.balanced_truncation

    def bt(*a, **k):
        seen.append(torch.get_num_threads())
        return real(*a, **k)

    monkeypatch.setattr(_balanced, "balanced_truncation", bt)
    before = torch.get_num_threads()
    assert main(["reduce", "msd:6", "--order", "2", "--compare", "bt", "--no-progress"]) == 0
    assert seen == [1] and torch.get_num_threads() == before
    assert "times with one" in capsys.readouterr().out


def test_table_and_json_print_no_nan(capsys):
    rc = main(["reduce", "msd:8", "--order", "2", "--compare", "", "--json", "-", "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "NaN" not in text and "Infinity" not in text
    json.loads(text)


# -- signals to a running `python -m difflinalg reduce` -------------------------------------------
def _run_until(args, marker: str, timeout: float = 60.0):
    """Start ``python -m difflinalg reduce ARGS`` and wait until its stderr shows ``marker``;
    returns the process and a function giving (stdout, stderr) once it has ended."""
    import subprocess
    import sys
    import threading
    import time

    proc = subprocess.Popen([sys.executable, "-m", "difflinalg", "reduce", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    err: list[str] = []

    def pump():
        while ch := proc.stderr.read(1):
            err.append(ch)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    t0 = time.monotonic()
    while marker not in "".join(err):
        if proc.poll() is not None or time.monotonic() - t0 > timeout:
            proc.kill()
            raise AssertionError(f"never saw {marker!r}: {''.join(err)}")
        time.sleep(0.01)

    def finish():
        out = proc.stdout.read()
        proc.wait(timeout=timeout)
        reader.join(timeout=timeout)
        return out, "".join(err)

    return proc, finish


@pytest.mark.slow
@pytest.mark.parametrize("sig, status, name", [("SIGINT", 130, "Ctrl-C"), ("SIGTERM", 143, "SIGTERM")])
def test_signal_during_rarl2_saves_best_so_far(tmp_path, sig, status, name):
    """A signal while RARL2 optimizes (200 starts: ~10 s of work) ends it within its current step:
    the table and the best model so far are written, one line says so, the status is 128 + signum."""
    import signal

    out = tmp_path / "m.npz"
    proc, finish = _run_until(["msd:40", "--order", "12", "--starts", "200", "--compare", "", "--progress",
                               "--output", str(out)], "start 2/200")
    proc.send_signal(getattr(signal, sig))
    stdout, stderr = finish()
    assert proc.returncode == status, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == (f"difflinalg reduce: RARL2 interrupted ({name}): the table and "
                                               "files hold its best model so far")
    assert "interrupted: best so far" in stdout
    assert load_model(out).is_stable()


@pytest.mark.slow
@pytest.mark.parametrize("sig, status, name", [("SIGINT", 130, "Ctrl-C"), ("SIGTERM", 143, "SIGTERM")])
def test_signal_during_balanced_truncation_one_line(tmp_path, sig, status, name):
    import signal

    out = tmp_path / "m.npz"
    proc, finish = _run_until(["heat1d:1500", "--order", "10", "--compare", "bt", "--progress",
                               "--output", str(out)], "balanced truncation ...")
    proc.send_signal(getattr(signal, sig))
    stdout, stderr = finish()
    assert proc.returncode == status, stderr
    assert "Traceback" not in stderr and stdout == ""
    assert stderr.strip().splitlines()[-1] == (f"difflinalg reduce: interrupted ({name}) during balanced "
                                               "truncation; nothing saved")
    assert not out.exists()


@pytest.mark.parametrize("suffix", [".mat", ".npz"])
def test_reduce_sparse_descriptor_file(tmp_path, capsys, monkeypatch, suffix):
    """A generated descriptor model written to a file: loaded sparse (E kept) and reduced on the
    sparse path; every row's error is measured on the full model."""
    from difflinalg.control import SparseSystem, save_model
    from difflinalg.control.large import msd_descriptor
    from difflinalg.control.system import _route

    monkeypatch.setattr(_route, "SPARSE_CROSSOVER", 50)
    F = msd_descriptor(40)
    path = tmp_path / f"msd{suffix}"
    save_model(F, path)
    js, out = tmp_path / "r.json", tmp_path / "h.npz"
    rc = main(["reduce", str(path), "--order", "3", "--compare", "bt", "--json", str(js), "--output", str(out),
               "--no-progress"])
    assert rc == 0
    assert "SparseSystem(order=80" in capsys.readouterr().err
    rows = {r["method"]: r for r in json.loads(js.read_text())["rows"]}
    assert set(rows) == {"balanced-trunc", "rarl2"}
    H = load_model(out)
    assert not isinstance(H, SparseSystem) and H.order == 3
    ref = float(h2_error(F.to_dense(), H, relative=True))
    # the sparse path's ||F||^2 carries up to ~1e-9 ||F||^2 (low-rank Gramian truncation)
    assert rows["rarl2"]["relative_h2_error"] == pytest.approx(ref, rel=1e-9 / (2 * ref * ref) + 1e-9)
    assert rows["rarl2"]["relative_h2_error"] <= rows["balanced-trunc"]["relative_h2_error"] * (1 + 1e-6)
