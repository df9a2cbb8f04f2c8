"""A connection flood and slowloris against ``trio-sip serve --transport TCP`` (issue #10;
``nox -s attack``), with the default limits.

From 16 loopback sources, one after the other, the test opens 80 connections each (the cap is
64 per source: the rest must be closed at once; at no time may a source hold more than 64),
and every admitted connection starts a request, then trickles one byte a second, never
finishing it (slowloris). Meanwhile a legitimate client on another address must be answered.
Every trickling connection must be closed by the server once ``message_read_timeout`` (30 s)
has passed since its first byte. Figures are printed.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import trio

from trio_sip import Limits

from ..interop.peers import free_port

pytestmark = pytest.mark.attack

REPO = Path(__file__).resolve().parent.parent.parent
SERVER, LEGIT = "127.0.0.1", "127.0.0.250"
SOURCES = [f"127.0.1.{n}" for n in range(1, 17)]
PER_SOURCE = 80
#: Seconds the 1,280 connections may take to open (a shared, loaded machine is slow at it).
OPENING = 60.0
HEAD = b"OPTIONS sip:serve@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP "


def options(n: int) -> bytes:
    return (
        f"OPTIONS sip:serve@{SERVER} SIP/2.0\r\nVia: SIP/2.0/TCP {LEGIT}:5060;branch=z9hG4bKl{n}"
        f"\r\nMax-Forwards: 70\r\nFrom: <sip:l@{LEGIT}>;tag=l{n}\r\nTo: <sip:serve@{SERVER}>\r\n"
        f"Call-ID: legit{n}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def max_open_per_source(spans: list[tuple[str, float, float]], shortest: float) -> int:
    """The most connections of one source open at once, counting those that lasted at least
    ``shortest`` seconds (the others were refused at once)."""
    events: list[tuple[str, float, int]] = []
    for source, opened, closed in spans:
        if closed - opened >= shortest:
            events += [(source, opened, 1), (source, closed, -1)]
    most = 0
    open_now: Counter[str] = Counter()
    for source, _, step in sorted(events, key=lambda e: (e[1], e[2])):
        open_now[source] += step
        most = max(most, open_now[source])
    return most


async def connect(source: str, port: int) -> trio.SocketStream:
    """A TCP connection to SERVER:port from ``source`` (no name resolution, no thread)."""
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        await sock.bind((source, 0))
        await sock.connect((SERVER, port))
    except BaseException:
        sock.close()
        raise
    return trio.SocketStream(sock)


async def legit_round_trip(port: int, n: int) -> float:
    start = trio.current_time()
    stream = await connect(LEGIT, port)
    try:
        await stream.send_all(options(n))
        answer = await stream.receive_some(65536)
        assert answer.startswith(b"SIP/2.0 200"), answer[:60]
    finally:
        await stream.aclose()
    return trio.current_time() - start


async def test_connection_flood_and_slowloris_are_reaped() -> None:
    limits = Limits()
    timeout = limits.message_read_timeout
    port = free_port(SERVER)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    server = await trio.lowlevel.open_process(
        [sys.executable, "-m", "trio_sip", "serve", "--listen", f"{SERVER}:{port}",
         "--transport", "TCP", "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    # Per connection: its source and how long after its first byte the server closed it.
    closed: list[tuple[str, float]] = []
    spans: list[tuple[str, float, float]] = []  # (source, opened, closed) of each
    legit: list[float] = []
    opening = 0.0
    try:
        with trio.fail_after(20):
            while True:  # wait for the listener
                try:
                    legit.append(await legit_round_trip(port, 0))
                    break
                except OSError:
                    await trio.sleep(0.1)

        async def slowloris(source: str, task_status: trio.TaskStatus[None]) -> None:
            stream = await connect(source, port)
            first = trio.current_time()
            task_status.started()
            # A request starts, then goes on a byte a second (bounded: 2 x the timeout).
            for data in [HEAD] + [b"x"] * int(2 * timeout):
                try:
                    await stream.send_all(data)
                    with trio.move_on_after(1.0):
                        if await stream.receive_some(10) == b"":
                            break
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    break
            closed.append((source, trio.current_time() - first))
            spans.append((source, first, trio.current_time()))
            await stream.aclose()

        # Bounded: the opening (OPENING s at most; slower on a loaded machine), then each
        # connection's trickle (2 x the timeout at most), then a margin.
        with trio.fail_after(OPENING + 2 * timeout + 15):
            async with trio.open_nursery() as nursery:
                start = time.monotonic()
                with trio.fail_after(OPENING):
                    for source in SOURCES:  # each source's connections in one go
                        for _ in range(PER_SOURCE):
                            await nursery.start(slowloris, source)
                opening = time.monotonic() - start
                print(
                    f"\nATTACK connections: {len(spans)} closed while opening;"
                    f" all {len(SOURCES) * PER_SOURCE} opened in {opening:.1f} s"
                )
                for n in range(1, 6):  # the server still serves others meanwhile
                    await trio.sleep(2.0)
                    legit.append(await legit_round_trip(port, n))
    finally:
        server.terminate()
        with trio.move_on_after(10):
            await server.wait()
    cap = limits.max_connections_per_source
    # Closed well before the timeout: refused at once (over the cap); the others: reaped.
    refused = [(src, t) for src, t in closed if t < timeout / 2]
    reaped = [(src, t) for src, t in closed if t >= timeout / 2]
    print(
        f"\nATTACK connections: {len(closed)} opened from {len(SOURCES)} sources in"
        f" {opening:.1f} s; {len(refused)} closed at once (over {cap} per source), after"
        f" {max((t for _, t in refused), default=0) * 1000:.0f} ms at most; {len(reaped)}"
        f" slowloris connections reaped {min(t for _, t in reaped):.1f}.."
        f"{max(t for _, t in reaped):.1f} s after their first byte (message_read_timeout"
        f" {timeout:g} s); legitimate OPTIONS answered in {max(legit) * 1000:.0f} ms at most"
    )
    assert len(closed) == len(SOURCES) * PER_SOURCE
    assert max_open_per_source(spans, timeout / 2) <= cap
    assert len(refused) == len(SOURCES) * (PER_SOURCE - cap)
    assert timeout - 1 <= min(t for _, t in reaped) and max(t for _, t in reaped) <= timeout + 5
    assert max(legit) < 10.0  # answered (the machine is shared: no tight bound here)
