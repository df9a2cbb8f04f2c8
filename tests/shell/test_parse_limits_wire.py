"""The parse-time bounds of ``Limits`` on real loopback sockets: what a peer gets back (513,
414, 400, a reason phrase we built) and that the stack keeps serving after each.

Each message carries ``rport`` and a Via sent-by of our own socket, so every answer (parse
errors go to the source, rejections to the Via, RFC 3261 §18.2.2) comes back to the socket
that sent it.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from trio_sip import Limits
from trio_sip.stack import IncomingRequest, Stack, open_stack

LOOPBACK = "127.0.0.1"


def options(via_host: str, port: int, *extra: bytes, uri: bytes = b"sip:bob@127.0.0.1") -> bytes:
    return (
        b"OPTIONS " + uri + b" SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP %s:%d;rport;branch=z9hG4bK%d\r\n"
        % (via_host.encode(), port, id(extra))
        + b"Max-Forwards: 70\r\nTo: <sip:bob@127.0.0.1>\r\n"
        b"From: <sip:alice@127.0.0.1>;tag=1928301774\r\n"
        b"Call-ID: limits-%d\r\nCSeq: 1 OPTIONS\r\n"
        % id(extra)
        + b"".join(extra)
        + b"Content-Length: 0\r\n\r\n"
    )


@asynccontextmanager
async def server(limits: Limits | None = None) -> AsyncIterator[Stack]:
    async def answer(incoming: IncomingRequest) -> None:
        await incoming.respond(200)

    async with open_stack(
        [("UDP", LOOPBACK, 0), ("TCP", LOOPBACK, 0)], handler=answer, limits=limits
    ) as stack:
        yield stack


async def exchange(stack: Stack, *extra: bytes, uri: bytes = b"sip:bob@127.0.0.1") -> bytes:
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    with sock:
        await sock.bind((LOOPBACK, 0))
        port = sock.getsockname()[1]
        await sock.sendto(options(LOOPBACK, port, *extra, uri=uri), stack.listening[0][1])
        with trio.fail_after(5):
            while True:
                data = await sock.recv(65535)
                if not data.startswith(b"SIP/2.0 1"):
                    return data


async def test_udp_answers_for_each_bound_and_the_stack_keeps_serving() -> None:
    limits = Limits(max_message_size=8192, max_header_section=4096, max_body_size=2048)
    async with server(limits) as stack:
        assert (await exchange(stack)).startswith(b"SIP/2.0 200 ")
        too_long_uri = b"sip:" + b"b" * 2100 + b"@127.0.0.1"
        assert (await exchange(stack, uri=too_long_uri)).startswith(b"SIP/2.0 414 ")
        params = b"sip:bob@127.0.0.1" + b"".join(b";p%d" % i for i in range(40))
        assert (await exchange(stack, uri=params)).startswith(b"SIP/2.0 414 ")
        big = b"X-Padding: " + b"y" * 4200 + b"\r\n"  # header section over 4096
        assert (await exchange(stack, big)).startswith(b"SIP/2.0 513 ")
        vias = b"".join(b"Via: SIP/2.0/UDP h%d;branch=z9hG4bK%d\r\n" % (i, i) for i in range(71))
        assert (await exchange(stack, vias)).startswith(b"SIP/2.0 400 ")
        assert (await exchange(stack, b"X-A: y\r\n" * 300)).startswith(b"SIP/2.0 400 ")
        injected = b"Subject: a\rInjected: yes\r\n"
        answer = await exchange(stack, injected)
        assert answer.startswith(b"SIP/2.0 400 ") and b"Injected" not in answer
        assert (await exchange(stack, b"Subject: a\x00b\r\n")).startswith(b"SIP/2.0 400 ")
        twice = b"Content-Length: 0\r\n"
        assert (await exchange(stack, twice)).startswith(b"SIP/2.0 400 ")
        assert (await exchange(stack)).startswith(b"SIP/2.0 200 ")  # still serving


async def test_request_without_call_id_gets_400_with_what_could_be_copied() -> None:
    async with server() as stack:
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        with sock:
            await sock.bind((LOOPBACK, 0))
            port = sock.getsockname()[1]
            data = options(LOOPBACK, port).replace(b"Call-ID: limits-", b"X-Was-Call-ID: ")
            await sock.sendto(data, stack.listening[0][1])
            with trio.fail_after(5):
                answer = await sock.recv(65535)
        assert answer.startswith(b"SIP/2.0 400 ")
        assert b"CSeq: 1 OPTIONS\r\n" in answer and b"Call-ID" not in answer


def _flood_header_block(address: tuple[str, int], size: int) -> tuple[int, bytes]:
    """What an attacker does (blocking socket, in a thread): send ``size`` bytes of one header
    block without ever ending it, then read what comes back. Returns (bytes sent, answer)."""
    sock = socket.create_connection(address, timeout=10)
    sent = 0
    try:
        head = options(LOOPBACK, 5060).split(b"Content-Length")[0] + b"X-Padding: "
        sock.sendall(head)
        sent = len(head)
        chunk = b"y" * 65536
        while sent < size:
            sock.sendall(chunk)
            sent += len(chunk)
    except OSError:
        pass  # the server closed the connection: the rest cannot be sent
    answer = b""
    try:
        while data := sock.recv(65536):
            answer += data
    except OSError:
        pass
    sock.close()
    return sent, answer


async def test_a_10_mb_header_block_on_tcp_gets_513_and_is_closed() -> None:
    async with server() as stack:
        address = stack.listening[1][1]
        with trio.fail_after(30):
            sent, answer = await trio.to_thread.run_sync(
                _flood_header_block, address, 10 * 1024 * 1024
            )
        assert answer.startswith(b"SIP/2.0 513 Message Too Large\r\n"), answer[:80]
        assert sent < 10 * 1024 * 1024  # closed long before the end, not read to the end
        assert (await exchange(stack)).startswith(b"SIP/2.0 200 ")  # still serving
