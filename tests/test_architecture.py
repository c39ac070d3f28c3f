"""Imports only point down the layers of docs/architecture.md, and no module grows past the size a
reader can hold (the style guide's ~400-500 lines)."""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "src" / "difflinalg"
FOUNDATION = {"_errors", "_utils", "_nested", "_rule", "_version"}
# package -> the packages (beyond the foundation and itself) it may import from
ALLOWED = {
    "check": set(),
    "spectral": {"check", "matfun"},
    "factor": {"check"},
    "equations": {"check"},
    "matfun": {"check"},
    "implicit": {"check"},
    "checkpoint": {"check"},
    "control": {"check", "equations", "factor", "matfun", "spectral", "implicit"},
    "signal": {"check", "spectral", "matfun"},
}
MAX_LINES = 500
# control's own layers (docs/architecture.md): subpackage -> the subpackages it may import from.
# ``large`` (sparse and descriptor targets) is the reduction layer's sparse backend. Modules directly
# in control/ (``__init__``, ``_cases``) are above every layer.
CONTROL_ALLOWED = {
    "system": set(),
    "analysis": {"system"},
    "reduction": {"system", "analysis"},
    "large": {"system", "analysis", "reduction"},
    "cli": {"system", "analysis", "reduction"},
}


def _imports(path: Path, depth: int = 1) -> set[str]:
    """difflinalg packages imported by the module at ``path`` (relative imports resolved): the top
    level (``depth`` 1), or the first ``depth`` parts joined by dots (``control.analysis``)."""
    rel = path.relative_to(PKG).parts
    found = set()
    for name in _imported_modules(path, rel):
        found.add(".".join(name[:depth]))
    return found


def _imported_modules(path: Path, rel: tuple) -> list[list[str]]:
    """Every difflinalg module (or name) imported by ``path``, as parts below difflinalg."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                mod = node.module or ""
                if mod.startswith("difflinalg."):
                    found.append(mod.split(".")[1:])
                continue
            base = list(rel[:-1])[: len(rel) - node.level] if node.level > 1 else list(rel[:-1])
            parts = base + (node.module.split(".") if node.module else [])
            # "from . import x": the names may be modules (one level deeper)
            found.extend(parts + [a.name] for a in node.names)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("difflinalg."):
                    found.append(a.name.split(".")[1:])
    return found


def _modules():
    return sorted(p for p in PKG.rglob("*.py") if len(p.relative_to(PKG).parts) > 1)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PKG)))
def test_imports_point_down(path):
    pkg = path.relative_to(PKG).parts[0]
    bad = _imports(path) - FOUNDATION - {pkg} - ALLOWED[pkg]
    assert not bad, f"{path.relative_to(PKG)} imports {sorted(bad)}: not below {pkg!r} in docs/architecture.md"


def _control_modules():
    return sorted(p for p in (PKG / "control").rglob("*.py") if len(p.relative_to(PKG).parts) > 2)


@pytest.mark.parametrize("path", _control_modules(), ids=lambda p: str(p.relative_to(PKG)))
def test_control_layers_point_down(path):
    """system <- analysis <- reduction (<- large) <- cli: no module imports a layer above its own."""
    layer = path.relative_to(PKG).parts[1]
    used = {m.split(".")[1] for m in _imports(path, depth=2) if m.startswith("control.")}
    bad = used - {layer} - CONTROL_ALLOWED[layer]
    assert not bad, (f"{path.relative_to(PKG)} imports control.{sorted(bad)}: above the {layer!r} layer "
                     "in docs/architecture.md (control section)")


def test_control_layers_are_known():
    subs = {p.name for p in (PKG / "control").iterdir() if (p / "__init__.py").exists()}
    assert subs == set(CONTROL_ALLOWED), "add the new control subpackage to CONTROL_ALLOWED and docs/architecture.md"


def test_foundation_imports_nothing_above_it():
    for name in FOUNDATION:
        path = PKG / f"{name}.py"
        if path.exists():
            assert _imports(path) <= FOUNDATION, name


def test_every_package_has_a_layer():
    pkgs = {p.name for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert pkgs <= set(ALLOWED), f"add {sorted(pkgs - set(ALLOWED))} to docs/architecture.md and ALLOWED"


def test_modules_stay_readable():
    long = {str(p.relative_to(PKG)): n for p in PKG.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long


def test_test_module_names_are_unique():
    """pytest's default import mode imports test modules by basename: two files of one name in
    different folders break collection of the whole suite."""
    names = [p.name for p in (PKG.parents[1] / "tests").rglob("test_*.py")]
    dupes = sorted({n for n in names if names.count(n) > 1})
    assert not dupes, f"rename one of each: {dupes}"
