"""A burst of ICMP errors for one peer never fails a send to another (found by the chaos soak).

Linux hands an ICMP port-unreachable for an earlier datagram to the *next* send on the socket,
whatever its destination (the pending error, ``sk_err``), and every further ICMP error sets it
again. On a loaded machine the kernel delivers those ICMPs from another core, between our
attempts, so a send to a live peer can be refused several times in a row: in the soak's "DNS
answer changed" fault (a dead address first) the endpoint reported "UDP to <site A>:
connection refused" while site A was running, and marked it unavailable.

The socket here is a real UDP socket whose ``sendto`` first fails with the pending refusals
the kernel would hand it (the burst is the kernel's part; the retry is ours, under test).
"""

from __future__ import annotations

import errno
import socket
import sys
from typing import Any

import pytest
import trio

from trio_sip.proto.errors import TransportError
from trio_sip.transports.udp import UdpListener
from trio_sip.transports.udp_socket import (
    MAX_PENDING_ERRORS,
    MAX_PENDING_REFUSALS,
    TrioDatagramSocket,
)

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="IP_RECVERR is Linux's")


class PendingErrors:
    """A real UDP socket (stdlib or trio) whose next sends fail with queued pending errors,
    as the kernel's would while ICMP errors for other datagrams keep arriving."""

    def __init__(self, sock: Any, pending: list[int]) -> None:
        self._sock = sock
        self.pending = pending

    def _next_error(self) -> None:
        if self.pending:
            code = self.pending.pop(0)
            raise OSError(code, "pending")

    def sendto(self, data: bytes, address: tuple[str, int]) -> int:
        self._next_error()
        return int(self._sock.sendto(data, address))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class AsyncPendingErrors(PendingErrors):
    async def sendto(self, data: bytes, address: tuple[str, int]) -> int:  # type: ignore[override]
        await trio.lowlevel.checkpoint()
        self._next_error()
        return int(await self._sock.sendto(data, address))


async def listener_with(pending: list[int]) -> tuple[UdpListener, PendingErrors]:
    """A listener on a real socket; both its synchronous and its awaited sends first meet
    ``pending`` (one shared queue)."""
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    raw.bind(("127.0.0.1", 0))
    sync = PendingErrors(raw, pending)
    awaited = AsyncPendingErrors(trio.socket.from_stdlib_socket(raw), pending)
    made = TrioDatagramSocket(awaited, sync)  # type: ignore[arg-type]
    made.error_queue = True  # the listener's case: IP_RECVERR, errors named by the queue
    return UdpListener(made), sync


async def receiver() -> trio.socket.SocketType:
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await sock.bind(("127.0.0.1", 0))
    return sock


@linux
@pytest.mark.parametrize("refusals", [1, 3, 10, MAX_PENDING_REFUSALS - 1])
async def test_refusals_left_by_other_peers_do_not_fail_a_send(refusals: int) -> None:
    live = await receiver()
    listener, raw = await listener_with([errno.ECONNREFUSED] * refusals)
    flow = listener.flow_for(live.getsockname()[:2])
    with trio.fail_after(2):
        assert flow.try_send(b"to the live peer")
        data, source = await live.recvfrom(100)
    assert (data, source[:2]) == (b"to the live peer", listener.local)
    assert flow.usable and raw.pending == []
    listener.close()
    live.close()


@linux
async def test_the_async_send_retries_the_same_way() -> None:
    live = await receiver()
    listener, raw = await listener_with([errno.ECONNREFUSED] * 10)
    with trio.fail_after(2):
        await listener.sock.sendto(b"awaited", live.getsockname()[:2])
        data, _ = await live.recvfrom(100)
    assert data == b"awaited"
    assert raw.pending == []
    listener.close()
    live.close()


@linux
async def test_an_endless_burst_costs_the_datagram_not_the_peer() -> None:
    live = await receiver()
    listener, raw = await listener_with([errno.ECONNREFUSED] * (MAX_PENDING_REFUSALS + 5))
    flow = listener.flow_for(live.getsockname()[:2])
    assert flow.try_send(b"lost")  # dropped, as UDP may: the transaction retransmits
    assert flow.usable
    assert flow.try_send(b"next")  # the burst is over for this one
    with trio.fail_after(2):
        data, _ = await live.recvfrom(100)
    assert data == b"next"
    assert raw.pending == []
    listener.close()
    live.close()


@linux
async def test_an_unreachable_network_is_still_this_sends_own_error() -> None:
    live = await receiver()
    listener, raw = await listener_with([errno.ENETUNREACH] * MAX_PENDING_ERRORS)
    flow = listener.flow_for(live.getsockname()[:2])
    with pytest.raises(TransportError):
        flow.try_send(b"no route")
    assert raw.pending == []
    listener.close()
    live.close()
