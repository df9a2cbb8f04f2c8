"""Seed 004's timeout table on the stack, in virtual time, row by row (role x side x method).

For each row of ``TIMEOUT_TABLE`` a stack in that role sends a request nobody answers
(client rows) or answers a request whose ACK never comes (server rows). The test checks what a
user would: the retransmissions on the (in-memory) wire and who caused them, the typed
timeout events delivered to ``open_stack(on_timeout=...)`` and to ``stack.timeouts()`` (the
same events, in the same order), and how the transaction handle ends. Where the application
retransmits, it does so on every other RETRANSMIT event only, so the wire shows that the
application, not the stack, decides.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from trio_sip.proto.errors import LocalProtocolError, TransactionError, TransactionTimeoutError
from trio_sip.proto.message import Request
from trio_sip.proto.transaction import (
    TIMEOUT_TABLE,
    Retransmitter,
    Side,
    Timeout,
    TimeoutRole,
    TimeoutRule,
)
from trio_sip.stack import (
    ClientTransaction,
    IncomingRequest,
    RetransmitTimeoutEvent,
    Stack,
    TimeoutEvent,
    TransactionTimeoutEvent,
)
from trio_sip.testing import FakeNetwork

from .stack_support import CLIENT, SERVER, Strays, make_request, sent_times, stack_pair

# RFC 3261 §17 schedules with T1 = 0.5 s, T2 = 4 s (every timeout at 32 s).
INVITE_SCHEDULE = [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]  # Timer A: doubling, no cap
G_SCHEDULE = [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]  # Timer E / G: cap T2


STATEFUL = [r for r in TIMEOUT_TABLE if r.role is not TimeoutRole.STATELESS_PROXY]
CLIENT_ROWS = [r for r in STATEFUL if r.side is Side.CLIENT]
SERVER_ROWS = [r for r in STATEFUL if r.side is Side.SERVER]


def rule_id(rule: TimeoutRule) -> str:
    return f"{rule.role.name}-{rule.side.value}-{rule.method}"


class App:
    """The application: records the events and, where it retransmits, resends on every other
    RETRANSMIT event."""

    def __init__(self) -> None:
        self.events: list[TimeoutEvent] = []
        self.resent_at: list[float] = []

    def __call__(self, event: TimeoutEvent) -> None:
        self.events.append(event)
        if isinstance(event, RetransmitTimeoutEvent):
            ticks = sum(isinstance(e, RetransmitTimeoutEvent) for e in self.events)
            if ticks % 2 == 1:
                event.transaction.retransmit()
                self.resent_at.append(trio.current_time())


async def drain(stack_events: Any, count: int) -> list[TimeoutEvent]:
    got: list[TimeoutEvent] = []
    with trio.fail_after(1):
        for _ in range(count):
            got.append(await stack_events.__anext__())
    assert len(stack_events) == 0
    assert all(isinstance(e, TimeoutEvent) for e in got)  # the base every event shares
    return got


def expected_wire(rule: TimeoutRule, schedule: list[float], resent_at: list[float]) -> list[float]:
    if rule.retransmits is Retransmitter.APPLICATION:
        return [0.0, *resent_at]
    return [0.0, *schedule]


@pytest.mark.parametrize("rule", CLIENT_ROWS, ids=rule_id)
async def test_client_rows(rule: TimeoutRule, autojump_clock: trio.testing.MockClock) -> None:
    net = FakeNetwork()
    net.partition(CLIENT, SERVER)  # nothing is ever answered
    app = App()
    kw = {"role": rule.role, "on_timeout": app}
    method = "INVITE" if rule.invite else "MESSAGE"
    async with stack_pair(net, client_kw=kw) as (client, _server, target):
        stream = client.timeouts()
        handle: ClientTransaction | None = None
        with pytest.raises(TransactionError) as info:
            async with client.send_request(make_request(method, call_id="row"), target) as tx:
                handle = tx
                await tx.wait_final()
        assert trio.current_time() == 32.0
        # The handle always ends; TransactionTimeoutError exactly where TRANSACTION is heard.
        assert isinstance(info.value, TransactionTimeoutError) is rule.hears_transaction
        schedule = INVITE_SCHEDULE if rule.invite else G_SCHEDULE
        wire = sent_times(net, b"Call-ID: row", start=method.encode())
        assert wire == expected_wire(rule, schedule, app.resent_at)
        if rule.retransmits is Retransmitter.APPLICATION:
            assert app.resent_at == schedule[::2]  # every other tick: the app decides
        # The events: RETRANSMIT on each tick, TRANSACTION at 32 s, as the row says.
        expected: list[tuple[type[TimeoutEvent], str, float]] = []
        if rule.hears_retransmit:
            expected += [(RetransmitTimeoutEvent, rule.retransmit_timer, t) for t in schedule]
        if rule.hears_transaction:
            expected.append((TransactionTimeoutEvent, rule.timeout_timer, 32.0))
        assert [(type(e), e.timer, e.time) for e in app.events] == expected
        for event in app.events:
            assert event.transaction is handle and event.request is handle.request
            assert (event.role, event.side, event.method) == (rule.role, Side.CLIENT, method)
            assert event.call_id == "row"
            retransmit = isinstance(event, RetransmitTimeoutEvent)
            assert event.timeout is (Timeout.RETRANSMIT if retransmit else Timeout.TRANSACTION)
        assert await drain(stream, len(app.events)) == app.events


async def _send_raw(client: Stack, method: str, target: Any) -> Request:
    """The peer: one request outside any transaction (it never retransmits, never ACKs)."""
    sent = await client.send_stateless(make_request(method, call_id="row"), target)
    assert isinstance(sent, Request)
    return sent


@pytest.mark.parametrize("rule", SERVER_ROWS, ids=rule_id)
async def test_server_rows(rule: TimeoutRule, autojump_clock: trio.testing.MockClock) -> None:
    net = FakeNetwork()
    app = App()
    handles: list[IncomingRequest] = []
    status = 486 if rule.invite else 200

    async def handler(incoming: IncomingRequest) -> None:
        handles.append(incoming)
        await incoming.respond(status)

    kw = {"role": rule.role, "on_timeout": app}
    method = "INVITE" if rule.invite else "MESSAGE"
    async with stack_pair(net, handler, server_kw=kw) as (client, server, target):
        stream = server.timeouts()
        sent = await _send_raw(client, method, target)
        if not rule.invite:
            await trio.sleep(1.0)
            await client.send_stateless(sent, target, new_via=False)  # a retransmission
        await trio.sleep(40)
        (incoming,) = handles
        assert server.statistics().server_transactions == 0  # ended, nothing left
        wire = sent_times(net, b"Call-ID: row", start=f"SIP/2.0 {status}".encode())
        if not rule.invite:  # answered again only because the request came again
            assert wire == [0.0, 1.0]
        else:
            assert wire == expected_wire(rule, G_SCHEDULE, app.resent_at)
            assert incoming.timed_out  # Timer H fired, heard or not
        if rule.retransmits is Retransmitter.APPLICATION:
            assert app.resent_at == G_SCHEDULE[::2]
        expected: list[tuple[type[TimeoutEvent], str, float]] = []
        if rule.hears_retransmit:
            expected += [(RetransmitTimeoutEvent, "G", t) for t in G_SCHEDULE]
        if rule.hears_transaction:
            expected.append((TransactionTimeoutEvent, "H", 32.0))
        assert [(type(e), e.timer, e.time) for e in app.events] == expected
        for event in app.events:
            assert event.transaction is incoming
            assert (event.role, event.side, event.method) == (rule.role, Side.SERVER, method)
        assert await drain(stream, len(app.events)) == app.events
        if rule.retransmits is not Retransmitter.APPLICATION:
            with pytest.raises(LocalProtocolError):
                incoming.retransmit()


async def test_stateless_proxy_rows(autojump_clock: trio.testing.MockClock) -> None:
    """No transaction, no retransmission, no timeout event, for either side and method."""
    net = FakeNetwork()
    app = App()
    strays = Strays()
    kw = {"role": TimeoutRole.STATELESS_PROXY, "on_timeout": app, "on_stray": strays}
    async with stack_pair(net, server_kw=kw) as (client, server, target):
        rows = [r for r in TIMEOUT_TABLE if r.role is TimeoutRole.STATELESS_PROXY]
        assert len(rows) == 4
        assert {(r.retransmits, r.hears_retransmit, r.hears_transaction) for r in rows} == {
            (Retransmitter.NOBODY, False, False)
        }
        stream = server.timeouts()
        for method in ("INVITE", "MESSAGE"):  # server side: every message goes to on_stray
            await _send_raw(client, method, target)
        await trio.sleep(40)
        assert [m.method for m in strays.of(Request)] == ["INVITE", "MESSAGE"]
        assert server.statistics().server_transactions == 0
        for method in ("INVITE", "MESSAGE"):  # client side: no client transactions at all
            with pytest.raises(LocalProtocolError, match="stateless"):
                async with server.send_request(make_request(method), target):
                    pass
        assert not [p for p in net.captured if p.src[0] == SERVER]  # it sent nothing itself
        assert app.events == [] and len(stream) == 0


@pytest.mark.parametrize("strict", [False, True])
async def test_a_failing_callback_is_a_fault_and_the_stream_still_gets_the_event(
    strict: bool, autojump_clock: trio.testing.MockClock
) -> None:
    """A bug in ``on_timeout`` is counted as a "timeout-hook" fault (stack.faults) and the
    stack keeps serving; in strict mode (the test suite's) the bug fails the stack instead."""
    net = FakeNetwork()
    net.partition(CLIENT, SERVER)

    def broken(event: TimeoutEvent) -> None:
        raise RuntimeError("application bug")

    kw = {"on_timeout": broken, "strict": strict}
    with pytest.raises(RuntimeError, match="application bug") if strict else trio.CancelScope():
        async with stack_pair(net, client_kw=kw) as (client, _server, target):
            stream = client.timeouts()
            with pytest.raises(TransactionTimeoutError):
                await client.request(make_request("OPTIONS"), target)
            (event,) = await drain(stream, 1)
            assert isinstance(event, TransactionTimeoutEvent) and event.timer == "F"
            assert client.faults["timeout-hook"] == 1
            await trio.sleep(1)
            assert client.statistics().client_transactions == 0  # it keeps serving


async def test_streams_are_bounded_and_end_when_the_stack_closes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    net.partition(CLIENT, SERVER)
    async with stack_pair(net) as (client, _server, target):
        small = client.timeouts(maxlen=2)

        async def unanswered(call_id: str) -> None:
            with pytest.raises(TransactionTimeoutError):
                await client.request(make_request("OPTIONS", call_id=call_id), target)

        async with trio.open_nursery() as nursery:
            for n in range(3):
                nursery.start_soon(unanswered, f"b{n}")
                await trio.sleep(0.01)
        assert len(small) == 2 and small.dropped == 1
        reader_done = trio.Event()
        seen: list[TimeoutEvent] = []

        async def read() -> None:
            async for event in small:
                seen.append(event)
            reader_done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            await trio.sleep(1)
            await client.aclose()
            with trio.fail_after(1):
                await reader_done.wait()
        assert [e.call_id for e in seen] == ["b1", "b2"]
        assert [e async for e in client.timeouts()] == []  # a stream made after closing is over


async def test_a_per_transaction_interval_is_that_transactions_t1_on_the_wire(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """JAIN ``setRetransmitTimer``: client ``retransmit_interval=`` and server
    ``incoming.set_retransmit_interval()`` scale Timers E/G and F/H for one transaction."""
    net = FakeNetwork()
    app = App()

    async def handler(incoming: IncomingRequest) -> None:
        incoming.set_retransmit_interval(0.1)
        await incoming.respond(486)

    async with stack_pair(net, handler, server_kw={"on_timeout": app}) as (client, _s, target):
        net.partition(CLIENT, SERVER)
        with pytest.raises(TransactionTimeoutError):
            await client.request(
                make_request("OPTIONS", call_id="fast"), target, retransmit_interval=0.1
            )
        assert trio.current_time() == pytest.approx(6.4)  # Timer F = 64 * 0.1
        scaled = [0.0, 0.1, 0.3, 0.7, 1.5, 3.1, 6.3]  # doubling from 0.1, capped at T2
        assert sent_times(net, b"Call-ID: fast") == pytest.approx(scaled)
        net.heal(CLIENT, SERVER)
        start = trio.current_time()
        await _send_raw(client, "INVITE", target)  # answered 486, never ACKed
        await trio.sleep(10)
        wire = sent_times(net, b"Call-ID: row", start=b"SIP/2.0 486")
        assert [t - start for t in wire] == pytest.approx(scaled)  # Timer G from 0.1
        ((kind, timer, at),) = [(type(e), e.timer, e.time - start) for e in app.events]
        assert (kind, timer, at) == (TransactionTimeoutEvent, "H", pytest.approx(6.4))
