"""``difflinalg verify``: table, ``--ops``, ``--json``, exit codes; also ``python -m difflinalg``."""

import json
import subprocess
import sys

import pytest
import torch

from difflinalg.check import register_case, unregister_case
from difflinalg.cli import JSON_KEYS, main

from _faulty_rules import matmul


@pytest.fixture
def broken_op():
    # the shared deliberately-wrong rule (``_faulty_rules``): A @ B with the gradient g B instead of
    # g B^H, wrong for every (real or complex) non-symmetric B
    register_case("zz_broken", "wrong_transpose", matmul("g B"),
                  lambda dt, g: (torch.randn(3, 3, generator=g, dtype=dt),
                                 torch.randn(3, 3, generator=g, dtype=dt)), modes=("vjp",))
    yield "zz_broken"
    unregister_case("zz_broken")


def _records(out: str) -> list[dict]:
    recs = json.loads(out)
    assert all(set(r) == set(JSON_KEYS) for r in recs)
    return recs


def test_verify_cholesky_json(capsys):
    assert main(["verify", "--ops", "cholesky", "--json", "-"]) == 0
    recs = _records(capsys.readouterr().out)  # only JSON on stdout, no table
    assert all(r["passed"] and r["op"] == "cholesky" for r in recs)
    assert {r["dtype"] for r in recs} == {"float64", "complex128"}
    assert {r["mode"] for r in recs} == {"vjp", "jvp", "hvp", "hvp_rev", "jvp2"}
    assert {"generic", "batched", "ill_conditioned"} <= {r["case"] for r in recs}
    assert max(r["max_rel_err"] for r in recs) < 1e-6


def test_verify_fails_on_a_broken_case(capsys, broken_op, tmp_path):
    path = tmp_path / "out.json"
    assert main(["verify", "--ops", broken_op, "--json", str(path)]) == 1
    table = capsys.readouterr().out
    assert "zz_broken" in table and "wrong_transpose" in table and "NO" in table
    assert table.strip().endswith("0 of 2 checks passed")
    recs = _records(path.read_text())
    assert [(r["dtype"], r["passed"]) for r in recs] == [("float64", False), ("complex128", False)]
    assert all(r["max_rel_err"] > 0.1 for r in recs)


def test_verify_several_ops(capsys, broken_op):
    register_case("zz_fine", "sin", torch.sin, lambda dt, g: (torch.randn(4, generator=g, dtype=dt),),
                  modes=("vjp", "jvp"))
    try:
        assert main(["verify", "--ops", broken_op, "zz_fine", "--json", "-"]) == 1
    finally:
        unregister_case("zz_fine")
    recs = _records(capsys.readouterr().out)
    assert {r["op"] for r in recs} == {"zz_fine", "zz_broken"}
    assert all(r["passed"] == (r["op"] == "zz_fine") for r in recs)


def test_crashed_case_is_null_in_json(capsys):
    def boom(dt, g):
        raise RuntimeError("no inputs")

    register_case("zz_crash", "boom", torch.sin, boom, modes=("jvp",), dtypes=(torch.float64,))
    try:
        assert main(["verify", "--ops", "zz_crash", "--json", "-"]) == 1
    finally:
        unregister_case("zz_crash")
    (rec,) = json.loads(capsys.readouterr().out)
    assert rec["max_rel_err"] is None and rec["passed"] is False and "RuntimeError: no inputs" in rec["error"]


def test_unknown_op_is_a_usage_error(capsys):
    assert main(["verify", "--ops", "no_such_op"]) == 2
    err = capsys.readouterr().err
    assert "unknown op(s) ['no_such_op']" in err and "cholesky" in err


def test_no_command_is_an_argparse_error():
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2


def test_python_dash_m():
    proc = subprocess.run([sys.executable, "-m", "difflinalg", "verify", "--ops", "cholesky", "--json", "-"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    recs = _records(proc.stdout)
    assert len(recs) == 5 * 2 * len({r["case"] for r in recs}) and all(r["passed"] for r in recs)


def test_top_level_help_and_version(capsys):
    import difflinalg
    from difflinalg.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"difflinalg {difflinalg.__version__}"
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    # plain text, not raw reST from a docstring
    assert "``" not in out and "reduce" in out and "verify" in out


def test_list_prints_op_case_names_and_runs_nothing(capsys, broken_op):
    assert main(["verify", "--list"]) == 0
    names = capsys.readouterr().out.split()
    assert "cholesky/generic" in names and "qr/near_dependent_columns_wide" in names
    assert f"{broken_op}/wrong_transpose" in names and len(names) == len(set(names))
    assert main(["verify", "--list", "--ops", "cholesky", broken_op]) == 0  # the broken case is not run
    names = capsys.readouterr().out.split()
    assert f"{broken_op}/wrong_transpose" in names and all(n.split("/")[0] in ("cholesky", broken_op) for n in names)
    assert sum(n.startswith("cholesky/") for n in names) >= 4


def test_progress_per_op_on_stderr(capsys, broken_op):
    register_case("zz_fine", "sin", torch.sin, lambda dt, g: (torch.randn(4, generator=g, dtype=dt),),
                  modes=("vjp", "jvp"))
    try:
        assert main(["verify", "--ops", "zz_fine", broken_op, "--json", "-"]) == 1
    finally:
        unregister_case("zz_fine")
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert lines[0].startswith("verify: 2 cases of 2 ops")
    # ops in order of registration (the fixture's first)
    assert lines[1].startswith("verify: [1/2] zz_broken: 1 case, 2 of 2 checks FAILED: ")
    assert "wrong_transpose float64 vjp" in lines[1] and lines[1].endswith(" s)")
    assert lines[2].startswith("verify: [2/2] zz_fine: 1 case, 4 checks passed (")
    assert json.loads(captured.out)  # stdout holds only the JSON


def test_threads_option(capsys, broken_op):
    n = torch.get_num_threads()
    assert main(["verify", "--ops", broken_op, "--threads", "0"]) == 2
    assert "--threads: expected an integer >= 1" in capsys.readouterr().err
    assert main(["verify", "--ops", broken_op, "--threads", "1", "--json", "-"]) == 1
    assert torch.get_num_threads() == n  # restored


class _Terminal:
    """A stderr that says it is a terminal (tqdm draws its bar only on one) and records the text."""

    def __init__(self):
        self.text = ""

    def write(self, s: str) -> int:
        self.text += s
        return len(s)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True


def test_verify_draws_a_case_bar_on_a_terminal_and_op_lines_above_it(broken_op, monkeypatch, capsys):
    term = _Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    assert main(["verify", "--ops", broken_op]) == 1
    frames = [f for f in term.text.replace("\r", "\n").split("\n") if f.strip()]
    bars = [f for f in frames if f.startswith("verify |")]
    assert bars and "0/1 cases" in bars[0]
    assert any("1/1 cases, zz_broken/wrong_transpose" in f for f in bars)
    assert any(f.startswith("verify: [1/1] zz_broken: 1 case, ") and "FAILED" in f for f in frames)


def test_verify_draws_no_bar_into_a_log_file(broken_op, capsys):
    assert main(["verify", "--ops", broken_op]) == 1
    err = capsys.readouterr().err
    assert "verify |" not in err and "\r" not in err
    assert "verify: [1/1] zz_broken" in err
