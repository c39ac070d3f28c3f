"""``include-optional``: include a Markdown file from the repository if it exists, else say so.

Some pages embed files that other parts of the project write (``docs/ties.md``, ...). A plain
``include`` of a missing file is a build error; this directive becomes MyST's ``include`` (with the
same options) when the file exists and a note naming the file otherwise, so the site builds at
every commit::

    ```{include-optional} ties.md
    :heading-offset: 1
    ```

The rewrite happens on the page's source text (Sphinx's ``source-read`` event), before MyST parses
it, so an existing file is parsed exactly as a plain ``include`` would parse it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sphinx.application import Sphinx

_BLOCK = re.compile(
    r"^(?P<fence>```+)\{include-optional\}[ \t]+(?P<path>\S+)[ \t]*\n"
    r"(?P<options>(?:[ \t]*:[\w-]+:.*\n)*)"
    r"(?P=fence)[ \t]*$",
    re.M,
)


def rewrite(text: str, page_dir: Path) -> str:
    """``text`` with every ``include-optional`` block resolved against ``page_dir``."""

    def replace(m: re.Match[str]) -> str:
        rel, fence, options = m.group("path"), m.group("fence"), m.group("options")
        if (page_dir / rel).is_file():
            return f"{fence}{{include}} {rel}\n{options}{fence}"
        return (
            f"{fence}{{note}}\n`{rel}` (relative to this page's source) is not in this checkout; "
            f"its content appears here once it is.\n{fence}"
        )

    return _BLOCK.sub(replace, text)


def _on_source_read(app: Sphinx, docname: str, source: list[str]) -> None:
    source[0] = rewrite(source[0], (Path(app.srcdir) / docname).parent)


def setup(app: Sphinx) -> dict[str, object]:
    app.connect("source-read", _on_source_read)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
