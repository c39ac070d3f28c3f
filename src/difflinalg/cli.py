"""Command line: ``difflinalg verify`` (and, from the control family, ``difflinalg reduce``)."""

from __future__ import annotations

import argparse
import json
import math
import sys

from ._errors import InputError
from ._version import __version__

DESCRIPTION = """\
difflinalg: derivatives through scientific linear algebra that are exact or raise a named error.
Run `difflinalg COMMAND --help` for a command's arguments and examples.
"""

# The fields of a ``verify --json`` record.
JSON_KEYS = ("op", "dtype", "case", "mode", "max_rel_err", "passed")


def _json_record(r: dict) -> dict:
    out = {k: r[k] for k in JSON_KEYS}
    if not math.isfinite(out["max_rel_err"]):
        out["max_rel_err"] = None  # a case that crashed (strict JSON has no NaN)
    if r.get("error"):
        out["error"] = r["error"]
    return out


def _progress_line(index: int, n_ops: int, op: str, records: list[dict], seconds: float) -> str:
    """``[3/25] qr: 11 cases, 110 checks passed (2.3 s)``, or the failed case/dtype/mode."""
    n_cases = len({r["case"] for r in records})
    bad = [r for r in records if not r["passed"]]
    if bad:
        which = sorted({f"{r['case']} {r['dtype']} {r['mode']}" for r in bad})
        status = f"{len(bad)} of {len(records)} checks FAILED: " + ", ".join(which[:5]) + \
            (" ..." if len(which) > 5 else "")
    else:
        status = f"{len(records)} checks passed"
    return f"verify: [{index}/{n_ops}] {op}: {n_cases} case{'s' * (n_cases != 1)}, {status} ({seconds:.1f} s)"


def _cmd_verify(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from .check._registry import cases
    from .check._verify import by_op, format_table, verify

    if args.threads < 1:
        raise InputError(f"--threads: expected an integer >= 1, got {args.threads}")
    groups = by_op(cases(args.ops or None))
    if args.list:
        for op, group in groups.items():
            for case in group:
                print(f"{op}/{case.name}")
        return 0
    # The cases are small matrices: extra threads only contend (on a shared 2-core machine they
    # made the full run ~100 times slower), and one thread is what the timings in the docs assume.
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    n_cases = sum(len(g) for g in groups.values())
    print(f"verify: {n_cases} cases of {len(groups)} ops (progress per op on stderr)", file=sys.stderr,
          flush=True)
    done = []
    # a bar over the cases on a terminal (tqdm: disable=None turns it off for a log file or pipe);
    # the per-op lines go above it, and alone when there is no bar
    bar = tqdm(total=n_cases, desc="verify", unit="case", file=sys.stderr, ascii=True, disable=None,
               bar_format="{desc} |{bar:20}| {n}/{total} cases{postfix} [{elapsed}<{remaining}]")
    seen: set[tuple[str, str]] = set()

    def case_done(records: list[dict]) -> None:
        for r in records:
            if (r["op"], r["case"]) not in seen:
                seen.add((r["op"], r["case"]))
                bar.set_postfix_str(f"{r['op']}/{r['case']}", refresh=False)
                bar.update(1)

    def op_done(op: str, records: list[dict], seconds: float) -> None:
        done.append(op)
        tqdm.write(_progress_line(len(done), len(groups), op, records, seconds), file=sys.stderr)
        sys.stderr.flush()

    try:
        records = verify(args.ops or None, progress=case_done, op_done=op_done)
    finally:
        bar.close()
        torch.set_num_threads(threads)
    if args.json:
        payload = json.dumps([_json_record(r) for r in records], indent=1)
        if args.json == "-":
            print(payload)
        else:
            with open(args.json, "w") as fh:
                fh.write(payload + "\n")
    if args.json != "-":
        print(format_table(records))
    return 0 if records and all(r["passed"] for r in records) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="difflinalg", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"difflinalg {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("verify", help="check every registered rule against finite differences",
                       description="Run every registered rule's verification cases through "
                       "difflinalg.check.gradcheck (float64 and complex128, all modes) and exit "
                       "non-zero if any fails.")
    p.add_argument("--ops", nargs="+", metavar="NAME", help="only these ops")
    p.add_argument("--json", metavar="PATH|-", help="write the records as JSON (- for stdout, table suppressed)")
    p.add_argument("--threads", type=int, default=1, metavar="N",
                   help="torch threads (default 1: the cases are small matrices)")
    p.add_argument("--list", action="store_true", help="print the registered cases as op/case, one a line, and exit")
    p.set_defaults(func=_cmd_verify)
    try:
        from .control.cli import add_reduce_parser
    except ModuleNotFoundError as exc:
        if exc.name != "difflinalg.control.cli":
            raise
    else:
        add_reduce_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except InputError as exc:  # a usage error (e.g. an unknown op): the message says what to do
        print(f"difflinalg {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
