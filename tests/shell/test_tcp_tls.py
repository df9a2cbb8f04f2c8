"""TCP and TLS transports on real loopback sockets (port 0, ``fail_after`` around all I/O)."""

from __future__ import annotations

import functools
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trustme

from trio_sip.proto.errors import TransportError
from trio_sip.proto.message import Request, make_response
from trio_sip.proto.target import Target
from trio_sip.testing import check_transport, make_request
from trio_sip.transports import (
    Flow,
    FlowEvent,
    FlowFailed,
    PongReceived,
    TransportConfig,
    TransportLayer,
    open_transport_layer,
    require_tls,
)

from .test_udp import Inbox, needs_ipv6


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_config(ca: trustme.CA) -> TransportConfig:
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return TransportConfig(server_ssl_context=server, client_ssl_context=client)


def opener(config: TransportConfig | None = None) -> functools.partial[object]:
    return functools.partial(open_transport_layer, config=config)


@asynccontextmanager
async def server_and_client(
    transport: str = "TCP", config: TransportConfig | None = None
) -> AsyncIterator[tuple[TransportLayer, TransportLayer, Inbox, Inbox, tuple[str, int]]]:
    server_inbox, client_inbox = Inbox(), Inbox()
    async with (
        open_transport_layer(server_inbox, config=config) as server,
        open_transport_layer(client_inbox, config=config) as client,
        trio.open_nursery() as nursery,
    ):
        address = await nursery.start(server.listen, transport, "127.0.0.1", 0)
        with trio.fail_after(5):
            yield server, client, server_inbox, client_inbox, address
        nursery.cancel_scope.cancel()


async def test_conformance_tcp_ipv4() -> None:
    with trio.fail_after(10):
        await check_transport(open_transport_layer, open_transport_layer, "TCP", "127.0.0.1")


@needs_ipv6
async def test_conformance_tcp_ipv6() -> None:
    with trio.fail_after(10):
        await check_transport(open_transport_layer, open_transport_layer, "TCP", "::1")


async def test_conformance_tls(tls_config: TransportConfig) -> None:
    with trio.fail_after(10):
        await check_transport(opener(tls_config), opener(tls_config), "TLS", "127.0.0.1")  # type: ignore[arg-type]


async def test_ping_is_answered_with_pong_and_pong_reaches_watchers() -> None:
    async with server_and_client() as (_server, client, _si, _ci, address):
        stream = await trio.open_tcp_stream(*address)
        await stream.send_all(b"\r\n\r\n")
        assert await stream.receive_some(10) == b"\r\n"
        await stream.aclose()
        flow = await client.connect(Target("TCP", *address))
        events: list[FlowEvent] = []
        flow.subscribe(events.append)
        await flow.send(b"\r\n\r\n")  # what StreamFlow.send_ping sends
        while not events:
            await trio.sleep(0.01)
        assert isinstance(events[0], PongReceived)
        assert flow.last_pong == events[0].time


MALFORMED = (
    b"INVITE sip:bob@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bKbad\r\n"
    b"From: <sip:alice@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\n"
    b"Call-ID: bad-1\r\nCSeq: 1 INVITE\r\n\r\n"  # no Content-Length: illegal on a stream
)


async def test_malformed_stream_gets_400_then_close_and_server_keeps_running() -> None:
    async with server_and_client() as (_server, client, server_inbox, _ci, address):
        stream = await trio.open_tcp_stream(*address)
        await stream.send_all(MALFORMED)
        received = b""
        while chunk := await stream.receive_some(4096):
            received += chunk
        assert received.startswith(b"SIP/2.0 400 Bad Request\r\n")
        assert b"Call-ID: bad-1\r\n" in received and b"CSeq: 1 INVITE\r\n" in received
        assert b"Via: SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bKbad\r\n" in received
        await stream.aclose()
        flow = await client.connect(Target("TCP", *address))
        await flow.send(bytes(make_request("TCP")))
        message, _ = await server_inbox.get()
        assert isinstance(message, Request)


async def test_garbage_without_headers_just_closes_the_flow() -> None:
    async with server_and_client() as (_server, _client, _si, _ci, address):
        stream = await trio.open_tcp_stream(*address)
        await stream.send_all(b"\x16\x03\x01 not sip at all\r\n\r\n")
        assert await stream.receive_some(4096) == b""


async def test_peer_close_reaches_the_watchers_and_the_layer_keeps_running() -> None:
    async with server_and_client() as (server, client, server_inbox, _ci, address):
        flow = await client.connect(Target("TCP", *address))
        await flow.send(bytes(make_request("TCP")))
        _, server_flow = await server_inbox.get()
        events: list[FlowEvent] = []
        server_flow.subscribe(events.append)
        await flow.aclose()
        error = await server_flow.wait_failed()
        assert "closed by peer" in str(error)
        assert events == [FlowFailed(error)]
        assert server_flow not in server.flows or server_flow.state != "OPEN"
        again = await client.connect(Target("TCP", *address))
        await again.send(bytes(make_request("TCP", seq=2)))
        message, _ = await server_inbox.get()
        assert isinstance(message, Request) and message.cseq.seq == 2


