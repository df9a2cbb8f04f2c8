"""Parse + 8 header reads, and serialise: trio-sip against the other Python SIP stacks.

What one run does, for every stack (each in its own subprocess, same machine, same run, same
messages); trio-sip runs twice: the pure-Python core (``trio-sip``, from the source tree) and
the mypyc-compiled core (``trio-sip-mypyc``, the installed ``TRIO_SIP_COMPILE=1`` build):

1. **Load** the adapter (:mod:`benchmarks.peers`).  A stack that does not install or import is
   reported with the exception as the reason (so is a trio-sip build that is not the one its
   name says: ``trio_sip.proto.is_compiled()`` is checked).
2. **Check** on each ``basic/`` corpus message: parse, read the nine values of the eight headers
   and compare them with :mod:`benchmarks.reference`; serialise, parse the output again with
   the same stack and compare start line, values and body.  Only messages that pass are timed;
   the others are reported with what went wrong.
3. **Time**, in :data:`ROUNDS` rounds with the stacks *interleaved*: every worker process is
   started once and waits; in each round the parent asks each stack in turn (the order rotates
   from round to round) to time every passing message once: ``time.perf_counter`` around a loop
   of ``n`` calls, ``n`` calibrated once so that all rounds together fill the time budget.  So
   a burst of load from elsewhere on the machine hits one round of every stack, not every
   round of one stack.  Per message the best (minimum) time over the rounds is kept; a stack's
   rate is ``messages / sum of per-message best times`` over the messages it passed, so every
   message counts once.  ``gc`` stays enabled (a stack that allocates more pays for it) and
   ``gc.collect()`` runs before each timed loop; nothing else is tuned for any stack.
4. **Torture**: every manifest entry (rfc4475, rfc5118, basic) through parse + the nine reads.
   ``parse = "ok"``: pass if that raises nothing.  ``parse = "error"``: pass if it raises the
   stack's own rejection exception (``Adapter.errors``).  ``parse = "either"``: pass unless an
   exception other than the stack's own escapes.  A call over 2 s is a fail (hang).  Values are
   not checked here: it counts accepted/rejected as the manifest expects, nothing more.

Each trio-sip build's ratio to a peer is computed on the messages both passed; the headline
ratio is the smallest over all timed peers, i.e. against the best peer.  Targets: parse + reads
>= 2x the best peer, serialise >= 1x.  Missing a target is reported, not an error.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import select
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from benchmarks import corpus
from benchmarks.peers import ADAPTERS, INSTALLED_ONLY, OURS, Adapter, load
from benchmarks.reference import expected_values

TARGET_PARSE = 2.0
TARGET_SERIALIZE = 1.0
ROUNDS = 7
ROOT = Path(__file__).resolve().parent.parent
MARK = "@@bench "  # prefix of the worker's protocol lines on stdout (a stack may print too)
LABELS = {"trio-sip": "pure Python", "trio-sip-mypyc": "mypyc-compiled"}
METHOD = (
    f"Method: {ROUNDS} rounds; in each round every stack (one process each, started once) "
    "times every message once, stacks interleaved in a rotating order; per message the best "
    "(min) of the rounds; rate = messages / sum of best times. gc enabled, gc.collect() "
    "before each timed loop."
)
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


def calibrate(func, arg, seconds: float) -> int:
    """How many calls of ``func(arg)`` one timed loop needs to last about ``seconds``."""
    seconds = max(seconds, 0.001)
    n = 1
    while True:  # double n until one loop takes >= seconds / 4
        t0 = time.perf_counter()
        for _ in range(n):
            func(arg)
        dt = time.perf_counter() - t0
        if dt >= seconds / 4 or n >= 1 << 20:
            break
        n *= 2
    return max(1, int(n * seconds / max(dt, 1e-9)))


def time_loop(func, arg, n: int) -> float:
    """Per-call time of one loop of ``n`` calls of ``func(arg)`` (after a ``gc.collect()``)."""
    gc.collect()
    t0 = time.perf_counter()
    for _ in range(n):
        func(arg)
    return (time.perf_counter() - t0) / n


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


class Bench:
    """One stack in its worker process: loaded, checked and calibrated, then timed a round at a
    time when the parent asks (see the module docstring)."""

    def __init__(self, name: str, seconds: float, rounds: int) -> None:
        self.result: dict[str, Any] = {"name": name}
        self.adapter = load(name)
        adapter = self.adapter
        self.result.update(status="ok", version=adapter.version, notes=adapter.notes)
        basic = corpus.load_cases(groups=("basic",))
        checks = {c.name: check(adapter, c) for c in basic}
        self.result["checks"] = checks
        parse, read = adapter.parse, adapter.read

        def parse_and_read(data):
            return read(parse(data))

        # (kind, message) -> (function, argument, n).  Half the budget for parse, half for
        # serialise (split again when there is a full write), spread over messages and rounds.
        self.loops: dict[tuple[str, str], tuple[Any, Any, int]] = {}
        per_loop = seconds / 2 / max(len(basic), 1) / rounds
        for c in basic:
            if checks[c.name]["parse"] == "ok":
                self.loops["parse_read", c.name] = (parse_and_read, c.data, 0)
        kinds = ("serialize", "serialize_full") if adapter.full_write else ("serialize",)
        for kind in kinds:
            for c in basic:
                if checks[c.name][kind] == "ok":
                    msg = to_serialize(adapter, c.data, kind == "serialize_full")
                    self.loops[kind, c.name] = (adapter.serialize, msg, 0)
        budget = {"parse_read": per_loop, "serialize": per_loop / len(kinds)}
        budget["serialize_full"] = budget["serialize"]
        for key, (func, arg, _) in self.loops.items():
            self.loops[key] = (func, arg, calibrate(func, arg, budget[key[0]]))
        self.result["has_full_write"] = adapter.full_write is not None
        self.rounds: list[dict[str, dict[str, float]]] = []

    def round(self) -> None:
        times: dict[str, dict[str, float]] = {}
        for (kind, msg), (func, arg, n) in self.loops.items():
            times.setdefault(kind, {})[msg] = time_loop(func, arg, n)
        self.rounds.append(times)

    def finish(self) -> dict[str, Any]:
        result = self.result
        for kind in ("parse_read", "serialize", "serialize_full"):
            names = [msg for (k, msg) in self.loops if k == kind]
            result[f"{kind}_s"] = {m: min(r[kind][m] for r in self.rounds) for m in names}
            result[f"{kind}_rounds"] = [_rate(r.get(kind, {}), names) for r in self.rounds]
        if not self.adapter.full_write:  # no shortcut: the serialiser already wrote everything
            result["serialize_full_s"] = result["serialize_s"]
            result["serialize_full_rounds"] = result["serialize_rounds"]
        result["torture"] = torture(self.adapter, corpus.load_cases())
        return result


# --------------------------------------------------------------------------- parent side


class Worker:
    """The parent's handle on one stack's worker process (JSON lines over stdin/stdout)."""

    def __init__(self, name: str, seconds: float, rounds: int) -> None:
        self.name = name
        self.timeout = 120 + 4 * seconds
        args = ["--worker", name, "--seconds", str(seconds), "--rounds", str(rounds)]
        if name in INSTALLED_ONLY:
            # -P: no script/cwd directory in front of sys.path; the repository root goes at
            # the *end*, for ``benchmarks`` only, so the installed trio_sip wins.
            boot = (
                f"import sys; sys.path.append({str(ROOT)!r}); "
                "from benchmarks.parse_bench import _worker_main; _worker_main()"
            )
            cmd = [sys.executable, "-P", "-c", boot, *args]
        else:  # the repository root first: ``benchmarks`` and, for trio-sip, the source tree
            cmd = [sys.executable, "-m", "benchmarks.parse_bench", *args]
        self.stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115  (closed by close())
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            bufsize=1,
        )
        self.reply = self._read()

    def _read(self) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        stdout = self.proc.stdout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([stdout], [], [], left)[0]:
                self.close()
                return {"status": "failed", "reason": "worker timed out"}
            line = stdout.readline()
            if not line:  # the worker died
                self.proc.wait()
                self.stderr.seek(0)
                tail = self.stderr.read().strip().splitlines()[-3:]
                return {"status": "failed", "reason": " | ".join(tail) or "no result"}
            if line.startswith(MARK):
                return json.loads(line[len(MARK) :])

    def ask(self, command: str) -> dict[str, Any]:
        try:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # _read reports what the worker said before it died
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not self.stderr.closed:
            self.stderr.close()


def measure(names: list[str], seconds: float, rounds: int = ROUNDS) -> list[dict[str, Any]]:
    """Start, check and calibrate every stack (one after another), run the interleaved rounds,
    then collect each stack's result (with its torture run)."""
    workers: dict[str, Worker] = {}
    results: dict[str, dict[str, Any]] = {}
    try:
        for name in names:
            print(f"  {name}: load, check, calibrate ...", file=sys.stderr, flush=True)
            worker = Worker(name, seconds, rounds)
            if worker.reply.get("status") == "ready":
                workers[name] = worker
            else:
                results[name] = {"name": name, **worker.reply}
                worker.close()
        for r in range(rounds):
            print(f"  round {r + 1}/{rounds}", file=sys.stderr, flush=True)
            order = list(workers)
            if order:
                order = order[r % len(order) :] + order[: r % len(order)]
            for name in order:
                reply = workers[name].ask("round")
                if reply.get("status") != "ready":
                    results[name] = {"name": name, **reply}
                    workers.pop(name).close()
        for name, worker in workers.items():
            results[name] = {"name": name, **worker.ask("finish")}
    finally:
        for worker in workers.values():
            worker.close()
    return [results[name] for name in names]


