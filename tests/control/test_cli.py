"""``difflinalg reduce``: table, JSON, output file, plot, errors."""

import json

import pytest

from difflinalg.cli import main
from difflinalg.control import h2_error, load_model
from difflinalg.control._models import builtin_model


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
