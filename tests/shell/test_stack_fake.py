"""The stack on the in-memory network, in virtual time: exact RFC 3261 §17 timings."""

from __future__ import annotations

import hashlib

import pytest
import trio
import trio.testing

from trio_sip.proto.errors import (
    LocalProtocolError,
    TransactionError,
    TransactionTimeoutError,
    TransportError,
)
from trio_sip.proto.message import Request, Response
from trio_sip.proto.outputs import RetransmitTimeout
from trio_sip.proto.target import Target
from trio_sip.proto.timers import TimerConfig
from trio_sip.proto.transaction import TimeoutRole
from trio_sip.stack import IncomingRequest, open_stack
from trio_sip.testing import FakeNetwork

from .stack_support import (
    CLIENT,
    SERVER,
    Strays,
    answer,
    make_ack,
    make_request,
    sent_times,
    stack_pair,
)


async def test_options_round_trip(autojump_clock: trio.testing.MockClock) -> None:
    net = FakeNetwork()
    net.set_link(CLIENT, SERVER, delay=0.05)
    async with stack_pair(net, answer(200)) as (client, _server, target):
        response = await client.request(make_request("OPTIONS", call_id="rt"), target)
        assert response.status_code == 200
        assert trio.current_time() == pytest.approx(0.1)
        assert response.to.tag is not None
        sent = net.captured[0].message
        via = sent.vias[0]
        assert (via.transport, via.host, via.port) == ("UDP", CLIENT, 5060)
        assert via.branch is not None and via.branch.startswith("z9hG4bK")
        assert sent.headers["Content-Length"] == "0"


async def test_unanswered_non_invite_udp_schedule(autojump_clock: trio.testing.MockClock) -> None:
    net = FakeNetwork()
    net.partition(CLIENT, SERVER)
    async with stack_pair(net, answer(200)) as (client, _server, target):
        with pytest.raises(TransactionTimeoutError):
            await client.request(make_request("OPTIONS", call_id="lost"), target)
        assert trio.current_time() == 32.0
        assert sent_times(net, b"Call-ID: lost") == [
            0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5
        ]  # fmt: skip
        assert client.statistics().client_transactions == 0


async def test_transaction_timeout_setting(autojump_clock: trio.testing.MockClock) -> None:
    net = FakeNetwork()
    net.partition(CLIENT, SERVER)
    config = TimerConfig(sip_transaction_timeout=4000)
    async with stack_pair(net, client_kw={"timer_config": config}) as (client, _server, target):
        with pytest.raises(TransactionTimeoutError):
            await client.request(make_request("MESSAGE", call_id="short"), target)
        assert trio.current_time() == 4.0
        assert sent_times(net, b"Call-ID: short") == [0.0, 0.5, 1.5, 3.5]
        with pytest.raises(TransactionTimeoutError):
            await client.request(make_request("INVITE", call_id="short-inv"), target)
        assert trio.current_time() == 8.0


async def test_icmp_unreachable_fails_at_once(autojump_clock: trio.testing.MockClock) -> None:
    net = FakeNetwork()
    net.set_link(CLIENT, SERVER, delay=0.01)
    async with stack_pair(net, answer(200)) as (client, _server, _target):
        from trio_sip.proto.target import Target

        with pytest.raises(TransportError, match="refused"):
            await client.request(make_request("OPTIONS"), Target("UDP", SERVER, 5999))
        assert trio.current_time() == pytest.approx(0.02)  # one round trip, not Timer F
        assert client.statistics().client_transactions == 0


