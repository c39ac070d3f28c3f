"""Warn (an error under ``-W``) when TeX leaks into the text of a Markdown page.

MyST parses ``$...$`` and ``$$...$$`` inside the block structure of Markdown, so a formula whose
line starts with ``- `` or ``+ `` becomes a list item and the rest of the formula is printed as
text, with no warning from the parser. This check reads the resolved pages: a ``$`` or a TeX
command (``\\operatorname``, ``\\langle``, ...) in plain text, outside code and math, is reported
with its page and line.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from docutils import nodes
from sphinx.util import logging

if TYPE_CHECKING:
    from sphinx.application import Sphinx

_LEAK = re.compile(r"\$|\\[a-zA-Z]{2,}\b")
_SKIP = (nodes.literal, nodes.literal_block, nodes.math, nodes.math_block, nodes.raw)
logger = logging.getLogger(__name__)


def find_leaks(doctree: nodes.Node) -> list[tuple[nodes.Text, str]]:
    """Text nodes outside code and math that contain TeX, with the offending snippet."""
    out = []
    for text in doctree.findall(nodes.Text):
        if any(isinstance(p, _SKIP) for p in _ancestors(text)):
            continue
        m = _LEAK.search(text.astext())
        if m:
            s = text.astext()
            out.append((text, s[max(0, m.start() - 30) : m.end() + 30].replace("\n", " ")))
    return out


def _ancestors(node: nodes.Node):
    while node.parent is not None:
        node = node.parent
        yield node


def _check(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    if not app.env.doc2path(docname).suffix == ".md":
        return  # API pages: docstrings are reST with their own literals
    for text, snippet in find_leaks(doctree):
        logger.warning("TeX outside math (a formula broken by Markdown?): %r", snippet,
                       location=text.parent)


def setup(app: Sphinx) -> dict[str, object]:
    app.connect("doctree-resolved", _check)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
