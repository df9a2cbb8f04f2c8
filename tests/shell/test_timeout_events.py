"""Timeout events reach the user agent (with the call) and the endpoint (with the connection
id), delivered to a callback and to an async stream; in virtual time on the in-memory network."""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing

from trio_sip.endpoint import EndpointTimeout
from trio_sip.proto.errors import TransactionTimeoutError
from trio_sip.proto.timers import TimerConfig
from trio_sip.proto.transaction import Side, Timeout, TimeoutRole
from trio_sip.stack import IncomingRequest, TransactionTimeoutEvent
from trio_sip.testing import FakeNetwork
from trio_sip.ua import AgentTimeout, CallFailed, open_user_agent

from .endpoint_support import ALICE, SITE_A, world
from .test_ua_calls import BOB, BOB_URI, answer_next, two_agents

FAST = TimerConfig(sip_transaction_timeout=2000)


async def test_an_unanswered_invite_reaches_the_agent_with_its_call(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    got: list[AgentTimeout] = []
    alice_kw = {"on_timeout": got.append, "timer_config": FAST}
    async with two_agents(net, alice_kw=alice_kw) as (alice, _bob):
        stream = alice.timeouts()
        net.partition(ALICE, BOB)
        with pytest.raises(CallFailed):
            async with alice.call(BOB_URI) as call:
                await call.wait_answered()
        # The INVITE is tried twice (seed 002: once more even with one proxy), each attempt
        # with its own Call-ID; both timeouts name the call.
        first, retry = got
        for invite in got:
            assert isinstance(invite, AgentTimeout)  # the documented record, not a bare event
            assert (invite.method, invite.timer, invite.side) == ("INVITE", "B", Side.CLIENT)
            assert invite.timeout is Timeout.TRANSACTION
            assert isinstance(invite.event, TransactionTimeoutEvent)
            assert invite.event.role is TimeoutRole.USER_AGENT
            assert invite.call is call
        assert (first.event.time, retry.event.time) == (2.0, 4.0)  # sip_transaction_timeout
        assert retry.call_id == call.call_id != first.call_id
        with trio.fail_after(1):
            assert [await stream.__anext__() for _ in got] == got


async def test_an_in_dialog_timeout_names_the_call_and_an_options_one_none(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    got: list[AgentTimeout] = []
    async with (
        two_agents(net, alice_kw={"on_timeout": got.append, "timer_config": FAST}) as (
            alice,
            bob,
        ),
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(answer_next, bob)
        async with alice.call(BOB_URI) as call:
            await call.wait_answered()
            net.partition(ALICE, BOB)
            start = trio.current_time()
            await call.hangup()  # the BYE is never answered
        assert got and got[0].call is call
        assert (got[0].method, got[0].timer, got[0].event.time - start) == ("BYE", "F", 2.0)
        before = len(got)
        with pytest.raises(TransactionTimeoutError):
            await alice.options(BOB_URI)
        (options,) = got[before:]
        assert (options.method, options.timer, options.call) == ("OPTIONS", "F", None)


async def test_a_missing_ack_is_a_server_timeout_of_the_agent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    got: list[AgentTimeout] = []
    async with two_agents(net, bob_kw={"on_timeout": got.append}) as (alice, bob):

        async def reject_then_cut() -> None:
            async for incoming in bob.incoming_calls():
                await incoming.reject(486)
                net.partition(ALICE, BOB)  # the ACK for the 486 never arrives
                return

        async with trio.open_nursery() as nursery:
            nursery.start_soon(reject_then_cut)
            with pytest.raises(CallFailed):
                async with alice.call(BOB_URI) as call:
                    await call.wait_answered()
            await trio.sleep(40)
        (timeout,) = got
        assert (timeout.method, timeout.timer, timeout.side) == ("INVITE", "H", Side.SERVER)
        assert timeout.call is None  # a rejected call never had a dialog
        incoming = timeout.event.transaction
        assert isinstance(incoming, IncomingRequest) and incoming.timed_out
        assert incoming.final_response is not None
        assert incoming.final_response.status_code == 486


async def test_the_agent_closes_its_streams(autojump_clock: trio.testing.MockClock) -> None:
    net = FakeNetwork()
    async with open_user_agent(
        [("UDP", ALICE, 5060)], aor=f"sip:alice@{ALICE}", backend=net.backend(ALICE),
        rng=random.Random(1),
    ) as alice:  # fmt: skip
        stream = alice.timeouts()
    with trio.fail_after(1):
        assert [t async for t in stream] == []


async def test_the_endpoint_reports_timeouts_with_the_connection_id(
    autojump_clock: trio.testing.MockClock,
) -> None:
    got: list[EndpointTimeout] = []
    async with world(on_timeout=got.append) as (net, _a, _b, alice, _bob, _events):
        stream = alice.timeouts()
        assert got == []  # both registered: nothing timed out
        net.partition(ALICE, SITE_A)
        start = trio.current_time()
        async with alice.dial("a", "bob") as call:
            await call.wait_answered()
            assert call.connection_id == "b"  # fell over after the timeout on site A
        invite = got[0]
        assert isinstance(invite, EndpointTimeout) and isinstance(invite.timeout, AgentTimeout)
        assert (invite.connection_id, invite.method, invite.timer) == ("a", "INVITE", "B")
        assert invite.kind is Timeout.TRANSACTION
        assert invite.call is call and invite.session_id == call.session_id
        assert invite.event.time - start == 2.0
        await trio.sleep(10)  # site A's REGISTER (unregister, then a new one) times out too
        registers = [t for t in got if t.method == "REGISTER"]
        assert registers and {t.connection_id for t in registers} == {"a"}
        assert {t.timer for t in registers} == {"F"} and {t.call for t in registers} == {None}
        with trio.fail_after(1):
            streamed = [await stream.__anext__() for _ in got]
        assert streamed == got
