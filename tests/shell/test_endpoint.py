"""The geo-redundant endpoint on the in-memory network, in virtual time: two sites built with
open_proxy, one dies and comes back; every time asserted is exact."""

from __future__ import annotations

import trio
import trio.testing

from trio_sip.endpoint import CallEvent, ConnectionStatus, retry_delay
from trio_sip.ua import Answered, Failover, Progress

from .test_endpoint_support import ALICE, SITE_A, first_sends, world

CS = ConnectionStatus


async def collect(events: trio.MemoryReceiveChannel[CallEvent]) -> list[CallEvent]:
    return [event async for event in events]


async def test_both_connections_register_at_once(autojump_clock: trio.testing.MockClock) -> None:
    async with world() as (_net, site_a, site_b, alice, _bob, events):
        assert [(e.connection_id, e.old, e.new) for e in events] == [
            ("a", None, CS.REGISTERING),
            ("b", None, CS.REGISTERING),
            ("a", CS.REGISTERING, CS.REGISTERED),
            ("b", CS.REGISTERING, CS.REGISTERED),
        ]
        assert {e.time for e in events} == {0.0}
        assert [e.reason for e in events[2:]] == ["200 OK", "200 OK"]
        assert {c.id: c.status for c in alice.connections.values()} == {
            "a": CS.REGISTERED,
            "b": CS.REGISTERED,
        }
        for site in (site_a, site_b):
            assert site.location.lookup("sip:alice@geo.example", trio.current_time())


async def test_site_dies_dial_falls_over_registration_retries_and_returns(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with world() as (net, _site_a, _site_b, alice, _bob, events):
        async with alice.dial("a", "bob") as call:
            await call.wait_answered()
            assert call.connection_id == "a"
        net.partition(ALICE, SITE_A)  # site A is gone: a black hole
        await trio.sleep(15 - trio.current_time())
        async with alice.dial("a", "bob") as call:
            await call.wait_answered()
            answered_at = trio.current_time()
            assert call.connection_id == "b" and call.connections_tried == ["a", "b"]
            await call.hangup()
        got = await collect(call.events)
        failover = [e for e in got if isinstance(e.event, Failover)]
        assert len(failover) == 1 and failover[0].connection_id == "b"
        assert failover[0].event.reason.startswith("connection a: 408 Request Timeout")
        assert failover[0].time == 17.0  # sip_transaction_timeout = 2 s on the dead site
        assert any(isinstance(e.event, Answered) and e.connection_id == "b" for e in got)
        assert {e.session_id for e in got} == {call.session_id}
        assert 17.0 <= answered_at < 17.1
        # A: unavailable from the INVITE's timeout on; the registration refresh (due 568 s
        # after the 2xx: 600 - 64*T1) then fails too and retries on the back-off schedule.
        assert [(e.connection_id, e.new, e.reason, e.time) for e in events[4:]] == [
            ("a", CS.UNAVAILABLE, "408 Request Timeout", 17.0)
        ]
        await trio.sleep(700 - trio.current_time())
        net.heal(ALICE, SITE_A)
        await alice.wait_registered("a")
        registers = first_sends(net, "REGISTER", ALICE, SITE_A)
        fail = 568.0 + 2
        expected = [0.0, 568.0]
        for n in range(1, 10):
            expected.append(fail + retry_delay(n, 60, 2.0, 30.0))
            fail = expected[-1] + 2
            if expected[-1] > 700:
                break
        assert registers == expected
        assert expected[2:6] == [572.0, 578.0, 588.0, 606.0]
        back = events[-1]
        assert (back.connection_id, back.old, back.new, back.reason) == (
            "a", CS.UNAVAILABLE, CS.REGISTERED, "200 OK"
        )
        assert back.time == expected[-1]
        # The next call uses site A again.
        async with alice.dial("a", "bob") as call:
            await call.wait_answered()
            assert call.connection_id == "a"


async def test_unavailable_connection_is_skipped_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with world() as (net, site_a, _site_b, alice, _bob, events):
        site_a.stop()  # nothing listens: ICMP port unreachable
        await trio.sleep(600)
        assert alice.connections["a"].status is CS.UNAVAILABLE
        reason = alice.connections["a"].reason
        assert reason.startswith("transport error:") and "refused" in reason
        started = trio.current_time()
        async with alice.dial("a", "bob") as call:
            await call.wait_answered()
            assert call.connections_tried == ["b"]
            assert trio.current_time() - started < 0.1
        got = await collect(call.events)
        assert {e.connection_id for e in got} == {"b"}
        assert any(isinstance(e.event, Progress) for e in got)
        await site_a.start()
        await alice.wait_registered("a")
        assert events[-1].new is CS.REGISTERED and events[-1].connection_id == "a"
