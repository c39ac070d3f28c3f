"""The documentation site: the build configuration exists, the API reference covers every public
name, the pages are reachable, and the code and formulas the pages show agree with the code.

The build itself (Sphinx, warnings as errors) runs in CI through ``./dev docs`` (``.ci/run``);
these tests need no documentation tools.
"""

from __future__ import annotations

import importlib
import inspect
import math
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
API = DOCS / "api"

# The namespaces whose public names the reference documents, as they are written there.
NAMESPACES = [
    "difflinalg",
    "difflinalg.check",
    "difflinalg.implicit",
    "difflinalg.checkpoint",
    "difflinalg.control",
    "difflinalg.signal",
]

# A documented object: ``.. autofunction:: difflinalg.eigh`` (any autodoc directive) or a
# hand-written ``.. py:data:: difflinalg.control.BUILTIN_MODELS``.
_DIRECTIVE = re.compile(r"^\.\. (?:auto\w+|py:\w+):: ([\w.]+)\s*$", re.M)


def public_names(module_name: str) -> list[str]:
    """``__all__``, or for the top-level package (which re-exports its families) every public
    attribute that is not a submodule."""
    module = importlib.import_module(module_name)
    if module_name != "difflinalg":
        return list(module.__all__)
    return sorted(
        n for n, v in vars(module).items() if not n.startswith("_") and not inspect.ismodule(v)
    )


def documented() -> dict[str, str]:
    """Qualified name -> the family page that documents it (each name on exactly one page)."""
    out: dict[str, str] = {}
    for page in sorted(API.glob("*.rst")):
        if page.name == "index.rst":
            continue
        for name in _DIRECTIVE.findall(page.read_text()):
            assert name not in out, f"{name} is documented twice: {out[name]} and {page.name}"
            out[name] = page.name
    return out


def test_build_configuration_exists():
    assert (DOCS / "conf.py").is_file() and (DOCS / "index.md").is_file()
    dev = (ROOT / "dev").read_text()
    assert re.search(r"^\s+docs\)", dev, re.M), "./dev has no docs command"
    assert "-W" in dev and "sphinx" in dev
    assert re.search(r'^docs = \[.*"sphinx', (ROOT / "pyproject.toml").read_text(), re.M)
    assert "docs/_build/" in (ROOT / ".gitignore").read_text().split()
    assert "./dev docs" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("module_name", NAMESPACES)
def test_reference_documents_every_public_name(module_name):
    pages = documented()
    missing = [n for n in public_names(module_name) if f"{module_name}.{n}" not in pages]
    assert not missing, (
        f"public names of {module_name} missing from docs/api/*.rst: {missing}; add an "
        "autodoc directive on the family page and a line in docs/api/index.rst"
    )


@pytest.mark.parametrize("module_name", NAMESPACES)
def test_names_page_lists_every_public_name(module_name):
    text = (API / "index.rst").read_text()
    # Blocks after ``.. currentmodule:: X`` list X's names (autosummary) until the next one.
    listed: dict[str, set[str]] = {}
    current = None
    for line in text.splitlines():
        m = re.match(r"\.\. currentmodule:: ([\w.]+)", line)
        if m:
            current = m.group(1)
            continue
        m = re.match(r"   (\w+)\s*$", line)
        if current and m:
            listed.setdefault(current, set()).add(m.group(1))
        m = re.search(r":data:`(\w+)`", line)
        if current and m:
            listed.setdefault(current, set()).add(m.group(1))
    missing = sorted(set(public_names(module_name)) - listed.get(module_name, set()))
    assert not missing, f"docs/api/index.rst does not list {module_name}: {missing}"


def test_every_documented_name_exists():
    """A page must not document a name that is no longer public (autodoc would fail anyway)."""
    for qualname in documented():
        module_name, _, name = qualname.rpartition(".")
        assert module_name in NAMESPACES, f"{qualname}: document it under its public namespace"
        assert name in public_names(module_name), f"{qualname} is documented but not public"


def _toctree_entries(page: Path) -> list[str]:
    text = page.read_text()
    if page.suffix == ".md":
        blocks = re.findall(r"```\{toctree\}\n(.*?)```", text, re.S)
        lines = [ln for b in blocks for ln in b.splitlines() if ln and not ln.startswith(":")]
    else:
        blocks = re.findall(r"\.\. toctree::\n((?:\n|   .*\n)*)", text)
        lines = [ln.strip() for b in blocks for ln in b.splitlines()]
        lines = [ln for ln in lines if ln and not ln.startswith(":")]
    return [(page.parent / ln).relative_to(DOCS).as_posix() for ln in lines]


def test_every_page_is_in_a_toctree():
    pages = {
        p.relative_to(DOCS).with_suffix("").as_posix()
        for p in list(DOCS.rglob("*.md")) + list(DOCS.rglob("*.rst"))
        if "_build" not in p.parts
    }
    included = {"ties", "ties_svd"}  # embedded in guarantees.md, excluded in conf.py
    linked = {e for p in DOCS.rglob("*") if p.suffix in (".md", ".rst") for e in _toctree_entries(p)}
    orphans = sorted(pages - linked - included - {"index"})
    assert not orphans, f"pages in no toctree (add them to one): {orphans}"


