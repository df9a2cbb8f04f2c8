"""Keep-alive loops: NULL CRLFs to host:port and RFC 5626 pings, in virtual and real time."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trio_sip.dns import DnsError
from trio_sip.keepalive import KeepAlives
from trio_sip.proto.errors import ConfigError, TransportError
from trio_sip.proto.target import Target
from trio_sip.testing import FakeNetwork
from trio_sip.transports import Flow, open_transport_layer

A, B = "10.0.0.1", "10.0.0.2"


def crlf_times(net: FakeNetwork, dst: tuple[str, int]) -> list[float]:
    return [p.time for p in net.packets(transport="UDP") if p.dst == dst and p.data == b"\r\n"]


async def test_null_keepalive_period_change_and_disable_in_virtual_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    async with net.open_layer(A) as layer, trio.open_nursery() as nursery:
        sip_port = await nursery.start(layer.listen, "UDP", A, 5060)
        keepalives = KeepAlives(layer, nursery)
        t0 = trio.current_time()
        await keepalives.send_sip_keepalive(B, 5060, True, 15)
        await trio.sleep_until(t0 + 46)
        assert [t - t0 for t in crlf_times(net, (B, 5060))] == [0, 15, 30, 45]
        # Sent from the SIP listening port: that is the NAT binding incoming requests use.
        assert {p.src for p in net.packets(transport="UDP")} == {sip_port}

        await keepalives.send_sip_keepalive(B, 5060, True, 5)  # re-time the running loop
        await trio.sleep_until(t0 + 61)
        assert [t - t0 for t in crlf_times(net, (B, 5060))][4:] == [50, 55, 60]
        assert keepalives.statistics().null_loops == {(B, 5060): 5.0}

        await keepalives.send_sip_keepalive(B, 5060, False)
        await trio.sleep_until(t0 + 200)
        assert len(crlf_times(net, (B, 5060))) == 7
        assert keepalives.statistics().null_loops == {}
        nursery.cancel_scope.cancel()


async def test_bad_keepalive_arguments_name_the_problem_and_leave_nothing_running(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    async with net.open_layer(A) as layer, trio.open_nursery() as nursery:
        keepalives = KeepAlives(layer, nursery)
        with pytest.raises(ConfigError, match=r"port=70000 .* 1 to 65535"):
            await keepalives.send_sip_keepalive(B, 70000, True, 10)
        with pytest.raises(ConfigError, match=r"port=0 "):
            await keepalives.send_sip_keepalive(B, 0, True, 10)
        with pytest.raises(ConfigError, match=r"seconds=0 .*greater than 0"):
            await keepalives.send_sip_keepalive(B, 5060, True, 0)
        with pytest.raises(ConfigError, match=r"seconds=-3"):
            await keepalives.send_sip_keepalive(B, 5060, True, -3)
        with pytest.raises(DnsError, match=r"no-such-host\.invalid"):
            await keepalives.send_sip_keepalive("no-such-host.invalid", 5060, True, 10)
        assert keepalives.statistics().null_loops == {}
        assert not nursery.child_tasks  # no keep-alive task was left behind
        nursery.cancel_scope.cancel()


async def test_rfc5626_missing_pong_aborts_the_flow_at_ten_seconds(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    dead: list[tuple[Flow, TransportError]] = []
    async with (
        net.open_layer(A) as client,
        net.open_layer(B) as server,
        trio.open_nursery() as nursery,
    ):
        address = await nursery.start(server.listen, "TCP", B, 5060)
        flow = await client.connect(Target("TCP", *address))
        keepalives = KeepAlives(client, nursery)
        await keepalives.watch_flow(flow, 30, on_dead=lambda f, e: dead.append((f, e)))
        # The server answers pings: the flow stays up through several rounds.
        await trio.sleep(200)
        pings = [p for p in net.packets(transport="TCP") if p.data == b"\r\n\r\n"]
        assert len(pings) >= 6
        assert flow.usable and flow.last_pong is not None and not dead

        # Now the server's side goes silent (blackholed): the next ping gets no pong.
        net.partition(A, B)
        t_cut = trio.current_time()
        failure = await flow.wait_failed()
        waited = trio.current_time() - t_cut
        assert 10.0 <= waited <= 30.0 + 10.0  # next ping within one period, then 10 s
        assert "no CRLF pong within 10 s" in str(failure)
        assert dead and dead[0][0] is flow
        last_ping = max(p.time for p in net.packets(transport="TCP") if p.data == b"\r\n\r\n")
        assert trio.current_time() - last_ping == pytest.approx(10.0)
        await trio.testing.wait_all_tasks_blocked()  # let the loop's task finish unwinding
        assert keepalives.statistics().watched_flows == 0
        nursery.cancel_scope.cancel()


async def test_listener_answers_a_ping_split_across_two_reads_in_virtual_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """RFC 5626 §4.4.1: the answering side holds a lone CRLF until the next byte shows whether
    it is half a ping; each half arrives as a read of its own here, and exactly one pong
    comes back (on real sockets: ::test_real_tcp_listener_answers_a_ping_split_across_two_reads)."""
    net = FakeNetwork()
    async with net.open_layer(B) as server, trio.open_nursery() as nursery:
        address = await nursery.start(server.listen, "TCP", B, 5060)
        stream = await net.backend(A).connect_tcp(*address)
        await stream.send_all(b"\r\n")
        await trio.sleep(1)  # the listener has read the first half alone, and answered nothing
        await stream.send_all(b"\r\n")
        with trio.fail_after(10):
            assert await stream.receive_some(10) == b"\r\n"  # one pong
        with trio.move_on_after(30) as quiet:
            await stream.receive_some(10)
        assert quiet.cancelled_caught  # and no second pong for the halves
        await stream.aclose()
        nursery.cancel_scope.cancel()


async def test_real_udp_keepalive_crlfs_on_the_wire_at_the_period() -> None:
    """On real sockets: CRLFs from the SIP port, one after another. The exact schedule is
    asserted in virtual time above; the real spacing is reported by ``python -m benchmarks
    timing`` (benchmarks/timing_bench.py)."""
    period = 0.1
    with trio.fail_after(10):
        receiver = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        await receiver.bind(("127.0.0.1", 0))
        port = receiver.getsockname()[1]
        async with open_transport_layer() as layer, trio.open_nursery() as nursery:
            sip_address = await nursery.start(layer.listen, "UDP", "127.0.0.1", 0)
            keepalives = KeepAlives(layer, nursery)
            await keepalives.send_sip_keepalive("localhost", port, True, period)
            arrivals = []
            for _ in range(5):
                data, source = await receiver.recvfrom(100)
                arrivals.append((trio.current_time(), data, source))
            await keepalives.send_sip_keepalive("127.0.0.1", port, False)
            assert keepalives.statistics().null_loops == {}
            nursery.cancel_scope.cancel()
        receiver.close()
    assert all(data == b"\r\n" for _, data, _ in arrivals)
    assert {source for _, _, source in arrivals} == {sip_address}
    # Four periods (0.4 s) between the first and the fifth: under 10x that, however loaded.
    assert arrivals[-1][0] - arrivals[0][0] < 10 * 4 * period


async def test_real_tcp_ping_pong_keeps_the_flow_and_silence_kills_it() -> None:
    with trio.fail_after(15):
        async with (
            open_transport_layer() as server,
            open_transport_layer() as client,
            trio.open_nursery() as nursery,
        ):
            address = await nursery.start(server.listen, "TCP", "127.0.0.1", 0)
            flow = await client.connect(Target("TCP", *address))
            keepalives = KeepAlives(client, nursery)
            # Pings every 0.1 s; a pong timeout of 5 s, 10x the silent peer's below: a loaded
            # machine cannot make our own server look silent.
            await keepalives.watch_flow(flow, 0.1, pong_timeout=5.0)
            while flow.last_pong is None:  # bounded by the fail_after above
                await trio.sleep(0.01)
            assert flow.usable  # our server answered a ping

            # A peer that reads but never answers pings.
            silent_listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
            silent_port = silent_listeners[0].socket.getsockname()[1]

            async def swallow(stream: trio.SocketStream) -> None:
                while await stream.receive_some(100):
                    pass

            nursery.start_soon(trio.serve_listeners, swallow, silent_listeners)
            silent = await client.connect(Target("TCP", "127.0.0.1", silent_port))
            await keepalives.watch_flow(silent, 0.1, pong_timeout=0.5)
            failure = await silent.wait_failed()
            assert "no CRLF pong within 0.5 s" in str(failure)
            assert flow.usable and flow in client.flows  # the healthy flow is unaffected
            nursery.cancel_scope.cancel()


async def test_real_tcp_listener_answers_a_ping_split_across_two_reads() -> None:
    with trio.fail_after(10):
        async with open_transport_layer() as server, trio.open_nursery() as nursery:
            address = await nursery.start(server.listen, "TCP", "127.0.0.1", 0)
            stream = await trio.open_tcp_stream(*address)
            await stream.send_all(b"\r\n")  # RFC 5626 §4.4.1 ping, cut in two by the network
            await trio.sleep(0.2)  # the listener reads the first half on its own (most runs)
            await stream.send_all(b"\r\n")
            answer = await stream.receive_some(10)  # bounded by the fail_after above
            await stream.aclose()
            nursery.cancel_scope.cancel()
    assert answer == b"\r\n"  # one pong
