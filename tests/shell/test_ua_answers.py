"""What the user agent answers by itself, checked on the in-memory network in virtual time
(docs/calls.md): 486 when its queue of waiting calls is full, 481 to dialog-only requests
outside a dialog."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trio_sip.proto.message import Request, Response
from trio_sip.stack import IncomingRequest, open_stack
from trio_sip.testing.dns import FakeResolver
from trio_sip.transports import Flow
from trio_sip.ua import CallFailed, CallState, open_user_agent

from .test_ua_calls import ALICE, BOB, BOB_URI, sent, two_agents
from .test_ua_edges import linked


async def test_a_full_incoming_queue_answers_486(autojump_clock: trio.testing.MockClock) -> None:
    """Nobody reads bob.incoming_calls(): the first INVITE waits in the queue (size 1), the
    second is refused with 486 Busy Here."""
    net = linked()
    async with two_agents(net, bob_kw={"incoming_queue": 1}) as (alice, _bob):
        async with alice.call(BOB_URI):
            await trio.sleep(1)  # the first call waits in bob's queue
            with pytest.raises(CallFailed) as info:
                async with alice.call(BOB_URI) as second:
                    await second.wait_answered()
        assert info.value.response is not None and info.value.response.status_code == 486
        assert len(sent(net, src=BOB, status=486)) == 1


@pytest.mark.parametrize("method", ["BYE", "INFO", "UPDATE", "PRACK"])
async def test_dialog_only_requests_outside_a_dialog_get_481(
    autojump_clock: trio.testing.MockClock, method: str
) -> None:
    net = linked()
    async with two_agents(net) as (alice, _bob):
        response = await alice.request(method, BOB_URI)
        assert response.status_code == 481


async def test_a_2xx_that_crosses_the_cancel_is_acked_and_byed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The callee (a bare stack) answers 200 just as the caller, leaving its block after the
    180, sends the CANCEL: the 200 arrives after it, is ACKed, and the call gets a BYE."""
    net = linked(delay=0.05)
    got: list[str] = []

    def on_stray(message: Request | Response, flow: Flow) -> None:
        if isinstance(message, Request):
            got.append(message.method)

    async def callee(incoming: IncomingRequest) -> None:
        got.append(incoming.method)
        if incoming.method == "INVITE":
            await incoming.respond(180)
            await trio.sleep(0.06)  # the 180 reaches the caller at 0.05, its CANCEL us at 0.10
            await incoming.respond(200, headers=[("Contact", f"<sip:raw@{BOB}:5060>")])
        else:
            await incoming.respond(200)

    async with (
        open_stack(
            [("UDP", BOB, 5060)], backend=net.backend(BOB), handler=callee, on_stray=on_stray
        ),
        open_user_agent(
            [("UDP", ALICE, 5060)], aor=f"sip:alice@{ALICE}", backend=net.backend(ALICE)
        ) as alice,
    ):
        async with alice.call(BOB_URI) as call:
            async for _event in call.events:
                break  # the 180
        await trio.sleep(1)
        from_alice = [
            (round(p.time, 3), p.message.method)
            for p in net.packets(transport="UDP")
            if p.src[0] == ALICE and isinstance(p.message, Request)
        ]
        methods = [method for _, method in from_alice]
        assert methods == ["INVITE", "CANCEL", "ACK", "BYE"]
        assert got == ["INVITE", "ACK", "BYE"]  # the callee saw the 200 ACKed and the BYE
        assert call.state is CallState.ENDED


async def test_a_refused_reinvite_raises_and_the_call_stays_up(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = linked()

    async def callee(incoming: IncomingRequest) -> None:
        if incoming.method == "INVITE" and incoming.request.to.tag is not None:
            await incoming.respond(488)  # the re-INVITE: Not Acceptable Here
        else:
            await incoming.respond(200, headers=[("Contact", f"<sip:raw@{BOB}:5060>")])

    async with (
        open_stack([("UDP", BOB, 5060)], backend=net.backend(BOB), handler=callee),
        open_user_agent(
            [("UDP", ALICE, 5060)], aor=f"sip:alice@{ALICE}", backend=net.backend(ALICE)
        ) as alice,
    ):
        async with alice.call(BOB_URI) as call:
            await call.wait_answered()
            with pytest.raises(CallFailed) as info:
                await call.hold()
            assert info.value.response is not None and info.value.response.status_code == 488
            assert call.state is CallState.ANSWERED and not call.held
        assert len(sent(net, src=ALICE, method="BYE")) == 1


async def test_nothing_resolves_raises_call_failed_from_ua_call(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = linked()
    async with open_user_agent(
        [("UDP", ALICE, 5060)],
        aor=f"sip:alice@{ALICE}",
        backend=net.backend(ALICE),
        resolver=FakeResolver({}),
    ) as alice:
        with pytest.raises(CallFailed) as info:
            async with alice.call("sip:bob@nowhere.test"):
                raise AssertionError("the call started")
        assert info.value.response is None and "nowhere.test" in str(info.value)
        assert net.packets() == []
