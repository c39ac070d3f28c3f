"""Command line: ``difflinalg verify`` (and, from the control family, ``difflinalg reduce``)."""

from __future__ import annotations

import argparse
import json
import sys


def _cmd_verify(args: argparse.Namespace) -> int:
    from .check._verify import format_table, verify

    records = verify(args.ops or None)
    keys = ("op", "dtype", "case", "mode", "max_rel_err", "passed")
    if args.json:
        payload = json.dumps([{k: r[k] for k in keys} | ({"error": r["error"]} if r.get("error") else {})
                              for r in records], indent=1)
        if args.json == "-":
            print(payload)
        else:
            with open(args.json, "w") as fh:
                fh.write(payload + "\n")
    if args.json != "-":
        print(format_table(records))
    return 0 if records and all(r["passed"] for r in records) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="difflinalg", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("verify", help="check every registered rule against finite differences")
    p.add_argument("--ops", nargs="+", metavar="NAME", help="only these ops")
    p.add_argument("--json", metavar="PATH|-", help="write the records as JSON (- for stdout, table suppressed)")
    p.set_defaults(func=_cmd_verify)
    try:
        from .control._cli import add_reduce_parser
    except ModuleNotFoundError as exc:
        if exc.name != "difflinalg.control._cli":
            raise
    else:
        add_reduce_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
