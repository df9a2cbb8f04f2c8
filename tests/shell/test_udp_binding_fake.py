"""One UDP binding and the §18.1.1 fallback on the in-memory network, in virtual time.

Every datagram of a host is captured with its source (``net.captured``), so each test asserts
what a capture at the peer would show, at exact virtual times. The real-socket versions are in
test_udp_binding.py; the NAT itself (Kamailio's ``fix_nated_register``) is in
tests/interop/test_nat_kamailio.py.
"""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing

from trio_sip.keepalive import KeepAlives
from trio_sip.proto.errors import TransactionTimeoutError, TransportError
from trio_sip.proto.location import LocationService
from trio_sip.proto.message import Request, Response, make_response
from trio_sip.proto.parse import parse_message
from trio_sip.proto.target import Target
from trio_sip.proto.timers import TimerConfig
from trio_sip.proxy import open_proxy
from trio_sip.stack import open_stack
from trio_sip.testing import FakeNetwork
from trio_sip.transports import TransportConfig
from trio_sip.ua import open_user_agent

from .proxy_support import Phone, phone_stack, request

ALICE, REGISTRAR, BOB, PROXY = "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.1.1"
SIP = 5060


def options(uri: str = f"sip:bob@{BOB}") -> Request:
    return request("OPTIONS", uri)


def udp_sources(net: FakeNetwork, host: str) -> set[tuple[str, int]]:
    return {p.src for p in net.packets(transport="UDP") if p.src[0] == host}


