"""The geo-redundant endpoint on the in-memory network, in virtual time: two sites built with
open_proxy, one dies and comes back; every time asserted is exact."""

from __future__ import annotations

import trio
import trio.testing

from trio_sip.endpoint import CallEvent, ConnectionStatus, retry_delay
from trio_sip.ua import Answered, Failover, Progress

from .endpoint_support import ALICE, SITE_A, first_sends, world

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
        # Two: the INVITE's one retry on site A's only address at 17 s (seed 002: "The SIP
        # Endpoint SDK always retries INVITE once, regardless of the number of proxies
        # configured"), then connection b once A failed twice (2 s timeout each).
        assert [(e.connection_id, e.time) for e in failover] == [("a", 17.0), ("b", 19.0)]
        retry, move = (e.event for e in failover)
        assert isinstance(retry, Failover) and isinstance(move, Failover)
        assert retry.reason.startswith("timeout; trying") and retry.new_call_id == move.old_call_id
        assert move.reason.startswith("connection a: 408 Request Timeout")
        assert any(isinstance(e.event, Answered) and e.connection_id == "b" for e in got)
        assert {e.session_id for e in got} == {call.session_id}
        assert 19.0 <= answered_at < 19.1
        # A: unavailable from the INVITE's timeout on. Its binding is renewed: the unregister
        # (bounded: 2 s), a new REGISTER, then retries on the back-off schedule.
        assert [(e.connection_id, e.new, e.reason, e.time) for e in events[4:]] == [
            ("a", CS.UNAVAILABLE, "408 Request Timeout", 19.0)
        ]
        await trio.sleep(100 - trio.current_time())
        net.heal(ALICE, SITE_A)
        await alice.wait_registered("a")
        registers = first_sends(net, "REGISTER", ALICE, SITE_A)
        expected = [0.0, 19.0, 21.0]
        for n in range(1, 10):
            expected.append(expected[-1] + 2 + retry_delay(n, 60, 2.0, 30.0))
            if expected[-1] > 100:
                break
        assert registers == expected
        assert expected[3:] == [25.0, 31.0, 41.0, 59.0, 91.0, 123.0]
        back = events[-1]
        assert (back.connection_id, back.old, back.new, back.reason) == (
            "a",
            CS.UNAVAILABLE,
            CS.REGISTERED,
            "200 OK",
        )
        assert back.time == expected[-1]
        # The next call uses site A again.
        async with alice.dial("a", "bob") as call:
            await call.wait_answered()
            assert call.connection_id == "a"


async def test_unavailable_connection_is_skipped_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with world() as (_net, site_a, _site_b, alice, _bob, events):
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


