"""FakeNetwork: the real transport layer on an in-memory network, at exact virtual times."""

from __future__ import annotations

import functools
import math
import ssl

import pytest
import trio
import trio.testing
import trustme

from trio_sip import Limits
from trio_sip.proto.errors import TransportError
from trio_sip.proto.message import Request
from trio_sip.proto.target import Target
from trio_sip.testing import FakeNetwork, check_transport, make_request
from trio_sip.transports import Flow, FlowEvent, FlowFailed, TransportConfig

A, B = "10.0.0.1", "10.0.0.2"


class Arrivals:
    """on_message that records (virtual time, CSeq number, flow)."""

    def __init__(self) -> None:
        self.items: list[tuple[float, int, Flow]] = []
        self.send, self.receive = trio.open_memory_channel[None](math.inf)

    def __call__(self, message: object, flow: Flow) -> None:
        assert isinstance(message, Request)
        self.items.append((trio.current_time(), message.cseq.seq, flow))
        self.send.send_nowait(None)

    async def wait(self, count: int) -> None:
        while len(self.items) < count:
            await self.receive.receive()


@pytest.mark.parametrize("transport", ["UDP", "TCP"])
async def test_conformance(autojump_clock: trio.testing.MockClock, transport: str) -> None:
    net = FakeNetwork(seed=1)
    net.set_link(A, B, delay=0.05)
    await check_transport(
        functools.partial(net.open_layer, A),
        functools.partial(net.open_layer, B),
        transport,
        B,
    )


async def test_conformance_tls_over_fake_streams(autojump_clock: trio.testing.MockClock) -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(B).configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    config = TransportConfig(server_ssl_context=server_ctx, client_ssl_context=client_ctx)
    net = FakeNetwork()
    await check_transport(
        functools.partial(net.open_layer, A, config=config),
        functools.partial(net.open_layer, B, config=config),
        "TLS",
        B,
    )


