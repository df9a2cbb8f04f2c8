"""Fault isolation of a user agent answering calls as `trio-sip serve` does (virtual time).

Each hostile datagram of issue #10 (tests/hostile.py) goes to an agent running
``cli.serve.answer_calls``: the agent answers what can be answered, ends that call alone, keeps
nothing behind, and answers a normal call afterwards. Then the reflection of a half-open INVITE
from a spoofed source: what one datagram gets back.
"""

from __future__ import annotations

import io
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing

from trio_sip.cli._view import View
from trio_sip.cli.serve import answer_calls
from trio_sip.proto.message import Response
from trio_sip.proto.parse import parse_message
from trio_sip.testing import FakeNetwork
from trio_sip.ua import EndReason, UserAgent, open_user_agent

from ..hostile import Case, cases, request

ALICE, BOB, EVE, VICTIM = "10.0.0.1", "10.0.0.2", "10.0.0.9", "10.0.0.66"
BOB_URI = f"sip:bob@{BOB}:5060"


@asynccontextmanager
async def serving(net: FakeNetwork) -> AsyncIterator[tuple[UserAgent, dict[str, int], io.StringIO]]:
    """Bob's agent answering every call like `trio-sip serve`, at BOB:5060."""
    out = io.StringIO()
    counts = {"answered": 0, "ended": 0, "failed": 0}
    async with (
        open_user_agent(
            [("UDP", BOB, 5060)], aor=f"sip:serve@{BOB}", backend=net.backend(BOB),
            rng=random.Random(2),
        ) as bob,
        trio.open_nursery() as nursery,
    ):  # fmt: skip
        nursery.start_soon(answer_calls, bob, View(out), counts)
        yield bob, counts, out
        nursery.cancel_scope.cancel()


def answers_to(net: FakeNetwork, host: str) -> list[Response]:
    """Every response sent to ``host``, in order."""
    out = []
    for packet in net.packets(transport="UDP"):
        if packet.dst[0] == host and packet.src[0] == BOB:
            message = parse_message(packet.data)
            if isinstance(message, Response):
                out.append(message)
    return out


async def normal_call(net: FakeNetwork) -> EndReason:
    """Alice calls Bob, is answered, hangs up; returns how Alice's call ended."""
    async with open_user_agent(
        [("UDP", ALICE, 5060)], aor=f"sip:alice@{ALICE}", backend=net.backend(ALICE)
    ) as alice:
        async with alice.call(BOB_URI) as call:
            ok = await call.wait_answered()
            assert ok.status_code == 200
        ended = await call.wait_ended()
        return ended.reason


HOSTILE = cases((BOB, 5060), (EVE, 5060), closed_port=9)


@pytest.mark.parametrize("case", HOSTILE, ids=[c.name for c in HOSTILE])
async def test_hostile_datagram_ends_one_call_not_the_agent(
    case: Case, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    net = FakeNetwork()
    async with serving(net) as (bob, counts, out):
        eve = await net.backend(EVE).open_udp(EVE, 5060)
        for datagram in case.datagrams:
            await eve.sendto(datagram, (BOB, 5060))
        await trio.sleep(40)  # past 64*T1: every transaction of it has ended
        seen = {r.status_code for r in answers_to(net, EVE)}
        assert case.check(seen), (case.name, seen)
        stats = bob.stack.statistics()
        assert (stats.server_transactions, stats.handlers) == (0, 0), stats
        assert bob.calls == []
        assert await normal_call(net) is EndReason.LOCAL_HANGUP
        assert counts["answered"] == 1 + (case.name == "rfc2543-invite")
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.exc_info], "no traceback for a peer's fault"
    if case.name == "invite-then-cancel":
        assert counts["failed"] == 1 and "call failed: 487 Request Terminated" in out.getvalue()
    if case.name == "no-call-id":
        (bad,) = answers_to(net, EVE)
        assert bad.headers.get("Via") is not None and bad.headers.get("Call-ID") is None
    if case.name == "via-transport-foo":  # (a bare CR never reaches the stack: parse error)
        assert bob.stack.faults["unanswerable-request"] >= 1
    if case.name == "stray-response-bad-via":
        assert bob.stack.faults["malformed-response"] == 1


