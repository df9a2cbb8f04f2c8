"""trio-sip as the UAC of the ``uac`` benchmark: ``python -m benchmarks.peers.trio_sip_uac
HOST PORT RATE CALLS PAUSE [--hold]``.

One ``open_user_agent`` places ``CALLS`` calls to ``sip:service@HOST:PORT`` (sipp's ``uas``
scenario), one started every ``1/RATE`` s, each in its own task as an application would
write it: ``async with ua.call(...)``, ``wait_answered()``, ``PAUSE`` s, leave the block (BYE).
It prints ``READY`` once listening and a ``RESULT {json}`` line at the end: calls answered and
failed, when the first and the last were started, its CPU time.

``--hold``: every answered call stays up; once all are answered (or failed) the agent's RSS and,
under ``TRIO_SIP_TRACE=1``, its tracemalloc heap are sampled (with ``gc.collect()``) then and
``SETTLE`` s later, against a sample taken before the first call; then it exits without
hanging up (the ``uac-memory`` measurement).
"""

from __future__ import annotations

import gc
import os
import sys
import time
import tracemalloc
from typing import Any

import trio

from benchmarks.peers.uac_common import OFFER, cpu, report, rss
from trio_sip.proto.errors import SipError
from trio_sip.proto.sdp import parse_sdp
from trio_sip.ua import open_user_agent

SETTLE = 40.0


def _sample(label: str, calls: int) -> dict[str, Any]:
    gc.collect()
    out: dict[str, Any] = {"at": label, "calls": calls, "rss": rss()}
    if tracemalloc.is_tracing():
        out["traced"] = tracemalloc.get_traced_memory()[0]
        _snapshots.append(tracemalloc.take_snapshot())
    return out


_snapshots: list[tracemalloc.Snapshot] = []


def _top_sites(calls: int, which: int, limit: int = 20) -> list[dict[str, Any]]:
    """The largest allocation sites of snapshot ``which`` against the one before any call."""
    if len(_snapshots) <= which or not calls:
        return []
    rows = []
    for stat in _snapshots[which].compare_to(_snapshots[0], "lineno")[:limit]:
        frame = stat.traceback[0]
        where = frame.filename.split("site-packages/")[-1].split("wp-scale/")[-1]
        rows.append({"site": f"{where}:{frame.lineno}", "bytes_per_call": stat.size_diff / calls})
    return rows


async def main(host: str, port: int, rate: float, calls: int, pause: float, hold: bool) -> None:
    counts = {"answered": 0, "ended": 0, "failed": 0}
    first_error: list[str] = []
    done = trio.Event()
    release = trio.Event()
    offer = parse_sdp(OFFER.format(host="127.0.0.1"))

    def finished() -> None:
        if counts["answered" if hold else "ended"] + counts["failed"] >= calls:
            done.set()

    async def one(ua: Any) -> None:
        try:
            async with ua.call(f"sip:service@{host}:{port}", sdp=offer) as call:
                await call.wait_answered()
                counts["answered"] += 1
                if hold:
                    finished()
                    await release.wait()
                await trio.sleep(pause)
            counts["ended"] += 1
        except SipError as exc:
            counts["failed"] += 1
            if not first_error:
                first_error.append(f"{type(exc).__name__}: {exc}")
        finished()

    async with open_user_agent(
        [("UDP", "127.0.0.1", 0)], aor="sip:bench@127.0.0.1", incoming_queue=16
    ) as ua:
        samples = [_sample("before the first call", 0)] if hold else []
        print("READY", flush=True)
        cpu0 = cpu()
        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            for number in range(calls):
                nursery.start_soon(one, ua)
                await trio.sleep_until(start + (number + 1) / rate)
            last = trio.current_time()
            await done.wait()
            if hold:
                samples.append(_sample("every call answered", counts["answered"]))
                await trio.sleep(SETTLE)
                samples.append(_sample(f"{SETTLE:g} s later", counts["answered"]))
                nursery.cancel_scope.cancel()
        result = {
            **counts,
            "calls": calls,
            "rate": rate,
            "send_seconds": last - start,
            "cpu_s": cpu() - cpu0,
            "wall_s": trio.current_time() - start,
            "first_error": first_error[0] if first_error else None,
        }
        if hold:
            result["samples"] = samples
            result["top_sites"] = _top_sites(counts["answered"], 2)
            result["top_sites_peak"] = _top_sites(counts["answered"], 1)
        report(result)
        if hold:
            os._exit(0)  # the held calls are abandoned, not hung up


if __name__ == "__main__":
    if os.environ.get("TRIO_SIP_TRACE") == "1":
        tracemalloc.start(1)
    args = sys.argv[1:]
    hold = "--hold" in args
    args = [a for a in args if a != "--hold"]
    started = time.monotonic()
    trio.run(main, args[0], int(args[1]), float(args[2]), int(args[3]), float(args[4]), hold)
