"""Calls per second with 1 and 2 workers: ``trio-sip serve --workers N`` on this machine.

``python -m benchmarks workers``: for N = 1 and 2, ``trio-sip serve --quiet --workers N``
(the supervisor and its N workers, pure build, not pinned: with 2 workers each may use a core)
answers sipp's ``-sn uac`` with ``-t un`` (a UDP socket per call, so each call has its own
source port and the kernel's 4-tuple hash spreads the calls over the workers' SO_REUSEPORT
sockets), stepped as ``uas`` steps (``benchmarks/stepping.py``). A rate is **sustained** when
>= 99% of the calls succeed, retransmissions stay <= 1% and sipp sent at >= 95% of the rate.
CPU per call: the supervisor's and every worker's, per successful call.

Target: the highest sustained rate with 2 workers >= **1.8x** the rate with 1, on 2 cores.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import stepping, uas_bench
from benchmarks.serve_process import Serve

HOST = "127.0.0.1"
PAUSE_MS = 1000
TARGET_RATIO = 1.8
WORKERS = (1, 2)


def _step(workers: int, rate: float, seconds: float, tmp: Path) -> dict[str, Any]:
    sipp, _ = uas_bench.find_sipp()
    assert sipp is not None
    calls = max(50, int(rate * seconds))
    workdir = tmp / f"w{workers}-{rate:g}"
    workdir.mkdir(parents=True, exist_ok=True)
    with Serve(HOST, uas_bench.free_port(), workers) as server:
        port = int(server.argv[server.argv.index("--listen") + 1].rsplit(":", 1)[1])
        argv = uas_bench.sipp_argv(
            sipp, port, workdir, rate=rate, calls=calls, pause_ms=PAUSE_MS,
            extra=["-t", "un", "-max_socket", "15000", "-recv_timeout", "10s", "-pause_msg_ign"],
        )  # fmt: skip
        cpu0, wall0 = server.cpu_seconds(), time.monotonic()
        uas_bench.run_sipp(argv, workdir, None, deadline=calls / rate + PAUSE_MS / 1000 + 60)
        cpu, wall = server.cpu_seconds() - cpu0, time.monotonic() - wall0
        alive = server.alive()
        command = server.command
    try:
        stats = uas_bench.sipp_stats(workdir / "stat.csv")
    except (OSError, IndexError) as exc:
        return {"rate": rate, "calls": calls, "sustained": False, "detail": f"no sipp stats: {exc}"}
    ok = int(stats.get("SuccessfulCall(C)", 0))
    retrans = int(stats.get("Retransmissions(C)", 0))
    elapsed = stats.get("CurrentTime", 0.0) - stats.get("StartTime", 0.0)
    achieved = calls / max(elapsed - PAUSE_MS / 1000, 1e-3)
    sustained = (
        ok >= uas_bench.SUCCESS_MIN * calls
        and retrans <= uas_bench.RETRANS_MAX * calls
        and achieved >= uas_bench.RATE_MIN * rate
        and alive
    )
    cpu_per_call = cpu / max(ok, 1) * 1e6
    return {
        "rate": rate, "calls": calls, "successful": ok, "retransmissions": retrans,
        "achieved_rate": achieved, "server_cpu_s": cpu, "cpu_us_per_call": cpu_per_call,
        "server_cores_used": cpu / wall if wall else 0.0, "sustained": sustained,
        "detail": f"{ok}/{calls} ok, {retrans} retrans, achieved {achieved:.0f}/s, "
        f"cpu {cpu_per_call:.0f} us/call ({cpu / wall if wall else 0:.2f} cores)",
        "commands": {"server": command, "sipp": " ".join(argv)},
    }  # fmt: skip


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    only = {s.strip().lower() for s in (getattr(args, "only", None) or "").split(",") if s.strip()}
    seconds = max(2.0, 2 * float(getattr(args, "seconds", 2.0)))
    result: dict[str, Any] = {
        "load_generator": "sipp -sn uac -t un", "pause_ms": PAUSE_MS, "step_seconds": seconds,
        "target_ratio": TARGET_RATIO, "workers": {},
    }  # fmt: skip
    if only and "trio-sip" not in only:
        print("workers benchmark: trio-sip only; skipped by --only")
        return {**result, "skipped": "--only"}
    sipp, why = uas_bench.find_sipp()
    if sipp is None:
        print(f"workers benchmark skipped: {why}")
        return {**result, "skipped": why}
    with tempfile.TemporaryDirectory(prefix="workers-bench-") as tmp:
        for workers in WORKERS:
            result["workers"][str(workers)] = stepping.search(
                f"serve --workers {workers}",
                lambda rate, w=workers: _step(w, rate, seconds, Path(tmp)),
                start=200, budget=240,
            )  # fmt: skip
    _report(result)
    print(f"({time.monotonic() - started:.0f} s)")
    return result


def _report(result: dict[str, Any]) -> None:
    print(f"trio-sip serve --workers N on {len(WORKERS)} cores: sipp -sn uac -t un, "
          f"{result['pause_ms']} ms calls, {result['step_seconds']:g} s per step")  # fmt: skip
    print(f"{'workers':<8} {'max sustained calls/s':>22} {'first failed':>13} {'CPU/call':>10}")
    rows = result["workers"]
    for workers, r in rows.items():
        failed = f"{r['first_failed_rate']:g}" if r["first_failed_rate"] else "-"
        cpu = f"{r['cpu_us_per_call']:.0f} us" if r["cpu_us_per_call"] else "-"
        print(f"{workers:<8} {r['max_sustained_rate']:>22g} {failed:>13} {cpu:>10}")
    one, two = rows.get("1", {}), rows.get("2", {})
    if one.get("max_sustained_rate") and two.get("max_sustained_rate"):
        ratio = two["max_sustained_rate"] / one["max_sustained_rate"]
        result["ratio"] = ratio
        verdict = "MET" if ratio >= result["target_ratio"] else "MISSED"
        print(f"2 workers / 1 worker: {ratio:.2f}x calls/s; "
              f"target >= {result['target_ratio']:g}x: {verdict}")  # fmt: skip
