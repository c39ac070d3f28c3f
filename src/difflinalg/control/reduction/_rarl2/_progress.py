"""Progress on stderr: RARL2's start-by-start bar and a ticking status line for one-shot stages.

``Progress`` is ``rarl2(..., progress=True)``'s bar: ``[####----] start k/N NAME iter I  rel. err E
best rel. err B  T s`` (errors relative to ``||F||``; ``-`` where a value is not finite). It ends at
``start N/N``: ``N`` is the number of starts actually optimized (the adaptive search may skip the
perturbation rounds, or a start that repeats an earlier one).

``Status`` is a context manager for a stage without iterations (balanced truncation, pyMOR's IRKA,
the target's factorization, the error table): ``label ... 3.2 s``, refreshed by a daemon thread (the
stage runs in LAPACK, which releases the GIL), and ``label: 3.4 s`` when it ends. A ``Progress`` that
starts drawing ends the ``Status`` line under way (one line at a time on the terminal).
"""

from __future__ import annotations

import math
import sys
import threading
import time

#: the Status line being drawn, ended by the first drawing of a Progress bar
_active: Status | None = None


def _num(x: float) -> str:
    return f"{x:.6e}" if math.isfinite(x) else "-"


class Progress:
    """RARL2's progress bar over ``total`` starts (module docstring); silent unless ``enabled``."""

    def __init__(self, enabled: bool, total: int):
        self.enabled, self.total, self.done = enabled, total, 0
        self.t0 = time.perf_counter()
        self.last = 0.0
        self.best = math.inf
        self.name, self.it, self.err = "", 0, math.nan

    def _draw(self, shown: int, total: int, end: str = "") -> None:
        if _active is not None:
            _active.stop()
        frac = min(shown / max(total, 1), 1.0)
        bar = "#" * int(20 * frac) + "-" * (20 - int(20 * frac))
        sys.stderr.write(f"\r[{bar}] start {shown}/{total} {self.name:<10} iter {self.it:5d} "
                         f"rel. err {_num(self.err)} best rel. err {_num(self.best)} "
                         f"{time.perf_counter() - self.t0:6.1f}s{end}")
        sys.stderr.flush()

    def update(self, name: str, it: int, err: float, force: bool = False) -> None:
        """The start ``name`` at iteration ``it`` with relative error ``err``; ``force``: the start
        has ended (``done`` counts it), drawn at once (else at most every 0.2 s)."""
        if not self.enabled:
            return
        now = time.perf_counter()
        if math.isfinite(err):
            self.best = min(self.best, err)
        self.name, self.it, self.err = name, it, err
        if not force and now - self.last < 0.2:
            return
        self.last = now
        # a running start is number done + 1; an ended one is counted in done
        self._draw(self.done if force else min(self.done + 1, self.total), self.total)

    def close(self) -> None:
        """End the bar at ``start N/N`` (N: the starts optimized) and a new line."""
        if self.enabled:
            if self.done:
                self._draw(self.done, self.done, "\n")
            else:
                sys.stderr.write("\n")
            sys.stderr.flush()


class Status:
    """A ticking status line ``label ... T s`` while the ``with`` block runs (module docstring);
    silent unless ``enabled``."""

    def __init__(self, label: str, enabled: bool, interval: float = 0.25):
        self.label, self.enabled, self.interval = label, enabled, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._width = 0
        self.t0 = 0.0

    def _line(self, text: str, end: str = "") -> None:
        """Overwrite the line with ``text`` (padded with blanks over the previous text: no terminal
        escape codes, which would litter a log file)."""
        with self._lock:
            sys.stderr.write(f"\r{text:<{self._width}}{end}")
            sys.stderr.flush()
            self._width = 0 if end else len(text)

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            self._line(f"{self.label} ... {time.perf_counter() - self.t0:6.1f} s")

    def __enter__(self) -> Status:
        global _active
        self.t0 = time.perf_counter()
        if self.enabled:
            self._line(f"{self.label} ...")
            self._thread = threading.Thread(target=self._tick, daemon=True)
            self._thread.start()
            _active = self
        return self

    def stop(self, final: bool = False) -> None:
        """Stop ticking; ``final``: write ``label: T s`` and end the line (else clear it)."""
        global _active
        if _active is self:
            _active = None
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        if final:
            self._line(f"{self.label}: {time.perf_counter() - self.t0:.2f} s", "\n")
        else:
            self._line("", "\r")

    def __exit__(self, exc_type, exc, tb) -> None:
        self.stop(final=exc_type is None)
