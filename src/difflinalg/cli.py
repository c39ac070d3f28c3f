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


def _cmd_verify(args: argparse.Namespace) -> int:
    from .check._verify import format_table, verify

    records = verify(args.ops or None)
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
