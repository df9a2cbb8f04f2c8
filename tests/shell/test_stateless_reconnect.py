"""A stateless request (the ACK of a 2xx) on a pooled TCP connection that was just reset goes
once more on a new connection (found by the chaos soak).

The soak resets our TCP connection to site B mid-call (``ss -K``). An ACK sent in the moment
between the reset and our reader task noticing it found the old connection in the pool, failed
with "connection broken", and the re-INVITE it acknowledged ended its call with 408, although
site B was fine. Real loopback TCP: the peer resets the connection (SO_LINGER 0) and the ACK is
sent before our reader runs.
"""

from __future__ import annotations

import socket
import struct

import pytest
import trio

from trio_sip.proto.errors import TransportError
from trio_sip.proto.message import Request
from trio_sip.proto.parse import parse_message
from trio_sip.proto.target import Target
from trio_sip.stack import open_stack

ACK = (
    "ACK sip:bob@127.0.0.1 SIP/2.0\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:alice@example.com>;tag=a\r\n"
    "To: <sip:bob@example.com>;tag=b\r\n"
    "Call-ID: reset-ack\r\n"
    "CSeq: 2 ACK\r\n"
    "Content-Length: 0\r\n\r\n"
)


def _reset(stream: trio.SocketStream) -> None:
    """Close with SO_LINGER 0: the kernel sends a RST at once (synchronously, on loopback)."""
    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    stream.socket.close()


async def _read_message(stream: trio.SocketStream) -> Request:
    data = b""
    with trio.fail_after(5):
        while b"\r\n\r\n" not in data:
            chunk = await stream.receive_some(65536)
            assert chunk
            data += chunk
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


async def test_an_ack_on_a_just_reset_connection_goes_on_a_new_one() -> None:
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    target = Target("TCP", "127.0.0.1", port)
    ack = parse_message(ACK.encode())
    assert isinstance(ack, Request)
    async with open_stack([("TCP", "127.0.0.1", 0)]) as stack:
        await stack.send_stateless(ack, target)  # opens the pooled connection
        first = await listener.accept()
        assert isinstance(first, trio.SocketStream)
        assert (await _read_message(first)).method == "ACK"
        _reset(first)  # our reader task has not run since: the pool still offers it
        sent = await stack.send_stateless(ack, target)
        second = await listener.accept()
        assert isinstance(second, trio.SocketStream)
        again = await _read_message(second)
        assert (again.method, again.call_id) == ("ACK", "reset-ack")
        assert "SIP/2.0/TCP" in str(sent.headers.get("Via"))
        await second.aclose()
    await listener.aclose()


async def test_a_fresh_connection_that_fails_is_not_tried_again() -> None:
    """Only a pooled connection gets the second try: a refused connect is the error."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there once closed
    ack = parse_message(ACK.encode())
    assert isinstance(ack, Request)
    async with open_stack([("TCP", "127.0.0.1", 0)]) as stack:
        with pytest.raises(TransportError, match="refused"):
            await stack.send_stateless(ack, Target("TCP", "127.0.0.1", port))
