"""Memory for 10,000 concurrent established calls (``python -m benchmarks memory``).

Two measurements, both of trio-sip only:

* **in-process** (the stack's own cost, no sockets): our UAC and our UAS (two
  ``open_user_agent``, the UAS being the ``ua`` server of ``benchmarks/peers/trio_sip_uas.py``)
  on the in-memory ``FakeNetwork`` in one process, in virtual time (``trio.testing.MockClock``,
  autojump).  The UAC opens ``CALLS`` calls (at most 16 being set up at a time: the UAS's default ``incoming_queue``) and keeps each
  one up.  Measured with ``gc.collect()`` first: the process's RSS before the first call, when
  every call is up, and again 40 s (virtual) later, when the INVITE transactions and 2xx/ACK
  machines have ended (the steady state of long calls).  A second, smaller run
  (``TRACED_CALLS``) under tracemalloc gives the Python heap bytes per call and the largest
  allocation sites.  Both ends of every call are in this process, so these per-call numbers
  cover a UAC *and* a UAS.
* **UAS process** (what a deployment sees): the same ``ua`` UAS in its own process on loopback
  UDP, called by sipp (``-sn uac``, ``-d`` longer than the run, ``-l CALLS``) at ``RATE`` calls
  per second.  Measured: the UAS process's RSS (from /proc) after it is ready, when sipp has
  set up every call, and 40 s later.  A second run of ``TRACED_CALLS`` calls with the UAS under
  tracemalloc (``python -m benchmarks.memory_bench traced-uas ...``, snapshots on SIGUSR1)
  gives the UAS's Python heap per call at the same points and its largest allocation sites.
  Needs sipp (else reported as skipped).

Target: < 100 MB for 10,000 calls on the UAS (< 10,000 bytes per call).  The run reports;
nothing here fails.
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio
import trio.testing

from benchmarks import uas_bench
from benchmarks.peers.trio_sip_uas import serve_ua

CALLS = 10_000
TRACED_CALLS = 1_000
RATE = 150
SETTLE_S = 40.0
TARGET_BYTES = 100_000_000
UAC, UAS = "10.0.0.1", "10.0.0.2"


def _rss() -> int:
    return uas_bench.rss_bytes(os.getpid())


_snapshots: list[tracemalloc.Snapshot] = []


def _sample(label: str, calls: int) -> dict[str, Any]:
    gc.collect()
    traced = None
    if tracemalloc.is_tracing():
        traced = tracemalloc.get_traced_memory()[0]
        _snapshots.append(tracemalloc.take_snapshot())
    return {"at": label, "calls": calls, "rss": _rss(), "traced": traced}


def _top_sites(calls: int, limit: int = 15) -> list[dict[str, Any]]:
    """Where the steady-state bytes were allocated (last snapshot against the first)."""
    if len(_snapshots) < 2:
        return []
    return _compare(_snapshots[-1], _snapshots[0], calls, limit)


def _compare(
    new: tracemalloc.Snapshot, old: tracemalloc.Snapshot, calls: int, limit: int = 15
) -> list[dict[str, Any]]:
    rows = []
    for stat in new.compare_to(old, "lineno")[:limit]:
        frame = stat.traceback[0]
        where = frame.filename.split("site-packages/")[-1].replace(str(uas_bench.ROOT) + "/", "")
        rows.append(
            {
                "site": f"{where}:{frame.lineno}",
                "bytes_per_call": stat.size_diff / calls,
                "objects_per_call": stat.count_diff / calls,
            }
        )
    return rows


async def _in_process(calls: int, samples: list[dict[str, Any]]) -> None:
    from trio_sip.testing import FakeNetwork
    from trio_sip.ua import open_user_agent

    net = FakeNetwork()
    up = 0
    all_up, release = trio.Event(), trio.Event()
    setups = trio.Semaphore(16)
    failed: list[BaseException] = []

    async def one(ua: Any, destination: str) -> None:
        nonlocal up
        held = True
        await setups.acquire()
        try:
            async with ua.call(destination) as call:
                await call.wait_answered()
                setups.release()
                held = False
                up += 1
                if up == calls:
                    all_up.set()
                await release.wait()
        except Exception as exc:
            failed.append(exc)
            if len(failed) == 1 or up + len(failed) == calls:
                all_up.set()
        finally:
            if held:
                setups.release()

    async with trio.open_nursery() as servers:
        await servers.start(serve_ua, UAS, 5060, net.backend(UAS))
        async with open_user_agent(
            [("UDP", UAC, 5060)], aor=f"sip:alice@{UAC}", backend=net.backend(UAC)
        ) as alice:
            net.captured.clear()
            samples.append(_sample("before the first call", 0))
            async with trio.open_nursery() as callers:
                for _ in range(calls):
                    callers.start_soon(one, alice, f"sip:bench@{UAS}:5060")
                while not all_up.is_set():
                    with trio.move_on_after(1):
                        await all_up.wait()
                    net.captured.clear()
                if failed:
                    raise RuntimeError(f"{len(failed)} calls failed, first: {failed[0]!r}")
                net.captured.clear()
                samples.append(_sample("every call up", up))
                await trio.sleep(SETTLE_S)
                net.captured.clear()
                samples.append(_sample(f"{SETTLE_S:g} s later (transactions ended)", up))
                callers.cancel_scope.cancel()  # the calls are abandoned, not hung up
            servers.cancel_scope.cancel()


def measure_in_process(calls: int, *, trace: bool) -> dict[str, Any]:
    """Both agents in this process; with ``trace``, under tracemalloc (about 3x slower)."""
    samples: list[dict[str, Any]] = []
    _snapshots.clear()
    if trace:
        tracemalloc.start(1)
    started = time.monotonic()
    try:
        trio.run(_in_process, calls, samples, clock=trio.testing.MockClock(autojump_threshold=0))
    finally:
        top = _top_sites(calls)
        _snapshots.clear()
        tracemalloc.stop()
    return {"samples": samples, "seconds": time.monotonic() - started, "top_sites": top}


def measure_uas_process(calls: int, rate: float) -> dict[str, Any]:
    """Our ``ua`` UAS in its own process, called by sipp over loopback UDP."""
    argv = ["-m", "benchmarks.peers.trio_sip_uas", "ua"]
    return _uas_process(calls, rate, argv, lambda proc: {"rss": uas_bench.rss_bytes(proc.pid)})


def measure_uas_traced(calls: int, rate: float) -> dict[str, Any]:
    """The same, with the UAS under tracemalloc: its Python heap and allocation sites."""
    with tempfile.TemporaryDirectory(prefix="memory-traced-") as tmp:
        outdir = Path(tmp)
        taken: list[tracemalloc.Snapshot] = []

        def sample(proc: subprocess.Popen[bytes]) -> dict[str, Any]:
            n = len(taken) + 1
            os.kill(proc.pid, signal.SIGUSR1)
            done = outdir / f"done{n}"
            deadline = time.monotonic() + 120
            while not done.exists() and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.2)
            if not done.exists():
                raise RuntimeError("the traced UAS took no snapshot")
            taken.append(tracemalloc.Snapshot.load(str(outdir / f"snap{n}.pickle")))
            return {"traced": int(done.read_text())}

        argv = ["-m", "benchmarks.memory_bench", "traced-uas"]
        result = _uas_process(calls, rate, argv, sample, extra_args=[str(outdir)])
        if len(taken) >= 2 and result.get("samples"):
            up = max(1, result["samples"][-1]["calls"])
            result["top_sites"] = _compare(taken[-1], taken[0], up)
            result["top_sites_peak"] = _compare(taken[1], taken[0], up)
        return result


def _uas_process(
    calls: int,
    rate: float,
    server_argv: list[str],
    sample: Callable[[subprocess.Popen[bytes]], dict[str, Any]],
    *,
    extra_args: list[str] | None = None,
) -> dict[str, Any]:
    """Start the UAS (``server_argv`` HOST PORT LIFETIME ``extra_args``), let sipp set up
    ``calls`` calls and keep them; ``sample(proc)`` at ready, all set up, and SETTLE_S later."""
    sipp, why = uas_bench.find_sipp()
    if sipp is None:
        return {"skipped": why}
    server_core, sipp_core = uas_bench.cores()
    hold_ms = int((calls / rate + SETTLE_S + 120) * 1000)
    lifetime = hold_ms / 1000 + 60
    samples: list[dict[str, Any]] = []
    proc, port = uas_bench.start_server(
        [
            *server_argv,
            uas_bench.HOST,
            str(uas_bench.free_port()),
            f"{lifetime:g}",
            *(extra_args or []),
        ],
        server_core,
    )
    sipp_proc = None
    try:
        time.sleep(1)
        samples.append({"at": "ready", "calls": 0, **sample(proc)})
        with tempfile.TemporaryDirectory(prefix="memory-bench-") as tmp:
            workdir = Path(tmp)
            argv = uas_bench.sipp_argv(
                sipp,
                port,
                workdir,
                rate=rate,
                calls=calls,
                pause_ms=hold_ms,
                extra=["-l", str(calls), "-pause_msg_ign", "-recv_timeout", "30s"],
            )
            out = (workdir / "sipp.out").open("wb")
            sipp_proc = subprocess.Popen(
                argv,
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            uas_bench.pin(sipp_proc.pid, sipp_core)
            deadline = time.monotonic() + calls / rate * 3 + 60
            stats: dict[str, float] = {}
            while time.monotonic() < deadline and sipp_proc.poll() is None:
                time.sleep(1)
                try:
                    stats = uas_bench.sipp_stats(workdir / "stat.csv")
                except (OSError, IndexError):
                    continue
                if stats.get("TotalCallCreated", 0) >= calls:
                    break
            time.sleep(3)  # the last calls' 200/ACK
            stats = uas_bench.sipp_stats(workdir / "stat.csv")
            up = int(stats.get("CurrentCall", 0))
            failed = int(stats.get("FailedCall(C)", 0))
            samples.append({"at": "sipp set up every call", "calls": up, **sample(proc)})
            time.sleep(SETTLE_S)
            stats = uas_bench.sipp_stats(workdir / "stat.csv")
            samples.append(
                {
                    "at": f"{SETTLE_S:g} s later (transactions ended)",
                    "calls": int(stats.get("CurrentCall", 0)),
                    **sample(proc),
                }
            )
            retrans = int(stats.get("Retransmissions(C)", 0))
            uas_bench.stop(sipp_proc, grace=2)
            out.close()
    finally:
        if sipp_proc is not None:
            uas_bench.stop(sipp_proc, grace=2)
        uas_bench.stop(proc)
    return {"samples": samples, "failed_calls": failed, "retransmissions": retrans, "rate": rate}


def _per_call(samples: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    base = samples[0][key]
    rows = []
    for s in samples[1:]:
        if s.get(key) is None or base is None or not s["calls"]:
            continue
        growth = s[key] - base
        rows.append(
            {"at": s["at"], "calls": s["calls"], "growth": growth, "per_call": growth / s["calls"]}
        )
    return rows


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    only = {s.strip().lower() for s in (getattr(args, "only", None) or "").split(",") if s.strip()}
    result: dict[str, Any] = {"calls": CALLS, "target_bytes": TARGET_BYTES}
    if only and "trio-sip" not in only:
        print("memory benchmark: trio-sip only; skipped by --only")
        return {"skipped": "--only"}
    print(
        f"Memory for {CALLS:,} concurrent established calls (trio-sip), growth over the idle agent"
    )
    for key, calls, trace in (
        ("in_process", CALLS, False),
        ("in_process_traced", TRACED_CALLS, True),
    ):
        try:
            result[key] = measure_in_process(calls, trace=trace)
        except RuntimeError as exc:
            result[key] = {"error": str(exc)}
    for key, measure, calls in (
        ("uas_process", measure_uas_process, CALLS),
        ("uas_process_traced", measure_uas_traced, TRACED_CALLS),
    ):
        try:
            result[key] = measure(calls, RATE)
        except (RuntimeError, OSError) as exc:
            result[key] = {"error": f"{type(exc).__name__}: {exc}"}
    _report(result)
    print(f"({time.monotonic() - started:.0f} s)")
    return result


def _mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


def _report(result: dict[str, Any]) -> None:
    print(f"{'where':<30} {'measure':<11} {'at':<36} {'calls':>7} {'growth':>10} {'per call':>10}")
    verdicts = []
    for where, title, keys in (
        ("in_process", "UAC+UAS, FakeNetwork", ("rss",)),
        ("in_process_traced", "UAC+UAS, FakeNetwork, traced", ("traced",)),
        ("uas_process", "UAS process, sipp, UDP", ("rss",)),
        ("uas_process_traced", "UAS process, sipp, traced", ("traced",)),
    ):
        part = result.get(where, {})
        if "skipped" in part or "error" in part:
            print(f"{title:<30} {part.get('skipped') or 'ERROR: ' + part['error']}")
            continue
        if "samples" not in part:
            continue
        part["per_call"] = {}
        for key in keys:
            rows = _per_call(part["samples"], key)
            part["per_call"][key] = rows
            for row in rows:
                print(
                    f"{title:<30} {key:<11} {row['at']:<36} {row['calls']:>7} "
                    f"{_mb(row['growth']):>10} {row['per_call']:>8,.0f} B"
                )
        if where == "uas_process" and part["per_call"]["rss"]:
            worst = max(row["per_call"] for row in part["per_call"]["rss"])
            at_target = worst * result["calls"]
            verdict = "MET" if at_target < result["target_bytes"] else "MISSED"
            verdicts.append(
                f"UAS process: {_mb(at_target)} for {result['calls']:,} calls (worst sample); "
                f"target < {_mb(result['target_bytes'])}: {verdict}"
            )
            if part.get("failed_calls") or part.get("retransmissions"):
                verdicts.append(
                    f"  (sipp: {part['failed_calls']} failed calls, "
                    f"{part['retransmissions']} retransmissions)"
                )
    for where, key, title in (
        ("in_process_traced", "top_sites", "steady state, UAC+UAS, traced run"),
        ("uas_process_traced", "top_sites_peak", "every call set up, UAS process, traced run"),
        ("uas_process_traced", "top_sites", "steady state, UAS process, traced run"),
    ):
        top = result.get(where, {}).get(key)
        if top:
            print(f"largest allocation sites ({title}):")
            for row in top[:10]:
                print(f"  {row['bytes_per_call']:>7,.0f} B/call  {row['site']}")
    for line in verdicts:
        print(line)


def _dump_snapshot(outdir: str, n: int) -> None:
    gc.collect()
    tracemalloc.take_snapshot().dump(os.path.join(outdir, f"snap{n}.pickle"))
    Path(outdir, f"done{n}").write_text(str(tracemalloc.get_traced_memory()[0]))


def _traced_uas(host: str, port: int, lifetime: float, outdir: str) -> None:
    """The ``ua`` UAS under tracemalloc: on SIGUSR1, ``gc.collect()``, then the snapshot goes
    to OUTDIR/snapN.pickle and the traced bytes to OUTDIR/doneN (written last)."""
    tracemalloc.start(1)
    taken = 0

    async def snapshots() -> None:
        nonlocal taken
        with trio.open_signal_receiver(signal.SIGUSR1) as signals:
            async for _ in signals:
                taken += 1
                _dump_snapshot(outdir, taken)  # blocks the UAS on purpose: a still picture

    async def main() -> None:
        with trio.move_on_after(lifetime):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(snapshots)
                bound = await nursery.start(serve_ua, host, port)
                print(f"READY {bound}", flush=True)

    trio.run(main)


if __name__ == "__main__":
    if sys.argv[1:2] == ["traced-uas"]:
        _traced_uas(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5])
    else:
        run(argparse.Namespace(seconds=2.0, only=None))
