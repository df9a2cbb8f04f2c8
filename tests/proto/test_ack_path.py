"""The 2xx / ACK path cycling through the proxies (seed 002), as pure machines.

Seed 002 (SIP Endpoint SDK, "SIP Proxy Support"): "Retrying a 200 OK response to an initial
INVITE (answering the call) ... These retry operations work only when the
sip_transaction_timeout parameter is set to a value lower than 32000 milliseconds ... These
requests are retried continuously for 32 seconds total (cycling through the list of configured
proxies), after which the call is abandoned."
"""

from __future__ import annotations

import pytest

from trio_sip.proto.ack_path import (
    ACK_WAIT_TRANSITIONS,
    AckResender,
    AckTimeout,
    AckWait,
    AckWaitState,
    NextDestination,
)
from trio_sip.proto.message import make_response
from trio_sip.proto.outputs import MessageReceived, Terminated, TerminationReason, Transmit
from trio_sip.proto.timers import TimerConfig

from .test_dialog import INVITE, VIA2, answer, build_ack, in_dialog, incoming_invite, uac_dialog

SHORT = TimerConfig(sip_transaction_timeout=4000)


def run(machine: AckWait, end: float) -> list[tuple[float, int, object]]:
    """Every timer output up to ``end`` as (time, destination after it, output)."""
    seen: list[tuple[float, int, object]] = []
    for _ in range(1000):  # bounded: a machine has a few dozen deadlines in 32 s
        if machine.deadline is None or machine.deadline > end:
            break
        now = machine.deadline
        seen.extend((now, machine.destination, out) for out in machine.handle_timer(now))
    return seen


def sends(seen: list[tuple[float, int, object]]) -> list[tuple[float, int]]:
    return [(t, d) for t, d, out in seen if isinstance(out, Transmit)]


def test_2xx_cycles_through_the_destinations_for_32_s() -> None:
    ok = make_response(incoming_invite(), 200, to_tag="bobtag")
    wait = AckWait(ok, SHORT, destinations=3)
    assert wait.start(0.0) == [Transmit(ok)]  # on the arrival path (destination 0)
    seen = run(wait, 100.0)
    # 4 s per destination: 0 (arrival), 1, 2, 0, 1, ... The RFC's schedule goes on (T1
    # doubling to T2 from the first 2xx: no restart), plus one 2xx at each move.
    rfc = [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    moves = [4.0 * w for w in range(1, 8)]
    expected = sorted([(t, int(t // 4) % 3) for t in rfc] + [(t, int(t // 4) % 3) for t in moves])
    assert [(pytest.approx(t), d) for t, d in sends(seen)] == expected
    assert len(expected) + 1 == 18  # with the first 2xx: 11 as without cycling, 7 moves
    switches = [(t, out) for t, _, out in seen if isinstance(out, NextDestination)]
    assert [t for t, _ in switches] == [4.0, 8.0, 12.0, 16.0, 20.0, 24.0, 28.0]
    assert [o.index for _, o in switches] == [1, 2, 0, 1, 2, 0, 1]
    assert seen[-2:] == [
        (32.0, 1, AckTimeout("no ACK within 32 s (the 2xx cycled through 3 destinations)")),
        (32.0, 1, Terminated(TerminationReason.TIMEOUT)),
    ]
    assert wait.state is AckWaitState.TIMED_OUT
    assert {s for row in ACK_WAIT_TRANSITIONS.values() for s in row.values()} == set(AckWaitState)


def test_2xx_stays_on_the_arrival_path_with_the_rfc_timeout() -> None:
    ok = make_response(incoming_invite(), 200, to_tag="bobtag")
    wait = AckWait(ok, TimerConfig(), destinations=3)  # sip_transaction_timeout 32000
    wait.start(0.0)
    seen = run(wait, 100.0)
    assert {d for _, d in sends(seen)} == {0}
    assert [t for t, _ in sends(seen)] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert not [o for _, _, o in seen if isinstance(o, NextDestination)]
    assert seen[-2][2] == AckTimeout("no ACK within 64*T1 = 32 s")


def test_2xx_with_one_destination_keeps_the_rfc_schedule_and_32_s() -> None:
    ok = make_response(incoming_invite(), 200, to_tag="bobtag")
    wait = AckWait(ok, SHORT)  # nothing but the arrival path is known
    wait.start(0.0)
    seen = run(wait, 100.0)
    assert [t for t, _ in sends(seen)] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert seen[-2][2] == AckTimeout("no ACK within 32 s")


def test_destinations_learnt_later_join_at_the_next_switch() -> None:
    # The shell resolves the proxies' names while the 2xx is already out.
    ok = make_response(incoming_invite(), 200, to_tag="bobtag")
    wait = AckWait(ok, SHORT)
    wait.start(0.0)
    early = run(wait, 5.0)
    assert {d for _, d in sends(early)} == {0}
    wait.destinations = 2
    later = run(wait, 9.0)
    assert [(t, o.index) for t, _, o in later if isinstance(o, NextDestination)] == [(8.0, 1)]


def test_ack_stops_the_cycle() -> None:
    ok = make_response(incoming_invite(), 200, to_tag="bobtag")
    wait = AckWait(ok, SHORT, destinations=2)
    wait.start(0.0)
    run(wait, 5.0)
    assert wait.destination == 1
    ack = in_dialog("ACK", 314159)
    assert wait.handle(MessageReceived(ack), 5.1) == [Terminated(TerminationReason.COMPLETED)]
    assert wait.state is AckWaitState.CONFIRMED and wait.deadline is None


def test_a_tiny_timeout_keeps_each_destination_t1() -> None:
    ok = make_response(incoming_invite(), 200, to_tag="bobtag")
    wait = AckWait(ok, TimerConfig(sip_transaction_timeout=1), destinations=2)
    wait.start(0.0)
    seen = run(wait, 100.0)
    # After the first: a move per T1 (0.5 s) for 32 s, the RFC's retransmissions falling on
    # moves (one send each): no flood.
    assert len(sends(seen)) == 63
    assert seen[-2][2] == AckTimeout("no ACK within 32 s (the 2xx cycled through 2 destinations)")


def test_ack_moves_on_when_the_2xx_keeps_coming() -> None:
    ack = build_ack(uac_dialog(), INVITE, via=VIA2)
    resender = AckResender(ack, SHORT, destinations=2)
    assert resender.start(10.0) == [Transmit(ack)]
    ok = MessageReceived(answer(200))
    assert resender.handle(ok, 10.5) == [Transmit(ack)]  # our ACK may still be on its way
    assert resender.handle(ok, 13.9) == [Transmit(ack)]
    moved = resender.handle(ok, 14.0)  # 4 s of 2xx retransmissions: not getting through
    assert [type(o) for o in moved] == [NextDestination, Transmit]
    assert resender.destination == 1
    assert resender.handle(ok, 15.0) == [Transmit(ack)]
    assert resender.handle(ok, 18.0)[0] == NextDestination(0, moved[0].reason)  # type: ignore[union-attr]
    assert resender.destination == 0


def test_ack_stays_with_the_rfc_timeout() -> None:
    ack = build_ack(uac_dialog(), INVITE, via=VIA2)
    resender = AckResender(ack, TimerConfig(), destinations=2)
    resender.start(0.0)
    for t in (0.5, 4.0, 8.0, 31.0):
        assert resender.handle(MessageReceived(answer(200)), t) == [Transmit(ack)]
    assert resender.destination == 0
