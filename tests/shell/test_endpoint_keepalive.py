"""The endpoint's keep-alives (``keep_alive_period``): NULL CRLFs on UDP connections, RFC 5626
ping/pong on TCP connections. Virtual time on the in-memory network (every time exact), and
one real-socket test on loopback."""

from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from trio_sip.config import ConnectionConfig, EndpointConfig
from trio_sip.endpoint import ConnectionEvent, ConnectionStatus, Endpoint, open_endpoint
from trio_sip.proto.errors import ConfigError
from trio_sip.proto.message import Request, make_response
from trio_sip.proto.parse import parse_message
from trio_sip.proto.resolve import SrvRecord
from trio_sip.proxy import open_proxy
from trio_sip.testing import FakeNetwork
from trio_sip.testing.dns import FakeResolver

CS = ConnectionStatus
DOMAIN = "geo.example"
ALICE, SITE_A, SITE_B = "10.0.0.1", "10.0.1.1", "10.0.2.1"
CRLF, PING, PONG = b"\r\n", b"\r\n\r\n", b"\r\n"


async def run_site(
    net: FakeNetwork, host: str, listen: list[tuple[str, int]], *, task_status: Any
) -> None:
    async with open_proxy(
        [(t, host, port) for t, port in listen], domain=DOMAIN, backend=net.backend(host),
        rng=random.Random(host),
    ) as site:  # fmt: skip
        task_status.started(site)
        await trio.sleep_forever()


def connection(id: str, server: str, **kw: Any) -> ConnectionConfig:
    kw.setdefault("user", f"alice@{DOMAIN}")
    return ConnectionConfig(id=id, server=server, reg_interval=60, expires=600, **kw)


@asynccontextmanager
async def alice(
    net: FakeNetwork,
    connections: list[ConnectionConfig],
    period: int,
    pong_timeout: int = 10,
    **kw: Any,
) -> AsyncIterator[tuple[Endpoint, list[ConnectionEvent]]]:
    events: list[ConnectionEvent] = []
    config = EndpointConfig(
        sip_transaction_timeout=2000,
        keep_alive_period=period,
        rfc5626_pong_timeout=pong_timeout,
        connections=connections,
    )
    async with open_endpoint(
        config, backend=net.backend(ALICE), rng=random.Random(1), on_status=events.append,
        listen=[("UDP", ALICE, 5060), ("TCP", ALICE, 5060)], **kw,
    ) as endpoint:  # fmt: skip
        await endpoint.wait_registered(failures=None)  # through a dead first SRV target
        yield endpoint, events


def crlfs(net: FakeNetwork, dst: tuple[str, int], since: float = 0.0) -> list[float]:
    """When a bare CRLF left Alice's SIP port for ``dst``."""
    return [
        p.time
        for p in net.packets(transport="UDP")
        if p.src == (ALICE, 5060) and p.dst == dst and p.data == CRLF and p.time >= since
    ]


async def test_udp_crlfs_at_the_period_changed_and_stopped_at_run_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    async with trio.open_nursery() as nursery:
        await nursery.start(run_site, net, SITE_A, [("UDP", 5060)])
        await nursery.start(run_site, net, SITE_B, [("UDP", 5060)])
        conns = [connection("a", f"{SITE_A}:5060"), connection("b", f"{SITE_B}:5060")]
        async with alice(net, conns, 15) as (endpoint, _events):
            await trio.sleep(46)
            for site in (SITE_A, SITE_B):
                assert crlfs(net, (site, 5060)) == [0.0, 15.0, 30.0, 45.0]
            assert endpoint.connections["a"].keep_alive is not None
            assert endpoint.keepalives.statistics().null_loops == {
                (SITE_A, 5060): 15.0,
                (SITE_B, 5060): 15.0,
            }

            await endpoint.set_keep_alive_period(5)  # re-timed on the same grid
            assert endpoint.config.keep_alive_period == 5
            await trio.sleep(61 - trio.current_time())
            assert crlfs(net, (SITE_A, 5060), since=46) == [50.0, 55.0, 60.0]

            await endpoint.set_keep_alive_period(0)  # off
            await trio.sleep(200 - trio.current_time())
            assert crlfs(net, (SITE_A, 5060), since=61) == []
            assert crlfs(net, (SITE_B, 5060), since=61) == []
            assert endpoint.keepalives.statistics().null_loops == {}
            assert [c.keep_alive for c in endpoint.connections.values()] == [None, None]

            await endpoint.set_keep_alive_period(30)  # on again: one CRLF now, then every 30 s
            await trio.sleep(261 - trio.current_time())
            assert crlfs(net, (SITE_A, 5060), since=61) == [200.0, 230.0, 260.0]

            with pytest.raises(ConfigError, match="keep_alive_period"):
                await endpoint.set_keep_alive_period(4000)
            assert endpoint.config.keep_alive_period == 30
        nursery.cancel_scope.cancel()