async def test_rfc2543_caller_without_from_tag_is_served_to_the_end(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """§12.1.1: "A UAS MUST be prepared to receive a request without a tag in the From field,
    in which case the tag is considered to have a value of null"; §17.2.3: without the branch
    cookie, requests match their transaction the RFC 2543 way. The call is answered, its ACK
    (no From tag) stops the 200 retransmissions, its BYE (no From tag) ends it."""
    net = FakeNetwork()
    async with serving(net) as (bob, counts, out):
        eve = await net.backend(EVE).open_udp(EVE, 5060)
        legacy = {"branch": None, "from_": "<sip:eve@example.com>", "call_id": "rfc2543@h"}
        await eve.sendto(request((BOB, 5060), (EVE, 5060), **legacy), (BOB, 5060))  # type: ignore[arg-type]
        await trio.sleep(0.1)
        ok = [r for r in answers_to(net, EVE) if r.status_code == 200]
        assert len(ok) == 1 and ok[0].to.tag and ok[0].from_.tag is None
        to = str(ok[0].to)
        for method, seq in (("ACK", 1), ("BYE", 2)):
            datagram = request((BOB, 5060), (EVE, 5060), method=method, seq=seq, to=to, **legacy)  # type: ignore[arg-type]
            await eve.sendto(datagram, (BOB, 5060))
            await trio.sleep(0.1)
        await trio.sleep(10)
        oks = [r for r in answers_to(net, EVE) if r.status_code == 200]
        # One 200 to the INVITE (the ACK matched: no retransmission), one to the BYE.
        assert [r.cseq.method for r in oks] == ["INVITE", "BYE"]
        assert counts == {"answered": 1, "ended": 1, "failed": 0}
        assert "#1 ended (remote hangup)" in out.getvalue()
        assert bob.calls == []


async def test_half_open_invite_reflection_factor(autojump_clock: trio.testing.MockClock) -> None:
    """One spoofed INVITE over UDP (source: the victim; Contact: a second victim), never
    ACKed. Before (commit df7688a): 1x180, 11x200 to the source and 4 BYEs (a transaction
    cut at cleanup_timeout) to the Contact: 16 datagrams for 1. Now the 2xx retransmissions
    of §13.3.1.4 stay, the BYE (a SHOULD) goes only to a peer that proved it hears us
    (trio_sip/ua/incoming.py, ``_no_ack``): 12 for 1, none to the Contact."""
    net = FakeNetwork()
    async with serving(net) as (bob, counts, _out):
        spoofed = await net.backend(EVE).open_udp(EVE, 5060)
        victim = await net.backend(VICTIM).open_udp(VICTIM, 5060)  # takes what comes, silently
        invite = request((BOB, 5060), (EVE, 5060), contact=f"<sip:x@{VICTIM}:5060>")
        await spoofed.sendto(invite, (BOB, 5060))
        await trio.sleep(100)
        sent = [p for p in net.packets(transport="UDP") if p.src[0] == BOB]
        to_source = [p for p in sent if p.dst[0] == EVE]
        to_contact = [p for p in sent if p.dst[0] == VICTIM]
        statuses = [parse_message(p.data).status_code for p in to_source]  # type: ignore[union-attr]
        print(f"reflection: {len(sent)} datagrams for 1 ({len(to_source)} to the source, "
              f"{len(to_contact)} to the Contact; {sum(len(p.data) for p in sent)} bytes "
              f"for {len(invite)})")  # fmt: skip
        assert statuses == [180] + [200] * 11
        assert to_contact == []
        assert len(sent) == 12
        assert counts == {"answered": 1, "ended": 1, "failed": 0}
        assert bob.calls == [] and bob.stack.statistics().server_transactions == 0
        victim.close()


async def test_no_ack_over_tcp_still_gets_the_bye(autojump_clock: trio.testing.MockClock) -> None:
    """Over TCP the handshake proves the caller's address: the §13.3.1.4 BYE goes out."""
    net = FakeNetwork()
    async with (
        open_user_agent(
            [("TCP", BOB, 5060)], aor=f"sip:serve@{BOB}", backend=net.backend(BOB)
        ) as bob,
        trio.open_nursery() as nursery,
    ):
        counts = {"answered": 0, "ended": 0, "failed": 0}
        nursery.start_soon(answer_calls, bob, View(io.StringIO()), counts)
        listener, _ = await net.backend(EVE).open_tcp_listener(EVE, 5060)
        stream = await net.backend(EVE).connect_tcp(BOB, 5060)
        via = f"SIP/2.0/TCP {EVE}:5060;branch=z9hG4bK-t"
        contact = f"<sip:eve@{EVE}:5060;transport=tcp>"
        await stream.send_all(request((BOB, 5060), (EVE, 5060), via=via, contact=contact))
        await trio.sleep(40)
        sent = [p for p in net.packets(transport="TCP") if p.src[0] == BOB]
        byes = [p for p in sent if p.data.startswith(b"BYE")]
        assert len(byes) == 1
        assert counts["ended"] == 1
        await stream.aclose()
        await listener.aclose()
        nursery.cancel_scope.cancel()
