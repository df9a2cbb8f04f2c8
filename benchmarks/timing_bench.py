"""Real-socket timing: the figures the tests leave to benchmarks (issue #18).

The default test suite asserts time-based behaviour in virtual time (``autojump_clock`` and the
in-memory ``FakeNetwork``: exact instants), and on real loopback sockets only order, presence
and generous bounds (10x), because a loaded machine stretches every wall-clock figure. How
close the real figures come to the virtual ones is measured here (``python -m benchmarks
timing``), on loopback, with the public API:

* **keep-alive period**: ``KeepAlives.send_sip_keepalive`` every 0.1 s to a plain UDP socket;
  the gaps between arrivals (tests/shell/test_keepalive.py, test_endpoint_keepalive.py).
* **pong**: a CRLFCRLF ping to our TCP listener, until its CRLF pong is back.
* **pong timeout**: ``KeepAlives.watch_flow(flow, 0.1, pong_timeout=0.5)`` on a connection to a
  peer that reads but never answers: from the ping's arrival at the peer to the flow's failure
  (0.5 s in virtual time).
* **idle close**: ``TransportConfig(idle_timeout=0.2)``: from our last send to the close.
* **ICMP refusal**: a datagram from the listening socket to a port nothing listens on, until
  the flow has failed (the raw mechanism: ``python -m benchmarks udpbind``; what it adds to a
  request through failover: ``python -m benchmarks failover``).
* **first OPTIONS**: ``stack.request`` to a server over UDP, a new TCP connection and a new TLS
  connection (handshake included; needs ``trustme``), answered 200.

Each row: median, 95th percentile and max over its runs, and for the timers the overshoot past
the configured value. Benchmarks report; nothing here fails the run.
"""

from __future__ import annotations

import argparse
import itertools
import socket
import ssl
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from trio_sip.keepalive import KeepAlives
from trio_sip.proto.message import Request
from trio_sip.proto.target import Target
from trio_sip.stack import IncomingRequest, open_stack
from trio_sip.transports import TransportConfig, open_transport_layer

HOST = "127.0.0.1"
PERIOD = 0.1
PONG_TIMEOUT = 0.5
IDLE_TIMEOUT = 0.2


def _dead_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
    return port


def _options(n: int, port: int) -> Request:
    return Request(
        "OPTIONS",
        f"sip:bench@{HOST}:{port}",
        [
            ("Max-Forwards", "70"),
            ("From", "<sip:ua@bench.test>;tag=t1"),
            ("To", "<sip:bench@bench.test>"),
            ("Call-ID", f"timing-bench-{n}"),
            ("CSeq", "1 OPTIONS"),
        ],
    )


async def _keepalive_gaps(count: int) -> list[float]:
    receiver = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await receiver.bind((HOST, 0))
    port = receiver.getsockname()[1]
    arrivals: list[float] = []
    async with open_transport_layer() as layer, trio.open_nursery() as nursery:
        await nursery.start(layer.listen, "UDP", HOST, 0)
        keepalives = KeepAlives(layer, nursery)
        await keepalives.send_sip_keepalive(HOST, port, True, PERIOD)
        while len(arrivals) < count + 1:
            await receiver.recvfrom(100)
            arrivals.append(trio.current_time())
        nursery.cancel_scope.cancel()
    receiver.close()
    return [b - a for a, b in itertools.pairwise(arrivals)]


async def _pong_round_trips(count: int) -> list[float]:
    out: list[float] = []
    async with open_transport_layer() as server, trio.open_nursery() as nursery:
        address = await nursery.start(server.listen, "TCP", HOST, 0)
        stream = await trio.open_tcp_stream(*address)
        for _ in range(count):
            start = trio.current_time()
            await stream.send_all(b"\r\n\r\n")
            if await stream.receive_some(10) != b"\r\n":
                raise RuntimeError("no pong")
            out.append(trio.current_time() - start)
        await stream.aclose()
        nursery.cancel_scope.cancel()
    return out


async def _pong_timeout_once() -> float:
    """From the ping's arrival at a silent peer to the flow's failure."""
    pinged: list[float] = []

    async def silent(stream: trio.SocketStream) -> None:
        while data := await stream.receive_some(100):
            if b"\r\n\r\n" in data:
                pinged.append(trio.current_time())

    listeners = await trio.open_tcp_listeners(0, host=HOST)
    port = listeners[0].socket.getsockname()[1]
    async with open_transport_layer() as client, trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, silent, listeners)
        flow = await client.connect(Target("TCP", HOST, port))
        keepalives = KeepAlives(client, nursery)
        await keepalives.watch_flow(flow, PERIOD, pong_timeout=PONG_TIMEOUT)
        await flow.wait_failed()
        failed = trio.current_time()
        nursery.cancel_scope.cancel()
    return failed - pinged[-1]