async def test_invite_retransmissions_stop_on_provisional(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    net.partition(CLIENT, SERVER)

    async def ring_then_answer(incoming: IncomingRequest) -> None:
        await incoming.respond(180)
        await trio.sleep(10)
        await incoming.respond(200)

    async with stack_pair(net, ring_then_answer) as (client, _server, target), trio.open_nursery():
        async with trio.open_nursery() as nursery:

            async def heal() -> None:
                await trio.sleep(1.0)
                net.heal(CLIENT, SERVER)

            nursery.start_soon(heal)
            events: list[tuple[float, int]] = []
            async with client.send_request(make_request("INVITE", call_id="ring"), target) as tx:
                async for event in tx:
                    assert isinstance(event, Response)
                    events.append((trio.current_time(), event.status_code))
        assert events == [(1.5, 180), (11.5, 200)]
        # Timer A would have fired at 3.5 and 7.5: the 180 stopped it.
        assert sent_times(net, b"Call-ID: ring", start=b"INVITE") == [0.0, 0.5, 1.5]


async def test_lost_ack_makes_server_retransmit_final(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    net.set_link(CLIENT, SERVER, delay=0.1)
    async with stack_pair(net, answer(486)) as (client, server, target):
        async with trio.open_nursery() as nursery:

            async def drop_first_ack() -> None:
                await trio.sleep(0.15)
                net.partition(CLIENT, SERVER)
                await trio.sleep(0.1)
                net.heal(CLIENT, SERVER)

            nursery.start_soon(drop_first_ack)
            response = await client.request(make_request("INVITE", call_id="ack"), target)
        assert response.status_code == 486
        await trio.sleep(5)
        finals = [p for p in net.captured if p.data.startswith(b"SIP/2.0 486")]
        acks = [p for p in net.captured if p.data.startswith(b"ACK")]
        assert [(p.time, p.fate) for p in finals] == [
            (pytest.approx(0.1), "delivered"),
            (pytest.approx(0.6), "delivered"),  # Timer G: T1 after the first
        ]
        assert [(p.time, p.fate) for p in acks] == [
            (pytest.approx(0.2), "blackholed"),
            (pytest.approx(0.7), "delivered"),
        ]
        ack = acks[0].message
        assert ack.vias[0].branch == net.captured[0].message.vias[0].branch
        assert server.statistics().server_transactions == 1  # Confirmed, Timer I (5 s) running
        await trio.sleep(5)
        assert server.statistics().server_transactions == 0


async def test_accepted_state_absorbs_retransmissions(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """RFC 6026: a 2xx ends neither side; INVITE retransmissions are absorbed by the server,
    a retransmitted 2xx reaches the client's TU (on_stray) so that it can ACK again."""
    net = FakeNetwork()
    net.set_link(SERVER, CLIENT, loss=1.0, both_ways=False)  # the first 200 is lost
    calls: list[float] = []

    async def answer_and_retransmit(incoming: IncomingRequest) -> None:
        calls.append(trio.current_time())
        ok = await incoming.respond(200)
        await trio.sleep(1)
        net.set_link(SERVER, CLIENT, both_ways=False)
        await incoming.respond(ok)  # the TU retransmits its 2xx
        await trio.sleep(1)
        await incoming.respond(ok)

    strays = Strays()
    async with stack_pair(net, answer_and_retransmit, client_kw={"on_stray": strays}) as (
        client,
        server,
        target,
    ):
        response = await client.request(make_request("INVITE", call_id="acc"), target)
        assert response.status_code == 200
        assert trio.current_time() == 1.0
        assert sent_times(net, b"Call-ID: acc", start=b"INVITE") == [0.0, 0.5]
        assert calls == [0.0]  # the retransmission at 0.5 was absorbed (Accepted)
        await trio.sleep(1.5)
        assert [m.status_code for m in strays.of(Response)] == [200]
        await client.send_stateless(make_ack(client_request(net, b"acc"), response), target)
        await trio.sleep(1)
        assert server.statistics().server_transactions == 1  # Timer L: 32 s
        assert client.statistics().client_transactions == 1  # Timer M: 32 s
        await trio.sleep(40)
        assert client.statistics().tasks == 0 and server.statistics().tasks == 0


def client_request(net: FakeNetwork, marker: bytes) -> Request:
    for packet in net.captured:
        if packet.data.startswith(b"INVITE") and marker in packet.data:
            message = packet.message
            assert isinstance(message, Request)
            return message
    raise AssertionError("no such INVITE")


async def _heal_at(net: FakeNetwork, when: float) -> None:
    await trio.sleep_until(when)
    net.heal(CLIENT, SERVER)


async def test_cancel_gets_200_and_invite_487(autojump_clock: trio.testing.MockClock) -> None:
    net = FakeNetwork()
    net.set_link(CLIENT, SERVER, delay=0.01)
    seen: list[IncomingRequest] = []

    async def ring_forever(incoming: IncomingRequest) -> None:
        seen.append(incoming)
        await incoming.respond(180)
        await incoming.wait_cancelled()

    async with stack_pair(net, ring_forever) as (client, server, target):
        async with client.send_request(make_request("INVITE", call_id="cx"), target) as tx:
            first = await tx.__anext__()
            assert isinstance(first, Response) and first.status_code == 180
            cancel = await client.request(tx.make_cancel(), target, new_via=False)
            assert cancel.status_code == 200
            final = await tx.wait_final()
        assert final.status_code == 487
        assert seen[0].cancelled
        assert final.to.tag == seen[0].to_tag == first.to.tag
        await trio.sleep(0.1)
        acks = [p.message for p in net.captured if p.data.startswith(b"ACK")]
        assert len(acks) == 1 and acks[0].vias[0].branch == tx.request.vias[0].branch
        # A CANCEL for nothing gets 481.
        stray = make_request("INVITE", call_id="nothing")
        orphan = client.add_via(stray, tx.flow).evolve(method="CANCEL")
        orphan = orphan.evolve(headers=orphan.headers.replace("CSeq", "1 CANCEL"))
        response = await client.request(orphan, target, new_via=False)
        assert response.status_code == 481
        assert server.statistics().handlers == 0


async def test_cancel_in_the_stateful_proxy_role(autojump_clock: trio.testing.MockClock) -> None:
    # §16.10: the stack answers the CANCEL 200 and wakes wait_cancelled, but sends no 487 of
    # its own (the proxy forwards its branches' best response); a CANCEL matching nothing
    # goes to on_stray without a transaction (to be forwarded statelessly), not 481.
    net = FakeNetwork()
    net.set_link(CLIENT, SERVER, delay=0.01)
    strays = Strays()
    woke: list[float] = []

    async def proxy_like(incoming: IncomingRequest) -> None:
        await incoming.respond(180)
        await incoming.wait_cancelled()
        woke.append(trio.current_time())
        await trio.sleep(1)  # the branches' 487 takes a while to come back
        await incoming.respond(487, headers=[("X-From", "downstream")])

    server_kw = {"role": TimeoutRole.STATEFUL_PROXY, "on_stray": strays}
    async with stack_pair(net, proxy_like, server_kw=server_kw) as (client, server, target):
        async with client.send_request(make_request("INVITE", call_id="px"), target) as tx:
            first = await tx.__anext__()
            assert isinstance(first, Response) and first.status_code == 180
            cancel = await client.request(tx.make_cancel(), target, new_via=False)
            assert cancel.status_code == 200
            final = await tx.wait_final()
        assert woke and final.status_code == 487 and final.headers["X-From"] == "downstream"
        assert trio.current_time() - woke[0] == pytest.approx(1.01)
        finals = [p for p in net.captured if p.data.startswith(b"SIP/2.0 487")]
        assert len(finals) == 1
        before = server.statistics().server_transactions
        stray = make_request("INVITE", call_id="nothing")
        orphan = client.add_via(stray, tx.flow).evolve(method="CANCEL")
        orphan = orphan.evolve(headers=orphan.headers.replace("CSeq", "1 CANCEL"))
        await client.send_stateless(orphan, target, new_via=False)
        await trio.sleep(0.1)
        (got,) = strays.of(Request)
        assert got.method == "CANCEL" and got.call_id == "nothing"
        assert not [p for p in net.captured if p.data.startswith(b"SIP/2.0 481")]
        assert server.statistics().server_transactions == before


async def test_application_retransmit_role(autojump_clock: trio.testing.MockClock) -> None:
    net = FakeNetwork()
    net.partition(CLIENT, SERVER)
    role = TimeoutRole.USER_AGENT_APP_RETRANSMIT
    async with stack_pair(net, answer(200), client_kw={"role": role}) as (client, _s, target):
        timeouts: list[float] = []
        # JAIN's "User Agent" hears no TRANSACTION timeout on an INVITE: the handle still ends.
        with pytest.raises(TransactionError) as info:
            async with client.send_request(make_request("INVITE", call_id="app"), target) as tx:
                async for event in tx:
                    assert isinstance(event, RetransmitTimeout)
                    timeouts.append(trio.current_time())
                    if len(timeouts) == 1:
                        tx.retransmit()
        assert not isinstance(info.value, TransactionTimeoutError)
        assert timeouts == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
        assert trio.current_time() == 32.0
        assert sent_times(net, b"Call-ID: app") == [0.0, 0.5]  # only what the app resent
        # Not allowed for a non-INVITE: the stack retransmits those itself.
        async with client.send_request(make_request("OPTIONS"), target) as tx:
            with pytest.raises(LocalProtocolError):
                tx.retransmit()


async def test_retransmit_interval_option(autojump_clock: trio.testing.MockClock) -> None:
    net = FakeNetwork()
    net.partition(CLIENT, SERVER)
    async with stack_pair(net) as (client, _server, target):
        with trio.move_on_after(2):
            await client.request(
                make_request("INVITE", call_id="ri"), target, retransmit_interval=0.2
            )
        assert sent_times(net, b"Call-ID: ri") == pytest.approx([0.0, 0.2, 0.6, 1.4])


async def test_handler_exception_gets_500_and_stack_lives_on(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    net = FakeNetwork()

    async def flaky(incoming: IncomingRequest) -> None:
        if incoming.request.call_id == "boom":
            raise RuntimeError("handler bug")
        if incoming.request.call_id == "silent":
            return
        await incoming.respond(200)

    # strict=False: the handler's RuntimeError is what this test is about (in strict mode, the
    # default of the test suite, it would fail the stack: see tests/shell/test_faults_stack.py).
    async with stack_pair(net, flaky, server_kw={"strict": False}) as (client, server, target):
        bad = await client.request(make_request("MESSAGE", call_id="boom"), target)
        assert bad.status_code == 500
        assert "handler bug" in caplog.text
        assert server.faults["handler"] == 1
        silent = await client.request(make_request("MESSAGE", call_id="silent"), target)
        assert silent.status_code == 500
        assert server.faults["no-answer"] == 1
        good = await client.request(make_request("MESSAGE", call_id="fine"), target)
        assert good.status_code == 200
        assert server.statistics().handlers == 0
        assert server.statistics().faults == 2


async def test_cancellation_leaves_nothing(autojump_clock: trio.testing.MockClock) -> None:
    net = FakeNetwork()
    net.partition(CLIENT, SERVER)
    async with stack_pair(net) as (client, _server, target):
        with trio.move_on_after(1.0):
            async with trio.open_nursery() as nursery:
                for _n in range(5):
                    nursery.start_soon(client.request, make_request("INVITE"), target)
                    nursery.start_soon(client.request, make_request("OPTIONS"), target)
        stats = client.statistics()
        assert (stats.client_transactions, stats.tasks) == (0, 0)
        sends = len(net.captured)
        await trio.sleep(60)
        assert len(net.captured) == sends  # no timer left behind
        # No flow to close: the datagrams left from the client's listening socket.
        assert client.statistics().flows == 0


async def test_closing_the_stack_cancels_transactions(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    net.partition(CLIENT, SERVER)
    async with stack_pair(net) as (client, _server, target):
        async with trio.open_nursery() as nursery:

            async def call() -> None:
                with pytest.raises(TransactionError):
                    await client.request(make_request("OPTIONS"), target)

            nursery.start_soon(call)
            await trio.sleep(1)
            assert client.statistics().client_transactions == 1
            await client.aclose()
        assert client.statistics().tasks == 0
        assert client.transport_layer.flows == []
        with pytest.raises(TransportError):
            await client.request(make_request("OPTIONS"), target)


async def test_requests_iterator(autojump_clock: trio.testing.MockClock) -> None:
    net = FakeNetwork()
    async with stack_pair(net) as (client, server, target), trio.open_nursery() as nursery:

        async def serve() -> None:
            async for incoming in server.requests():
                await incoming.respond(202, headers=[("X-Seen", incoming.method)])

        nursery.start_soon(serve)
        response = await client.request(make_request("MESSAGE", body=b"hi"), target)
        assert (response.status_code, response.headers["X-Seen"]) == (202, "MESSAGE")
        nursery.cancel_scope.cancel()


async def test_malformed_requests_answered_statelessly(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    calls: list[IncomingRequest] = []

    async def handler(incoming: IncomingRequest) -> None:
        calls.append(incoming)
        await incoming.respond(200)

    async with stack_pair(net, handler) as (client, server, target):
        require = make_request("OPTIONS", headers=(("Require", "foo"),))
        response = await client.request(require, target)
        assert (response.status_code, response.headers["Unsupported"]) == (420, "foo")
        twice = make_request("OPTIONS", headers=(("Max-Forwards", "10"),))
        assert (await client.request(twice, target)).status_code == 400
        unknown = make_request("FROB")
        response = await client.request(unknown, target)
        assert response.status_code == 501 and "OPTIONS" in response.headers["Allow"]
        assert calls == []
        assert server.statistics().server_transactions == 0  # stateless


async def test_malformed_and_stray_responses_dropped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    strays = Strays()
    async with stack_pair(net, client_kw={"on_stray": strays}) as (client, _server, target):
        sock = await net.backend(SERVER).open_udp(SERVER, 7000)
        async with client.send_request(make_request("OPTIONS", call_id="m"), target) as tx:
            branch = tx.request.vias[0].branch
            via = f"SIP/2.0/UDP {CLIENT}:5060;branch={branch}"
            base = f"Via: {via}\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@y>;tag=2\r\nCall-ID: m\r\n"
            bad = f"SIP/2.0 200 OK\r\n{base}CSeq: one OPTIONS\r\nContent-Length: 0\r\n\r\n"
            await sock.sendto(bad.encode(), (CLIENT, 5060))
            stray = bad.replace("one OPTIONS", "1 OPTIONS").replace(branch or "", "z9hG4bKzz")
            await sock.sendto(stray.encode(), (CLIENT, 5060))
            good = stray.replace("z9hG4bKzz", branch or "")
            await sock.sendto(good.encode(), (CLIENT, 5060))
            final = await tx.wait_final()
        assert final.status_code == 200 and final.vias[0].branch == branch
        assert [m.vias[0].branch for m in strays.of(Response)] == ["z9hG4bKzz"]
        sock.close()


async def test_tcp_has_no_retransmissions(autojump_clock: trio.testing.MockClock) -> None:
    net = FakeNetwork()
    net.set_link(CLIENT, SERVER, delay=0.05)

    async def slow(incoming: IncomingRequest) -> None:
        await trio.sleep(5)
        await incoming.respond(200)

    async with stack_pair(net, slow, transport="TCP") as (client, server, target):
        response = await client.request(make_request("OPTIONS", call_id="tcp"), target)
        assert response.status_code == 200
        assert trio.current_time() == pytest.approx(5.2)  # connect RTT + request + response
        assert len(sent_times(net, b"Call-ID: tcp", start=b"OPTIONS")) == 1
        # Timer K and J are zero over TCP: nothing lingers.
        await trio.sleep(0)
        assert client.statistics().client_transactions == 0
        assert server.statistics().server_transactions == 0


async def test_tcp_reset_reaches_transaction_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()

    async def never(incoming: IncomingRequest) -> None:
        await trio.sleep_forever()

    async def reset() -> None:
        await trio.sleep(3)
        net.refuse(SERVER, 5060)

    async with (
        stack_pair(net, never, transport="TCP") as (client, _server, target),
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(reset)
        with pytest.raises(TransportError):
            await client.request(make_request("OPTIONS"), target)
        assert trio.current_time() == 3.0


async def test_lossy_reordering_network_still_completes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork(seed=7)
    net.set_link(CLIENT, SERVER, loss=0.3, delay=0.02, jitter=0.05)

    async def handler(incoming: IncomingRequest) -> None:
        # A 2xx to an INVITE is the TU's to retransmit (RFC 6026): use a 486 here.
        await incoming.respond(486 if incoming.method == "INVITE" else 200)

    async with stack_pair(net, handler) as (client, _server, target):
        async with trio.open_nursery() as nursery:
            results: list[int] = []

            async def one(n: int) -> None:
                method = "INVITE" if n % 2 else "OPTIONS"
                response = await client.request(make_request(method, call_id=f"l{n}"), target)
                results.append(response.status_code)

            for n in range(40):
                nursery.start_soon(one, n)
        assert sorted(results) == [200] * 20 + [486] * 20
        assert len(net.packets(fate="lost")) > 0


async def test_stateless_proxy_role(autojump_clock: trio.testing.MockClock) -> None:
    """§16.11: the proxy keeps no transaction; retransmissions are forwarded with the same
    branch (computed from the request), responses go back by the next Via."""
    net = FakeNetwork(seed=3)
    proxy_host = "10.0.0.3"
    net.set_link(CLIENT, proxy_host, loss=0.3)
    async with (
        stack_pair(net, answer(200)) as (client, server, server_target),
        trio.open_nursery() as nursery,
    ):
        forwarded: list[str] = []

        async def relay(message: Request | Response) -> None:
            if isinstance(message, Request):
                top = message.headers.get_list("Via")[0]
                branch = "z9hG4bK" + hashlib.sha1(top.encode()).hexdigest()[:16]
                forwarded.append(branch)
                await proxy.send_stateless(message, server_target, branch=branch)
            else:
                await proxy.send_stateless(
                    message.evolve(headers=message.headers.remove_first("Via"))
                )

        def on_message(message: Request | Response, flow: object) -> None:
            nursery.start_soon(relay, message)

        role = TimeoutRole.STATELESS_PROXY
        async with open_stack(
            [("UDP", proxy_host, 5060)],
            role=role,
            on_stray=on_message,
            backend=net.backend(proxy_host),
        ) as proxy:
            with pytest.raises(LocalProtocolError):
                await proxy.request(make_request(), server_target)
            target = Target("UDP", proxy_host, 5060)
            for n in range(10):
                response = await client.request(make_request("OPTIONS", call_id=f"p{n}"), target)
                assert response.status_code == 200
                assert len(response.vias) == 1
                stats = proxy.statistics()
                assert stats.client_transactions == stats.server_transactions == 0
            assert len(forwarded) > 10  # retransmissions were forwarded ...
            assert len(set(forwarded)) == 10  # ... with the same branch as their original
            assert server.statistics().handlers == 0
        nursery.cancel_scope.cancel()


async def test_tcp_connect_into_a_blackhole_is_bounded_by_the_transaction_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    config = TimerConfig(sip_transaction_timeout=4000)
    async with stack_pair(
        net, answer(200), transport="TCP", client_kw={"timer_config": config}
    ) as (client, _server, target):
        net.partition(CLIENT, SERVER)  # the SYN goes nowhere
        with pytest.raises(TransactionTimeoutError, match="connect"):
            await client.request(make_request("OPTIONS", call_id="syn"), target)
        assert trio.current_time() == pytest.approx(4.0)
        assert client.statistics().client_transactions == 0
