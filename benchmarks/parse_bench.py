"""Parse + 8 header reads, and serialise: trio-sip against the other Python SIP stacks.

What one run does, for every stack (each in its own subprocess, one after another, same
machine, same run, same messages):

1. **Load** the adapter (:mod:`benchmarks.peers`).  A stack that does not install or import is
   reported with the exception as the reason.
2. **Check** on each ``basic/`` corpus message: parse, read the nine values of the eight headers
   and compare them with :mod:`benchmarks.reference`; serialise, parse the output again with
   the same stack and compare start line, values and body.  Only messages that pass are timed;
   the others are reported with what went wrong.
3. **Time** each passing message on its own: ``time.perf_counter`` around a loop of ``n`` calls
   (``n`` calibrated to the time budget), several repeats, best repeat kept; ``gc`` stays
   enabled and is collected before each repeat.  A stack's rate is ``messages / sum of per-
   message best times`` over the messages it passed, so every message counts once.
4. **Torture**: every manifest entry (rfc4475, rfc5118, basic) through parse + the nine reads.
   ``parse = "ok"``: pass if that raises nothing.  ``parse = "error"``: pass if it raises the
   stack's own rejection exception (``Adapter.errors``).  ``parse = "either"``: pass unless an
   exception other than the stack's own escapes.  A call over 2 s is a fail (hang).  Values are
   not checked here: it counts accepted/rejected as the manifest expects, nothing more.

trio-sip's ratio to a peer is computed on the messages both passed; the headline ratio is the
smallest over all timed peers, i.e. against the best peer.  Targets: parse + reads >= 2x the
best peer, serialise >= 1x.  Missing a target is reported, not an error.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from benchmarks import corpus
from benchmarks.peers import ADAPTERS, Adapter, load
from benchmarks.reference import expected_values

TARGET_PARSE = 2.0
TARGET_SERIALIZE = 1.0
REPEATS = 5
FIELDS = (
    "via_branch",
    "from_tag",
    "to_tag",
    "call_id",
    "cseq_seq",
    "cseq_method",
    "contact_host",
    "max_forwards",
    "content_length",
)
TORTURE_TIMEOUT = 2.0


# --------------------------------------------------------------------------- worker side


def _norm(values: tuple) -> tuple:
    """Absent is absent: a stack may say ``None`` or ``""``."""
    return tuple(None if v == "" else v for v in values)


def _start_line(data: bytes) -> bytes:
    return data.split(b"\r\n", 1)[0]


def _body(data: bytes) -> bytes:
    return data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else b""


def _err(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]


def to_serialize(adapter: Adapter, data: bytes, full: bool) -> Any:
    """The message whose serialisation is timed: parsed, the 8 headers read (as an application
    would before sending it on) and, for ``full``, the adapter's no-op edit if it has one."""
    message = adapter.parse(data)
    adapter.read(message)
    if full and adapter.full_write is not None:
        message = adapter.full_write(message)
    return message


def check(adapter: Adapter, case: corpus.Case) -> dict[str, Any]:
    """Right values from parse + reads, and serialisations that round-trip."""
    want = expected_values(case.data)
    out: dict[str, Any] = {"parse": "ok", "serialize": "ok", "serialize_full": "ok"}
    try:
        got = _norm(tuple(adapter.read(adapter.parse(case.data))))
    except Exception as exc:
        out["parse"] = f"error: {_err(exc)}"
        out["serialize"] = out["serialize_full"] = "not checked"
        return out
    if got != want:
        out["parse"] = "wrong: " + "; ".join(
            f"{f}={g!r} (want {w!r})" for f, g, w in zip(FIELDS, got, want, strict=True) if g != w
        )
    if adapter.serialize is None:
        out["serialize"] = out["serialize_full"] = f"n/a: {adapter.no_serialize_reason}"
        return out
    out["serialize"] = check_serialize(adapter, case, got, want, full=False)
    out["serialize_full"] = check_serialize(adapter, case, got, want, full=True)
    return out


def check_serialize(
    adapter: Adapter, case: corpus.Case, got: tuple, want: tuple, full: bool
) -> str:
    """Serialise, parse again with the same stack: same start line, values and body."""
    try:
        wire = adapter.serialize(to_serialize(adapter, case.data, full))
        if not isinstance(wire, bytes):
            raise TypeError(f"serialiser returned {type(wire).__name__}, not bytes")
        again = _norm(tuple(adapter.read(adapter.parse(wire))))
    except Exception as exc:
        return f"error: {_err(exc)}"
    problems = []
    if _start_line(wire) != _start_line(case.data):
        problems.append(f"start line {_start_line(wire)!r}")
    if again != got:
        problems.append("values differ after re-parse")
    if _body(wire) != _body(case.data)[: want[8]]:
        problems.append(f"body of {len(_body(wire))} bytes differs (want {want[8]} bytes)")
    return "wrong: " + "; ".join(problems) if problems else "ok"