def _rate(times: dict[str, float], names) -> float | None:
    names = list(names)
    if not names:
        return None
    return len(names) / sum(times[n] for n in names)


def _ratio(results: list[dict], key: str, ours_name: str = "trio-sip") -> dict[str, Any]:
    """Our build's rate / each peer's rate on the messages both timed; min is vs the best."""
    ours = next((r for r in results if r["name"] == ours_name and r["status"] == "ok"), None)
    per_peer = {}
    if ours is not None:
        for r in results:
            if r["name"] in OURS or r["status"] != "ok":
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


def _spread(rates: list[float | None]) -> str:
    """How far apart the rounds were: fastest round's rate / slowest round's rate - 1."""
    rates = [r for r in rates if r]
    if len(rates) < 2:
        return "-"
    return f"{(max(rates) / min(rates) - 1) * 100:.0f}%"


def _fmt_rate(times: dict[str, float], n_total: int) -> str:
    rate = _rate(times, times)
    if rate is None:
        return "-"
    text = f"{rate:,.0f}"
    return text if len(times) == n_total else f"{text} ({len(times)}/{n_total})"


def _build_summary(results: list[dict], name: str) -> dict[str, Any]:
    return {
        "parse_read": _ratio(results, "parse_read_s", name),
        "serialize_full": _ratio(results, "serialize_full_s", name),
        "serialize": _ratio(results, "serialize_s", name),
    }


