"""connect_user_agent: the agent runs in the caller's nursery until ``aclose()``."""

from __future__ import annotations

import random

import trio

from trio_sip.testing import FakeNetwork
from trio_sip.ua import EndReason, connect_user_agent, open_user_agent

ALICE, BOB = "10.0.0.1", "10.0.0.2"


async def test_connect_user_agent_runs_in_the_callers_nursery(
    autojump_clock: trio.abc.Clock,
) -> None:
    net = FakeNetwork()
    async with (
        open_user_agent(
            [("UDP", BOB, 5060)], aor=f"sip:bob@{BOB}", backend=net.backend(BOB),
            rng=random.Random(2),
        ) as bob,
        trio.open_nursery() as nursery,
    ):  # fmt: skip
        alice = await connect_user_agent(
            nursery, listen=[("UDP", ALICE, 5060)], aor=f"sip:alice@{ALICE}",
            backend=net.backend(ALICE), rng=random.Random(1),
        )  # fmt: skip
        assert alice.stack.listening == [("UDP", (ALICE, 5060))]

        async def answer() -> None:
            async for incoming in bob.incoming_calls():
                call = await incoming.accept()
                await call.wait_ended()
                return

        nursery.start_soon(answer)
        async with alice.call(f"sip:bob@{BOB}:5060") as call:
            await call.wait_answered()
        assert (await call.wait_ended()).reason is EndReason.LOCAL_HANGUP
        await alice.aclose()
        # The agent's tasks have left the nursery: only the answer task could remain, and it
        # returned when the call ended.
        with trio.fail_after(5):
            while nursery.child_tasks:
                await trio.sleep(0.1)
