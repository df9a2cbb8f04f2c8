"""OPTIONS latency under load: 10,000 calls held open while 200 calls/s come and go.

``python -m benchmarks latency``: ``trio-sip serve --quiet`` (one process, pure build, pinned
to one core; sipp and the prober on the other):

1. sipp ``-sn uac`` sets up ``HELD`` calls at ``SETUP_RATE`` calls/s and holds them (a pause
   longer than the run, ``-l HELD``);
2. once sipp counts them all up and the server answers 10 OPTIONS/s within 200 ms again (it
   may still be working off the setup's retransmissions; at most ``SETTLE_MAX`` s, reported as
   ``settle_s``), for ``DURATION`` s: a second sipp places ``CHURN_RATE``
   calls/s of ``CHURN_PAUSE_MS`` ms each, and this process sends ``PROBE_RATE`` OPTIONS a
   second (each a new transaction, from one UDP socket) and times each until its 200
   (``time.perf_counter``); one unanswered after ``LOST_AFTER`` s is lost (it counts as
   ``LOST_AFTER`` in the percentiles);
3. the same probe against the idle server first (``IDLE_SECONDS``), for comparison.

Target: p99 <= **50 ms** under load. Reported: p50, p90, p99, max, lost; the churn's
successful/failed calls and retransmissions; the server's CPU share and RSS.
"""

from __future__ import annotations

import argparse
import contextlib
import select
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import uas_bench
from benchmarks.serve_process import Serve

HOST = "127.0.0.1"
HELD = 10_000
SETUP_RATE = 400
CHURN_RATE = 200
CHURN_PAUSE_MS = 1000
PROBE_RATE = 50
DURATION = 30.0
IDLE_SECONDS = 5.0
LOST_AFTER = 2.0
TARGET_P99_MS = 50.0
#: At most this long for the server to answer probes again after the setup (``settle_s``).
SETTLE_MAX = 120.0


def _options(port: int, src: tuple[str, int], number: int) -> bytes:
    lines = [
        f"OPTIONS sip:serve@{HOST}:{port} SIP/2.0",
        f"Via: SIP/2.0/UDP {src[0]}:{src[1]};branch=z9hG4bK-probe-{number}",
        "Max-Forwards: 70",
        f"To: <sip:serve@{HOST}>",
        "From: <sip:probe@127.0.0.1>;tag=probe",
        f"Call-ID: probe-{number}@bench",
        "CSeq: 1 OPTIONS",
        "Content-Length: 0",
        "",
        "",
    ]
    return "\r\n".join(lines).encode()


