"""Two user agents on the in-memory network, in virtual time: call, hold, retrieve, hang up."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
import trio.testing

from trio_sip.proto.message import Request, Response
from trio_sip.proto.sdp import parse_sdp
from trio_sip.testing import FakeNetwork
from trio_sip.ua import (
    Answered,
    Call,
    CallState,
    EndReason,
    Held,
    Progress,
    Retrieved,
    UserAgent,
    open_user_agent,
)

ALICE, BOB = "10.0.0.1", "10.0.0.2"
BOB_URI = f"sip:bob@{BOB}:5060"


@asynccontextmanager
async def two_agents(
    net: FakeNetwork, alice_kw: dict[str, Any] | None = None, bob_kw: dict[str, Any] | None = None
) -> AsyncIterator[tuple[UserAgent, UserAgent]]:
    async with (
        open_user_agent(
            [("UDP", ALICE, 5060)], aor=f"sip:alice@{ALICE}", backend=net.backend(ALICE),
            rng=random.Random(1), **(alice_kw or {}),
        ) as alice,
        open_user_agent(
            [("UDP", BOB, 5060)], aor=f"sip:bob@{BOB}", backend=net.backend(BOB),
            rng=random.Random(2), **(bob_kw or {}),
        ) as bob,
    ):  # fmt: skip
        yield alice, bob


def sent(
    net: FakeNetwork, *, src: str, method: str | None = None, status: int | None = None
) -> list[Any]:
    out: list[Any] = []
    for packet in net.packets(transport="UDP"):
        if packet.src[0] != src:
            continue
        try:
            message = packet.message
        except Exception:
            continue
        if method is not None and isinstance(message, Request) and message.method == method:
            out.append((packet.time, message))
        if status is not None and isinstance(message, Response) and message.status_code == status:
            out.append((packet.time, message))
    return out


def state(call: Call) -> CallState:
    """The call's state (a function, so that type checkers do not narrow it)."""
    return call.state


async def answer_next(bob: UserAgent, *, ring: bool = True) -> Call:
    async for incoming in bob.incoming_calls():
        if ring:
            await incoming.ring()
        return await incoming.accept()
    raise AssertionError("no call")


async def test_call_answered_held_retrieved_hung_up(autojump_clock: trio.testing.MockClock) -> None:
    net = FakeNetwork()
    net.set_link(ALICE, BOB, delay=0.01)
    net.set_link(BOB, ALICE, delay=0.01)
    async with two_agents(net) as (alice, bob), trio.open_nursery() as nursery:
        bob_calls: list[Call] = []

        async def answer() -> None:
            bob_calls.append(await answer_next(bob))

        nursery.start_soon(answer)
        async with alice.call(BOB_URI) as call:
            ok = await call.wait_answered()
            assert ok.status_code == 200
            assert state(call) is CallState.ANSWERED
            assert call.remote_sdp is not None
            await call.hold()
            assert call.local_sdp is not None and call.local_sdp.media_direction(0) == "sendonly"
            assert call.remote_sdp.media_direction(0) == "recvonly"
            await call.retrieve()
            assert call.remote_sdp.media_direction(0) == "sendrecv"
        assert state(call) is CallState.ENDED
        theirs = bob_calls[0]
        ended = await theirs.wait_ended()
        assert ended.reason is EndReason.REMOTE_HANGUP
        events = [e async for e in call.events]
        assert [type(e) for e in events] == [Progress, Answered, Held, Retrieved, type(ended)]
        # On the wire: INVITE (1), re-INVITE sendonly (2), re-INVITE sendrecv (3), BYE (4).
        invites = sent(net, src=ALICE, method="INVITE")
        seqs = sorted({m.cseq.seq for _, m in invites})
        assert seqs == [1, 2, 3]
        dirs = [parse_sdp(m.body).media_direction(0) for _, m in invites]
        assert dirs[0] == "sendrecv" and "sendonly" in dirs and dirs[-1] == "sendrecv"
        byes = sent(net, src=ALICE, method="BYE")
        assert [m.cseq.seq for _, m in byes] == [4]
        acks = sent(net, src=ALICE, method="ACK")
        assert sorted({m.cseq.seq for _, m in acks}) == [1, 2, 3]
        assert alice.calls == [] and bob.calls == []
