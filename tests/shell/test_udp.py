"""UDP transport on real loopback sockets (port 0, ``fail_after`` around all I/O)."""

from __future__ import annotations

import math
import os
import socket

import pytest
import trio
import trio.testing

from trio_sip.proto.errors import TransportError
from trio_sip.proto.message import Request, Response, make_response
from trio_sip.proto.parse import parse_message
from trio_sip.proto.target import Target
from trio_sip.testing import check_transport, make_request
from trio_sip.transports import (
    Flow,
    FlowEvent,
    FlowFailed,
    TransportConfig,
    TransportLayer,
    open_transport_layer,
)


def _has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


needs_ipv6 = pytest.mark.skipif(not _has_ipv6(), reason="no IPv6 loopback (::1) on this host")


class Inbox:
    def __init__(self) -> None:
        self.send, self.receive = trio.open_memory_channel[tuple[object, Flow]](math.inf)

    def __call__(self, message: object, flow: Flow) -> None:
        self.send.send_nowait((message, flow))

    async def get(self) -> tuple[object, Flow]:
        with trio.fail_after(10):
            return await self.receive.receive()


def request(via: str, *, size: int = 0) -> Request:
    return Request(
        "MESSAGE",
        "sip:bob@example.com",
        [
            ("Via", via),
            ("Max-Forwards", "70"),
            ("From", "<sip:alice@example.com>;tag=a"),
            ("To", "<sip:bob@example.com>"),
            ("Call-ID", "udp-test"),
            ("CSeq", "1 MESSAGE"),
        ],
        body=b"x" * size,
    )


async def test_conformance_ipv4() -> None:
    with trio.fail_after(10):
        await check_transport(open_transport_layer, open_transport_layer, "UDP", "127.0.0.1")


@needs_ipv6
async def test_conformance_ipv6() -> None:
    with trio.fail_after(10):
        await check_transport(open_transport_layer, open_transport_layer, "UDP", "::1")


async def test_received_added_only_when_sent_by_differs(nursery: trio.Nursery) -> None:
    inbox = Inbox()
    async with open_transport_layer(inbox) as server, open_transport_layer() as client:
        address = await nursery.start(server.listen, "UDP", "127.0.0.1", 0)
        flow = await client.connect(Target("UDP", *address))
        await flow.send(bytes(request("SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1")))
        message, _ = await inbox.get()
        assert isinstance(message, Request)
        assert message.vias[0].received is None and message.vias[0].rport is None
        await flow.send(bytes(request("SIP/2.0/UDP alice.invalid:5060;branch=z9hG4bK2")))
        message, _ = await inbox.get()
        assert isinstance(message, Request)
        assert message.vias[0].received == "127.0.0.1"
        assert message.vias[0].rport is None  # not asked for: not added (RFC 3581 §4)
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("rport", [True, False])
async def test_udp_response_routing(nursery: trio.Nursery, rport: bool) -> None:
    """§18.2.2: to received + sent-by port; RFC 3581: to the source port when rport is asked.
    The client has no listener (a connected flow on its own port); the sent-by port is another
    layer's listener."""
    server_inbox, client_inbox, sent_by_inbox = Inbox(), Inbox(), Inbox()
    async with (
        open_transport_layer(server_inbox) as server,
        open_transport_layer(client_inbox) as client,
        open_transport_layer(sent_by_inbox) as sent_by,
    ):
        server_address = await nursery.start(server.listen, "UDP", "127.0.0.1", 0)
        sent_by_listener = await nursery.start(sent_by.listen, "UDP", "127.0.0.1", 0)
        flow = await client.connect(Target("UDP", *server_address))
        assert flow.local != sent_by_listener
        # sent-by names another host: the server must use `received` for the address
        via = f"SIP/2.0/UDP 192.0.2.7:{sent_by_listener[1]};branch=z9hG4bKr" + (
            ";rport" if rport else ""
        )
        await flow.send(bytes(request(via)))
        message, server_flow = await inbox_request(server_inbox)
        await server.send_response(make_response(message, 202), server_flow)
        response, arrived_on = await (client_inbox if rport else sent_by_inbox).get()
        assert getattr(response, "status_code", None) == 202
        assert arrived_on.local == (flow.local if rport else sent_by_listener)
        nursery.cancel_scope.cancel()


async def inbox_request(inbox: Inbox) -> tuple[Request, Flow]:
    message, flow = await inbox.get()
    assert isinstance(message, Request)
    return message, flow


async def test_icmp_port_unreachable_fails_the_flow_fast() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    events: list[FlowEvent] = []
    async with open_transport_layer() as client:
        flow = await client.connect(Target("UDP", "127.0.0.1", dead_port))
        flow.subscribe(events.append)
        await flow.send(bytes(request("SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKi")))
        # Only the ICMP error can fail it (a UDP flow has no timer): how fast is reported by
        # python -m benchmarks udpbind (refusal latency) and failover.
        with trio.fail_after(5):
            error = await flow.wait_failed()
        assert "ICMP port unreachable" in str(error)
        assert events == [FlowFailed(error)]
        with pytest.raises(TransportError):
            await flow.send(b"again")
        again = await client.connect(Target("UDP", "127.0.0.1", dead_port))
        assert again is not flow and again.state == "OPEN"