def report(results: list[dict], summary: dict[str, Any], n_basic: int) -> str:
    lines = []
    head = (
        f"{'stack':<14} {'version':<10} {'parse+8 reads/s':>17} {'spread':>6} "
        f"{'serialise/s':>14} {'full write/s':>14} {'torture':>9}"
    )
    lines += [
        f"Parse and serialise, corpus basic/ ({n_basic} messages), messages per second, "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs",
        METHOD,
        "",
        head,
        "-" * len(head),
    ]
    for r in results:
        if r["status"] != "ok":
            lines.append(f"{r['name']:<14} {'-':<10} {r['status'].upper()}: {r['reason']}")
            continue
        t = r["torture"]
        full = None if r["has_full_write"] else "(same)"
        lines.append(
            f"{r['name']:<14} {r['version']:<10} {_fmt_rate(r['parse_read_s'], n_basic):>17} "
            f"{_spread(r['parse_read_rounds']):>6} "
            f"{_fmt_rate(r['serialize_s'], n_basic):>14} "
            f"{full or _fmt_rate(r['serialize_full_s'], n_basic):>14} "
            f"{t['passed']:>4}/{t['total']:<4}"
        )
    lines += [
        "",
        "trio-sip: the pure-Python core (the default install); trio-sip-mypyc: the same code",
        "compiled with mypyc (TRIO_SIP_COMPILE=1 pip install .).",
        "(k/n): rate over the k messages the stack handled correctly, see below.",
        "spread: the parse+8 reads rate of the stack's fastest round over its slowest, minus 1.",
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
        if len(fails) > 10 and r["name"] not in OURS:  # all of ours; a sample of a peer's
            fails[10:] = [f"... {len(fails) - 10} more in --json"]
        if fails:
            problems.append(f"  {r['name']} torture misses: {', '.join(fails)}")
    if problems:
        lines += ["", "Checks and notes (a message whose check is not ok is not timed):", *problems]
    for name in OURS:
        build = summary["builds"].get(name)
        if build is None:
            continue
        lines += ["", f"{name} ({LABELS[name]}):"]
        for key, label, target in (
            ("parse_read", "parse+8 reads", TARGET_PARSE),
            ("serialize_full", "serialise (full write)", TARGET_SERIALIZE),
            ("serialize", "serialise (as parsed)", TARGET_SERIALIZE),
        ):
            s = build[key]
            if s["ratio"] is None:
                lines.append(f"  {label}: no ratio ({name} or every peer unavailable)")
                continue
            verdict = "MET" if s["ratio"] >= target else "MISSED"
            others = ", ".join(
                f"{p} {v['ratio']:.2f}x"
                for p, v in sorted(s["per_peer"].items(), key=lambda i: i[0])
            )
            lines.append(
                f"  {label}: {s['ratio']:.2f}x the best peer ({s['best_peer']}); "
                f"target >= {target:g}x: {verdict}   [{others}]"
            )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run every selected stack in its own worker process, print the table, return results."""
    names = list(ADAPTERS)
    if args.only:
        wanted = {n.strip().lower() for n in args.only.split(",")}
        names = [n for n in names if n.lower() in wanted]
    n_basic = len(corpus.load_cases(groups=("basic",)))
    results = measure(names, args.seconds)
    builds = {name: _build_summary(results, name) for name in OURS if name in names}
    pure = builds.get("trio-sip") or _build_summary(results, "trio-sip")
    summary = {
        # The pure-Python build's ratios under the keys earlier runs used; both under builds.
        **pure,
        "builds": builds,
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
        "rounds": ROUNDS,
        "method": METHOD,
        "stacks": results,
        "summary": summary,
    }


def _send(message: dict[str, Any]) -> None:
    sys.stdout.write(MARK + json.dumps(message) + "\n")
    sys.stdout.flush()


def _worker_main() -> None:
    """A stack's worker: load, check, calibrate, say ``ready``; then one line per command
    (``round``: time every message once; ``finish``: torture, send the result and exit)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", required=True)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    a = parser.parse_args()
    try:
        bench = Bench(a.worker, a.seconds, a.rounds)
    except BaseException as exc:  # the stack does not install, import or load
        _send({"status": "unavailable", "reason": _err(exc)})
        return
    try:
        _send({"status": "ready"})
        for line in sys.stdin:
            if line.strip() == "round":
                bench.round()
                _send({"status": "ready"})
            elif line.strip() == "finish":
                _send(bench.finish())
                return
    except Exception:
        _send({"status": "failed", "reason": traceback.format_exc(limit=3)})


if __name__ == "__main__":
    _worker_main()