def test_math_pages_cite_their_references():
    math_dir = DOCS / "math"
    expect = {
        "eigh.md": ["Seeger", "Giles"],
        "svd.md": ["Wan", "Francuz", "Schuch", "Vanhecke"],
        "qr.md": ["Liao", "Hubig"],
        "cholesky-solve.md": ["Woodbury", "Murray"],
        "equations.md": ["Bartels", "Stewart"],
        "matfun.md": ["Daleckii", "Krein", "Higham"],
        "implicit.md": ["implicit function theorem"],
        "checkpoint.md": ["Griewank", "Walther", r"\eta(\tau, \delta) = \sum_{k=0}^{\delta} \eta(\tau - 1, k)"],
        "rarl2.md": ["output-normal", "concentrated criterion", "adjoint", "starts"],
    }
    for page, needles in expect.items():
        text = (math_dir / page).read_text()
        for needle in needles:
            assert needle in text, f"docs/math/{page} does not mention {needle!r}"


def test_guarantees_page_includes_the_ties_tables():
    text = (DOCS / "guarantees.md").read_text()
    for name in ("ties.md", "ties_svd.md"):
        assert re.search(r"```\{include-optional\} " + re.escape(name) + r"\n", text)


def test_optional_include_resolves_present_and_missing_files(tmp_path):
    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        from optional_include import rewrite
    finally:
        sys.path.remove(str(DOCS / "_ext"))
    (tmp_path / "present.md").write_text("# Present\n")
    src = "```{include-optional} present.md\n:heading-offset: 2\n```\n\n```{include-optional} absent.md\n```\n"
    out = rewrite(src, tmp_path)
    assert "```{include} present.md\n:heading-offset: 2\n```" in out
    assert "```{note}\n`absent.md`" in out and "include-optional" not in out


# -- the pages' claims, checked against the code --------------------------------------------------


def _python_blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(), re.S)


def test_getting_started_code_runs_and_prints_what_the_page_shows(capsys):
    """The page's Python blocks run in order (they assert their own claims: gradcheck passes,
    RARL2 is no worse than balanced truncation) and print the outputs the page shows."""
    page = DOCS / "getting-started.md"
    namespace: dict[str, object] = {"__name__": "getting_started"}
    for block in _python_blocks(page):
        exec(compile(block, str(page), "exec"), namespace)  # noqa: S102 - our own page
    printed = capsys.readouterr().out
    # The gradient: the exact values W_ij / (lambda_i - lambda_j), as the page says.
    W, g = namespace["W"], namespace["g"]
    lam = [1.0, 1.0, 3.0, 5.0]
    for i in (0, 1):
        for j in (2, 3):
            assert math.isclose(float(g[i, j]), float(W[i, j]) / (lam[i] - lam[j]), rel_tol=1e-12)
    shown = re.findall(r"```text\n(.*?)```", page.read_text(), re.S)
    assert shown[0].strip() in printed  # the printed gradient tensor
    # The model reduction line shows 4 digits; allow one unit in the last digit across BLAS kernels.
    m = re.search(r"RARL2 ([\d.]+), balanced truncation ([\d.]+)", shown[1])
    e_rarl2, e_bt = namespace["e_rarl2"], namespace["e_bt"]
    assert abs(e_rarl2 - float(m.group(1))) <= 1.5e-4 and abs(e_bt - float(m.group(2))) <= 1.5e-4


def test_revolve_page_formulas_match_the_implementation():
    from difflinalg.checkpoint import revolve_cost

    def eta(tau: int, delta: int) -> int:
        return math.comb(tau + delta, delta)

    for tau in range(1, 12):
        for delta in range(0, 12):
            assert eta(tau, delta) == sum(eta(tau - 1, k) for k in range(delta + 1))
            assert eta(tau, delta) == eta(tau - 1, delta) + (eta(tau, delta - 1) if delta else 0)

    # t(n, s) = r n - C(s + r, s + 1) and the nested-reversal recursion, by brute force.
    t = {}
    for s in range(1, 6):
        for n in range(1, 60):
            if n == 1:
                t[n, s] = 0
            elif s == 1:
                t[n, s] = n * (n - 1) // 2
            else:
                t[n, s] = min(m + t[m, s] + t[n - m, s - 1] for m in range(1, n))
            r = next(r for r in range(n + 1) if eta(r, s) >= n)
            assert t[n, s] == r * n - math.comb(s + r, s + 1) == revolve_cost(n, s)
    assert revolve_cost(10, 1) == 45 and revolve_cost(1000, 10) == 3636


def test_math_leak_check_flags_tex_in_text_only():
    pytest.importorskip("sphinx")
    from docutils.core import publish_doctree

    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        from math_leaks import find_leaks
    finally:
        sys.path.remove(str(DOCS / "_ext"))
    leaked = publish_doctree("A formula \\\\operatorname{Re} x that leaked, and $y$.\n")
    assert [s for _, s in find_leaks(leaked)]
    clean = publish_doctree("Code ``$x$ \\\\langle`` and math :math:`\\\\langle x \\\\rangle`.\n")
    assert find_leaks(clean) == []