async def test_oversized_request_goes_over_tcp(nursery: trio.Nursery) -> None:
    inbox = Inbox()
    async with open_transport_layer(inbox) as server, open_transport_layer() as client:
        udp_address = await nursery.start(server.listen, "UDP", "127.0.0.1", 0)
        await nursery.start(server.listen, "TCP", "127.0.0.1", udp_address[1])
        target = Target("UDP", *udp_address)
        small = bytes(request("SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKs"))
        assert len(small) <= 1300
        assert client.choose_target(target, len(small)) == target
        big = request("SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKb", size=1400)
        chosen = client.choose_target(target, len(bytes(big)))
        assert chosen == Target("TCP", *udp_address)
        flow = await client.connect(chosen)
        await flow.send(bytes(big))
        message, server_flow = await inbox.get()
        assert server_flow.transport == "TCP" and isinstance(message, Request)
        assert len(message.body) == 1400
        nursery.cancel_scope.cancel()


async def test_size_fallback_can_be_disabled() -> None:
    async with open_transport_layer(config=TransportConfig(udp_size_fallback=False)) as layer:
        target = Target("UDP", "127.0.0.1", 5060)
        assert layer.choose_target(target, 5000) == target


async def test_malformed_datagram_and_failing_callback_do_not_stop_the_listener(
    nursery: trio.Nursery,
) -> None:
    got: list[object] = []

    def on_message(message: object, flow: Flow) -> None:
        got.append(message)
        if len(got) == 1:
            raise RuntimeError("application bug")

    async with open_transport_layer(on_message) as server, open_transport_layer() as client:
        address = await nursery.start(server.listen, "UDP", "127.0.0.1", 0)
        flow = await client.connect(Target("UDP", *address))
        await flow.send(b"this is not SIP\r\n\r\n")
        for _ in range(2):
            await flow.send(bytes(make_request("UDP")))
        with trio.fail_after(10):
            while len(got) < 2:
                await trio.sleep(0.01)
        assert [type(m) for m in got] == [Request, Request]
        nursery.cancel_scope.cancel()


async def test_aclose_leaves_no_task_and_no_socket() -> None:
    fds_before = len(os.listdir("/proc/self/fd"))
    async with trio.open_nursery() as nursery:
        layer = TransportLayer(nursery)
        address = await nursery.start(layer.listen, "UDP", "127.0.0.1", 0)
        tcp = await nursery.start(layer.listen, "TCP", "127.0.0.1", 0)
        await layer.connect(Target("UDP", *address))  # the listener's flow: not pooled
        await layer.connect(Target("TCP", *tcp))
        assert len(layer.flows) >= 1
        assert len(os.listdir("/proc/self/fd")) > fds_before
        await layer.aclose()
        await trio.testing.wait_all_tasks_blocked()
        assert nursery.child_tasks == frozenset()
    assert len(os.listdir("/proc/self/fd")) == fds_before
    assert layer.flows == [] and layer.listening == []
    with pytest.raises(TransportError):
        await layer.connect(Target("UDP", *address))


@pytest.mark.parametrize(
    ("first_line", "status"),
    [("OPTIONS sip:bob@127.0.0.1 SIP/7.0", 505), ("OPTIONS sip:bob@127.0.0.1 SIP/2.0", 400)],
)
async def test_malformed_udp_request_gets_its_error_status_from_the_listener(
    first_line: str, status: int
) -> None:
    # 505: an unsupported version; 400: a header line without a colon.
    bad_line = "" if status == 505 else "This line has no colon\r\n"
    request = (
        f"{first_line}\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-bad-1;rport\r\n"
        f"{bad_line}"
        "From: <sip:alice@127.0.0.1>;tag=a1\r\n"
        "To: <sip:bob@127.0.0.1>\r\n"
        "Call-ID: malformed-1\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    with trio.fail_after(5):
        async with open_transport_layer() as server, trio.open_nursery() as nursery:
            address = await nursery.start(server.listen, "UDP", "127.0.0.1", 0)
            peer = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
            await peer.bind(("127.0.0.1", 0))
            await peer.sendto(request, address)
            data, source = await peer.recvfrom(65535)
            peer.close()
            nursery.cancel_scope.cancel()
    assert source == address
    response = parse_message(data)
    assert isinstance(response, Response)
    assert response.status_code == status
    assert response.call_id == "malformed-1"
    assert response.vias[0].branch == "z9hG4bK-bad-1"
    assert response.to.tag  # a stateless final response carries a To tag


async def test_malformed_udp_response_is_dropped_silently() -> None:
    # Ordering, not a quiet interval: the listener handles datagrams in order, so a request
    # sent after the malformed response is answered, and its answer is the first thing back.
    probe = (
        b"OPTIONS sip:bob@127.0.0.1 SIP/7.0\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-probe;rport\r\n"
        b"From: <sip:a@127.0.0.1>;tag=a\r\nTo: <sip:b@127.0.0.1>\r\nCall-ID: probe-1\r\n"
        b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    with trio.fail_after(5):
        async with open_transport_layer() as server, trio.open_nursery() as nursery:
            address = await nursery.start(server.listen, "UDP", "127.0.0.1", 0)
            peer = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
            await peer.bind(("127.0.0.1", 0))
            await peer.sendto(b"SIP/2.0 200 OK\r\nVia SIP/2.0/UDP x\r\n\r\n", address)
            await peer.sendto(probe, address)
            data, _ = await peer.recvfrom(65535)
            peer.close()
            nursery.cancel_scope.cancel()
    first = parse_message(data)  # nothing came back for the malformed response
    assert isinstance(first, Response) and first.call_id == "probe-1", data[:60]
    assert first.status_code == 505
