"""The incoming-call queue of a user agent: a burst waits for room, a stalled application
gets 486s, and a call taken from a queue with room costs the agent no handler task."""

from __future__ import annotations

import trio
import trio.testing

from trio_sip.testing import FakeNetwork
from trio_sip.ua import CallFailed, UserAgent
from trio_sip.ua.agent import OVERFLOW_FACTOR, QUEUE_WAIT

from .test_ua_calls import ALICE, BOB, BOB_URI, sent, two_agents


async def _place(alice: UserAgent, results: list[object], hang_up: trio.Event) -> None:
    """One call from Alice: its 200 (then hang up when told), or the CallFailed's status."""
    try:
        async with alice.call(BOB_URI) as call:
            results.append(await call.wait_answered())
            await hang_up.wait()
    except CallFailed as exc:
        results.append((exc.response.status_code if exc.response else None, trio.current_time()))


async def test_a_burst_larger_than_the_queue_is_answered_without_486(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Twelve INVITEs reach Bob at the same instant (one receive batch); his queue holds 2 and
    # his loop takes one call per few scheduling rounds: the others wait for room, none is
    # refused.
    net = FakeNetwork()
    net.set_link(ALICE, BOB, delay=0.01)
    async with (
        two_agents(net, bob_kw={"incoming_queue": 2}) as (alice, bob),
        trio.open_nursery() as nursery,
    ):

        async def answer_all() -> None:
            async for incoming in bob.incoming_calls():
                await incoming.ring()
                await incoming.accept()

        nursery.start_soon(answer_all)
        results: list[object] = []
        hang_up = trio.Event()
        async with trio.open_nursery() as calls:
            for _ in range(12):
                calls.start_soon(_place, alice, results, hang_up)
            with trio.fail_after(5):
                while len(results) < 12:
                    await trio.sleep(0.01)
            hang_up.set()
        assert [getattr(r, "status_code", r) for r in results] == [200] * 12
        assert sent(net, src=BOB, status=486) == []
        assert len(sent(net, src=BOB, status=200)) == 12 * 2  # each INVITE's and each BYE's
        nursery.cancel_scope.cancel()


async def test_calls_nobody_takes_get_486_after_the_queue_wait(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Bob's queue holds 1 call and nobody takes it: the next OVERFLOW_FACTOR calls wait
    # QUEUE_WAIT seconds for room, then get 486; any beyond those get 486 at once.
    net = FakeNetwork()
    async with two_agents(net, bob_kw={"incoming_queue": 1}) as (alice, bob):
        results: list[object] = []
        hang_up = trio.Event()
        async with trio.open_nursery() as calls:
            start = trio.current_time()
            for _ in range(2 + OVERFLOW_FACTOR):
                calls.start_soon(_place, alice, results, hang_up)
            with trio.fail_after(10):
                while len(results) < 1 + OVERFLOW_FACTOR:
                    await trio.sleep(0.01)
            assert bob.stack.statistics().handlers == 0  # the waiting calls' tasks ended
            calls.cancel_scope.cancel()
        refused = [r for r in results if isinstance(r, tuple)]
        assert [code for code, _ in refused] == [486] * (1 + OVERFLOW_FACTOR)
        delays = sorted(round(at - start, 1) for _, at in refused)
        assert delays[0] < 0.1  # the call with no room to wait in
        assert all(QUEUE_WAIT <= d < QUEUE_WAIT + 0.1 for d in delays[1:])
        assert len(sent(net, src=BOB, status=486)) == 1 + OVERFLOW_FACTOR
        # the call in the queue rings on (100 Trying), unanswered
        assert len(sent(net, src=BOB, status=100)) >= 1


async def test_a_queued_call_and_a_bye_cost_no_handler_task(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    async with two_agents(net) as (alice, bob), trio.open_nursery() as nursery:
        results: list[object] = []
        hang_up = trio.Event()
        nursery.start_soon(_place, alice, results, hang_up)
        await trio.sleep(0.5)
        # The INVITE is in Bob's queue, ringing nobody yet: no task holds it.
        assert bob.stack.statistics().server_transactions == 1
        assert bob.stack.statistics().handlers == 0
        async for incoming in bob.incoming_calls():
            await incoming.ring()
            call = await incoming.accept()
            break
        await trio.sleep(0.5)
        assert [getattr(r, "status_code", r) for r in results] == [200]
        hang_up.set()
        await call.wait_ended()
        await trio.sleep(0.1)  # the in-memory network sends through the sender task
        assert bob.stack.statistics().handlers == 0
        assert len(sent(net, src=BOB, status=200)) == 2  # the INVITE's and the BYE's