async def test_a_connection_that_is_down_gets_the_new_period_when_it_registers_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    async with trio.open_nursery() as nursery:
        await nursery.start(run_site, net, SITE_A, [("UDP", 5060)])
        await nursery.start(run_site, net, SITE_B, [("UDP", 5060)])
        conns = [connection("a", f"{SITE_A}:5060"), connection("b", f"{SITE_B}:5060")]
        async with alice(net, conns, 10) as (endpoint, events):
            net.partition(ALICE, SITE_B)  # site B goes dark; its refresh at 568 s times out
            await trio.sleep(575)
            assert [(e.connection_id, e.new, e.time) for e in events[4:]] == [
                ("b", CS.UNAVAILABLE, 570.0)
            ]
            await endpoint.set_keep_alive_period(30)
            assert endpoint.keepalives.statistics().null_loops == {(SITE_A, 5060): 30.0}
            net.heal(ALICE, SITE_B)
            await endpoint.wait_registered("b")
            back = trio.current_time()
            await trio.sleep(61)
            assert crlfs(net, (SITE_B, 5060), since=575) == [back, back + 30, back + 60]
            now = trio.current_time()  # A: re-timed onto the 30 s grid of its loop at once
            grid = [600.0 + 30 * k for k in range(10) if 600.0 + 30 * k <= now]
            assert len(grid) >= 2 and crlfs(net, (SITE_A, 5060), since=575) == grid
        nursery.cancel_scope.cancel()


async def test_connections_sharing_a_site_share_one_loop_until_the_last_one_goes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    async with trio.open_nursery() as nursery:
        await nursery.start(run_site, net, SITE_A, [("UDP", 5060)])
        conns = [
            connection("a", f"{SITE_A}:5060"),
            connection("a2", f"{SITE_A}:5060", user=f"agent2@{DOMAIN}"),
        ]
        async with alice(net, conns, 10) as (endpoint, _events):
            await trio.sleep(5)
            await endpoint.disable("a")  # a2 still needs the NAT binding kept open
            assert endpoint.connections["a"].status is CS.DISABLED
            await trio.sleep(41 - trio.current_time())
            assert crlfs(net, (SITE_A, 5060)) == [0.0, 10.0, 20.0, 30.0, 40.0]
            await endpoint.remove("a2")  # the last user of the destination: silence
            removed_at = trio.current_time()
            await trio.sleep(60)
            assert crlfs(net, (SITE_A, 5060), since=removed_at) == []
            await endpoint.enable("a")  # back: the keep-alive starts with the registration
            await endpoint.wait_registered("a")
            enabled_at = trio.current_time()
            await trio.sleep(21)
            assert crlfs(net, (SITE_A, 5060), since=enabled_at) == [
                enabled_at,
                enabled_at + 10,
                enabled_at + 20,
            ]
        nursery.cancel_scope.cancel()


