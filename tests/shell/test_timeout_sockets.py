"""Timeout events over real UDP sockets on loopback: a raw socket plays the silent peer.

Real time, so no test here asserts a duration: only what crossed the socket and which events
were delivered, in which order (every wait is bounded by ``fail_after`` against a hang).
"""

from __future__ import annotations

import socket

import pytest
import trio

from trio_sip.proto.errors import TransactionTimeoutError
from trio_sip.proto.message import Request
from trio_sip.proto.parse import parse_message
from trio_sip.proto.target import Target
from trio_sip.proto.timers import TimerConfig
from trio_sip.proto.transaction import ServerInviteState, Side, TimeoutRole
from trio_sip.stack import (
    IncomingRequest,
    RetransmitTimeoutEvent,
    TimeoutEvent,
    TransactionTimeoutEvent,
    open_stack,
)

from .stack_support import make_request

LOOPBACK = "127.0.0.1"
FAST = TimerConfig(t1=0.01, t2=0.04)  # Timer H / F = 0.64 s


async def _drain(sock: trio.socket.SocketType) -> list[bytes]:
    """Every datagram waiting on ``sock`` (bounded: loopback delivers at once)."""
    got: list[bytes] = []
    for _ in range(1000):
        with trio.move_on_after(0.2):
            got.append(await sock.recv(65535))
            continue
        break
    return got


async def test_app_retransmit_server_over_real_udp() -> None:
    """JAIN's "User Agent": the application resends our 486 on each RETRANSMIT event (Timer
    G); every resend, and only those, reaches the peer; Timer H ends it without TRANSACTION."""
    events: list[TimeoutEvent] = []
    resent: list[TimeoutEvent] = []

    def on_timeout(event: TimeoutEvent) -> None:
        events.append(event)
        # A timer task woken late (a loaded machine) runs every due timer at once: a last G
        # tick can come with Timer H, when the transaction has ended and there is nothing left
        # to resend (retransmit() would raise). Resend while it is Completed, and count.
        completed = event.transaction.state is ServerInviteState.COMPLETED
        if isinstance(event, RetransmitTimeoutEvent) and completed:
            event.transaction.retransmit()
            resent.append(event)

    handled: list[IncomingRequest] = []

    async def handler(incoming: IncomingRequest) -> None:
        handled.append(incoming)
        await incoming.respond(486)

    peer = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    async with open_stack(
        [("UDP", LOOPBACK, 0)], timer_config=FAST, handler=handler, on_timeout=on_timeout,
        role=TimeoutRole.USER_AGENT_APP_RETRANSMIT,
    ) as stack:  # fmt: skip
        await peer.bind((LOOPBACK, 0))
        host, port = peer.getsockname()
        (_, address) = stack.listening[0]
        invite = make_request("INVITE", host=LOOPBACK, call_id="real-udp")
        invite = invite.evolve(
            headers=invite.headers.prepend("Via", f"SIP/2.0/UDP {host}:{port};branch=z9hG4bKraw1")
        )
        await peer.sendto(bytes(invite), address)
        with trio.fail_after(10):
            while not handled or stack.statistics().server_transactions:
                await trio.sleep(0.05)
        incoming = handled[0]
        assert incoming.timed_out
        responses = [parse_message(data) for data in await _drain(peer)]
        assert {r.status_code for r in responses} == {486}  # type: ignore[union-attr]
        ticks = [e for e in events if isinstance(e, RetransmitTimeoutEvent)]
        assert resent and len(responses) == 1 + len(resent)  # the first, then one per resend
        assert resent == ticks[: len(resent)]  # only the last ticks can come too late
        assert not [e for e in events if isinstance(e, TransactionTimeoutEvent)]
        assert all(e.transaction is incoming and e.timer == "G" for e in ticks)
        assert [e.time for e in ticks] == sorted(e.time for e in ticks)
    peer.close()


async def test_user_agent_client_over_real_udp() -> None:
    """JAIN's "User Agent with No Retransmission": the stack resends an unanswered OPTIONS by
    itself and the application hears Timer F, once, as TRANSACTION."""
    events: list[TimeoutEvent] = []
    peer = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await peer.bind((LOOPBACK, 0))
    host, port = peer.getsockname()
    async with open_stack([("UDP", LOOPBACK, 0)], timer_config=FAST) as stack:
        stream = stack.timeouts()
        options = make_request("OPTIONS", host=LOOPBACK, call_id="real-udp-2")
        with trio.fail_after(10), pytest.raises(TransactionTimeoutError):
            await stack.request(options, Target("UDP", host, port))
        with trio.fail_after(10):  # a hang guard: the event is delivered with the timeout
            events.append(await stream.__anext__())
        sent = [parse_message(data) for data in await _drain(peer)]
    peer.close()
    (event,) = events
    assert isinstance(event, TransactionTimeoutEvent)
    assert (event.side, event.method, event.timer) == (Side.CLIENT, "OPTIONS", "F")
    assert len(sent) > 1  # retransmitted by the stack, no application involved
    assert all(isinstance(m, Request) and m.call_id == "real-udp-2" for m in sent)
