"""Seed 002 on the wire, in virtual time, with our agent as the caller: the initial INVITE is
retried once even with one proxy, a re-INVITE once transparently, and the ACK, BYE and CANCEL
cycle through the configured proxies (only with sip_transaction_timeout < 32000).

Our agent calls through P1 (its outbound proxy); P1 plays the far end too (the test answers
for it) and dies at the moment a test says; P2 is the other member of the cluster.
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest
import trio
import trio.testing

from trio_sip.proto.message import Request
from trio_sip.stack import IncomingRequest
from trio_sip.testing import FakeNetwork
from trio_sip.ua import (
    Answered,
    Call,
    CallFailed,
    CallState,
    Ended,
    EndReason,
    Failover,
    Progress,
    UserAgent,
)

from .retry_support import (
    ALICE,
    P1,
    P2,
    UA,
    Peer,
    arrived,
    cluster,
    linked,
    rounded,
    sent_by,
)

OUTBOUND = f"sip:{P1}:5060"
DIALOG = [("Record-Route", f"<sip:{P1}:5060;lr>"), ("Contact", f"<sip:carol@{ALICE}:5060>")]


async def events_of(call: Call) -> list[object]:
    return [event async for event in call.events]


async def place(ua: UserAgent, calls: list[Call], hang: trio.Event) -> None:
    """Call carol through P1 and stay in the call until ``hang``."""
    async with ua.call("sip:carol@example.test", outbound_proxy=OUTBOUND) as call:
        calls.append(call)
        await hang.wait()


async def invite_at(peer: Peer, count: int = 1) -> IncomingRequest:
    await peer.wait_for("INVITE", count)
    return peer.invites[count - 1]


def invites(net: FakeNetwork) -> list[tuple[float, str, str, Request]]:
    out = []
    for packet in net.packets(transport="UDP"):
        if packet.src[0] == UA and packet.data.startswith(b"INVITE "):
            message = packet.message
            assert isinstance(message, Request)
            out.append((round(packet.time, 3), packet.dst[0], packet.fate, message))
    return out


def kinds(events: Iterable[object]) -> list[str]:
    return [type(e).__name__ for e in events]


# -- the initial INVITE: once, even with one proxy ----------------------------------------------


async def test_invite_is_retried_once_to_the_only_proxy_then_fails(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Seed 002: "The SIP Endpoint SDK always retries INVITE once, regardless of the number
    # of proxies configured" and "(reported as failed in case of a double failure)".
    net = linked()
    net.partition(UA, P1)
    async with cluster(net) as (ua, _p1, _p2):
        async with ua.call("sip:carol@example.test", outbound_proxy=OUTBOUND) as call:
            session = call.session_id
            with pytest.raises(CallFailed) as failed:
                await call.wait_answered()
            assert trio.current_time() == pytest.approx(8.0)
        events = await events_of(call)
    sent = invites(net)
    assert [(t, host, fate) for t, host, fate, _ in sent if t in (0.0, 4.0)] == [
        (0.0, P1, "blackholed"),
        (4.0, P1, "blackholed"),
    ]
    first, retry = sent[0][3], next(m for t, _, _, m in sent if t == 4.0)
    assert first.call_id != retry.call_id and first.vias[0].branch != retry.vias[0].branch
    # In progress (first Call-ID), disconnected, in progress again (new Call-ID), same session.
    assert kinds(events) == ["Failover", "Ended"]
    failover, ended = events
    assert isinstance(failover, Failover) and isinstance(ended, Ended)
    assert (failover.old_call_id, failover.new_call_id) == (first.call_id, retry.call_id)
    assert failover.reason == f"timeout; trying udp:{P1}:5060"
    assert call.session_id == session and ended.reason is EndReason.FAILED
    reason = failed.value.reason
    assert f"2 attempts: UDP {P1}:5060 timeout, then UDP {P1}:5060 timeout" in reason


async def test_invite_retry_to_the_only_proxy_is_answered(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = linked()
    net.partition(UA, P1)  # P1 is away for the first attempt only

    async def heal() -> None:
        await trio.sleep(3.9)
        net.heal(UA, P1)

    async with cluster(net) as (ua, p1, _p2), trio.open_nursery() as nursery:
        nursery.start_soon(heal)
        calls: list[Call] = []
        hang = trio.Event()
        nursery.start_soon(place, ua, calls, hang)
        incoming = await invite_at(p1)
        assert trio.current_time() == pytest.approx(4.01)
        await incoming.respond(180, headers=DIALOG)
        await incoming.respond(200, headers=DIALOG)
        (call,) = calls
        await call.wait_answered()
        hang.set()
    events = await events_of(call)
    assert kinds(events)[:3] == ["Failover", "Progress", "Answered"]
    failover, progress, answered = events[:3]
    assert isinstance(failover, Failover) and isinstance(progress, Progress)
    assert isinstance(answered, Answered)
    assert incoming.request.call_id == failover.new_call_id == answered.response.call_id
    assert [(t, fate) for t, _, fate, _ in invites(net)][:5] == [
        (0.0, "blackholed"),
        (0.5, "blackholed"),
        (1.5, "blackholed"),
        (3.5, "blackholed"),
        (4.0, "delivered"),
    ]


async def test_refusals_do_not_use_up_the_retry(autojump_clock: trio.testing.MockClock) -> None:
    # Our improvement: a refusal (ICMP port unreachable) costs a round trip, not the timeout,
    # and is not the one retry; with one proxy the INVITE still goes there twice in all.
    net = linked()
    net.refuse(P1, 5060)
    async with (
        cluster(net) as (ua, _p1, _p2),
        ua.call("sip:carol@example.test", outbound_proxy=OUTBOUND) as call,
    ):
        with pytest.raises(CallFailed) as failed:
            await call.wait_answered()
        assert trio.current_time() == pytest.approx(0.04)  # two round trips
    assert [(host, fate) for _, host, fate, _ in invites(net)] == [
        (P1, "refused"),
        (P1, "refused"),
    ]
    assert failed.value.reason.endswith(
        f"2 attempts: UDP {P1}:5060 transport error: connection refused (ICMP port "
        f"unreachable), then UDP {P1}:5060 transport error: connection refused (ICMP port "
        "unreachable)"
    )


# -- the mid-call re-INVITE: once, transparently ----------------------------------------------


async def test_reinvite_is_retried_once_transparently(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = linked()
    async with cluster(net) as (ua, p1, _p2), trio.open_nursery() as nursery:
        calls: list[Call] = []
        hang = trio.Event()
        nursery.start_soon(place, ua, calls, hang)
        incoming = await invite_at(p1)
        await incoming.respond(200, headers=DIALOG)
        (call,) = calls
        await call.wait_answered()
        await trio.sleep(1)
        start = trio.current_time()
        net.partition(UA, P1)

        async def heal() -> None:
            await trio.sleep(3.9)
            net.heal(UA, P1)

        async def answer_reinvite() -> None:
            reinvite = await invite_at(p1, 2)
            await reinvite.respond(200, headers=DIALOG[1:])

        nursery.start_soon(heal)
        nursery.start_soon(answer_reinvite)
        response = await call.hold()
        assert response.status_code == 200
        assert trio.current_time() == pytest.approx(start + 4.02)
        assert call.held and call.state is CallState.ANSWERED
        hang.set()
    sent = [row for row in invites(net) if row[3].to.tag is not None]
    assert [(round(t - start, 3), fate) for t, _, fate, _ in sent] == [
        (0.0, "blackholed"),
        (0.5, "blackholed"),
        (1.5, "blackholed"),
        (3.5, "blackholed"),
        (4.0, "delivered"),
    ]
    first, retry = sent[0][3], sent[-1][3]
    assert first.cseq == retry.cseq and first.vias[0].branch != retry.vias[0].branch
    assert "Failover" not in kinds(await events_of(call))


# -- the ACK, BYE and CANCEL: cycled -----------------------------------------------------------


async def test_ack_and_bye_cycle_through_the_proxies(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = linked()
    proxies = [f"sip:{P1}:5060", f"sip:{P2}:5060"]
    async with cluster(net, proxies=proxies) as (ua, p1, p2), trio.open_nursery() as nursery:
        calls: list[Call] = []
        hang = trio.Event()
        nursery.start_soon(place, ua, calls, hang)
        incoming = await invite_at(p1)
        await incoming.respond(180, headers=DIALOG)
        await trio.sleep(0.001)
        net.partition(UA, P1)  # P1 dies: the 200 comes through P2 (the cluster shares state)
        ok = incoming.make_response(200, headers=DIALOG)
        assert p2.stack is not None
        for _ in range(40):  # P2 relays the callee's 200 until our ACK reaches it
            await p2.stack.send_stateless(ok)
            if arrived(net, P2, method="ACK"):
                break
            await trio.sleep(0.5)
        (call,) = calls
        assert call.state is CallState.ANSWERED
        acks = rounded(sent_by(net, UA, method="ACK"))
        first_p2 = next(t for t, host, _ in acks if host == P2)
        assert acks[0][1:] == (P1, "blackholed")
        assert 4.0 <= first_p2 - acks[0][0] <= 4.5  # P1 had sip_transaction_timeout
        assert {host for t, host, _ in acks if t < first_p2} == {P1}
        hang.set()  # hang up: the BYE goes to P1 (the route set), then P2
        await p2.wait_for("BYE")
        bye_at = trio.current_time()
    byes = rounded(sent_by(net, UA, method="BYE"))
    assert byes[0][1:] == (P1, "blackholed")
    assert bye_at - byes[0][0] == pytest.approx(4.01)
    assert call.end_reason is not None and call.end_reason.reason is EndReason.LOCAL_HANGUP


@pytest.mark.parametrize(("timeout_ms", "cycled"), [(4000, True), (32000, False)])
async def test_cancel_cycles_through_the_proxies(
    autojump_clock: trio.testing.MockClock, timeout_ms: int, cycled: bool
) -> None:
    # RFC 3261 §9.1 sends a CANCEL where its INVITE went; under the short timeout seed 002
    # cycles it ("call-terminating BYE and CANCEL requests"): a documented deviation for a
    # cluster that shares state.
    net = linked()
    proxies = [f"sip:{P1}:5060", f"sip:{P2}:5060"]
    async with cluster(net, timeout_ms=timeout_ms, proxies=proxies) as (ua, p1, p2):
        async with trio.open_nursery() as nursery:
            calls: list[Call] = []
            hang = trio.Event()
            nursery.start_soon(place, ua, calls, hang)
            incoming = await invite_at(p1)
            await incoming.respond(180, headers=DIALOG)
            await trio.sleep(0.001)
            net.partition(UA, P1)
            hang.set()  # leave the call before the answer: CANCEL
            await trio.sleep(40)
        (call,) = calls
        assert call.end_reason is not None and call.end_reason.reason is EndReason.CANCELLED
    cancels = rounded(sent_by(net, UA, method="CANCEL"))
    assert cancels[0][1:] == (P1, "blackholed")
    at_p2 = [t for t, host, fate in cancels if host == P2]
    if cycled:
        assert at_p2[0] - cancels[0][0] == pytest.approx(4.0)
        (_, cancel), *_ = arrived(net, P2, method="CANCEL")
        assert cancel.vias[0].branch == incoming.request.vias[0].branch  # the INVITE's
    else:
        assert at_p2 == [] and p2.received == []


async def test_bye_outlives_the_cleanup_timeout(autojump_clock: trio.testing.MockClock) -> None:
    # Leaving ``async with call`` waits cleanup_timeout (1 s here) for the BYE; the BYE goes on
    # cycling in the agent's nursery: seed 002's 32 s are not cut short by the application.
    net = linked()
    proxies = [f"sip:{P1}:5060", f"sip:{P2}:5060"]
    async with (
        cluster(net, proxies=proxies, cleanup_timeout=1.0) as (ua, p1, p2),
        trio.open_nursery() as nursery,
    ):
        calls: list[Call] = []
        hang = trio.Event()
        nursery.start_soon(place, ua, calls, hang)
        incoming = await invite_at(p1)
        await incoming.respond(200, headers=DIALOG)
        (call,) = calls
        await call.wait_answered()
        net.partition(UA, P1)
        start = trio.current_time()
        hang.set()
        with trio.fail_after(10):
            await call.wait_ended()
        assert trio.current_time() - start == pytest.approx(1.0)  # the block was left
        await p2.wait_for("BYE")
        assert trio.current_time() - start == pytest.approx(4.01)  # ... the BYE went on
    assert call.end_reason is not None and call.end_reason.reason is EndReason.LOCAL_HANGUP
