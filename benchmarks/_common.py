"""Shared benchmark helpers: medians of repeats (interleaved for contenders), peak CPU memory, a
printed table and JSON.

Every benchmark compares against its anchor in the same run and reports ratios (the machines are
shared and noisy: ratios of medians are more stable than absolute times).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--json", metavar="PATH|-", help="write the result rows as JSON (- for stdout)")
    p.add_argument("--repeats", type=int, default=7, help="timed repeats per case (median reported)")
    p.add_argument("--quick", action="store_true", help="smaller sizes / fewer repeats (smoke run)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    return p


def add_data_argument(p: argparse.ArgumentParser, default: Path, what: str) -> None:
    """``--data DIR``: where the benchmark's data lives (default: the shared data folder)."""
    p.add_argument("--data", type=Path, default=default, metavar="DIR",
                   help=f"{what} (default: {default})")


def require_data(path: Path, name: str) -> None:
    """Exit non-zero, saying what is missing, when the data a run was asked for is absent (a
    benchmark that silently benchmarks nothing reads as a pass)."""
    if not path.exists():
        print(f"{name}: {path} not found: pass --data DIR pointing at the data (nothing was benchmarked)",
              file=sys.stderr)
        raise SystemExit(2)


@contextlib.contextmanager
def _quiet_stderr():
    """Silence file descriptor 2 (the profiler's C++ side prints a "USDT ... profiler_start/stop"
    line per use, which buried the tables)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def setup(args) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)


def timeit(fn: Callable[[], object], repeats: int = 7, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1,
                first: dict[str, float] | None = None) -> tuple[dict[str, float], dict[str, float]]:
    """Median wall and CPU (process) seconds of each function: every repeat (after ``warmup``
    rounds) calls each function once, round-robin, so that load from other processes on a shared
    machine hits every contender alike and their ratios are steadier than absolute times.
    ``first``: wall seconds of a run already made of each function, counted as a wall sample (CPU
    medians are over the repeats only; NaN without repeats)."""
    for _ in range(warmup):
        for f in fns.values():
            f()
    wall: dict[str, list[float]] = {k: [] if first is None else [first[k]] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            c0, w0 = time.process_time(), time.perf_counter()
            f()
            w1, c1 = time.perf_counter(), time.process_time()
            wall[k].append(w1 - w0)
            cpu[k].append(c1 - c0)
    return ({k: statistics.median(v) for k, v in wall.items()},
            {k: statistics.median(v) if v else math.nan for k, v in cpu.items()})


def timed_runs(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Median wall seconds of ``repeats`` runs of ``fn()`` (not interleaved: for contenders too slow
    to repeat with the others) and the last run's result."""
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def peak_memory(fn: Callable[[], object]) -> int:
    """Peak bytes allocated by torch on the CPU while ``fn()`` runs (torch profiler memory events)."""
    from torch.profiler import ProfilerActivity, profile

    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with _quiet_stderr():  # only around start and stop: what fn() prints (warnings) still shows
        prof.__enter__()
    try:
        fn()
    finally:
        with _quiet_stderr():
            prof.__exit__(None, None, None)
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    events.sort(key=lambda e: e.start_ns())
    cur = peak = 0
    for e in events:
        cur += e.nbytes()
        peak = max(peak, cur)
    return peak


def print_table(rows: list[dict], columns: list[str] | None = None, title: str | None = None) -> None:
    if not rows:
        return
    columns = columns or list(rows[0])

    def fmt(v):
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.3e}"
        return str(v)

    cells = [[fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    if title:
        print(f"\n{title}")
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))


def write_json(rows: list[dict], dest: str | None) -> None:
    if not dest:
        return
    text = json.dumps(rows, indent=1, default=float)
    if dest == "-":
        print(text)
    else:
        Path(dest).write_text(text + "\n")


def array_covariances(batch: int, dtype: torch.dtype, gen: torch.Generator, n: int = 144,
                      signal: tuple[float, ...] = (5.0, 6.5, 8.0, 10.0)) -> torch.Tensor:
    """Hermitian (batch, n, n) covariances of an array with ``len(signal)`` sources: a random
    unitary basis, a noise floor 1 + 0.1 randn (nearly flat) and the given signal powers."""
    k = len(signal)
    X = torch.complex(torch.randn(batch, n, n, generator=gen, dtype=torch.float64),
                      torch.randn(batch, n, n, generator=gen, dtype=torch.float64))
    Q = torch.linalg.qr(X).Q
    noise = 1.0 + 0.1 * torch.randn(batch, n - k, generator=gen, dtype=torch.float64)
    w = torch.cat([noise, torch.tensor(signal, dtype=torch.float64).expand(batch, k)], dim=-1)
    R = (Q * w.to(Q.dtype)[..., None, :]) @ Q.mH
    return (0.5 * (R + R.mH)).to(dtype)
