"""The installed package: one version, typed, licensed, and the extras named for what they install."""

import importlib.metadata as md
from pathlib import Path

import difflinalg

ROOT = Path(__file__).resolve().parents[1]


def test_version_is_written_once():
    assert md.version("difflinalg") == difflinalg.__version__
    # pyproject reads it from the module: no second copy to drift.
    assert 'version = "' not in (ROOT / "pyproject.toml").read_text()


def test_py_typed_and_license_ship():
    assert (Path(difflinalg.__file__).parent / "py.typed").is_file()
    assert "MIT License" in (ROOT / "LICENSE").read_text()


def test_extras_named_for_what_they_install():
    req = md.requires("difflinalg") or []
    for extra, pkg in (("pymor", "pymor"), ("control", "control"), ("plot", "matplotlib")):
        assert any(r.startswith(pkg) and f'extra == "{extra}"' in r for r in req), (extra, req)


def test_import_does_not_load_scipy_linalg():
    """``import difflinalg`` stays light: scipy.linalg (~0.3 s) is imported when a rule first needs it."""
    import subprocess
    import sys

    code = "import sys, difflinalg; print('scipy.linalg' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr
