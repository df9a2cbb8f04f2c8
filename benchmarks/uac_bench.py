"""Calls per second a UAC places, trio-sip against sippy, and memory per outgoing call.

``python -m benchmarks uac``:

* **Rate.** sipp answers as the UAS: its built-in ``uas`` scenario (180, 200 with SDP, waits
  for the ACK and the BYE), written out with ``sipp -sd uas`` minus the Contact's
  ``;transport=UDP`` (sippy 2.5.0 routes only a lower-case ``udp`` and fails every ACK
  otherwise; the same file serves both UACs). Each UAC is a process of its own
  (``benchmarks/peers/trio_sip_uac.py``: ``open_user_agent`` and one ``async with ua.call()``
  task per call; ``benchmarks/peers/sippy_uac.py``: sippy's ``UA`` per call, as its B2BUA's
  outgoing leg) that starts a call every ``1/rate`` s, hangs up ``PAUSE`` s after the answer,
  and is pinned to one core, sipp to the other. Steps as in ``uas`` (``benchmarks/stepping.py``,
  a fresh sipp and UAC per step, ``rate x 2 x --seconds`` calls). A rate is **sustained** when
  sipp counts >= 99% of the calls successful with <= 1% retransmissions and the UAC started
  the calls at >= 95% of the rate. CPU per call: the UAC process's own, per successful call.
  Target: trio-sip >= **3x** sippy's highest sustained rate.
* **Memory** (``uac_memory``): the trio-sip UAC places ``MEMORY_CALLS`` calls at
  ``MEMORY_RATE`` calls/s (at most twice the rate it sustained above) and holds them all
  (``--hold``); its RSS after ``gc.collect()`` before the first call, when all are answered,
  and 40 s later (the INVITE transactions and ACK resenders have ended), per call; then the same with ``TRACED_CALLS`` calls under
  tracemalloc for the Python heap per call and its largest sites. Target: <= **10 KB** per
  established outgoing call at 10,000 calls.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import stepping, uas_bench

HOST = "127.0.0.1"
PAUSE_S = 1.0
TARGET_RATIO = 3.0
MEMORY_CALLS = 10_000
MEMORY_RATE = 400
TRACED_CALLS = 1_000
TARGET_BYTES_PER_CALL = 10_000

UACS: dict[str, tuple[str, list[str]]] = {
    "trio-sip": ("trio-sip", ["-m", "benchmarks.peers.trio_sip_uac"]),
    "sippy": ("sippy", ["-m", "benchmarks.peers.sippy_uac"]),
}


def uas_scenario(sipp: str, workdir: Path) -> Path:
    """sipp's built-in ``uas`` scenario, without ``;transport=[transport]`` in its Contact."""
    text = subprocess.run([sipp, "-sd", "uas"], capture_output=True, text=True, check=False).stdout
    if "<scenario" not in text:
        raise RuntimeError(f"sipp -sd uas printed no scenario: {text[:200]!r}")
    path = workdir / "uas.xml"
    path.write_text(text.replace(";transport=[transport]", ""))
    return path


def start_sipp_uas(
    sipp: str, scenario: Path, workdir: Path, calls: int, core: int | None
) -> tuple[subprocess.Popen[bytes], int, list[str]]:
    port = uas_bench.free_port()
    argv = [
        sipp, "-sf", str(scenario), "-i", HOST, "-p", str(port), "-m", str(calls),
        "-nostdin", "-trace_stat", "-stf", str(workdir / "stat.csv"), "-fd", "1", "-trace_err",
        "-max_socket", "15000",
    ]  # fmt: skip
    out = (workdir / "sipp.out").open("wb")
    proc = subprocess.Popen(argv, cwd=workdir, stdin=subprocess.DEVNULL, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    out.close()
    uas_bench.pin(proc.pid, core)
    time.sleep(0.3)  # sipp binds at once; this only keeps the first INVITE from racing it
    return proc, port, argv


def run_uac(
    argv: list[str], core: int | None, deadline: float, env: dict[str, str] | None = None
) -> tuple[dict[str, Any] | None, str]:
    """Run a UAC process to its ``RESULT`` line (killed by PID after ``deadline`` s)."""
    proc = subprocess.Popen([sys.executable, *argv], cwd=uas_bench.ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            env={**os.environ, **(env or {})})  # fmt: skip
    uas_bench.pin(proc.pid, core)
    timed_out = ""
    try:
        out, err = proc.communicate(timeout=deadline)
    except subprocess.TimeoutExpired:
        uas_bench.stop(proc)
        out, err = proc.communicate()
        timed_out = f"no result within {deadline:.0f} s (killed). "
    for line in out.decode(errors="replace").splitlines():
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line[7:])
            return result, ""
    return None, timed_out + err.decode(errors="replace")[-1500:]


def _step(
    sipp: str, label: str, argv: list[str], rate: float, seconds: float, tmp: Path
) -> dict[str, Any]:
    server_core, client_core = uas_bench.cores()  # sipp on the "server" core, the UAC on the other
    calls = max(50, int(rate * seconds))
    workdir = tmp / f"{label}-{rate:g}"
    workdir.mkdir(parents=True, exist_ok=True)
    scenario = uas_scenario(sipp, workdir)
    sipp_proc, port, sipp_argv = start_sipp_uas(sipp, scenario, workdir, calls, client_core)
    uac_argv = [*argv, HOST, str(port), f"{rate:g}", str(calls), f"{PAUSE_S:g}"]
    try:
        result, error = run_uac(uac_argv, server_core, calls / rate + PAUSE_S + 60)
        with contextlib.suppress(subprocess.TimeoutExpired):
            sipp_proc.wait(timeout=PAUSE_S + 15)
    finally:
        uas_bench.stop(sipp_proc, grace=2)
    commands = {"sipp": " ".join(sipp_argv), "uac": " ".join(["python", *uac_argv])}
    if result is None:
        return {"rate": rate, "calls": calls, "sustained": False, "detail": f"UAC failed: {error}",
                "commands": commands}  # fmt: skip
    try:
        stats = uas_bench.sipp_stats(workdir / "stat.csv")
    except (OSError, IndexError):
        stats = {}
    ok = int(stats.get("SuccessfulCall(C)", 0))
    retrans = int(stats.get("Retransmissions(C)", 0))
    achieved = calls / max(result["send_seconds"], 1e-3) if calls > 1 else rate
    cpu_per_call = result["cpu_s"] / max(ok, 1) * 1e6
    sustained = (
        ok >= uas_bench.SUCCESS_MIN * calls
        and retrans <= uas_bench.RETRANS_MAX * calls
        and achieved >= uas_bench.RATE_MIN * rate
    )
    detail = (f"{ok}/{calls} ok at sipp, {retrans} retrans, UAC failed {result['failed']}, "
              f"started at {achieved:.0f}/s, UAC cpu {cpu_per_call:.0f} us/call "
              f"({result['cpu_s'] / max(result['wall_s'], 1e-3):.0%} of a core)")  # fmt: skip
    return {
        "rate": rate, "calls": calls, "successful": ok, "retransmissions": retrans,
        "uac_failed": result["failed"], "first_error": result.get("first_error"),
        "achieved_rate": achieved, "uac_cpu_s": result["cpu_s"], "cpu_us_per_call": cpu_per_call,
        "sustained": sustained, "detail": detail, "commands": commands,
    }  # fmt: skip


def measure_memory(sipp: str, calls: int, rate: float, *, traced: bool) -> dict[str, Any]:
    """The trio-sip UAC holding ``calls`` answered calls: its samples (RSS, traced heap)."""
    _, client_core = uas_bench.cores()
    with tempfile.TemporaryDirectory(prefix="uac-memory-") as tmp:
        workdir = Path(tmp)
        scenario = uas_scenario(sipp, workdir)
        sipp_proc, port, sipp_argv = start_sipp_uas(sipp, scenario, workdir, calls, client_core)
        argv = ["-m", "benchmarks.peers.trio_sip_uac", HOST, str(port), f"{rate:g}", str(calls),
                "3600", "--hold"]  # fmt: skip
        env = {"TRIO_SIP_TRACE": "1"} if traced else None
        try:
            result, error = run_uac(argv, None, calls / rate * (4 if traced else 2) + 120, env)
        finally:
            uas_bench.stop(sipp_proc, grace=2)
    if result is None:
        return {"error": error}
    samples = result["samples"]
    base = samples[0]
    for sample in samples[1:]:
        for key in ("rss", "traced"):
            if key in sample and key in base and sample["calls"]:
                sample[f"{key}_per_call"] = (sample[key] - base[key]) / sample["calls"]
    command = " ".join(["python", *argv]) + (" (TRIO_SIP_TRACE=1)" if traced else "")
    return {**result, "commands": {"sipp": " ".join(sipp_argv), "uac": command}}


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    only = {s.strip().lower() for s in (getattr(args, "only", None) or "").split(",") if s.strip()}
    seconds = max(2.0, 2 * float(getattr(args, "seconds", 2.0)))
    sipp, why = uas_bench.find_sipp()
    result: dict[str, Any] = {
        "load_generator": "sipp -sf uas.xml (sipp -sd uas, Contact without transport=)",
        "pause_s": PAUSE_S, "step_seconds": seconds, "target_ratio": TARGET_RATIO,
        "target_bytes_per_call": TARGET_BYTES_PER_CALL, "uacs": {},
    }  # fmt: skip
    if sipp is None:
        print(f"uac benchmark skipped: {why}")
        return {**result, "skipped": why}
    with tempfile.TemporaryDirectory(prefix="uac-bench-") as tmp:
        for label, (stack, argv) in UACS.items():
            if only and stack.lower() not in only:
                continue
            if stack == "sippy" and importlib.util.find_spec("sippy") is None:
                result["uacs"][label] = {"unavailable": "sippy is not installed"}
                continue
            result["uacs"][label] = stepping.search(
                label,
                lambda rate, label=label, argv=argv: _step(sipp, label, argv, rate, seconds, Path(tmp)),
                start=100, budget=240,
            )  # fmt: skip
    if not only or "trio-sip" in only:
        # Calls set up (never hung up) at up to twice the rate sustained above: on a loaded
        # machine 400/s only floods the UAC with retransmissions and never ends.
        sustained = (result["uacs"].get("trio-sip") or {}).get("max_sustained_rate") or 0
        rate = min(MEMORY_RATE, max(50, 2 * sustained)) if sustained else MEMORY_RATE
        result["memory_rate"] = rate
        result["memory"] = measure_memory(sipp, MEMORY_CALLS, rate, traced=False)
        result["memory_traced"] = measure_memory(sipp, TRACED_CALLS, rate, traced=True)
    _report(result)
    print(f"({time.monotonic() - started:.0f} s)")
    return result


