"""Run every registered case through ``gradcheck`` and tabulate the results."""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from ._gradcheck import GradcheckError, gradcheck
from ._registry import Case, cases


def run_case(case: Case, dtype: torch.dtype, seed: int = 0) -> list[dict]:
    """Run one case in one dtype; returns one record per mode."""
    gen = torch.Generator().manual_seed(seed)
    inputs = case.make_inputs(dtype, gen)
    kwargs = dict(case.gradcheck_kwargs)
    t0 = time.perf_counter()
    try:
        rep = gradcheck(case.fn, *inputs, modes=case.modes, rtol=case.rtol, atol=case.atol,
                        raise_on_failure=False, seed=seed, **kwargs)
        error = None
    except (GradcheckError, Exception) as exc:  # noqa: BLE001 - any crash is a failed case
        rep, error = None, f"{type(exc).__name__}: {exc}".splitlines()[0]
    elapsed = time.perf_counter() - t0
    dname = str(dtype).replace("torch.", "")
    out = []
    for mode in case.modes:
        if rep is None:
            out.append(dict(op=case.op, dtype=dname, case=case.name, mode=mode, max_rel_err=float("nan"),
                            fd_err=float("nan"), passed=False, error=error, seconds=elapsed))
            continue
        recs = [r for r in rep.records if r.mode == mode]
        out.append(dict(
            op=case.op, dtype=dname, case=case.name, mode=mode,
            max_rel_err=max((r.max_rel_err for r in recs), default=0.0),
            fd_err=max((r.fd_err for r in recs), default=0.0),
            passed=bool(recs) and all(r.passed for r in recs),
            error=None if recs else "no checks ran",
            seconds=elapsed,
        ))
    return out


def verify(ops: Sequence[str] | None = None, *, progress=None) -> list[dict]:
    records = []
    for case in cases(ops):
        for dtype in case.dtypes:
            recs = run_case(case, dtype)
            records += recs
            if progress is not None:
                progress(recs)
    return records


def format_table(records: list[dict]) -> str:
    head = f"{'op':<24} {'dtype':<11} {'case':<22} {'mode':<8} {'max_rel_err':>11} {'fd_err':>10}  pass"
    lines = [head, "-" * len(head)]
    for r in records:
        lines.append(
            f"{r['op']:<24} {r['dtype']:<11} {r['case']:<22} {r['mode']:<8} "
            f"{r['max_rel_err']:11.2e} {r['fd_err']:10.2e}  {'yes' if r['passed'] else 'NO'}"
            + (f"  ({r['error']})" if r.get("error") else "")
        )
    n_ok = sum(r["passed"] for r in records)
    lines.append(f"{n_ok} of {len(records)} checks passed")
    return "\n".join(lines)
