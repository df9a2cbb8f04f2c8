"""Seed 002 on the wire, in virtual time: our 200 OK to an initial INVITE cycles through the
configured proxies when no ACK comes (only with sip_transaction_timeout < 32000).

Seed 002: "Retrying a 200 OK response to an initial INVITE (answering the call) ... work[s]
only when the sip_transaction_timeout parameter is set to a value lower than 32000
milliseconds ... These requests are retried continuously for 32 seconds total (cycling through
the list of configured proxies), after which the call is abandoned."

P1 forwards Alice's INVITE (Record-Route P1) to our agent and then dies (a black hole); P2 is
the other member of the cluster. The INVITE reaches us at 0.01 s.
"""

from __future__ import annotations

import contextlib

import pytest
import trio
import trio.testing

from trio_sip.proto.errors import TransactionTimeoutError
from trio_sip.proto.message import Response
from trio_sip.testing import FakeNetwork
from trio_sip.ua import Call, CallState, EndReason, UserAgent

from .retry_support import (
    CLUSTER,
    P1,
    P2,
    UA,
    Peer,
    ack_for,
    cluster,
    incoming_invite,
    linked,
    rounded,
    sent_by,
    target,
    wait_arrived,
)


async def ring_then_lose_p1(ua: UserAgent, net: FakeNetwork, calls: list[Call]) -> None:
    """Ring (the 180 gets through P1), then P1 dies, then answer."""
    async for incoming in ua.incoming_calls():
        await incoming.ring()
        await trio.sleep(0.001)  # the 180 is on its way
        net.partition(UA, P1)
        calls.append(await incoming.accept())
        return


async def forward_invite(p1: Peer, call_id: str) -> None:
    """P1 forwards the INVITE to our agent; its transaction gets the 180, then nothing (P1
    hears no more) and ends at its own Timer B."""
    assert p1.stack is not None
    with contextlib.suppress(TransactionTimeoutError):
        async with p1.stack.send_request(incoming_invite(call_id), target(UA)) as tx:
            async for _ in tx:
                pass


RFC_SCHEDULE = [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]


def cycled(start: float, window: float, hosts: tuple[str, str]) -> list[tuple[float, str]]:
    """The 200s when cycling from ``start``: RFC 3261's schedule (T1 doubling to T2, from the
    first 200) and one more at each move, every ``window`` s; each goes to the destination of
    its moment, ``hosts`` alternating."""
    moves = [window * k for k in range(1, int(32 / window)) if window * k < 32]
    times = sorted(set(RFC_SCHEDULE) | set(moves))
    return [(round(start + t, 3), hosts[int(t // window) % 2]) for t in times]


async def test_200_moves_to_the_next_proxy_and_the_ack_ends_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = linked()
    async with (
        cluster(net, proxies=[target(P1), target(P2)]) as (ua, p1, p2),
        trio.open_nursery() as nursery,
    ):
        calls: list[Call] = []
        nursery.start_soon(ring_then_lose_p1, ua, net, calls)
        nursery.start_soon(forward_invite, p1, "answer-1")
        # The 200 reaches P2 when P1 kept quiet for 4 s.
        at, ok = await wait_arrived(net, P2, status=200)
        assert at == pytest.approx(4.011) and isinstance(ok, Response)
        assert p2.stack is not None  # P2 relays Alice's ACK (the cluster shares state)
        await p2.stack.send_stateless(ack_for(ok), target(UA))
        await trio.sleep(40)
        (call,) = calls
        assert call.state is CallState.ANSWERED and call.end_reason is None
        assert p2.received == []  # P2's stack drops a 200 whose Via is P1's (§18.1.2)
        nursery.cancel_scope.cancel()
    sends = rounded(sent_by(net, UA, status=200))
    assert sends == [
        (0.011, P1, "blackholed"),
        (0.511, P1, "blackholed"),
        (1.511, P1, "blackholed"),
        (3.511, P1, "blackholed"),
        (4.011, P2, "delivered"),  # the same 200 (Via P1 on top), then the ACK: nothing more
    ]
    assert ok.vias[0].host == P1 and ok.call_id == "answer-1"


async def test_200_cycles_for_32_s_then_the_call_is_abandoned(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The configured proxy is one name with two A records (seed 002's cluster FQDN).
    net = linked()
    async with (
        cluster(net, proxies=[f"sip:{CLUSTER}"]) as (ua, p1, _p2),
        trio.open_nursery() as nursery,
    ):
        calls: list[Call] = []
        nursery.start_soon(ring_then_lose_p1, ua, net, calls)
        nursery.start_soon(forward_invite, p1, "answer-2")
        await trio.sleep(1)
        (call,) = calls
        with trio.fail_after(40):
            ended = await call.wait_ended()
        assert trio.current_time() == pytest.approx(32.011)  # abandoned at 32 s
        await trio.sleep(10)
        nursery.cancel_scope.cancel()
    # Abandoned without a BYE: the caller never answered over UDP, so a BYE could be reflected
    # to a spoofed address (tests/shell/test_faults_ua.py); the 200s were all it got.
    assert ended.reason is EndReason.NO_ACK
    assert ended.detail == (
        "no ACK within 32 s (the 2xx cycled through 2 destinations)"
        " (no BYE: the peer never answered)"
    )
    sends = [(t, host) for t, host, _ in rounded(sent_by(net, UA, status=200))]
    assert sends == cycled(0.011, 4.0, (P1, P2))  # P1, P2, P1, ... until 32 s: 18 sends
    assert len(sends) == 18
    assert sent_by(net, UA, method="BYE") == []


async def test_200_stays_on_the_arrival_path_with_the_rfc_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = linked()
    async with (
        cluster(net, timeout_ms=32000, proxies=[target(P1), target(P2)]) as (ua, p1, p2),
        trio.open_nursery() as nursery,
    ):
        calls: list[Call] = []
        nursery.start_soon(ring_then_lose_p1, ua, net, calls)
        nursery.start_soon(forward_invite, p1, "answer-3")
        await trio.sleep(1)
        (call,) = calls
        with trio.fail_after(40):
            ended = await call.wait_ended()
        await trio.sleep(10)
        nursery.cancel_scope.cancel()
    assert ended.reason is EndReason.NO_ACK
    sends = rounded(sent_by(net, UA, status=200))
    assert {host for _, host, _ in sends} == {P1}  # RFC 3261 §13.3.1.4: one way only
    assert [t for t, _, _ in sends] == [
        0.011, 0.511, 1.511, 3.511, 7.511, 11.511, 15.511, 19.511, 23.511, 27.511, 31.511
    ]  # fmt: skip
    assert sent_by(net, UA, method="BYE") == []  # the caller never answered over UDP
    assert p2.received == []