async def test_icmp_reaches_the_listener_flow_one_round_trip_later(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    net.set_link(ALICE, BOB, delay=0.05)
    async with open_stack([("UDP", ALICE, SIP)], backend=net.backend(ALICE)) as alice:
        start = trio.current_time()
        with pytest.raises(TransportError, match=r"refused \(ICMP port unreachable\)"):
            await alice.request(options(), Target("UDP", BOB, SIP))
        assert trio.current_time() - start == pytest.approx(0.1)  # one round trip
    (sent,) = net.packets(transport="UDP")
    assert (sent.src, sent.fate) == ((ALICE, SIP), "refused")


async def test_without_an_error_queue_datagrams_still_leave_from_the_sip_port(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A platform without IP_RECVERR: one binding all the same; a refused peer is then noticed
    by the transaction timeout (Timer F), as seed 002 says of endpoints that ignore ICMP."""
    net = FakeNetwork(udp_error_queue=False)
    timers = TimerConfig(sip_transaction_timeout=4000)
    async with open_stack(
        [("UDP", ALICE, SIP)], backend=net.backend(ALICE), timer_config=timers
    ) as alice:
        start = trio.current_time()
        with pytest.raises(TransactionTimeoutError):
            await alice.request(options(), Target("UDP", BOB, SIP))
        assert trio.current_time() - start == pytest.approx(4.0)
    sent = net.packets(transport="UDP")
    assert len(sent) > 1 and {p.src for p in sent} == {(ALICE, SIP)}


async def test_without_a_udp_listener_a_connected_socket_is_used_and_named(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A pure client (no UDP listener): a connected socket per destination, on its own port,
    and the Via names that port, so the answer still finds it."""
    net = FakeNetwork()
    bob = Phone(BOB)
    async with phone_stack(net, bob), open_stack([], backend=net.backend(ALICE)) as alice:
        response = await alice.request(options(), Target("UDP", BOB, SIP))
        assert response.status_code == 200
        assert alice.statistics().flows == 1
    (received,) = bob.requests("OPTIONS")
    (sent,) = [p for p in net.packets(transport="UDP") if p.src[0] == ALICE]
    assert (received.vias[0].host, received.vias[0].port) == sent.src
    assert sent.src[1] != SIP


async def test_the_registration_binding_outlives_the_idle_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A NAT-aware registrar stores the REGISTER's *source* (Kamailio's fix_nated_register) and
    sends the next INVITE there. Ten idle minutes later, with a client idle timeout of 5 s
    (which closed the per-destination sockets of old), the INVITE still reaches Alice, and her
    REGISTER, keep-alives and answer all came from the one port her Contact names."""
    net = FakeNetwork()
    registrar = await net.backend(REGISTRAR).open_udp(REGISTRAR, SIP)
    config = TransportConfig(idle_timeout=5.0)
    async with (
        open_user_agent(
            [("UDP", ALICE, SIP)], aor="sip:alice@example.com", backend=net.backend(ALICE),
            transport_config=config, rng=random.Random(1),
        ) as alice,
        trio.open_nursery() as nursery,
    ):  # fmt: skip
        received: list[tuple[str, int]] = []

        async def answer_register() -> None:
            data, source = (await registrar.recvfrom_many(1))[0]
            register = parse_message(data)
            assert isinstance(register, Request) and register.method == "REGISTER"
            received.append(source)
            contact = register.headers.get("Contact")
            ok = make_response(register, 200, headers=[("Contact", f"{contact};expires=3600")])
            await registrar.sendto(bytes(ok), source)

        nursery.start_soon(answer_register)
        registration = await alice.register(f"sip:{REGISTRAR}:{SIP}", expires=3600)
        with trio.fail_after(5):
            await registration.wait_registered()
        await alice.keepalives.send_sip_keepalive(REGISTRAR, SIP, True, 30)
        (nat_binding,) = received
        await trio.sleep(600)

        async def answer_call() -> None:
            async for incoming in alice.incoming_calls():
                await incoming.accept()
                return

        nursery.start_soon(answer_call)
        invite = Request(
            "INVITE", f"sip:alice@{nat_binding[0]}:{nat_binding[1]}",
            [("Via", f"SIP/2.0/UDP {REGISTRAR}:{SIP};branch=z9hG4bK-nat-1;rport"),
             ("Max-Forwards", "70"), ("From", "<sip:bob@example.com>;tag=b1"),
             ("To", "<sip:alice@example.com>"), ("Call-ID", "nat-1"), ("CSeq", "1 INVITE"),
             ("Contact", f"<sip:bob@{REGISTRAR}:{SIP}>")],
        )  # fmt: skip
        await registrar.sendto(bytes(invite), nat_binding)
        statuses: list[int] = []
        with trio.fail_after(5):
            while 200 not in statuses:
                data, _source = (await registrar.recvfrom_many(1))[0]
                if not data.strip(b"\r\n"):
                    continue  # a keep-alive
                message = parse_message(data)
                if isinstance(message, Response):
                    statuses.append(message.status_code)
        nursery.cancel_scope.cancel()
    assert nat_binding == (ALICE, SIP)
    crlfs = [p for p in net.packets(transport="UDP") if p.data == b"\r\n"]
    assert len(crlfs) == 21  # at 0, 30, ..., 600 s
    assert udp_sources(net, ALICE) == {(ALICE, SIP)}
    assert statuses[-1] == 200
    registrar.close()


async def test_keepalives_to_a_refused_port_go_on_from_the_sip_port(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Each CRLF's ICMP error fails the listener's flow to that address; the next CRLF gets a
    fresh flow, from the same socket: the loop goes on and no send fails."""
    net = FakeNetwork()
    net.set_link(ALICE, REGISTRAR, delay=0.01)
    async with net.open_layer(ALICE) as layer, trio.open_nursery() as nursery:
        await nursery.start(layer.listen, "UDP", ALICE, SIP)
        keepalives = KeepAlives(layer, nursery)
        await keepalives.send_sip_keepalive(REGISTRAR, SIP, True, 10)
        await trio.sleep(35)
        fresh = await layer.datagram_flow((REGISTRAR, SIP))
        await trio.sleep(0)
        stats = keepalives.statistics()
        nursery.cancel_scope.cancel()
    crlfs = net.packets(transport="UDP")
    assert [(p.time, p.src, p.fate) for p in crlfs] == [
        (t, (ALICE, SIP), "refused") for t in (0.0, 10.0, 20.0, 30.0)
    ]
    assert (stats.sent, stats.failed_sends) == (4, 0)
    assert fresh.usable and fresh.local == (ALICE, SIP)  # the failed one was replaced


async def test_tcp_connections_and_proxy_forwards_leave_from_the_listeners_address(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The proxy host owns 10.0.1.1 but listens on 10.0.1.9: what it forwards over TCP comes
    from 10.0.1.9, the address in its Via and Record-Route; so do Alice's connections."""
    net = FakeNetwork()
    bob = Phone(BOB)
    location = LocationService()
    location.add_static("sip:bob@example.com", f"sip:bob@{BOB}:5060;transport=tcp")
    async with (
        open_proxy(
            [("UDP", "10.0.1.9", SIP), ("TCP", "10.0.1.9", SIP)], domain="example.com",
            location_service=location, backend=net.backend(PROXY), rng=random.Random(7),
        ),
        open_stack([("TCP", BOB, SIP)], backend=net.backend(BOB), handler=bob.handler),
        open_stack([("TCP", "10.0.0.9", SIP)], backend=net.backend(ALICE)) as alice,
    ):  # fmt: skip
        response = await alice.request(
            request("OPTIONS", "sip:bob@example.com"), Target("TCP", "10.0.1.9", SIP)
        )
        assert response.status_code == 200
    (forwarded,) = bob.requests("OPTIONS")
    assert [v.host for v in forwarded.vias] == ["10.0.1.9", "10.0.0.9"]
    connects = {(p.src[0], p.dst[0]) for p in net.packets(transport="TCP")}
    assert connects == {("10.0.0.9", "10.0.1.9"), ("10.0.1.9", BOB), ("10.0.1.9", "10.0.0.9"),
                        (BOB, "10.0.1.9")}  # fmt: skip


def big(method: str, uri: str) -> Request:
    """A request over 1300 bytes: RFC 3261 §18.1.1 sends it over TCP."""
    return request(method, uri, headers=(("X-Padding", "p" * 1400),))


async def test_a_big_request_whose_tcp_connect_is_refused_goes_over_udp(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    net.set_link(ALICE, BOB, delay=0.01)
    bob = Phone(BOB)
    async with (
        phone_stack(net, bob),  # UDP only: its TCP port refuses (RST)
        open_stack([("UDP", ALICE, SIP), ("TCP", ALICE, SIP)], backend=net.backend(ALICE)) as alice,
    ):
        response = await alice.request(big("OPTIONS", f"sip:bob@{BOB}"), Target("UDP", BOB, SIP))
    assert response.status_code == 200
    (received,) = bob.requests("OPTIONS")
    assert received.vias[0].transport == "UDP" and (received.vias[0].port) == SIP
    tcp = net.packets(transport="TCP")
    assert [(p.dst, p.fate) for p in tcp] == [((BOB, SIP), "refused")]
    udp = [p for p in net.packets(transport="UDP") if p.src[0] == ALICE]
    assert udp[0].src == (ALICE, SIP) and udp[0].time == pytest.approx(0.02)  # after the RST


async def test_a_refused_tcp_connect_names_the_tcp_reset(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    async with open_stack([("TCP", ALICE, SIP)], backend=net.backend(ALICE)) as alice:
        with pytest.raises(TransportError) as caught:
            await alice.request(options(), Target("TCP", BOB, SIP))
    assert str(caught.value).endswith("connection refused (TCP reset)")
    assert "ICMP" not in str(caught.value)


async def test_a_big_invite_through_our_proxy_reaches_a_udp_only_callee(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The proxy's branch to Bob goes over TCP because of the size; Bob has no TCP: the
    branch is retried over UDP and Alice gets Bob's 200 (not a 5xx)."""
    net = FakeNetwork()
    bob = Phone(BOB)
    location = LocationService()
    location.add_static("sip:bob@example.com", f"sip:bob@{BOB}:5060")
    async with (
        open_proxy(
            [("UDP", PROXY, SIP), ("TCP", PROXY, SIP)], domain="example.com",
            location_service=location, backend=net.backend(PROXY), rng=random.Random(7),
        ),
        phone_stack(net, bob),
        open_stack([("UDP", ALICE, SIP), ("TCP", ALICE, SIP)], backend=net.backend(ALICE)) as alice,
    ):  # fmt: skip
        statuses: list[int] = []
        invite = big("INVITE", "sip:bob@example.com")
        async with alice.send_request(invite, Target("UDP", PROXY, SIP)) as tx:
            async for event in tx:
                assert isinstance(event, Response)
                statuses.append(event.status_code)
    assert statuses[-1] == 200, statuses
    (received,) = bob.requests("INVITE")
    assert [v.transport for v in received.vias] == ["UDP", "TCP"]  # proxy->Bob, Alice->proxy
    refused = [p.dst for p in net.packets(transport="TCP", fate="refused")]
    assert refused == [(BOB, SIP)]