def best_time(func, arg, budget: float) -> float:
    """Best per-call time of ``func(arg)`` over :data:`REPEATS` repeats filling ``budget`` s."""
    per_repeat = max(budget / REPEATS, 0.001)
    n = 1
    while True:  # calibrate: double n until one loop takes >= per_repeat / 4
        t0 = time.perf_counter()
        for _ in range(n):
            func(arg)
        dt = time.perf_counter() - t0
        if dt >= per_repeat / 4 or n >= 1 << 20:
            break
        n *= 2
    n = max(1, int(n * per_repeat / max(dt, 1e-9)))
    best = float("inf")
    for _ in range(REPEATS):
        gc.collect()
        t0 = time.perf_counter()
        for _ in range(n):
            func(arg)
        best = min(best, (time.perf_counter() - t0) / n)
    return best


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang


def torture(adapter: Adapter, cases: list[corpus.Case]) -> dict[str, Any]:
    """Accept/reject per the manifest; see the module docstring for what counts."""
    outcomes = {}
    passed = 0
    parse, read = adapter.parse, adapter.read
    signal.signal(signal.SIGALRM, _alarm)
    for case in cases:
        signal.setitimer(signal.ITIMER_REAL, TORTURE_TIMEOUT)
        try:
            read(parse(case.data))
            outcome = "accepted"
        except _Hang:
            outcome = "hang"
        except adapter.errors as exc:
            outcome = f"rejected ({type(exc).__name__})"
        except Exception as exc:
            outcome = f"crashed ({type(exc).__name__})"
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        if case.parse == "ok":
            ok = outcome == "accepted"
        elif case.parse == "error":
            ok = outcome.startswith("rejected")
        else:  # either
            ok = outcome == "accepted" or outcome.startswith("rejected")
        passed += ok
        outcomes[case.key] = {"want": case.parse, "got": outcome, "pass": ok}
    return {"passed": passed, "total": len(cases), "cases": outcomes}


def worker(name: str, seconds: float) -> dict[str, Any]:
    """Everything for one stack; runs in its own process."""
    result: dict[str, Any] = {"name": name}
    try:
        adapter = load(name)
    except BaseException as exc:
        result.update(status="unavailable", reason=_err(exc))
        return result
    result.update(status="ok", version=adapter.version, notes=adapter.notes)
    basic = corpus.load_cases(groups=("basic",))
    result["checks"] = {c.name: check(adapter, c) for c in basic}

    parse, read = adapter.parse, adapter.read

    def parse_and_read(data):
        return read(parse(data))

    timed_parse = [c for c in basic if result["checks"][c.name]["parse"] == "ok"]
    # Half the budget for parse, half for serialise (split again when there is a full write).
    budget = seconds / 2 / max(len(basic), 1)
    result["parse_read_s"] = {
        c.name: best_time(parse_and_read, c.data, budget) for c in timed_parse
    }
    kinds = ("serialize", "serialize_full") if adapter.full_write else ("serialize",)
    for kind in kinds:
        result[f"{kind}_s"] = {
            c.name: best_time(
                adapter.serialize,
                to_serialize(adapter, c.data, kind == "serialize_full"),
                budget / len(kinds),
            )
            for c in basic
            if result["checks"][c.name][kind] == "ok"
        }
    result["has_full_write"] = adapter.full_write is not None
    if not adapter.full_write:  # no shortcut: the same serialiser already wrote everything out
        result["serialize_full_s"] = result["serialize_s"]
    result["torture"] = torture(adapter, corpus.load_cases())
    return result


# --------------------------------------------------------------------------- parent side


def _run_worker(name: str, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "benchmarks.parse_bench", "--worker", name]
        cmd += ["--seconds", str(seconds), "--out", str(out)]
        try:
            proc = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                timeout=120 + 4 * seconds,
                check=False,
                cwd=Path(__file__).resolve().parent.parent,  # so ``-m benchmarks...`` resolves
            )
        except subprocess.TimeoutExpired:
            return {"name": name, "status": "failed", "reason": "worker timed out"}
        if out.exists():
            return json.loads(out.read_text())
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"name": name, "status": "failed", "reason": " | ".join(tail) or "no result"}


def _rate(times: dict[str, float], names) -> float | None:
    names = list(names)
    if not names:
        return None
    return len(names) / sum(times[n] for n in names)


def _ratio(results: list[dict], key: str) -> dict[str, Any]:
    """trio-sip's rate / each peer's rate on the messages both timed; min is vs the best."""
    ours = next((r for r in results if r["name"] == "trio-sip" and r["status"] == "ok"), None)
    per_peer = {}
    if ours is not None:
        for r in results:
            if r["name"] == "trio-sip" or r["status"] != "ok":
                continue
            common = sorted(set(ours[key]) & set(r[key]))
            if common:
                per_peer[r["name"]] = {
                    "ratio": _rate(ours[key], common) / _rate(r[key], common),
                    "messages": len(common),
                }
    if not per_peer:
        return {"per_peer": per_peer, "best_peer": None, "ratio": None}
    best = min(per_peer, key=lambda p: per_peer[p]["ratio"])
    return {"per_peer": per_peer, "best_peer": best, "ratio": per_peer[best]["ratio"]}


