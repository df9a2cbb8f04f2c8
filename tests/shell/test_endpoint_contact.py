"""What the endpoint registers (docs/endpoint.md), on the in-memory network in virtual time:
one ``line`` per connection in the Contact, ``expires = 0`` registers nothing, and leaving the
block unregisters every connection."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trio_sip.endpoint import ConnectionStatus
from trio_sip.proto.message import Request
from trio_sip.testing import FakeNetwork
from trio_sip.ua import CallFailed

from .endpoint_support import ALICE, SITE_A, SITE_B, endpoint_config, world


def registers(net: FakeNetwork, src: str, dst: str) -> list[Request]:
    out = []
    for packet in net.packets(transport="UDP"):
        if packet.src[0] == src and packet.dst[0] == dst and packet.data.startswith(b"REGISTER"):
            message = packet.message
            assert isinstance(message, Request)
            out.append(message)
    return out


async def test_each_connection_registers_its_own_line_and_unregisters_on_close(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with world() as (net, _a, _b, alice, _bob, _events):
        lines = {}
        for site in (SITE_A, SITE_B):
            (first,) = registers(net, ALICE, site)
            lines[site] = first.contacts[0].uri.params["line"]
        assert lines[SITE_A] and lines[SITE_B] and lines[SITE_A] != lines[SITE_B]
        assert {c.status for c in alice.connections.values()} == {ConnectionStatus.REGISTERED}
    for site in (SITE_A, SITE_B):
        last = registers(net, ALICE, site)[-1]
        assert last.expires == 0 or last.contacts[0].params.get("expires") == "0"


async def test_expires_zero_registers_nothing_and_counts_as_registered(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = endpoint_config("alice", conn={"expires": 0})
    async with world(config) as (net, _a, _b, alice, _bob, _events):
        assert {c.status for c in alice.connections.values()} == {ConnectionStatus.REGISTERED}
        await trio.sleep(600)
        assert registers(net, ALICE, SITE_A) == registers(net, ALICE, SITE_B) == []


async def test_dial_raises_call_failed_when_no_connection_can_send_the_invite(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with world() as (net, _a, _b, alice, _bob, _events):
        await alice.disable("a")
        await alice.disable("b")
        before = len(net.packets())
        with pytest.raises(CallFailed, match="connection a is disabled"):
            async with alice.dial("a", "bob"):
                raise AssertionError("the call started")
        assert [p for p in net.packets()[before:] if p.data.startswith(b"INVITE")] == []


async def test_an_unavailable_named_connection_is_still_tried_last(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Both sites refuse: no connection is REGISTERED, so the named one, though UNAVAILABLE,
    gets the INVITE (and the refusal ends the call) rather than nothing at all."""
    async with world() as (net, site_a, site_b, alice, _bob, _events):
        site_a.stop()
        site_b.stop()
        await trio.sleep(600)
        assert {c.status for c in alice.connections.values()} == {ConnectionStatus.UNAVAILABLE}
        before = len(net.packets())
        async with alice.dial("a", "bob") as call:
            with pytest.raises(CallFailed):
                await call.wait_answered()
        invites = [p for p in net.packets()[before:] if p.data.startswith(b"INVITE")]
        assert {p.dst[0] for p in invites} == {SITE_A}
