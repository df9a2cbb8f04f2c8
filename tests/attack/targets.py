"""The wire fuzzer's targets, each run as its own process (tests/attack/process.py starts them).

``python -m tests.attack.targets serve ARGS...`` is ``trio-sip serve ARGS...`` (the CLI's own
``main``), ``python -m tests.attack.targets proxy --listen HOST:PORT --domain D --user U:P ...
[--trusted NET ...]`` a proxy/registrar made with ``open_proxy`` on UDP and TCP. What they add
to the production program, and nothing else:

* logging at INFO to stderr (``LEVEL logger message``), as a deployment would configure it, so
  the fault lines ("fault KIND ... [N so far]") can be read and any traceback seen;
* on SIGUSR1 (stats requested) they write one JSON object to ``$TRIO_SIP_FUZZ_STATS``: the
  faults by kind, the stack's (and the site's) statistics, the live calls, and VmRSS and open
  file descriptors measured after ``gc.collect()`` and ``malloc_trim(0)``.

The fault isolation is in production mode (``TRIO_SIP_STRICT`` unset or 0: the process starts
with it set to 0 by the fuzzer), since the point is what a deployed server does.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import gc
import json
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

STATS_ENV = "TRIO_SIP_FUZZ_STATS"


def settled_memory() -> dict[str, int]:
    """VmRSS and its peak VmHWM (KiB), the open descriptors and the memory blocks Python has
    allocated (what a leak of objects grows, whatever the allocator keeps of its high-water
    mark), after a full collection and ``malloc_trim(0)``."""
    gc.collect()
    with contextlib.suppress(OSError):  # not glibc
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status if ":" in line)
    rss, peak = (int(fields[k].split()[0]) for k in ("VmRSS", "VmHWM"))
    fds = len(os.listdir("/proc/self/fd"))
    return {"rss_kb": rss, "peak_rss_kb": peak, "fds": fds, "blocks": sys.getallocatedblocks()}


def _objects() -> dict[str, Any]:
    """The most numerous object types (what a leak would hold), with ``TRIO_SIP_FUZZ_OBJECTS``."""
    if not os.environ.get("TRIO_SIP_FUZZ_OBJECTS"):
        return {}
    counts = collections.Counter(type(o).__name__ for o in gc.get_objects())
    out: dict[str, Any] = {"objects": dict(counts.most_common(25))}
    import tracemalloc

    if tracemalloc.is_tracing():
        stats = tracemalloc.take_snapshot().statistics("lineno")
        out["traced_kb"] = sum(s.size for s in stats) // 1024
        out["top_allocations"] = [
            f"{s.size // 1024} KiB {s.count} {s.traceback}" for s in stats[:15]
        ]
    return out


def _install_stats(collect: Callable[[], dict[str, Any]]) -> None:
    path = os.environ.get(STATS_ENV)

    def dump(signum: int, frame: object) -> None:
        if not path:
            return
        try:
            data = {**collect(), **settled_memory(), **_objects()}
        except Exception as exc:
            data = {"error": repr(exc)}
        with open(path + ".tmp", "w") as out:
            json.dump(data, out, default=str)
        os.replace(path + ".tmp", path)

    signal.signal(signal.SIGUSR1, dump)


def _logging() -> None:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s"
    )


def run_serve(argv: list[str]) -> int:
    """``trio-sip serve`` with the additions of the module docstring."""
    import trio_sip.cli.serve as serve
    from trio_sip.cli import main

    agents: list[Any] = []
    real = serve.open_user_agent

    @asynccontextmanager
    async def keeping(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        async with real(*args, **kwargs) as ua:
            agents.append(ua)
            yield ua

    def collect() -> dict[str, Any]:
        if not agents:
            return {}
        ua = agents[0]
        return {
            "faults": ua.stack.faults.counts,
            "stack": attrs.asdict(ua.stack.statistics()),
            "calls": len(ua.calls),
            "media_ports_in_use": ua.media_ports.in_use,
            "transactions_sample": [repr(t) for t in list(ua.stack._live.values())[:8]],
            "calls_sample": [
                f"{c!r} remote_seq={getattr(c.dialog, 'remote_seq', None)}" for c in ua.calls[:8]
            ],
        }

    serve.open_user_agent = keeping  # type: ignore[assignment]
    _logging()
    _install_stats(collect)
    return main(["serve", *argv])


async def _proxy(
    listen: tuple[str, int],
    domain: str,
    users: dict[str, str],
    trusted: list[str],
    t1_ms: int | None,
) -> None:
    from trio_sip.proto.location import LocationService
    from trio_sip.proto.timers import TimerConfig
    from trio_sip.proxy import open_proxy

    timers = None if t1_ms is None else TimerConfig(t1_ms / 1000, 8 * t1_ms / 1000, t1_ms / 100)

    host, port = listen
    location = LocationService()
    async with open_proxy(
        [("UDP", host, port), ("TCP", host, port)],
        domain=domain,
        location_service=location,
        credentials=users,
        trusted=trusted,
        timer_config=timers,
    ) as site:

        def collect() -> dict[str, Any]:
            stats = attrs.asdict(site.statistics())
            live = [repr(t) for t in list(site.stack._live.values())[:8]]
            if os.environ.get("TRIO_SIP_FUZZ_OBJECTS"):
                live += [
                    bytes(t.request).decode("utf-8", "replace")[:2000]
                    for t in list(site.stack._live.values())[:3]
                ]
            return {
                "faults": site.stack.faults.counts,
                "stack": stats.pop("stack"),
                "proxy": stats,
                "transactions_sample": live,
            }

        _install_stats(collect)
        for transport, (h, p) in site.listening:
            print(f"serving on {transport.lower()}:{h}:{p}", flush=True)
        await trio.sleep_forever()


def run_proxy(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="targets proxy")
    parser.add_argument("--listen", required=True, metavar="HOST:PORT")
    parser.add_argument("--domain", required=True)
    parser.add_argument("--user", action="append", default=[], metavar="NAME:PASSWORD")
    parser.add_argument("--trusted", action="append", default=[], metavar="NET")
    parser.add_argument("--t1-ms", type=int, default=None, help="T1 (T2, T4: 8 and 10 times)")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    users = dict(u.split(":", 1) for u in args.user)
    _logging()
    try:
        trio.run(_proxy, (host, int(port)), args.domain, users, args.trusted, args.t1_ms)
    except KeyboardInterrupt:
        print("proxy: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    if os.environ.get("TRIO_SIP_FUZZ_OBJECTS") == "trace":
        import tracemalloc

        tracemalloc.start()
    command, rest = sys.argv[1], sys.argv[2:]
    sys.exit(run_serve(rest) if command == "serve" else run_proxy(rest))