async def test_delay_and_reordering_at_exact_times(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    net = FakeNetwork()
    arrivals = Arrivals()
    async with net.open_layer(A) as client, net.open_layer(B, arrivals) as server:
        address = await nursery.start(server.listen, "UDP", B, 5060)
        flow = await client.connect(Target("UDP", *address))
        start = trio.current_time()
        net.set_link(A, B, delay=0.5)
        await flow.send(bytes(make_request("UDP", seq=1)))
        net.set_link(A, B, delay=0.1)
        await flow.send(bytes(make_request("UDP", seq=2)))
        await arrivals.wait(2)
        assert [(t - start, seq) for t, seq, _ in arrivals.items] == [(0.1, 2), (0.5, 1)]
        nursery.cancel_scope.cancel()


async def test_jitter_reorders_deterministically(autojump_clock: trio.testing.MockClock) -> None:
    async def run(seed: int) -> list[int]:
        net = FakeNetwork(seed=seed)
        net.set_link(A, B, delay=0.1, jitter=0.2)
        arrivals = Arrivals()
        async with (
            net.open_layer(A) as client,
            net.open_layer(B, arrivals) as server,
            trio.open_nursery() as nursery,
        ):
            address = await nursery.start(server.listen, "UDP", B, 0)
            flow = await client.connect(Target("UDP", *address))
            start = trio.current_time()
            for seq in range(1, 11):
                await flow.send(bytes(make_request("UDP", seq=seq)))
            await arrivals.wait(10)
            assert all(0.1 <= t - start <= 0.3 for t, _, _ in arrivals.items)
            nursery.cancel_scope.cancel()
        return [seq for _, seq, _ in arrivals.items]

    order = await run(7)
    assert sorted(order) == list(range(1, 11))
    assert order != list(range(1, 11))  # reordered
    assert await run(7) == order  # and reproducible from the seed


async def test_loss_is_seeded_and_captured(autojump_clock: trio.testing.MockClock) -> None:
    async def run(seed: int) -> tuple[list[str], list[int]]:
        net = FakeNetwork(seed=seed)
        net.set_link(A, B, loss=0.3, delay=0.01)
        arrivals = Arrivals()
        async with (
            net.open_layer(A) as client,
            net.open_layer(B, arrivals) as server,
            trio.open_nursery() as nursery,
        ):
            address = await nursery.start(server.listen, "UDP", B, 0)
            flow = await client.connect(Target("UDP", *address))
            for seq in range(1, 41):
                await flow.send(bytes(make_request("UDP", seq=seq)))
            await trio.sleep(1)
            nursery.cancel_scope.cancel()
        fates = [p.fate for p in net.packets(transport="UDP")]
        delivered = [p.message.cseq.seq for p in net.packets(fate="delivered")]
        assert [seq for _, seq, _ in arrivals.items] == delivered
        return fates, delivered

    fates, delivered = await run(3)
    assert set(fates) == {"lost", "delivered"} and len(fates) == 40
    assert 0 < fates.count("lost") < 40
    assert await run(3) == (fates, delivered)


async def test_partition_blackholes_udp_and_hangs_tcp_connect(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    net = FakeNetwork()
    net.set_link(A, B, delay=0.05)
    arrivals = Arrivals()
    async with net.open_layer(A) as client, net.open_layer(B, arrivals) as server:
        udp = await nursery.start(server.listen, "UDP", B, 5060)
        tcp = await nursery.start(server.listen, "TCP", B, 5060)
        flow = await client.connect(Target("UDP", *udp))
        net.partition(A, B)
        await flow.send(bytes(make_request("UDP")))
        start = trio.current_time()
        with trio.move_on_after(3) as scope:
            await client.connect(Target("TCP", *tcp))
        assert scope.cancelled_caught and trio.current_time() - start == 3
        assert arrivals.items == [] and flow.state == "OPEN"
        assert [p.fate for p in net.captured] == ["blackholed", "blackholed"]
        net.heal(A, B)
        start = trio.current_time()
        await flow.send(bytes(make_request("UDP", seq=2)))
        await arrivals.wait(1)
        assert arrivals.items[0][0] - start == pytest.approx(0.05)
        nursery.cancel_scope.cancel()


async def test_refuse_acts_like_icmp_and_rst(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    net = FakeNetwork()
    net.set_link(A, B, delay=0.05)
    async with net.open_layer(A) as client, net.open_layer(B, Arrivals()) as server:
        tcp = await nursery.start(server.listen, "TCP", B, 5060)
        established = await client.connect(Target("TCP", *tcp))
        events: list[FlowEvent] = []
        established.subscribe(events.append)

        # UDP to a closed port: ICMP one round trip later, on the connected flow
        udp_flow = await client.connect(Target("UDP", B, 5999))
        start = trio.current_time()
        await udp_flow.send(b"OPTIONS")
        error = await udp_flow.wait_failed()
        assert trio.current_time() - start == pytest.approx(0.1)
        assert "ICMP port unreachable" in str(error)

        # refuse(B): open TCP connections are reset now, new ones refused after one RTT
        start = trio.current_time()
        net.refuse(B)
        error = await established.wait_failed()
        assert trio.current_time() == start and "connection broken" in str(error)
        assert events == [FlowFailed(error)]
        with pytest.raises(TransportError, match="refused"):
            await client.connect(Target("TCP", *tcp))
        assert trio.current_time() - start == pytest.approx(0.1)
        net.unrefuse(B)
        assert (await client.connect(Target("TCP", *tcp))).state == "OPEN"
        nursery.cancel_scope.cancel()


async def test_idle_close_at_exact_virtual_time(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    net = FakeNetwork()
    config = TransportConfig(idle_timeout=30)
    patient = Limits(first_message_timeout=100)  # the server keeps a connection sending no message
    async with (
        net.open_layer(A, config=config) as client,
        net.open_layer(B, limits=patient) as server,
    ):
        tcp = await nursery.start(server.listen, "TCP", B, 5060)
        flow = await client.connect(Target("TCP", *tcp))
        await trio.sleep(10)
        await flow.send(b"\r\n")  # traffic restarts the idle clock
        sent = trio.current_time()
        await flow.wait_failed()
        assert trio.current_time() - sent == 30
        assert flow.state == "CLOSED" and client.flows == []
        # A watched flow (a keep-alive, a transaction) is never closed for being idle.
        watched = await client.connect(Target("TCP", *tcp))
        watched.subscribe(lambda event: None)
        await trio.sleep(100)  # over three idle timeouts (and under the server side's 120 s)
        assert watched.state == "OPEN" and client.flows == [watched]
        nursery.cancel_scope.cancel()


async def test_capture_shows_the_wire(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    net = FakeNetwork()
    async with net.open_layer(A) as client, net.open_layer(B, Arrivals()) as server:
        address = await nursery.start(server.listen, "UDP", B, 5060)
        flow = await client.connect(Target("UDP", *address))
        await flow.send(bytes(make_request("UDP")))
        [packet] = net.captured
        assert (packet.transport, packet.src, packet.dst) == ("UDP", flow.local, (B, 5060))
        assert packet.message.method == "OPTIONS"  # type: ignore[union-attr]
        nursery.cancel_scope.cancel()
