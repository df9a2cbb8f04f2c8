"""Media ports: each call's SDP gets an RTP port of ``media_ports`` that no other live call
has, the port comes back when the call ends, and a full range fails the call clearly. In
virtual time on the in-memory network, reading the ports from the SDPs on the wire."""

from __future__ import annotations

import random
from contextlib import AsyncExitStack
from typing import Any

import pytest
import trio
import trio.testing

from trio_sip.proto.errors import ConfigError
from trio_sip.proto.message import Request, Response
from trio_sip.proto.sdp import parse_sdp
from trio_sip.testing import FakeNetwork
from trio_sip.ua import Call, CallFailed, UserAgent, open_user_agent
from trio_sip.ua.media_ports import MediaPorts, media_port_range

ALICE, BOB = "10.0.0.1", "10.0.0.2"
BOB_URI = f"sip:bob@{BOB}:5060"


def ua(net: FakeNetwork, host: str, user: str, **kw: Any) -> Any:
    return open_user_agent(
        [("UDP", host, 5060)], aor=f"sip:{user}@{host}", backend=net.backend(host),
        rng=random.Random(host), **kw,
    )  # fmt: skip


def sdp_ports(net: FakeNetwork, src: str, kind: type) -> list[int]:
    """The audio port of each SDP ``src`` sent in an INVITE (Request) or a 200 (Response),
    retransmissions counted once."""
    seen: dict[tuple[str, int], int] = {}
    for packet in net.packets(transport="UDP"):
        if packet.src[0] != src:
            continue
        message = packet.message
        if not isinstance(message, kind) or not message.body:
            continue
        if isinstance(message, Request) and message.method != "INVITE":
            continue
        if isinstance(message, Response) and message.status_code != 200:
            continue
        seen.setdefault((message.call_id, message.cseq.seq), parse_sdp(message.body).media[0].port)
    return list(seen.values())


async def answer_all(bob: UserAgent, calls: list[Call]) -> None:
    async for incoming in bob.incoming_calls():
        calls.append(await incoming.accept())


async def test_concurrent_calls_offer_distinct_ports_and_freed_ports_come_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    answered: list[Call] = []
    async with (
        ua(net, ALICE, "alice", media_ports=range(41000, 41006)) as alice,
        ua(net, BOB, "bob", media_ports=range(42000, 42100)) as bob,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(answer_all, bob, answered)
        async with AsyncExitStack() as calls:
            for _ in range(3):  # three live calls: ports 41000, 41002, 41004
                call = await calls.enter_async_context(alice.call(BOB_URI))
                await call.wait_answered()
            assert alice.media_ports.in_use == 3 and bob.media_ports.in_use == 3
            assert sdp_ports(net, ALICE, Request) == [41000, 41002, 41004]
            assert sdp_ports(net, BOB, Response) == [42000, 42002, 42004]
            # The range is full: a fourth call fails before anything is sent.
            with pytest.raises(CallFailed, match=r"no free media port: all 3 RTP ports of "):
                async with alice.call(BOB_URI):
                    pass  # pragma: no cover
            assert len(sdp_ports(net, ALICE, Request)) == 3
        # All three hung up (the last one first): their ports are free again, and the one
        # freed first is offered first.
        await trio.sleep(1)
        assert alice.media_ports.in_use == 0 and bob.media_ports.in_use == 0
        async with alice.call(BOB_URI) as call:
            await call.wait_answered()
        assert sdp_ports(net, ALICE, Request)[3] == 41004
        assert sdp_ports(net, BOB, Response)[3] == 42006  # never used yet: those go first
        nursery.cancel_scope.cancel()


async def test_media_port_keeps_its_meaning_and_ports_stay_in_range(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    answered: list[Call] = []
    async with (
        ua(net, ALICE, "alice", media_port=50000) as alice,
        ua(net, BOB, "bob") as bob,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(answer_all, bob, answered)
        for _ in range(2):  # one after the other: the first call's port is free again
            async with alice.call(BOB_URI) as call:
                await call.wait_answered()
        async with alice.call(BOB_URI) as first, alice.call(BOB_URI) as second:
            await first.wait_answered()
            await second.wait_answered()
        nursery.cancel_scope.cancel()
    assert sdp_ports(net, ALICE, Request) == [50000, 50002, 50004, 50006]
    assert sdp_ports(net, BOB, Response) == [40000, 40002, 40004, 40006]


def test_port_ranges_and_their_errors() -> None:
    assert media_port_range(range(40000, 41000), None) == range(40000, 40999, 2)
    assert media_port_range(range(40001, 40004), None) == range(40002, 40003, 2)
    assert media_port_range(None, None) == range(40000, 65535, 2)
    assert media_port_range(None, 65534) == range(65534, 65535, 2)
    assert media_port_range(range(65534, 65536), None) == range(65534, 65535, 2)
    for ports, first, setting in [
        (range(40000, 40001), None, "media_ports"),  # no room for RTCP
        (range(65535, 65536), None, "media_ports"),
        (range(0, 2), None, "media_ports"),
        (range(40000, 40002), 40000, "media_port"),  # both given
        (None, 65535, "media_port"),
    ]:
        with pytest.raises(ConfigError) as exc:
            media_port_range(ports, first)
        assert exc.value.setting == setting
    pool = MediaPorts(range(10, 14, 2))
    assert [pool.allocate(), pool.allocate()] == [10, 12]
    pool.release(12)
    pool.release(10)
    pool.release(99)  # not held: ignored
    assert [pool.allocate(), pool.allocate()] == [12, 10]
