"""Accepted connections are bounded (issue #10): caps in total and per source, the TLS
handshake, slowloris and first-message timeouts, idle closing. Virtual time, FakeNetwork."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing
import trustme

from trio_sip import Limits
from trio_sip.proto.message import Request
from trio_sip.testing import FakeNetwork, make_request
from trio_sip.transports import Flow, TransportConfig, TransportLayer

SERVER = "10.0.0.2"
A, C, D = "10.0.0.1", "10.0.0.3", "10.0.0.4"


class Received:
    """on_message: the requests the server got, with their flows."""

    def __init__(self) -> None:
        self.items: list[tuple[Request, Flow]] = []

    def __call__(self, message: object, flow: Flow) -> None:
        assert isinstance(message, Request)
        self.items.append((message, flow))


@asynccontextmanager
async def server(
    net: FakeNetwork,
    limits: Limits | None = None,
    config: TransportConfig | None = None,
    transport: str = "TCP",
) -> AsyncIterator[tuple[TransportLayer, Received]]:
    received = Received()
    async with (
        net.open_layer(SERVER, received, limits=limits, config=config) as layer,
        trio.open_nursery() as nursery,
    ):
        await nursery.start(layer.listen, transport, SERVER, 5060)
        yield layer, received
        nursery.cancel_scope.cancel()


async def closed_by_server(stream: trio.abc.Stream) -> bool:
    """Read until the server closes (True) or sends something (False)."""
    return await stream.receive_some(65536) == b""


async def wait_until(predicate: Callable[[], bool], limit: float = 600) -> float:
    """Virtual seconds until ``predicate()`` holds (bounded)."""
    start = trio.current_time()
    with trio.fail_after(limit):
        while not predicate():
            await trio.sleep(0.01)
    return trio.current_time() - start


async def test_connections_over_the_caps_are_closed_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    limits = Limits(max_connections=3, max_connections_per_source=2)
    async with server(net, limits) as (layer, received):
        a1 = await net.backend(A).connect_tcp(SERVER, 5060)
        a2 = await net.backend(A).connect_tcp(SERVER, 5060)
        a3 = await net.backend(A).connect_tcp(SERVER, 5060)  # third from A: over 2 per source
        with trio.fail_after(1):
            assert await closed_by_server(a3)
        c1 = await net.backend(C).connect_tcp(SERVER, 5060)
        d1 = await net.backend(D).connect_tcp(SERVER, 5060)  # fourth in all: over 3
        with trio.fail_after(1):
            assert await closed_by_server(d1)
        assert layer.counters["connections_refused"] == 2
        # The admitted ones carry messages.
        for stream in (a1, a2, c1):
            await stream.send_all(bytes(make_request("TCP")))
        await wait_until(lambda: len(received.items) == 3)
        # A connection that ends frees its place.
        await c1.aclose()
        await wait_until(lambda: len(layer.flows) == 2)
        d2 = await net.backend(D).connect_tcp(SERVER, 5060)
        await d2.send_all(bytes(make_request("TCP")))
        await wait_until(lambda: len(received.items) == 4)
        assert layer.counters["connections_refused"] == 2


async def test_slowloris_is_closed_after_message_read_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    async with server(net) as (layer, received):
        stream = await net.backend(A).connect_tcp(SERVER, 5060)
        data = bytes(make_request("TCP"))
        await stream.send_all(data)  # one whole message: the first-message clock stops
        await wait_until(lambda: len(received.items) == 1)
        # Then a byte a second: the connection is never idle, but the message never ends.
        start = trio.current_time()
        closed = trio.Event()

        async def watch() -> None:
            await closed_by_server(stream)
            closed.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            for byte in data[:-1]:
                if closed.is_set():
                    break
                await stream.send_all(bytes([byte]))
                await trio.sleep(1)
        took = trio.current_time() - start
        assert 30 <= took <= 32  # Limits.message_read_timeout (30 s) from the first byte
        assert layer.counters["message_read_timeouts"] == 1
        assert len(received.items) == 1 and layer.flows == []


async def test_slow_message_within_the_timeout_and_keepalives_are_fine(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    async with server(net, Limits(message_read_timeout=10)) as (layer, received):
        stream = await net.backend(A).connect_tcp(SERVER, 5060)
        data = bytes(make_request("TCP"))
        for i in range(0, len(data), len(data) // 8 + 1):  # 9 pieces, 1 s apart: 8 s in all
            await stream.send_all(data[i : i + len(data) // 8 + 1])
            await trio.sleep(1)
        await wait_until(lambda: len(received.items) == 1)
        # Keep-alives between messages do not start the clock: 60 s of pings, 5 s apart.
        for _ in range(12):
            await stream.send_all(b"\r\n\r\n")
            assert await stream.receive_some(10) == b"\r\n"  # the pong
            await trio.sleep(5)
        assert layer.counters["message_read_timeouts"] == 0 and len(layer.flows) == 1


async def test_connection_sending_nothing_is_closed_after_first_message_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    limits = Limits(first_message_timeout=5)
    async with server(net, limits) as (layer, _received):
        start = trio.current_time()
        idle = await net.backend(A).connect_tcp(SERVER, 5060)
        talker = await net.backend(C).connect_tcp(SERVER, 5060)
        await talker.send_all(bytes(make_request("TCP")))
        with trio.fail_after(60):
            assert await closed_by_server(idle)
        assert trio.current_time() - start == pytest.approx(5, abs=0.1)
        assert layer.counters["first_message_timeouts"] == 1
        await trio.sleep(30)  # the one that sent a message stays (until it is idle: 120 s)
        assert [flow.remote[0] for flow in layer.flows] == [C]


async def test_idle_timeout_closes_accepted_connections(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    async with server(net, config=TransportConfig(idle_timeout=60)) as (layer, received):
        stream = await net.backend(A).connect_tcp(SERVER, 5060)
        await stream.send_all(bytes(make_request("TCP")))
        await wait_until(lambda: len(received.items) == 1)
        sent = trio.current_time()
        with trio.fail_after(600):
            assert await closed_by_server(stream)
        assert trio.current_time() - sent == pytest.approx(60, abs=0.1)
        assert layer.flows == []


async def test_stalled_tls_handshake_is_closed(autojump_clock: trio.testing.MockClock) -> None:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(SERVER).configure_cert(context)
    net = FakeNetwork()
    config = TransportConfig(server_ssl_context=context)
    async with server(net, config=config, transport="TLS") as (layer, _received):
        start = trio.current_time()
        silent = await net.backend(A).connect_tcp(SERVER, 5060)  # connects, never says hello
        trickle = await net.backend(C).connect_tcp(SERVER, 5060)
        await trickle.send_all(b"\x16\x03\x01")  # the start of a ClientHello, then nothing
        with trio.fail_after(60):
            assert await closed_by_server(silent)
            assert trio.current_time() - start == pytest.approx(10, abs=0.1)  # the default
            assert await closed_by_server(trickle)
        await wait_until(lambda: layer.counters["tls_handshake_timeouts"] == 2, 1)
        # The caps count connections in their handshake, and free them when they end.
        assert layer._gate.open == 0


async def test_header_block_over_the_limit_gets_513_and_close(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    limits = Limits(max_message_size=8192, max_header_section=4096, max_body_size=4096)
    async with server(net, limits) as (layer, received):
        stream = await net.backend(A).connect_tcp(SERVER, 5060)
        head = bytes(make_request("TCP")).split(b"\r\n\r\n")[0]
        await stream.send_all(head + b"\r\nX-Big: " + b"a" * 20_000)
        answer = b""
        with trio.fail_after(10):
            while chunk := await stream.receive_some(65536):
                answer += chunk
        assert answer.startswith(b"SIP/2.0 513 Message Too Large\r\n")
        assert layer.counters["messages_too_large"] == 1 and received.items == []