async def test_exception_in_on_message_closes_only_that_flow() -> None:
    calls: list[Flow] = []

    def on_message(message: object, flow: Flow) -> None:
        calls.append(flow)
        if len(calls) == 1:
            raise RuntimeError("application bug")

    async with server_and_client() as (server, client, _si, _ci, address):
        server.on_message = on_message
        flow = await client.connect(Target("TCP", *address))
        await flow.send(bytes(make_request("TCP")))
        error = await flow.wait_failed()  # the server closed the connection
        assert "closed by peer" in str(error)
        again = await client.connect(Target("TCP", *address))
        await again.send(bytes(make_request("TCP", seq=2)))
        while len(calls) < 2:
            await trio.sleep(0.01)
        assert calls[1].state == "OPEN"


async def test_response_reopens_connection_to_sent_by_when_flow_is_gone() -> None:
    """§18.2.2: if the connection is gone, open one to received + sent-by port."""
    async with (
        server_and_client() as (server, client, server_inbox, client_inbox, address),
        trio.open_nursery() as nursery,
    ):
        client_address = await nursery.start(client.listen, "TCP", "127.0.0.1", 0)
        flow = await client.connect(Target("TCP", *address))
        via = f"SIP/2.0/TCP 198.51.100.1:{client_address[1]};branch=z9hG4bKre"
        req = make_request("TCP")
        req = req.evolve(headers=req.headers.set_first("Via", via))
        await flow.send(bytes(req))
        message, server_flow = await server_inbox.get()
        assert isinstance(message, Request)
        await flow.aclose()
        await server_flow.wait_failed()
        used = await server.send_response(make_response(message, 200), server_flow)
        assert used is not server_flow and used.remote == client_address
        response, arrived_on = await client_inbox.get()
        assert getattr(response, "status_code", None) == 200
        assert arrived_on.local == client_address
        nursery.cancel_scope.cancel()


async def test_idle_flows_close_but_watched_flows_stay() -> None:
    inbox = Inbox()
    async with (
        open_transport_layer(inbox) as server,
        open_transport_layer(config=TransportConfig(idle_timeout=0.2)) as client,
        trio.open_nursery() as nursery,
    ):
        address = await nursery.start(server.listen, "TCP", "127.0.0.1", 0)
        with trio.fail_after(10):
            flow = await client.connect(Target("TCP", *address))
            start = trio.current_time()  # the last activity is the send below, or later
            await flow.send(bytes(make_request("TCP")))
            _, server_flow = await inbox.get()
            error = await flow.wait_failed()
            # Never before the idle timeout; within 10x it however loaded (the exact instant:
            # test_fake_network.py::test_idle_close_at_exact_virtual_time).
            assert 0.2 <= trio.current_time() - start < 2.0
            assert flow.state == "CLOSED" and str(error).endswith("closed")
            assert client.flows == []
            assert "closed by peer" in str(await server_flow.wait_failed())
            watched = await client.connect(Target("TCP", *address))
            watched.subscribe(lambda event: None)
            await trio.sleep(0.5)
            assert watched.state == "OPEN" and client.flows == [watched]
        nursery.cancel_scope.cancel()


async def test_tls_verifies_certificates_by_default(tls_config: TransportConfig) -> None:
    async with (
        server_and_client("TLS", tls_config) as (_s, _c, _si, _ci, address),
        open_transport_layer() as default_client,
    ):
        with pytest.raises(TransportError, match="certificate verify failed"):
            await default_client.connect(Target("TLS", *address))
        assert default_client.flows == []


async def test_tls_checks_the_host_name(tls_config: TransportConfig) -> None:
    async with server_and_client("TLS", tls_config) as (_s, client, _si, _ci, address):
        with pytest.raises(TransportError, match="TLS"):
            await client.connect(Target("TLS", *address, hostname="evil.example.com"))
        flow = await client.connect(Target("TLS", *address, hostname="localhost"))
        assert flow.transport == "TLS" and flow.reliable


async def test_plaintext_to_tls_listener_is_dropped(tls_config: TransportConfig) -> None:
    async with server_and_client("TLS", tls_config) as (_s, client, server_inbox, _ci, address):
        stream = await trio.open_tcp_stream(*address)
        await stream.send_all(bytes(make_request("TCP")))
        assert await stream.receive_some(4096) == b""
        flow = await client.connect(Target("TLS", *address))
        await flow.send(bytes(make_request("TLS")))
        message, server_flow = await server_inbox.get()
        assert isinstance(message, Request) and server_flow.transport == "TLS"


def test_sips_requires_tls() -> None:
    require_tls("sips", Target("TLS", "192.0.2.1", 5061))
    require_tls("sip", Target("UDP", "192.0.2.1", 5060))
    with pytest.raises(TransportError, match="sips"):
        require_tls("sips", Target("TCP", "192.0.2.1", 5060))


async def test_listen_tls_without_context_is_a_config_error() -> None:
    async with open_transport_layer() as layer, trio.open_nursery() as nursery:
        with pytest.raises(ValueError, match="server_ssl_context"):
            await nursery.start(layer.listen, "TLS", "127.0.0.1", 0)


async def test_connect_refused_is_a_transport_error() -> None:
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    await listener.aclose()
    async with open_transport_layer() as client:
        with trio.fail_after(10), pytest.raises(TransportError, match="refused"):
            await client.connect(Target("TCP", "127.0.0.1", port))
