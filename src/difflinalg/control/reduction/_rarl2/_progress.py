"""Progress on stderr, drawn by tqdm: RARL2's start-by-start bar and a ticking line for one-shot stages.

``Progress`` is ``rarl2(..., progress=True)``'s bar: ``RARL2 |####    | start 2/6, irka iter 12 rel.
err E best rel. err B [00:03]`` (errors relative to ``||F||``; ``-`` where a value is not finite). It ends
at ``start N/N``: ``N`` is the number of starts actually optimized (the adaptive search may skip the
perturbation rounds, or a start that repeats an earlier one, and may add starts when the first ones
disagree, so the total is updated as the search goes).

``Status`` is a context manager for a stage without iterations (balanced truncation, pyMOR's IRKA,
the target's factorization, the error table): ``label ... 3.2 s``, refreshed by a daemon thread (the
stage runs in LAPACK, which releases the GIL; tqdm itself redraws only on updates), and
``label: 3.4 s`` when it ends. A ``Progress`` that starts drawing ends the ``Status`` line under way
(one line at a time on the terminal).

Both write plain ``\\r``-separated lines (``ascii`` bars, no cursor-movement codes), so a log file
that captures stderr stays readable.
"""

from __future__ import annotations

import math
import sys
import threading
import time

from tqdm import tqdm

#: the Status line being drawn, ended by the first drawing of a Progress bar
_active: Status | None = None


def _num(x: float) -> str:
    return f"{x:.6e}" if math.isfinite(x) else "-"


def _bar(desc: str, total: int | None, bar_format: str) -> tqdm:
    # position=0 and leave=True: one line at a time; ascii: bars that survive any log file
    return tqdm(total=total, desc=desc, file=sys.stderr, ascii=True, bar_format=bar_format, leave=True,
                mininterval=0.0, miniters=1)


class Progress:
    """RARL2's progress bar over ``total`` starts (module docstring); silent unless ``enabled``.

    The search reads and writes ``total`` (starts added when the first ones disagree) and ``done``
    (starts optimized so far); ``update`` draws at most every 0.2 s unless a start has ended."""

    def __init__(self, enabled: bool, total: int):
        self.enabled, self.total, self.done = enabled, total, 0
        self.last = 0.0
        self.best = math.inf
        self.name, self.it, self.err = "", 0, math.nan
        self._bar: tqdm | None = None

    def _draw(self, shown: int, total: int) -> None:
        if _active is not None:
            _active.stop()
        if self._bar is None:
            # tqdm joins the postfix with ", ": "start 3/6, irka iter 12 ..."
            self._bar = _bar("RARL2", total, "{desc} |{bar:20}| start {n}/{total}{postfix} [{elapsed}]")
        self._bar.total = total
        self._bar.n = min(shown, total)
        self._bar.set_postfix_str(f"{self.name:<10} iter {self.it:5d} rel. err {_num(self.err)} "
                                  f"best rel. err {_num(self.best)}", refresh=False)
        self._bar.refresh()

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
        if not self.enabled:
            return
        if self.done:
            self._draw(self.done, self.done)
        if self._bar is not None:
            self._bar.close()
            self._bar = None
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
        self._bar: tqdm | None = None
        self.t0 = 0.0

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                if self._bar is not None:
                    self._bar.set_description_str(self._text(), refresh=True)

    def _text(self) -> str:
        return f"{self.label} ... {time.perf_counter() - self.t0:6.1f} s"

    def __enter__(self) -> Status:
        global _active
        self.t0 = time.perf_counter()
        if self.enabled:
            self._bar = _bar(f"{self.label} ...", None, "{desc}")
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
        with self._lock:
            bar, self._bar = self._bar, None
        if final:
            bar.set_description_str(f"{self.label}: {time.perf_counter() - self.t0:.2f} s", refresh=True)
            bar.close()
        else:
            bar.leave = False  # cleared: the next line takes its place
            bar.close()

    def __exit__(self, exc_type, exc, tb) -> None:
        self.stop(final=exc_type is None)