def _fmt_rate(times: dict[str, float], n_total: int) -> str:
    rate = _rate(times, times)
    if rate is None:
        return "-"
    text = f"{rate:,.0f}"
    return text if len(times) == n_total else f"{text} ({len(times)}/{n_total})"


def report(results: list[dict], summary: dict[str, Any], n_basic: int) -> str:
    lines = []
    head = (
        f"{'stack':<11} {'version':<10} {'parse+8 reads/s':>17} {'serialise/s':>16} "
        f"{'full write/s':>14} {'torture':>9}"
    )
    lines += [
        f"Parse and serialise, corpus basic/ ({n_basic} messages), messages per second, "
        f"best of {REPEATS}, Python {platform.python_version()}",
        "",
        head,
        "-" * len(head),
    ]
    for r in results:
        if r["status"] != "ok":
            lines.append(f"{r['name']:<11} {'-':<10} {r['status'].upper()}: {r['reason']}")
            continue
        t = r["torture"]
        full = None if r["has_full_write"] else "(same)"
        lines.append(
            f"{r['name']:<11} {r['version']:<10} {_fmt_rate(r['parse_read_s'], n_basic):>17} "
            f"{_fmt_rate(r['serialize_s'], n_basic):>16} "
            f"{full or _fmt_rate(r['serialize_full_s'], n_basic):>14} "
            f"{t['passed']:>4}/{t['total']:<4}"
        )
    lines += [
        "",
        "(k/n): rate over the k messages the stack handled correctly, see below.",
        "serialise: the parsed message after the reads; full write: after a no-op edit, for a",
        "stack that hands back the received bytes unless edited ('(same)': no such shortcut).",
    ]
    problems = []
    for r in results:
        if r["status"] != "ok":
            continue
        checks = r["checks"]
        whats = ("parse", "serialize") + (("serialize_full",) if r["has_full_write"] else ())
        for what in whats:
            verdicts = {c[what] for c in checks.values()} - {"not checked"}
            if len(verdicts) == 1 and (only := verdicts.pop()).startswith("n/a"):
                problems.append(f"  {r['name']} {what}: {only}")
                continue
            for msg, c in checks.items():
                if c[what] not in ("ok", "not checked"):
                    problems.append(f"  {r['name']} {msg} {what}: {c[what]}")
        problems += [f"  {r['name']} note: {n}" for n in r.get("notes", [])]
        fails = [
            f"{key.split('/', 1)[1]} ({case['got']})"
            for key, case in r["torture"]["cases"].items()
            if not case["pass"]
        ]
        if len(fails) > 10 and r["name"] != "trio-sip":  # all of ours; a sample of a peer's
            fails[10:] = [f"... {len(fails) - 10} more in --json"]
        if fails:
            problems.append(f"  {r['name']} torture misses: {', '.join(fails)}")
    if problems:
        lines += ["", "Checks and notes (a message whose check is not ok is not timed):", *problems]
    lines.append("")
    for key, label, target in (
        ("parse_read", "parse+8 reads", TARGET_PARSE),
        ("serialize_full", "serialise (full write)", TARGET_SERIALIZE),
        ("serialize", "serialise (as parsed)", TARGET_SERIALIZE),
    ):
        s = summary[key]
        if s["ratio"] is None:
            lines.append(f"trio-sip {label}: no ratio (trio-sip or every peer unavailable)")
            continue
        verdict = "MET" if s["ratio"] >= target else "MISSED"
        others = ", ".join(
            f"{p} {v['ratio']:.2f}x" for p, v in sorted(s["per_peer"].items(), key=lambda i: i[0])
        )
        lines.append(
            f"trio-sip {label}: {s['ratio']:.2f}x the best peer ({s['best_peer']}); "
            f"target >= {target:g}x: {verdict}   [{others}]"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run every selected stack in its own subprocess, print the table, return the results."""
    names = list(ADAPTERS)
    if args.only:
        wanted = {n.strip().lower() for n in args.only.split(",")}
        names = [n for n in names if n.lower() in wanted]
    n_basic = len(corpus.load_cases(groups=("basic",)))
    results = []
    for name in names:
        print(f"  {name} ...", file=sys.stderr, flush=True)
        results.append(_run_worker(name, args.seconds))
    summary = {
        "parse_read": _ratio(results, "parse_read_s"),
        "serialize_full": _ratio(results, "serialize_full_s"),
        "serialize": _ratio(results, "serialize_s"),
        "targets": {"parse_read": TARGET_PARSE, "serialize": TARGET_SERIALIZE},
        "headline": "serialize_full is the serialise target's measure",
    }
    print(report(results, summary, n_basic))
    return {
        "benchmark": "parse",
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": os.cpu_count(),
        "seconds_per_stack": args.seconds,
        "repeats": REPEATS,
        "stacks": results,
        "summary": summary,
    }


def _worker_main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", required=True)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--out", required=True)
    a = parser.parse_args()
    try:
        result = worker(a.worker, a.seconds)
    except Exception:
        result = {"name": a.worker, "status": "failed", "reason": traceback.format_exc(limit=3)}
    Path(a.out).write_text(json.dumps(result))


if __name__ == "__main__":
    _worker_main()
