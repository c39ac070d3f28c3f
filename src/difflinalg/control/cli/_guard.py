"""Guards of ``difflinalg reduce``: output paths checked before any work, SIGTERM handled like
Ctrl-C, and every method timed under one thread setting.

* ``check_output_paths``: ``--output``, ``--json`` and ``--plot`` are checked before the model is
  even loaded: not a directory, an existing parent directory, a known file type, writable (by
  opening the file for appending, which changes nothing in an existing file, and removing it again
  if it did not exist: permission bits do not tell for root or read-only file systems), and no two
  options naming the same file. A reduction of minutes must not end in an unwritable path.
* ``interrupt_signals``: SIGTERM raises ``KeyboardInterrupt`` like Ctrl-C (SIGINT), so RARL2 keeps
  its best model so far and the command prints and saves it; ``Interrupt.signum`` records which
  signal came (exit status 128 + signum).
* the timing setting (``_utils.pinned_threads``, used by ``_reduce``): RARL2 runs with one thread;
  balanced truncation and pyMOR's IRKA are timed under the same setting (torch's, and NumPy's BLAS
  pools through ``threadpoolctl`` where installed), restored afterwards. On a loaded machine a
  multi-threaded BT was measured 7x slower than a single-threaded one: times taken under
  different settings do not compare.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from pathlib import Path

from ..._errors import InputError

#: model file types ``--output`` writes (``save_model``)
MODEL_SUFFIXES = (".npz", ".mat")


def _plot_suffixes() -> tuple[str, ...]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.backends.backend_agg import FigureCanvasAgg
    except ImportError:
        raise InputError("--plot: needs matplotlib (pip install 'difflinalg[plot]')") from None
    return tuple("." + k for k in FigureCanvasAgg.get_supported_filetypes())


#: example file names of the output options (in the messages)
_EXAMPLES = {"--output": "reduced.npz", "--json": "results.json", "--plot": "plot.png"}


def _check_writable(flag: str, path: str) -> Path:
    p = Path(path)
    parent = p.parent
    if not parent.exists():
        raise InputError(f"{flag}: the directory {parent} of {path} does not exist; create it first "
                         f"(mkdir -p {parent}) or choose another path")
    if not parent.is_dir():
        raise InputError(f"{flag}: {parent} (in {path}) is not a directory; choose another path")
    existed = p.exists()
    try:
        with open(p, "ab"):
            pass
    except OSError as exc:
        raise InputError(f"{flag}: cannot write {path} ({exc.strerror or exc}); choose a writable path") from None
    if not existed:
        p.unlink()
    return p.resolve()


def check_output_paths(output: str | None, json_path: str | None, plot: str | None) -> None:
    """Check the output options before any work (module docstring).

    Raises:
        InputError: naming the option, what is wrong with the path and what to do.
    """
    seen: dict[Path, str] = {}
    for flag, path in (("--output", output), ("--json", json_path), ("--plot", plot)):
        if path is None or (flag == "--json" and path == "-"):
            continue
        if Path(path).is_dir():
            raise InputError(f"{flag}: {path} is a directory; give a file path, e.g. "
                             f"{Path(path) / _EXAMPLES[flag]}")
        suffix = Path(path).suffix.lower()
        if flag == "--output" and suffix not in MODEL_SUFFIXES:
            raise InputError(f"--output: unknown model file type {suffix or '(none)'!r} in {path}; "
                             f"use one of {', '.join(MODEL_SUFFIXES)}")
        if flag == "--plot":
            kinds = _plot_suffixes()
            if suffix not in kinds:
                raise InputError(f"--plot: unknown image type {suffix or '(none)'!r} in {path}; use one "
                                 f"of {', '.join(sorted(kinds))} (e.g. plot.png)")
        p = _check_writable(flag, path)
        if p in seen:
            raise InputError(f"{seen[p]} and {flag}: both name {path}; give each its own file")
        seen[p] = flag


class Interrupt:
    """The signal that ended the run (``signum``: SIGINT or SIGTERM, None if none)."""

    def __init__(self):
        self.signum: int | None = None

    @property
    def exit_status(self) -> int:
        return 128 + int(self.signum or signal.SIGINT)

    @property
    def name(self) -> str:
        return "SIGTERM" if self.signum == signal.SIGTERM else "Ctrl-C"


@contextlib.contextmanager
def interrupt_signals():
    """SIGINT and SIGTERM raise ``KeyboardInterrupt`` within the block; yields an ``Interrupt``
    recording which came. The previous handlers are restored afterwards. Off the main thread (where
    handlers cannot be set) only the default Ctrl-C applies."""
    state = Interrupt()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def handler(signum, frame):
        state.signum = signum
        raise KeyboardInterrupt

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield state
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def thread_note() -> str:
    """How the methods were timed (for the table)."""
    try:
        import threadpoolctl  # noqa: F401
    except ImportError:
        return ("times with one torch thread each (NumPy's BLAS threads for pyMOR: "
                f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')})")
    return "times with one thread each (torch and BLAS)"
