"""Run every registered case through ``gradcheck`` and tabulate the results (``difflinalg verify``)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import torch

from ._gradcheck import gradcheck
from ._registry import Case, cases, load_errors


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def run_case(case: Case, dtype: torch.dtype, seed: int = 0) -> list[dict]:
    """Run one case in one dtype; returns one record per mode.

    A record: op, dtype, case, mode, max_rel_err, fd_rel_err (the finite-difference error estimate
    on the same scale), passed, error (why it failed to run, else None), seconds.
    """
    t0 = time.perf_counter()
    try:
        gen = torch.Generator().manual_seed(seed)
        inputs = case.make_inputs(dtype, gen)
        rep = gradcheck(case.fn, *inputs, modes=case.modes, rtol=case.rtol, atol=case.atol,
                        raise_on_failure=False, seed=seed, **dict(case.gradcheck_kwargs))
        error = None
    except Exception as exc:  # noqa: BLE001 - any crash is a failed case, reported with its cause
        rep, error = None, f"{type(exc).__name__}: {exc}".splitlines()[0]
    elapsed = time.perf_counter() - t0
    out = []
    for mode in case.modes:
        rec = dict(op=case.op, dtype=_dtype_name(dtype), case=case.name, mode=mode, max_rel_err=math.nan,
                   fd_rel_err=math.nan, passed=False, error=error, seconds=elapsed)
        if rep is not None:
            recs = [r for r in rep.records if r.mode == mode]
            fd_rel = [r.fd_err / r.scale if r.scale > 0 else 0.0 for r in recs]
            rec.update(
                max_rel_err=max((r.max_rel_err for r in recs), default=0.0),
                fd_rel_err=max(fd_rel, default=0.0),
                passed=bool(recs) and all(r.passed for r in recs),
                error=None if recs else "no checks ran",
            )
        out.append(rec)
    return out


def by_op(case_list: Sequence[Case]) -> dict[str, list[Case]]:
    """The cases grouped by op, ops in order of first registration."""
    groups: dict[str, list[Case]] = {}
    for case in case_list:
        groups.setdefault(case.op, []).append(case)
    return groups


def verify(ops: Sequence[str] | None = None, *, progress: Callable[[list[dict]], None] | None = None,
           op_done: Callable[[str, list[dict], float], None] | None = None,
           seed: int = 0) -> list[dict]:
    """Run the registered cases (of ``ops``, default all) in each of their dtypes, op by op.

    Args:
        ops: op names (default: every registered op).
        progress: called with the records of each case and dtype as soon as they exist.
        op_done: called after each op with ``(op, its records, seconds)`` (``difflinalg verify``
            prints a progress line from it).
        seed: seed of the inputs and of ``gradcheck``'s directions.

    Returns:
        The records (``run_case``). Without ``ops``, a family whose case module fails to import
        adds a failed record (op ``<module>``), so a broken registration cannot pass silently.
    """
    records = []
    if not ops:
        for mod, err in load_errors().items():
            records.append(dict(op=f"<{mod}>", dtype="-", case="import", mode="-", max_rel_err=math.nan,
                                fd_rel_err=math.nan, passed=False, error=err, seconds=0.0))
    for op, group in by_op(cases(ops)).items():
        t0, op_records = time.perf_counter(), []
        for case in group:
            for dtype in case.dtypes:
                recs = run_case(case, dtype, seed)
                op_records += recs
                if progress is not None:
                    progress(recs)
        records += op_records
        if op_done is not None:
            op_done(op, op_records, time.perf_counter() - t0)
    return records


def format_table(records: list[dict]) -> str:
    head = f"{'op':<24} {'dtype':<11} {'case':<26} {'mode':<8} {'max_rel_err':>11} {'fd_rel_err':>10}  pass"
    lines = [head, "-" * len(head)]
    for r in records:
        lines.append(
            f"{r['op']:<24} {r['dtype']:<11} {r['case']:<26} {r['mode']:<8} "
            f"{r['max_rel_err']:11.2e} {r['fd_rel_err']:10.2e}  {'yes' if r['passed'] else 'NO'}"
            + (f"  ({r['error']})" if r.get("error") else "")
        )
    n_ok = sum(r["passed"] for r in records)
    lines.append(f"{n_ok} of {len(records)} checks passed")
    return "\n".join(lines)
