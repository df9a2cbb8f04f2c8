"""Many senders on one TCP connection do not queue behind each other (found by the chaos soak).

With the send lock taken for every message, each message cost a lock hand-off plus the
checkpoint of ``send_all``: one or two scheduler rounds each, one after the other. On a busy
event loop (the soak: ~1,000 live calls on two shared cores) a connection then carried fewer
messages a second than the calls produced, and requests to site B waited more than 4 s to
reach the wire ("no connection to tcp:... within 4 s"), so connection "b" went unavailable
again and again. A message is now written at once when nobody is sending.

Real loopback TCP; the scheduler rounds are counted by a task that yields in a loop (a count,
not a clock).
"""

from __future__ import annotations

import socket
import struct

import trio

from trio_sip.proto.errors import TransportError
from trio_sip.transports.stream import StreamFlow

SENDERS = 60  # ~27 KB: within the socket buffers, as SIP traffic is


async def _pair() -> tuple[StreamFlow, trio.SocketStream, trio.SocketListener]:
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    client = await trio.open_tcp_stream("127.0.0.1", port)
    server = await listener.accept()
    assert isinstance(server, trio.SocketStream)
    flow = StreamFlow("TCP", client, ("127.0.0.1", 0), ("127.0.0.1", port))
    return flow, server, listener


async def _read_exactly(stream: trio.SocketStream, size: int) -> bytes:
    data = bytearray()
    with trio.fail_after(10):
        while len(data) < size:
            chunk = await stream.receive_some(1 << 20)
            assert chunk, "the connection closed early"
            data += chunk
    return bytes(data)


async def test_concurrent_senders_do_not_queue_behind_each_other() -> None:
    flow, server, listener = await _pair()
    messages = [
        b"OPTIONS sip:%03d SIP/2.0\r\n" % i + b"X" * 400 + b"\r\n\r\n" for i in range(SENDERS)
    ]
    rounds = 0
    done = trio.Event()

    async def count_rounds() -> None:
        nonlocal rounds
        for _ in range(100_000):  # bounded; far more than the old code needed
            if done.is_set():
                return
            rounds += 1
            await trio.sleep(0)

    received = b""

    async def read_all() -> None:
        nonlocal received
        received = await _read_exactly(server, sum(map(len, messages)))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_all)  # the peer reads as it comes, like Kamailio
        nursery.start_soon(count_rounds)
        await trio.sleep(0)
        start = rounds
        async with trio.open_nursery() as senders:
            for message in messages:
                senders.start_soon(flow.send, message)
        used = rounds - start
        done.set()
    # Every message arrived whole (no interleaving), each once.
    assert sorted(received.split(b"OPTIONS ")[1:]) == sorted(m[8:] for m in messages)
    # One round to start the senders, one for their checkpoint, a little slack: with a lock
    # hand-off per message it took two rounds per message (~120).
    assert used <= 10, used
    await flow.aclose()
    await server.aclose()
    await listener.aclose()


async def test_a_partly_written_message_is_finished_before_the_next() -> None:
    """A message bigger than the socket buffers is written partly at once; the next message
    waits for its rest, so the bytes on the wire are the two messages, in order."""
    flow, server, listener = await _pair()
    big = b"A" * (16 * 2**20)
    small = b"B" * 100
    async with trio.open_nursery() as nursery:
        nursery.start_soon(flow.send, big)
        await trio.sleep(0.05)  # the big one is stuck on a full buffer: the peer reads nothing
        nursery.start_soon(flow.send, small)
        received = await _read_exactly(server, len(big) + len(small))
    assert received == big + small
    assert flow.usable
    await flow.aclose()
    await server.aclose()
    await listener.aclose()


async def test_a_write_to_a_reset_connection_fails_the_flow() -> None:
    flow, server, listener = await _pair()
    server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    await server.aclose()  # linger 0: the peer resets the connection
    await trio.sleep(0.05)
    failures = 0
    for _ in range(3):  # the first write may still be accepted before the RST is seen
        try:
            await flow.send(b"OPTIONS sip:x SIP/2.0\r\n\r\n")
        except TransportError as exc:
            assert "TCP to 127.0.0.1" in str(exc)
            failures += 1
            break
        await trio.sleep(0.05)
    assert failures == 1
    assert not flow.usable
    await flow.aclose()
    await listener.aclose()
