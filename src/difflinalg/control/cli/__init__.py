"""The command-line layer of ``control`` (top): ``difflinalg reduce``."""

from ._reduce import add_reduce_parser

__all__ = ["add_reduce_parser"]