async def test_incoming_call_is_answered_on_the_connection_it_arrived_on(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with world() as (_net, _a, _b, alice, bob, _events):
        seen: list[CallEvent] = []
        # Bob answers (answer_all); check what Bob's endpoint reports via its calls.
        for connection in ("b", "a"):
            async with alice.dial(connection, "bob") as call:
                await call.wait_answered()
                (bob_call,) = bob.calls
                assert bob_call.connection_id == connection
                assert not bob_call.outgoing
                await call.hangup()
            await bob_call.wait_ended()
            seen.extend(await collect(bob_call.events))
        assert [(e.connection_id, type(e.event).__name__) for e in seen] == [
            ("b", "Answered"),
            ("b", "Ended"),
            ("a", "Answered"),
            ("a", "Ended"),
        ]


async def test_hold_other_calls(autojump_clock: trio.testing.MockClock) -> None:
    async with world() as (_net, _a, _b, alice, _bob, _events):  # noqa: SIM117
        async with alice.dial("a", "bob") as first:
            await first.wait_answered()
            async with alice.dial("b", "bob") as second:
                await second.wait_answered()
                assert first.held and not second.held
                held = [e for e in await_events(first) if type(e.event).__name__ == "Held"]
                # We held it; Bob, who answered the second call, held his side of it too.
                assert [(e.connection_id, e.event.by_remote) for e in held] == [  # type: ignore[union-attr]
                    ("a", False),
                    ("a", True),
                ]
                await first.retrieve()
                assert not first.held


def await_events(call: object) -> list[CallEvent]:
    """The events queued on ``call.events`` so far (without waiting)."""
    out: list[CallEvent] = []
    events = call.events  # type: ignore[attr-defined]
    while True:
        try:
            out.append(events.receive_nowait())
        except (trio.WouldBlock, trio.EndOfChannel):
            return out


async def test_hold_other_calls_off(autojump_clock: trio.testing.MockClock) -> None:
    from .endpoint_support import endpoint_config

    config = endpoint_config("alice", hold_other_calls=False)
    async with world(config) as (_n, _a, _b, alice, *_):  # noqa: SIM117
        async with alice.dial("a", "bob") as first, alice.dial("b", "bob") as second:
            await first.wait_answered()
            await second.wait_answered()
            assert not first.held and not second.held


async def test_dead_site_disconnect_reports_408(autojump_clock: trio.testing.MockClock) -> None:
    from trio_sip.ua import EndReason

    async with world() as (net, _a, _b, alice, _bob, events):
        async with alice.dial("a", "bob") as call:
            await call.wait_answered()
            net.partition(ALICE, SITE_A)
            with trio.fail_after(1000):
                ended = await call.wait_ended()
            # The refresh at 568 s times out at 570 s; the INFO sent to check the call then
            # times out at 572 s: the session is over, with a 408.
            assert trio.current_time() == 572.0
        assert ended.reason is EndReason.DIALOG_GONE
        assert ended.response is not None and ended.response.status_code == 408
        assert ended.detail.startswith("408 Request Timeout")
        last = (await collect(call.events))[-1]
        assert last.connection_id == "a" and last.event == ended
        assert last.error is not None and str(last.error).startswith("408 Request Timeout")
        assert [(e.new, e.reason, e.time) for e in events[4:]] == [
            (CS.UNAVAILABLE, "408 Request Timeout", 570.0)
        ]


async def test_hold_through_a_dead_site_ends_the_call_with_408(
    autojump_clock: trio.testing.MockClock,
) -> None:
    import pytest

    from trio_sip.ua import CallFailed, EndReason

    async with world() as (net, _a, _b, alice, _bob, _events):  # noqa: SIM117
        async with alice.dial("a", "bob") as call:
            await call.wait_answered()
            net.partition(ALICE, SITE_A)
            with pytest.raises(CallFailed) as raised:
                await call.hold()
            assert raised.value.response is not None
            assert raised.value.response.status_code == 408
            ended = await call.wait_ended()
            assert ended.reason is EndReason.DIALOG_GONE


async def test_add_enable_disable_remove_at_run_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    import pytest

    from trio_sip.config import ConnectionConfig
    from trio_sip.proto.errors import ConfigError

    from .endpoint_support import DOMAIN, SITE_B, endpoint_config

    config = endpoint_config("alice")
    single = type(config)(sip_transaction_timeout=2000, connections=config.connections[:1])
    async with world(single) as (_net, site_a, site_b, alice, _bob, events):
        aor = "sip:alice@geo.example"
        assert list(alice.connections) == ["a"]
        added = await alice.add_connection(
            ConnectionConfig(id="b", user=f"alice@{DOMAIN}", server=f"{SITE_B}:5060")
        )
        await alice.wait_registered("b")
        assert added is alice.connections["b"] and site_b.location.lookup(aor, trio.current_time())
        with pytest.raises(ConfigError):
            await alice.add_connection(added.config)
        await alice.disable("a")
        assert alice.connections["a"].status is CS.DISABLED
        assert not site_a.location.lookup(aor, trio.current_time())  # unregistered
        # A disabled connection is not dialled: the call goes through b.
        async with alice.dial("a", "bob") as call:
            await call.wait_answered()
            assert call.connection_id == "b"
        await alice.enable("a")
        await alice.wait_registered("a")
        assert site_a.location.lookup(aor, trio.current_time())
        await alice.remove("b")
        assert list(alice.connections) == ["a"]
        assert not site_b.location.lookup(aor, trio.current_time())
        assert [(e.connection_id, e.old, e.new, e.reason) for e in events[2:]] == [
            ("b", None, CS.REGISTERING, "added"),
            ("b", CS.REGISTERING, CS.REGISTERED, "200 OK"),
            ("a", CS.REGISTERED, CS.DISABLED, "disabled"),
            ("a", CS.DISABLED, CS.REGISTERING, "enabled"),
            ("a", CS.REGISTERING, CS.REGISTERED, "200 OK"),
            ("b", CS.REGISTERED, CS.REMOVED, "removed"),
        ]


async def test_status_events_iterator(autojump_clock: trio.testing.MockClock) -> None:
    async with world() as (_net, site_a, _b, alice, _bob, _events):
        stream = alice.status_events()
        site_a.stop()
        seen = []
        with trio.fail_after(600):
            async for event in stream:
                seen.append(event)
                if event.new is CS.UNAVAILABLE:
                    break
        # The current status of each connection first, then the change.
        assert [(e.connection_id, e.old, e.new, e.time) for e in seen] == [
            ("a", CS.REGISTERING, CS.REGISTERED, 0.0),
            ("b", CS.REGISTERING, CS.REGISTERED, 0.0),
            ("a", CS.REGISTERED, CS.UNAVAILABLE, 568.0),  # the refresh, refused at once
        ]
        assert seen[-1].reason.startswith("transport error")
