"""Sphinx configuration of the difflinalg documentation site (built by ``./dev docs``).

Sphinx + autodoc/napoleon renders the docstrings as they are written (Google-style "Args/Returns/
Raises" sections, reST literals and ``::`` blocks); the hand-written pages are Markdown (MyST).
Math: MathJax, loaded by the browser when a page is viewed; the build itself needs no network.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

project = "difflinalg"
author = "the difflinalg developers"
copyright = "difflinalg developers"

import difflinalg  # noqa: E402  (after sys.path; the editable install provides it)

release = version = difflinalg.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "optional_include",
    "math_leaks",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "_ext", "ties.md", "ties_svd.md"]

# MyST: $...$ / $$...$$ math in the Markdown pages, labelled equations, heading anchors.
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
myst_dmath_double_inline = True

# autodoc: signatures as written (no evaluation of string annotations), members in source order.
autodoc_typehints = "signature"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": False}
autosummary_generate = False
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
# "a, b: ..." entries (two names sharing one description) stay one entry: a bulleted list, not
# ":param a, b:" fields, which Sphinx would read as a type "a," and a name "b".
napoleon_use_param = False
napoleon_use_keyword = False
# An "Attributes:" section renders like "Args:" (one list on the class); as attribute directives it
# would describe dataclass fields a second time next to autodoc's members.
napoleon_custom_sections = [("Attributes", "params_style")]

html_theme = "furo"
html_title = f"difflinalg {release}"
html_static_path: list[str] = []