async def _idle_close_once() -> float:
    async with (
        open_transport_layer() as server,
        open_transport_layer(config=TransportConfig(idle_timeout=IDLE_TIMEOUT)) as client,
        trio.open_nursery() as nursery,
    ):
        address = await nursery.start(server.listen, "TCP", HOST, 0)
        flow = await client.connect(Target("TCP", *address))
        start = trio.current_time()
        await flow.send(b"\r\n")
        await flow.wait_failed()
        closed = trio.current_time()
        nursery.cancel_scope.cancel()
    return closed - start


async def _icmp_refusal_once() -> float:
    dead = _dead_port()
    async with open_transport_layer() as layer, trio.open_nursery() as nursery:
        await nursery.start(layer.listen, "UDP", HOST, 0)
        flow = await layer.connect(Target("UDP", HOST, dead))
        start = trio.current_time()
        await flow.send(b"OPTIONS sip:x SIP/2.0\r\n\r\n")
        await flow.wait_failed()
        took = trio.current_time() - start
        nursery.cancel_scope.cancel()
    return took


def _tls_config() -> TransportConfig | str:
    try:
        import trustme
    except ImportError as exc:
        return f"unavailable: {exc} (pip install trustme)"
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOST).configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return TransportConfig(server_ssl_context=server, client_ssl_context=client)


async def _first_options(transport: str, config: TransportConfig, count: int) -> list[float]:
    async def ok(incoming: IncomingRequest) -> None:
        await incoming.respond(200)

    out: list[float] = []
    async with open_stack([(transport, HOST, 0)], handler=ok, transport_config=config) as server:
        port = server.listening[0][1][1]
        for n in range(count):
            # A new client each time: a new connection (and TLS handshake) per request.
            async with open_stack([(transport, HOST, 0)], transport_config=config) as client:
                start = trio.current_time()
                response = await client.request(_options(n, port), Target(transport, HOST, port))
                out.append(trio.current_time() - start)
                if response.status_code != 200:
                    raise RuntimeError(f"unexpected {response}")
    return out


async def _repeat(once: Callable[[], Awaitable[float]], count: int) -> list[float]:
    return [await once() for _ in range(count)]


async def _bench(runs: int) -> dict[str, Any]:
    rows: dict[str, dict[str, Any]] = {}

    def row(name: str, values: list[float], expected: float | None, what: str) -> None:
        ordered = sorted(values)
        rows[name] = {
            "what": what,
            "expected_s": expected,
            "median_s": statistics.median(ordered),
            "p95_s": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
            "max_s": ordered[-1],
            "runs": len(ordered),
        }

    with trio.fail_after(600):
        row(
            "keep-alive period",
            await _keepalive_gaps(max(20, runs)),
            PERIOD,
            "gap between CRLFs at the receiver",
        )
        row("pong", await _pong_round_trips(max(50, runs)), None, "ping -> pong, TCP listener")
        row(
            "pong timeout",
            await _repeat(_pong_timeout_once, max(3, runs // 4)),
            PONG_TIMEOUT,
            "ping at a silent peer -> flow failed",
        )
        row(
            "idle close",
            await _repeat(_idle_close_once, max(3, runs // 4)),
            IDLE_TIMEOUT,
            "last send -> flow closed",
        )
        row(
            "ICMP refusal",
            await _repeat(_icmp_refusal_once, max(10, runs)),
            None,
            "datagram sent -> flow failed",
        )
        tls = _tls_config()
        for transport in ("UDP", "TCP", "TLS"):
            if transport == "TLS" and isinstance(tls, str):
                rows["first OPTIONS, TLS"] = {"what": tls, "runs": 0}
                continue
            config = tls if transport == "TLS" and not isinstance(tls, str) else TransportConfig()
            row(
                f"first OPTIONS, {transport}",
                await _first_options(transport, config, max(10, runs // 2)),
                None,
                {
                    "UDP": "request -> 200, a new client stack",
                    "TCP": "request -> 200, new connection",
                    "TLS": "request -> 200, new connection and handshake",
                }[transport],
            )
    return {"rows": rows}


def _fmt(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.2f} ms" if seconds < 1 else f"{seconds:.3f} s"


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure, print the table, return the numbers."""
    runs = max(10, int(20 * getattr(args, "seconds", 2.0) / 2))
    started = time.monotonic()
    result = trio.run(_bench, runs)
    print("Real-socket timing on loopback (the tests assert these in virtual time)")
    print(f"{'':<20} {'expected':>10} {'median':>10} {'p95':>10} {'max':>10}  what")
    for name, r in result["rows"].items():
        if not r["runs"]:
            print(f"{name:<20} {r['what']}")
            continue
        print(
            f"{name:<20} {_fmt(r['expected_s']):>10} {_fmt(r['median_s']):>10} "
            f"{_fmt(r['p95_s']):>10} {_fmt(r['max_s']):>10}  {r['what']} ({r['runs']} runs)"
        )
    print(f"({time.monotonic() - started:.1f} s)")
    return result
