"""The user agent's edge cases on the in-memory network, in virtual time.

CANCEL of a ringing call, a lost ACK (the UAS resends its 2xx, then BYE at 64*T1), a lost 2xx
(the UAC ACKs every retransmission), glare (491 and the §14.1 retry windows), a 401 on the
INVITE, OPTIONS / MESSAGE / INFO, 405, and closing the agent with a call up.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from trio_sip.proto.auth import Challenge, CredentialStore, verify
from trio_sip.proto.message import Request, Response
from trio_sip.proto.target import Target
from trio_sip.stack import IncomingRequest, open_stack
from trio_sip.testing import FakeNetwork
from trio_sip.transports import Flow
from trio_sip.ua import (
    Call,
    CallFailed,
    CallState,
    EndReason,
    IncomingCall,
    InfoReceived,
    open_user_agent,
)

from .test_ua_calls import ALICE, BOB, BOB_URI, answer_next, sent, state, two_agents


def linked(delay: float = 0.01) -> FakeNetwork:
    net = FakeNetwork()
    net.set_link(ALICE, BOB, delay=delay)
    net.set_link(BOB, ALICE, delay=delay)
    return net


async def test_leaving_before_answer_cancels(autojump_clock: trio.testing.MockClock) -> None:
    net = linked()
    async with two_agents(net) as (alice, bob), trio.open_nursery() as nursery:
        ringing: list[IncomingCall] = []

        async def ring_only() -> None:
            async for incoming in bob.incoming_calls():
                await incoming.ring()
                ringing.append(incoming)
                await incoming.wait_cancelled()
                return

        nursery.start_soon(ring_only)
        async with alice.call(BOB_URI) as call:
            async for _event in call.events:
                break  # the 180
            assert state(call) is CallState.RINGING
        # Leaving the block sent a CANCEL (after the 180, §9.1); both sides saw the 487.
        assert state(call) is CallState.ENDED
        assert call.end_reason is not None and call.end_reason.reason is EndReason.CANCELLED
        assert ringing[0].cancelled
        cancels = sent(net, src=ALICE, method="CANCEL")
        assert len(cancels) == 1
        invite = sent(net, src=ALICE, method="INVITE")[0][1]
        assert cancels[0][1].vias[0].branch == invite.vias[0].branch
        assert [m.status_code for _, m in sent(net, src=BOB, status=487)] == [487]
        assert sent(net, src=BOB, status=200)[0][1].cseq.method == "CANCEL"
        with pytest.raises(CallFailed) as info:
            await call.wait_answered()
        assert info.value.response is not None and info.value.response.status_code == 487


async def test_no_cancel_before_a_provisional(autojump_clock: trio.testing.MockClock) -> None:
    net = linked()
    net.partition(ALICE, BOB)  # no 1xx ever: §9.1 forbids the CANCEL
    async with two_agents(net, alice_kw={"cleanup_timeout": 2.0}) as (alice, _bob):
        async with alice.call(BOB_URI) as call:
            await trio.sleep(1)
        assert state(call) is CallState.ENDED
        assert trio.current_time() == pytest.approx(3.0)  # bounded by cleanup_timeout
        assert sent(net, src=ALICE, method="CANCEL") == []


async def test_rejected_call_raises_call_failed(autojump_clock: trio.testing.MockClock) -> None:
    net = linked()
    async with two_agents(net) as (alice, bob), trio.open_nursery() as nursery:

        async def busy() -> None:
            async for incoming in bob.incoming_calls():
                await incoming.reject(486)
                return

        nursery.start_soon(busy)
        async with alice.call(BOB_URI) as call:
            with pytest.raises(CallFailed) as info:
                await call.wait_answered()
        assert info.value.response is not None and info.value.response.status_code == 486
        assert call.end_reason is not None and call.end_reason.reason is EndReason.REJECTED


def invite_for(host: str, call_id: str) -> Request:
    return Request(
        "INVITE",
        f"sip:bob@{host}",
        [
            ("Max-Forwards", "70"),
            ("From", "<sip:raw@10.0.0.1>;tag=raw1"),
            ("To", f"<sip:bob@{host}>"),
            ("Call-ID", call_id),
            ("CSeq", "1 INVITE"),
            ("Contact", "<sip:raw@10.0.0.1:5060>"),
        ],
    )


async def test_lost_ack_resends_2xx_then_bye(autojump_clock: trio.testing.MockClock) -> None:
    """A bare stack calls the agent and never ACKs, but sends an INFO in the dialog (so it
    proved it receives our 200: the INFO carries our To tag): 2xx at T1 doubling to T2, then
    the BYE of §13.3.1.4 at 64*T1. (A peer silent over UDP gets no BYE: see
    tests/shell/test_faults_ua.py::test_half_open_invite_reflection_factor.)"""
    net = FakeNetwork()
    byes: list[Request] = []

    async def raw_handler(incoming: IncomingRequest) -> None:
        byes.append(incoming.request)
        await incoming.respond(200)

    async with (
        open_stack([("UDP", ALICE, 5060)], backend=net.backend(ALICE), handler=raw_handler) as raw,
        open_user_agent(
            [("UDP", BOB, 5060)], aor=f"sip:bob@{BOB}", backend=net.backend(BOB)
        ) as bob,
        trio.open_nursery() as nursery,
    ):
        calls: list[Call] = []

        async def answer() -> None:
            calls.append(await answer_next(bob, ring=False))

        nursery.start_soon(answer)
        target = Target("UDP", BOB, 5060)
        response = await raw.request(invite_for(BOB, "noack"), target)
        assert response.status_code == 200
        info = invite_for(BOB, "noack").evolve(method="INFO")
        info = info.evolve(
            headers=info.headers.replace("To", str(response.to)).replace("CSeq", "2 INFO")
        )
        assert (await raw.request(info, target)).status_code == 200
        ended = await calls[0].wait_ended()
        assert ended.reason is EndReason.NO_ACK
        times = [t for t, m in sent(net, src=BOB, status=200) if m.cseq.method == "INVITE"]
        assert times == [
            0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5
        ]  # fmt: skip
        assert [m.method for m in byes] == ["BYE"]
        assert byes[0].cseq.seq == 1 and byes[0].call_id == "noack"
        assert sent(net, src=BOB, method="BYE")[0][0] == pytest.approx(32.0)


async def test_lost_2xx_is_acked_again(autojump_clock: trio.testing.MockClock) -> None:
    """A bare stack answers and resends its 200 (as after a lost ACK): one ACK per 200."""
    net = FakeNetwork()
    acks: list[Request] = []

    def on_stray(message: Request | Response, flow: Flow) -> None:
        if isinstance(message, Request) and message.method == "ACK":
            acks.append(message)

    async def raw_handler(incoming: IncomingRequest) -> None:
        if incoming.method == "INVITE":
            ok = incoming.make_response(200, headers=[("Contact", f"<sip:raw@{BOB}:5060>")])
            await incoming.respond(ok)
            for delay in (0.5, 1.0):
                await trio.sleep(delay)
                await incoming.respond(ok)
        else:
            await incoming.respond(200)

    async with (
        open_stack(
            [("UDP", BOB, 5060)], backend=net.backend(BOB), handler=raw_handler, on_stray=on_stray
        ),
        open_user_agent(
            [("UDP", ALICE, 5060)], aor=f"sip:alice@{ALICE}", backend=net.backend(ALICE)
        ) as alice,
    ):
        async with alice.call(BOB_URI) as call:
            await call.wait_answered()
            await trio.sleep(5)
        assert len(acks) == 3
        assert {a.vias[0].branch for a in acks} == {acks[0].vias[0].branch}
        assert {a.cseq.seq for a in acks} == {1}


async def test_glare_491_and_retry_windows(autojump_clock: trio.testing.MockClock) -> None:
    net = linked()
    async with two_agents(net) as (alice, bob), trio.open_nursery() as nursery:
        bob_calls: list[Call] = []

        async def answer() -> None:
            bob_calls.append(await answer_next(bob))

        nursery.start_soon(answer)
        async with alice.call(BOB_URI) as call:
            await call.wait_answered()
            await trio.sleep(1)
            theirs = bob_calls[0]
            start = trio.current_time()
            async with trio.open_nursery() as both:
                both.start_soon(call.hold)
                both.start_soon(theirs.hold)
            glare = [t for t, m in sent(net, src=ALICE, status=491)]
            glare += [t for t, m in sent(net, src=BOB, status=491)]
            assert len(glare) == 2
            got_491 = start + 0.02
            retries_alice = [t for t, m in sent(net, src=ALICE, method="INVITE") if t > got_491]
            retries_bob = [t for t, m in sent(net, src=BOB, method="INVITE") if t > got_491]
            # §14.1: the Call-ID owner (alice) waits 2.1-4 s, the other side 0-2 s.
            assert 2.1 <= retries_alice[0] - got_491 <= 4.0 + 1e-9
            assert 0.0 <= retries_bob[0] - got_491 <= 2.0 + 1e-9
            # Both end up held; each saw the other's hold too.
            assert call.held and theirs.held
            assert call.local_sdp is not None and call.local_sdp.media_direction(0) == "inactive"


async def test_401_on_invite_is_answered(autojump_clock: trio.testing.MockClock) -> None:
    net = FakeNetwork()
    seen: list[Request] = []
    challenge = Challenge.digest("example.com", "nonce1")

    async def raw_handler(incoming: IncomingRequest) -> None:
        request = incoming.request
        seen.append(request)
        if request.method != "INVITE":
            await incoming.respond(200)
        elif not request.authorization:
            await incoming.respond(401, headers=[("WWW-Authenticate", str(challenge))])
        else:
            assert verify(request.authorization[0], "INVITE", "secret")
            await incoming.respond(200, headers=[("Contact", f"<sip:raw@{BOB}:5060>")])

    store = CredentialStore(default=("alice", "secret"))
    async with (
        open_stack([("UDP", BOB, 5060)], backend=net.backend(BOB), handler=raw_handler),
        open_user_agent(
            [("UDP", ALICE, 5060)], aor=f"sip:alice@{ALICE}", backend=net.backend(ALICE),
            credentials=store,
        ) as alice,
    ):  # fmt: skip
        async with alice.call(BOB_URI) as call:
            await call.wait_answered()
        first, second = seen[0], seen[1]
        assert (first.cseq.seq, second.cseq.seq) == (1, 2)
        assert first.call_id == second.call_id and first.from_.tag == second.from_.tag
        assert [r.method for r in seen] == ["INVITE", "INVITE", "BYE"]
        assert seen[2].cseq.seq == 3
        ack = sent(net, src=ALICE, method="ACK")[-1][1]
        assert ack.cseq.seq == 2 and ack.authorization  # §13.2.2.4: the INVITE's credentials


async def test_a_call_with_its_own_aor_and_credentials(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    seen: list[Request] = []
    challenge = Challenge.digest("example.com", "nonce2")

    async def raw_handler(incoming: IncomingRequest) -> None:
        request = incoming.request
        seen.append(request)
        if request.method == "INVITE" and not request.authorization:
            await incoming.respond(401, headers=[("WWW-Authenticate", str(challenge))])
        elif request.method == "INVITE":
            credentials = request.authorization[0]
            assert credentials.username == "carol"
            assert verify(credentials, "INVITE", "carols-secret")
            await incoming.respond(200, headers=[("Contact", f"<sip:raw@{BOB}:5060>")])
        else:
            await incoming.respond(200)

    async with (
        open_stack([("UDP", BOB, 5060)], backend=net.backend(BOB), handler=raw_handler),
        open_user_agent(
            [("UDP", ALICE, 5060)], aor=f"sip:alice@{ALICE}", backend=net.backend(ALICE),
            credentials=CredentialStore(default=("alice", "secret")),
        ) as agent,
    ):  # fmt: skip
        carol = CredentialStore(default=("carol", "carols-secret"))
        async with agent.call(
            BOB_URI, aor="Carol <sip:carol@example.com>", credentials=carol
        ) as call:
            await call.wait_answered()
        # The agent's own identity is untouched.
        assert (
            str(agent.aor) == f"<sip:alice@{ALICE}>" or str(agent.aor.uri) == f"sip:alice@{ALICE}"
        )
        invite, authorised, bye = seen[0], seen[1], seen[2]
        for request in (invite, authorised, bye):
            assert request.from_.uri == invite.from_.uri
            assert str(request.from_.uri) == "sip:carol@example.com"
            assert request.from_.display_name == "Carol"
        assert bye.method == "BYE"


async def test_options_message_info_and_405(autojump_clock: trio.testing.MockClock) -> None:
    net = linked()
    async with two_agents(net) as (alice, bob), trio.open_nursery() as nursery:
        ok = await alice.options(BOB_URI)
        assert ok.status_code == 200
        assert "INVITE" in ok.allow and "MESSAGE" in ok.allow
        assert ok.headers["Accept"] == "application/sdp"
        assert "Supported" in ok.headers

        reply = await alice.send_message(BOB_URI, "hello bob")
        assert reply.status_code == 200
        async for message in bob.messages():
            assert message.text == "hello bob"
            assert str(message.sender.uri) == f"sip:alice@{ALICE}"
            break

        refused = await alice.request("SUBSCRIBE", BOB_URI, headers=[("Event", "presence")])
        assert refused.status_code == 405 and "INVITE" in refused.allow
        unknown = await alice.request("FOO", BOB_URI)
        assert unknown.status_code == 501

        bob_calls: list[Call] = []

        async def answer() -> None:
            bob_calls.append(await answer_next(bob))

        nursery.start_soon(answer)
        async with alice.call(BOB_URI) as call:
            await call.wait_answered()
            info = await call.send_info(b"Signal=5\r\n", "application/dtmf-relay")
            assert info.status_code == 200
            events = bob_calls[0].events
            kinds: list[Any] = []
            async for event in events:
                kinds.append(event)
                if isinstance(event, InfoReceived):
                    break
            assert kinds[-1].request.body == b"Signal=5\r\n"


async def test_closing_the_agent_ends_calls_and_leaves_no_task(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = linked()
    await trio.testing.wait_all_tasks_blocked()
    before = trio.lowlevel.current_statistics().tasks_living
    async with two_agents(net) as (alice, bob), trio.open_nursery() as nursery:
        bob_calls: list[Call] = []

        async def answer() -> None:
            bob_calls.append(await answer_next(bob))

        nursery.start_soon(answer)
        async with alice.call(BOB_URI) as call:
            await call.wait_answered()
            await alice.aclose()  # closes the agent while the call is up
            assert state(call) is CallState.ENDED
            assert (await bob_calls[0].wait_ended()).reason is EndReason.REMOTE_HANGUP
    assert len(sent(net, src=ALICE, method="BYE")) == 1
    await trio.testing.wait_all_tasks_blocked()
    assert trio.lowlevel.current_statistics().tasks_living == before


async def test_unreachable_destination_raises_call_failed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()  # nothing listens at BOB: ICMP port unreachable, at once
    async with open_user_agent(
        [("UDP", ALICE, 5060)], aor=f"sip:alice@{ALICE}", backend=net.backend(ALICE)
    ) as alice:
        async with alice.call(BOB_URI) as call:
            with pytest.raises(CallFailed) as info:
                await call.wait_answered()
        assert info.value.response is None
        assert call.end_reason is not None and call.end_reason.reason is EndReason.FAILED
        assert trio.current_time() < 1.0
