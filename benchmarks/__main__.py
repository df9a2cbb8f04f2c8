"""``python -m benchmarks [NAME ...] [--seconds S] [--only STACKS] [--json PATH]``.

With no NAME every benchmark in :data:`benchmarks.BENCHMARKS` runs.  The exit status is 0 even
when a target is missed (benchmarks report; tests assert); it is 2 for a usage error.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path
from typing import Any

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
        "--json-dir",
        metavar="DIR",
        help="also write each benchmark's result, with the machine and commands, as DIR/NAME.json",
    )
    parser.add_argument(
        "--plots", metavar="DIR", help="draw one SVG per benchmark from its JSON (matplotlib)"
    )
    parser.add_argument(
        "--list", action="store_true", help="list the benchmarks and stacks, then exit"
    )
    parser.add_argument(
        "--table-from",
        metavar="DIR",
        help="run nothing: the table of targets (and --plots) from the records in DIR/*.json",
    )
    args = parser.parse_args(argv)
    if args.table_from:
        return _from_records(Path(args.table_from), args.plots)

    if args.list:
        from benchmarks.peers import ADAPTERS

        print("benchmarks:", ", ".join(BENCHMARKS))
        print("stacks:", ", ".join(ADAPTERS))
        return 0
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")

    from benchmarks import machine, summary

    described = machine.describe()
    started = time.monotonic()
    results: dict[str, Any] = {}
    for name in args.names or list(BENCHMARKS):
        module_name, func = BENCHMARKS[name].split(":")
        print(f"== {name}", file=sys.stderr, flush=True)
        began = time.monotonic()
        results[name] = getattr(importlib.import_module(module_name), func)(args)
        if isinstance(results[name], dict):
            results[name].setdefault("seconds", round(time.monotonic() - began, 1))
        if args.json_dir:
            machine.save(Path(args.json_dir) / f"{name}.json", name, results[name], described)
        print()
    if args.json:
        record = {**results, "machine": described, "load_at_end": machine.load()}
        Path(args.json).write_text(json.dumps(record, indent=2, default=str) + "\n")
        print(f"results written to {args.json}")
    if args.plots:
        _plots(Path(args.plots), results, described)
    print(f"Targets ({time.monotonic() - started:.0f} s; load average at the start "
          f"{described['load_at_start']}, at the end {machine.load()}):")  # fmt: skip
    print(summary.table(results))
    return 0


def _plots(out: Path, results: dict[str, Any], described: dict[str, Any]) -> None:
    from benchmarks import machine

    try:
        from benchmarks import plots
    except ImportError as exc:  # pragma: no cover - matplotlib is the bench session's
        print(f"no plots: {exc}")
        return
    out.mkdir(parents=True, exist_ok=True)
    for name, result in results.items():
        if not isinstance(result, dict):
            continue
        path = out / f"{name}.svg"
        try:
            plots.plot(machine.record(name, result, described), path)
        except ImportError as exc:
            print(f"no plots: {exc}")
            return
        except Exception as exc:  # a plot is not worth the run's table
            print(f"no plot for {name}: {type(exc).__name__}: {exc}")
            continue
        print(f"plot: {path}")


def _from_records(source: Path, plots_dir: str | None) -> int:
    from benchmarks import summary

    records = {p.stem: json.loads(p.read_text()) for p in sorted(source.glob("*.json"))}
    results = {r.get("benchmark", name): r for name, r in records.items() if isinstance(r, dict)}
    for record in results.values():  # written before machine.record moved a result's own
        if not isinstance(record.get("machine"), dict):
            record["result_machine"] = record.pop("machine", None)
            record["machine"] = {}
    results = {name: results[name] for name in BENCHMARKS if name in results}
    if plots_dir:
        for name, record in results.items():
            _plots(Path(plots_dir), {name: record}, record.get("machine") or {})
    loads = [r["machine"]["load_at_start"] for r in results.values() if r["machine"]]
    print(f"Targets (from {source}; load average at the start {loads[0] if loads else '?'}):")
    print(summary.table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
