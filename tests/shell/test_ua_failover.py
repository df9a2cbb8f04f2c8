"""The initial INVITE fails over to the next target: same session, new Call-ID (virtual time)."""

from __future__ import annotations

import random

import trio
import trio.testing

from trio_sip.proto.timers import TimerConfig
from trio_sip.testing import FakeNetwork, FakeResolver
from trio_sip.ua import Answered, Call, CallState, Failover, open_user_agent

from .test_ua_calls import ALICE, BOB, answer_next, sent

DEAD = "10.0.0.3"


async def test_initial_invite_fails_over_with_a_new_call_id(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    net.partition(ALICE, DEAD)  # a black hole: the INVITE times out there
    resolver = FakeResolver({"bob.example.test": [DEAD, BOB]})
    config = TimerConfig(sip_transaction_timeout=4000)
    async with (
        open_user_agent(
            [("UDP", ALICE, 5060)], aor=f"sip:alice@{ALICE}", backend=net.backend(ALICE),
            resolver=resolver, timer_config=config, rng=random.Random(5),
        ) as alice,
        open_user_agent(
            [("UDP", BOB, 5060)], aor=f"sip:bob@{BOB}", backend=net.backend(BOB)
        ) as bob,
        trio.open_nursery() as nursery,
    ):  # fmt: skip
        bob_calls: list[Call] = []

        async def answer() -> None:
            bob_calls.append(await answer_next(bob))

        nursery.start_soon(answer)
        async with alice.call("sip:bob@bob.example.test") as call:
            session = call.session_id
            await call.wait_answered()
            assert trio.current_time() >= 4.0  # Timer B, bounded by sip_transaction_timeout
            events = []
            async for event in call.events:
                events.append(event)
                if isinstance(event, Answered):
                    break
            failover = next(e for e in events if isinstance(e, Failover))
            assert failover.old_call_id != failover.new_call_id
            assert call.call_id == failover.new_call_id
            assert call.session_id == session
            assert call.state is CallState.ANSWERED
        invites = [m for _, m in sent(net, src=ALICE, method="INVITE")]
        assert {m.call_id for m in invites} == {failover.old_call_id, failover.new_call_id}
        assert bob_calls[0].call_id == failover.new_call_id
