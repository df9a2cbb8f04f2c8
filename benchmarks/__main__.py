"""``python -m benchmarks [NAME ...] [--seconds S] [--only STACKS] [--json PATH]``.

With no NAME every benchmark in :data:`benchmarks.BENCHMARKS` runs.  The exit status is 0 even
when a target is missed (benchmarks report; tests assert); it is 2 for a usage error.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from benchmarks import BENCHMARKS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description="trio-sip against other Python SIP stacks."
    )
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"benchmarks to run (default: all: {', '.join(BENCHMARKS)})",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=2.0,
        help="timing budget per stack and benchmark, in seconds (default 2)",
    )
    parser.add_argument(
        "--only",
        metavar="STACKS",
        help="comma-separated stacks, e.g. trio-sip,sippy (default: all)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write machine-readable results here")
    parser.add_argument(
        "--list", action="store_true", help="list the benchmarks and stacks, then exit"
    )
    args = parser.parse_args(argv)

    if args.list:
        from benchmarks.peers import ADAPTERS

        print("benchmarks:", ", ".join(BENCHMARKS))
        print("stacks:", ", ".join(ADAPTERS))
        return 0
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")

    results = {}
    for name in args.names or list(BENCHMARKS):
        module_name, func = BENCHMARKS[name].split(":")
        print(f"== {name}", file=sys.stderr, flush=True)
        results[name] = getattr(importlib.import_module(module_name), func)(args)
        print()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