async def test_udp_crlfs_go_where_the_register_went_srv_port_and_failover_included(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The server is a DNS name only the endpoint's resolver knows; SRV puts the site on port
    5070 at two addresses, the first of which is dead. The CRLFs follow the REGISTER."""
    net = FakeNetwork()
    resolver = FakeResolver(
        {
            f"_sip._udp.{DOMAIN}": [
                SrvRecord(10, 0, 5070, f"dead.{DOMAIN}"),
                SrvRecord(20, 0, 5070, f"live.{DOMAIN}"),
            ],
            f"dead.{DOMAIN}": [SITE_B],
            f"live.{DOMAIN}": [SITE_A],
        }
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(run_site, net, SITE_A, [("UDP", 5070)])
        conns = [connection("a", DOMAIN)]
        async with alice(net, conns, 20, resolver=resolver) as (endpoint, _events):
            registered_at = trio.current_time()
            await trio.sleep(41)
            assert crlfs(net, (SITE_A, 5070)) == [
                registered_at,
                registered_at + 20,
                registered_at + 40,
            ]
            assert crlfs(net, (SITE_B, 5070)) == []
            # Nothing went to a site's default port (Alice's own SIP port 5060 gets answers).
            assert not [
                p for p in net.packets(transport="UDP") if p.dst[1] == 5060 and p.dst[0] != ALICE
            ]
            target = endpoint.connections["a"].keep_alive
            assert target is not None and (target.host, target.port) == (SITE_A, 5070)
        nursery.cancel_scope.cancel()


def stream_data(net: FakeNetwork, data: bytes, src: str, dst: str) -> list[tuple[float, int]]:
    """(time, client port) of each ``data`` segment between Alice and the site."""
    return [
        (p.time, p.src[1] if p.src[0] == ALICE else p.dst[1])
        for p in net.packets(transport="TCP")
        if p.data == data and p.src[0] == src and p.dst[0] == dst
    ]


@pytest.mark.parametrize("pong_timeout", [10, 3])
async def test_tcp_pings_get_pongs_and_a_dead_flow_reregisters_over_a_new_one(
    autojump_clock: trio.testing.MockClock, pong_timeout: int
) -> None:
    """``rfc5626_pong_timeout`` is how long the endpoint waits for the pong (default 10 s)."""
    net = FakeNetwork()
    async with trio.open_nursery() as nursery:
        await nursery.start(run_site, net, SITE_A, [("TCP", 5060)])
        conns = [connection("a", f"{SITE_A}:5060", transport="TCP")]
        async with alice(net, conns, 30, pong_timeout) as (endpoint, events):
            stream = endpoint.status_events()
            current = await anext(stream)  # a new stream starts with the current status
            assert (current.old, current.new, current.reason) == (
                CS.REGISTERING,
                CS.REGISTERED,
                "200 OK",
            )
            await trio.sleep(200)
            pings = stream_data(net, PING, ALICE, SITE_A)
            pongs = stream_data(net, PONG, SITE_A, ALICE)
            # RFC 5626 §4.4.1: each ping 80-100 % of the period after the previous one.
            gaps = [b[0] - a[0] for a, b in itertools.pairwise([(0.0, 0), *pings])]
            assert len(pings) >= 6 and all(24.0 <= gap <= 30.0 for gap in gaps), gaps
            assert [t for t, _ in pongs] == [t for t, _ in pings]  # the site answered each
            (first_port,) = {port for _, port in pings}
            assert endpoint.connections["a"].status is CS.REGISTERED

            # The path loses one ping (a NAT box forgot the connection, say): no pong.
            net.partition(ALICE, SITE_A)
            for _ in range(40):  # until the next ping has been lost (at most one period)
                await trio.sleep(1)
                if len(stream_data(net, PING, ALICE, SITE_A)) > len(pings):
                    break
            lost_ping = stream_data(net, PING, ALICE, SITE_A)[-1][0]
            assert [p.fate for p in net.packets(transport="TCP")][-1] == "blackholed"
            net.heal(ALICE, SITE_A)  # new connections work again; the old one gets no pong
            with trio.fail_after(60):
                event = await anext(stream)
            assert (event.old, event.new) == (CS.REGISTERED, CS.REGISTERING)
            assert event.reason.startswith("transport error: TCP flow to 10.0.1.1:5060")
            assert f"no CRLF pong within {pong_timeout} s" in event.reason
            assert event.time == lost_ping + pong_timeout

            with trio.fail_after(60):
                event = await anext(stream)
            # Re-registered at once over a new connection.
            assert (event.new, event.reason, event.time) == (
                CS.REGISTERED,
                "200 OK",
                lost_ping + pong_timeout,
            )
            registers = [
                (p.time, p.src[1])
                for p in net.packets(transport="TCP")
                if p.src[0] == ALICE and p.data.startswith(b"REGISTER ")
            ]
            assert registers[-1][0] == lost_ping + pong_timeout
            new_ports = {registers[-1][1]}
            assert first_port not in new_ports
            await trio.sleep(100)
            later = [(t, p) for t, p in stream_data(net, PING, ALICE, SITE_A) if t > event.time]
            assert later and {p for _, p in later} <= new_ports  # pings go on the new flow
            assert endpoint.connections["a"].status is CS.REGISTERED
        assert [(e.new, e.reason.partition(":")[0]) for e in events[:4]] == [
            (CS.REGISTERING, "added"),
            (CS.REGISTERED, "200 OK"),
            (CS.REGISTERING, "transport error"),
            (CS.REGISTERED, "200 OK"),
        ]
        nursery.cancel_scope.cancel()


async def stand_in_registrar(
    sock: trio.socket.SocketType, arrivals: list[tuple[float, bytes, Any]]
) -> None:
    """A UDP peer (not the thing under test) that accepts every REGISTER and logs CRLFs."""
    while True:
        data, source = await sock.recvfrom(65535)
        if data.strip() == b"":
            arrivals.append((trio.current_time(), data, source))
            continue
        request = parse_message(data)
        if isinstance(request, Request) and request.method == "REGISTER":
            contact = request.headers["Contact"]
            ok = make_response(request, 200, to_tag="reg", headers=[("Contact", contact)])
            await sock.sendto(bytes(ok), source)


async def test_real_udp_sockets_crlfs_arrive_at_the_period() -> None:
    """On real sockets: CRLFs from the SIP port while the period is set, none once it is 0.
    The exact schedule is asserted in virtual time above (the real spacing is reported by
    ``python -m benchmarks timing``)."""
    arrivals: list[tuple[float, bytes, Any]] = []
    with trio.fail_after(40):  # 10x the 3 s the four CRLFs take, plus the registration
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = EndpointConfig(
            keep_alive_period=1,
            connections=[
                ConnectionConfig(id="a", user="alice@example.test", server=f"127.0.0.1:{port}")
            ],
        )
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stand_in_registrar, sock, arrivals)
            async with open_endpoint(config) as endpoint:
                await endpoint.wait_registered()
                ((_, sip_address),) = endpoint.ua.stack.listening
                while len(arrivals) < 4:  # bounded by the fail_after above
                    await trio.sleep(0.05)
                await endpoint.set_keep_alive_period(0)
                stopped = len(arrivals)
                await trio.sleep(1.5)
                assert len(arrivals) <= stopped + 1  # one may have been in flight
            nursery.cancel_scope.cancel()
        sock.close()
    assert {data for _, data, _ in arrivals} == {CRLF}
    assert {source for _, _, source in arrivals} == {sip_address}  # from the SIP port
    assert arrivals[3][0] - arrivals[0][0] < 10 * 3 * 1  # 10x the 3 periods of 1 s between


async def test_real_tcp_sockets_pings_get_pongs_from_the_site() -> None:
    with trio.fail_after(30):
        async with open_proxy([("TCP", "127.0.0.1", 0)], domain=DOMAIN) as site:
            host, port = site.address[0], site.address[1]
            config = EndpointConfig(
                keep_alive_period=1,
                connections=[
                    ConnectionConfig(
                        id="a", user=f"alice@{DOMAIN}", server=f"{host}:{port}", transport="TCP"
                    )
                ],
            )
            async with open_endpoint(config) as endpoint:
                await endpoint.wait_registered()
                target = endpoint.connections["a"].keep_alive
                assert target is not None and (target.transport, target.port) == ("TCP", port)
                (flow,) = [
                    f for f in endpoint.ua.stack.transport_layer.flows if f.remote[1] == port
                ]
                with trio.fail_after(10):  # a ping within 0.8-1 s, its pong at once: 10x
                    while flow.last_pong is None:
                        await trio.sleep(0.05)
                assert endpoint.keepalives.statistics().watched_flows == 1
                await trio.sleep(1.5)  # more rounds: the flow stays up, still registered
                assert flow.usable
                assert endpoint.connections["a"].status is CS.REGISTERED
                await endpoint.set_keep_alive_period(0)
                assert endpoint.keepalives.statistics().watched_flows == 0