def _report(result: dict[str, Any]) -> None:
    print(f"UAC calls/s against sipp's uas: {result['pause_s']:g} s calls, "
          f"{result['step_seconds']:g} s per step")  # fmt: skip
    print(f"{'UAC':<12} {'max sustained calls/s':>22} {'first failed':>13} {'UAC CPU/call':>13}")
    uacs = result["uacs"]
    for label, r in uacs.items():
        if "unavailable" in r:
            print(f"{label:<12} UNAVAILABLE: {r['unavailable']}")
            continue
        failed = f"{r['first_failed_rate']:g}" if r["first_failed_rate"] else "-"
        cpu = f"{r['cpu_us_per_call']:.0f} us" if r["cpu_us_per_call"] else "-"
        print(f"{label:<12} {r['max_sustained_rate']:>22g} {failed:>13} {cpu:>13}")
    ours, peer = uacs.get("trio-sip", {}), uacs.get("sippy", {})
    if ours.get("max_sustained_rate") and peer.get("max_sustained_rate"):
        ratio = ours["max_sustained_rate"] / peer["max_sustained_rate"]
        cpu_ratio = (peer["cpu_us_per_call"] / ours["cpu_us_per_call"]
                     if ours.get("cpu_us_per_call") and peer.get("cpu_us_per_call") else None)  # fmt: skip
        result["ratio"] = {"rate_ratio": ratio, "cpu_ratio": cpu_ratio}
        verdict = "MET" if ratio >= result["target_ratio"] else "MISSED"
        cpu_text = f"; CPU per call, sippy's / ours: {cpu_ratio:.2f}x" if cpu_ratio else ""
        print(f"trio-sip / sippy UAC: {ratio:.2f}x calls/s{cpu_text}; "
              f"target >= {result['target_ratio']:g}x: {verdict}")  # fmt: skip
    for key, title in (("memory", "RSS"), ("memory_traced", "traced heap")):
        part = result.get(key)
        if not part:
            continue
        if "error" in part:
            print(f"UAC memory ({title}): ERROR {part['error']}")
            continue
        measure = "rss" if key == "memory" else "traced"
        for sample in part["samples"][1:]:
            per = sample.get(f"{measure}_per_call")
            if per is not None:
                print(f"UAC memory ({title}), {sample['at']}: {sample['calls']} calls, "
                      f"{per:,.0f} B per call")  # fmt: skip
        if key == "memory":
            worst = max((s.get("rss_per_call") or 0) for s in part["samples"][1:])
            result["memory_bytes_per_call"] = worst
            verdict = "MET" if worst <= result["target_bytes_per_call"] else "MISSED"
            print(f"UAC memory per established call: {worst:,.0f} B RSS (worst sample); "
                  f"target <= {result['target_bytes_per_call']:,} B: {verdict}")  # fmt: skip
        else:
            steady = part["samples"][-1].get("traced_per_call")
            peak = part["samples"][1].get("traced_per_call")
            result["memory_traced_bytes_per_call"] = {"peak": peak, "steady": steady}
        for row in part.get("top_sites", [])[:8]:
            print(f"    {row['bytes_per_call']:>7,.0f} B/call  {row['site']}")