def probe(port: int, seconds: float, rate: float) -> dict[str, Any]:
    """OPTIONS at ``rate``/s for ``seconds``; latencies in ms (lost ones as LOST_AFTER)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    sock.setblocking(False)
    src = sock.getsockname()
    sent: dict[str, float] = {}
    latencies: list[float] = []
    start = time.perf_counter()
    number = 0
    end = start + seconds
    try:
        while True:
            now = time.perf_counter()
            if now < end and now >= start + number / rate:
                sent[f"probe-{number}@bench"] = now
                sock.sendto(_options(port, src, number), (HOST, port))
                number += 1
            if now >= end and (not sent or now > end + LOST_AFTER):
                break
            wait = max(0.0, min(start + number / rate - now, 0.05)) if now < end else 0.05
            ready, _, _ = select.select([sock], [], [], wait)
            if not ready:
                continue
            while True:
                try:
                    data = sock.recv(65535)
                except BlockingIOError:
                    break
                got = time.perf_counter()
                call_id = next((line.split(":", 1)[1].strip() for line in
                                data.decode(errors="replace").split("\r\n")
                                if line.lower().startswith(("call-id:", "i:"))), None)  # fmt: skip
                if call_id in sent:
                    latencies.append((got - sent.pop(call_id)) * 1000)
    finally:
        sock.close()
    lost = len(sent)
    samples = sorted(latencies + [LOST_AFTER * 1000] * lost)
    return {"sent": number, "answered": len(latencies), "lost": lost, **_percentiles(samples)}


def _percentiles(samples: list[float]) -> dict[str, float | None]:
    if not samples:
        return {"p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None}
    q = (
        statistics.quantiles(samples, n=100, method="inclusive")
        if len(samples) > 1
        else samples * 99
    )
    return {"p50_ms": q[49], "p90_ms": q[89], "p99_ms": q[98], "max_ms": samples[-1],
            "mean_ms": statistics.fmean(samples)}  # fmt: skip


def _start_sipp(sipp: str, port: int, workdir: Path, core: int | None, *, rate: float, calls: int,
                pause_ms: int, extra: list[str]) -> tuple[subprocess.Popen[bytes], list[str]]:  # fmt: skip
    workdir.mkdir(parents=True, exist_ok=True)
    argv = uas_bench.sipp_argv(sipp, port, workdir, rate=rate, calls=calls, pause_ms=pause_ms,
                               extra=extra)  # fmt: skip
    out = (workdir / "sipp.out").open("wb")
    proc = subprocess.Popen(argv, cwd=workdir, stdin=subprocess.DEVNULL, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    out.close()
    uas_bench.pin(proc.pid, core)
    return proc, argv


def _stats(workdir: Path) -> dict[str, float]:
    with contextlib.suppress(OSError, IndexError):
        return uas_bench.sipp_stats(workdir / "stat.csv")
    return {}


def measure(sipp: str, held: int, duration: float) -> dict[str, Any]:
    server_core, load_core = uas_bench.cores()
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="latency-bench-") as tmp, \
            Serve(HOST, uas_bench.free_port(), None, server_core) as server:  # fmt: skip
        port = int(server.argv[server.argv.index("--listen") + 1].rsplit(":", 1)[1])
        time.sleep(1)
        result["idle"] = probe(port, IDLE_SECONDS, PROBE_RATE)
        rss0 = server.rss()
        hold_ms = int((held / SETUP_RATE + duration + 300) * 1000)
        holder, holder_argv = _start_sipp(
            sipp, port, Path(tmp, "held"), load_core, rate=SETUP_RATE, calls=held,
            pause_ms=hold_ms, extra=["-l", str(held), "-pause_msg_ign", "-recv_timeout", "60s"],
        )  # fmt: skip
        churn = None
        try:
            deadline = time.monotonic() + held / SETUP_RATE * 3 + 60
            stats: dict[str, float] = {}
            while time.monotonic() < deadline and holder.poll() is None:
                time.sleep(1)
                stats = _stats(Path(tmp, "held"))
                if stats.get("TotalCallCreated", 0) >= held:
                    break
            time.sleep(3)  # the last 200/ACKs
            # A server that fell behind the setup is still working off retransmissions: the
            # loaded probe starts once an idle-rate probe is answered again (bounded).
            drained = time.monotonic()
            settle_deadline = drained + SETTLE_MAX
            while time.monotonic() < settle_deadline:
                check = probe(port, 1.0, 10)
                if not check["lost"] and (check["max_ms"] or 0) < 200:
                    break
            result["settle_s"] = time.monotonic() - drained
            up = int(_stats(Path(tmp, "held")).get("CurrentCall", 0))
            calls = int(CHURN_RATE * duration)
            churn, churn_argv = _start_sipp(
                sipp, port, Path(tmp, "churn"), load_core, rate=CHURN_RATE, calls=calls,
                pause_ms=CHURN_PAUSE_MS, extra=["-recv_timeout", "10s", "-pause_msg_ign"],
            )  # fmt: skip
            cpu0, wall0 = server.cpu_seconds(), time.monotonic()
            result["loaded"] = probe(port, duration, PROBE_RATE)
            cpu, wall = server.cpu_seconds() - cpu0, time.monotonic() - wall0
            with contextlib.suppress(subprocess.TimeoutExpired):
                churn.wait(timeout=CHURN_PAUSE_MS / 1000 + 20)
            churned = _stats(Path(tmp, "churn"))
            held_end = _stats(Path(tmp, "held"))
            result["held_calls"] = up
            result["held_calls_at_end"] = int(held_end.get("CurrentCall", 0))
            result["held_failed"] = int(held_end.get("FailedCall(C)", 0))
            result["churn"] = {
                "calls": calls, "successful": int(churned.get("SuccessfulCall(C)", 0)),
                "failed": int(churned.get("FailedCall(C)", 0)),
                "retransmissions": int(churned.get("Retransmissions(C)", 0)),
            }  # fmt: skip
            result["server_cpu_share"] = cpu / wall if wall else None
            result["server_rss_growth"] = server.rss() - rss0
            result["server_alive"] = server.alive()
            result["commands"] = {"server": server.command, "held": " ".join(holder_argv),
                                  "churn": " ".join(churn_argv),
                                  "probe": f"{PROBE_RATE} OPTIONS/s from one UDP socket, "
                                  "in benchmarks/latency_bench.py"}  # fmt: skip
        finally:
            for proc in (churn, holder):
                if proc is not None:
                    uas_bench.stop(proc, grace=2)
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    only = {s.strip().lower() for s in (getattr(args, "only", None) or "").split(",") if s.strip()}
    result: dict[str, Any] = {
        "held": HELD, "setup_rate": SETUP_RATE, "churn_rate": CHURN_RATE,
        "churn_pause_ms": CHURN_PAUSE_MS, "probe_rate": PROBE_RATE, "duration_s": DURATION,
        "lost_after_s": LOST_AFTER, "target_p99_ms": TARGET_P99_MS,
    }  # fmt: skip
    if only and "trio-sip" not in only:
        print("latency benchmark: trio-sip only; skipped by --only")
        return {**result, "skipped": "--only"}
    sipp, why = uas_bench.find_sipp()
    if sipp is None:
        print(f"latency benchmark skipped: {why}")
        return {**result, "skipped": why}
    try:
        result.update(measure(sipp, HELD, DURATION))
    except (RuntimeError, OSError) as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    _report(result)
    print(f"({time.monotonic() - started:.0f} s)")
    return result


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _report(result: dict[str, Any]) -> None:
    if "error" in result:
        print(f"latency benchmark: ERROR {result['error']}")
        return
    print(f"OPTIONS latency at trio-sip serve (1 process): {result['probe_rate']}/s probes; "
          f"loaded = {result.get('held_calls')} calls held + {result['churn_rate']} calls/s "
          f"of {result['churn_pause_ms']} ms for {result['duration_s']:g} s")  # fmt: skip
    print(
        f"{'':<8} {'sent':>6} {'lost':>5} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}"
    )
    for key in ("idle", "loaded"):
        r = result.get(key)
        if r:
            print(f"{key:<8} {r['sent']:>6} {r['lost']:>5} {_fmt(r['p50_ms']):>8} "
                  f"{_fmt(r['p90_ms']):>8} {_fmt(r['p99_ms']):>8} {_fmt(r['max_ms']):>8}")  # fmt: skip
    churn = result.get("churn", {})
    if churn:
        share = result.get("server_cpu_share") or 0
        print(f"churn: {churn['successful']}/{churn['calls']} ok, {churn['failed']} failed, "
              f"{churn['retransmissions']} retrans; held at the end "
              f"{result.get('held_calls_at_end')}; server {share:.0%} of a core; "
              f"settled {result.get('settle_s', 0):.0f} s after the setup")  # fmt: skip
    loaded = result.get("loaded") or {}
    if loaded.get("p99_ms") is not None:
        verdict = "MET" if loaded["p99_ms"] <= result["target_p99_ms"] else "MISSED"
        print(f"p99 under load {loaded['p99_ms']:.1f} ms; target <= "
              f"{result['target_p99_ms']:g} ms: {verdict}")  # fmt: skip
