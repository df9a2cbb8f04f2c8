"""Seed 002's cycling at the geo-redundant endpoint, in virtual time: an answered call's 200
cycles through the proxies of the endpoint's connections (sip_transaction_timeout = 2000).

Bob's endpoint can no longer reach site A (its packets to A are lost; A still reaches him).
Alice's INVITE comes through A; Bob's 200 goes to A, then, 2 s without an ACK later, to site
B's proxy (the first hop of his other connection), back to A, ... for 32 s; then the call is
abandoned. Site B is an independent site here: it drops a 200 whose Via is A's
(RFC 3261 §18.1.2), so Alice's endpoint gives up on A and calls again through B.
"""

from __future__ import annotations

import trio
import trio.testing

from trio_sip.proto.message import Request, Response
from trio_sip.testing import FakeNetwork

from .endpoint_support import BOB, SITE_A, SITE_B, world


def sends(net: FakeNetwork, call_id: str, *, status: int | None = None, method: str | None = None
          ) -> list[tuple[float, str, str]]:  # fmt: skip
    """(time, destination, fate) of what Bob sent in ``call_id``."""
    out = []
    for packet in net.packets(transport="UDP"):
        if packet.src[0] != BOB:
            continue
        try:
            message = packet.message
        except Exception:
            continue
        if message.call_id != call_id:
            continue
        if (isinstance(message, Response) and message.status_code == status) or (
            isinstance(message, Request) and message.method == method
        ):
            out.append((round(packet.time, 3), packet.dst[0], packet.fate))
    return out


async def test_answer_cycles_through_the_connections_proxies(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with world() as (net, _site_a, _site_b, alice, bob, _events):
        assert [str(u) for u in bob.proxies_for(bob.connections["a"])] == [
            f"sip:{SITE_A}:5060",
            f"sip:{SITE_B}:5060",
        ]
        net.set_link(BOB, SITE_A, loss=1.0, both_ways=False)
        start = trio.current_time()
        async with alice.dial("a", "bob") as call:
            await call.wait_answered()
            assert call.connections_tried == ["a", "b"]
        await trio.sleep(40)
    first = next(
        p.message.call_id
        for p in net.packets(transport="UDP")
        if p.src[0] == SITE_A and p.dst[0] == BOB and p.data.startswith(b"INVITE ")
    )
    oks = sends(net, first, status=200)
    t0 = oks[0][0]
    assert t0 - start < 0.1
    # Moves every 2 s (the transaction timeout), A, B, A, ...: the RFC's schedule from the
    # first 200 plus one 200 at each move; then the call is abandoned (no BYE: the caller's
    # site never answered us over UDP).
    rfc = [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    moves = [2.0 * k for k in range(1, 16)]
    expected = [
        (round(t0 + t, 3), SITE_A if int(t // 2) % 2 == 0 else SITE_B)
        for t in sorted(set(rfc) | set(moves))
    ]
    assert [(t, host) for t, host, _ in oks] == expected
    assert {fate for _, host, fate in oks if host == SITE_A} == {"lost"}
    assert {fate for _, host, fate in oks if host == SITE_B} == {"delivered"}
    assert sends(net, first, method="BYE") == []
