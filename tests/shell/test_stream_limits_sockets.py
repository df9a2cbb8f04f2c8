"""Connection limits on real loopback sockets (issue #10): 513 for a huge header block, caps,
stalled TLS handshakes and slowloris reaped, and an accept loop that survives EMFILE.

Timeouts are set short here and every wait is bounded with a generous ``fail_after``; the exact
timings are checked in virtual time by tests/shell/test_stream_limits.py.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import trio
import trustme

from trio_sip import Limits
from trio_sip.proto.message import Request
from trio_sip.testing import make_request
from trio_sip.transports import Flow, TransportConfig, open_transport_layer

REPO = Path(__file__).resolve().parent.parent.parent


async def read_all(stream: trio.abc.Stream, limit: int = 1 << 20) -> bytes:
    """What the peer sends until it closes (a reset counts as the end)."""
    out = b""
    try:
        while len(out) < limit and (chunk := await stream.receive_some(65536)):
            out += chunk
    except trio.BrokenResourceError:
        pass
    return out


async def test_ten_megabyte_header_block_gets_513_and_the_server_keeps_serving() -> None:
    received: list[Request] = []

    def on_message(message: object, flow: Flow) -> None:
        assert isinstance(message, Request)
        received.append(message)

    async with open_transport_layer(on_message) as layer, trio.open_nursery() as nursery:
        address = await nursery.start(layer.listen, "TCP", "127.0.0.1", 0)
        with trio.fail_after(20):
            stream = await trio.open_tcp_stream(*address)
            head = bytes(make_request("TCP")).split(b"\r\n\r\n")[0]
            block = head + b"\r\nX-Filler: " + b"a" * (10 << 20)  # 10 MB, no end of headers
            answer = b""

            async def send() -> None:
                # The server closes the connection before the end: expected.
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await stream.send_all(block)

            async with trio.open_nursery() as inner:
                inner.start_soon(send)
                answer = await read_all(stream)
                inner.cancel_scope.cancel()
            await stream.aclose()
            assert answer.startswith(b"SIP/2.0 513 Message Too Large\r\n")
            assert b"Call-ID: " in answer and received == []
            assert layer.counters["messages_too_large"] == 1
            # The layer still serves other peers.
            stream = await trio.open_tcp_stream(*address)
            await stream.send_all(bytes(make_request("TCP")))
            while not received:
                await trio.sleep(0.01)
            await stream.aclose()
        nursery.cancel_scope.cancel()


async def test_client_that_sends_everything_first_still_reads_the_513() -> None:
    # Closing a socket with unread data makes the kernel send a reset, which destroys the 513
    # in the client's receive buffer: the layer half-closes and drains first ("lingers").
    async with open_transport_layer() as layer, trio.open_nursery() as nursery:
        address = await nursery.start(layer.listen, "TCP", "127.0.0.1", 0)
        with trio.fail_after(20):
            for size in (300_000, 1_000_000):
                stream = await trio.open_tcp_stream(*address)
                head = bytes(make_request("TCP")).split(b"\r\n\r\n")[0]
                await stream.send_all(head + b"\r\nX-Filler: " + b"a" * size)
                answer = await read_all(stream)
                assert answer.startswith(b"SIP/2.0 513 Message Too Large\r\n"), size
                await stream.aclose()
        nursery.cancel_scope.cancel()


async def connect_from(source: str, port: int) -> trio.abc.Stream:
    """A connection to 127.0.0.1:port from the loopback address ``source``."""
    return await trio.open_tcp_stream("127.0.0.1", port, local_address=source)


async def test_connection_caps_on_real_sockets() -> None:
    limits = Limits(max_connections=4, max_connections_per_source=2)
    async with (
        open_transport_layer(limits=limits) as layer,
        trio.open_nursery() as nursery,
    ):
        port = (await nursery.start(layer.listen, "TCP", "0.0.0.0", 0))[1]
        with trio.fail_after(10):
            ones = [await connect_from("127.0.0.1", port) for _ in range(3)]
            assert await read_all(ones[2]) == b""  # the third from 127.0.0.1: closed at once
            twos = [await connect_from("127.0.0.2", port) for _ in range(2)]
            threes = [await connect_from("127.0.0.3", port)]  # fifth in all
            assert await read_all(threes[0]) == b""
            assert layer.counters["connections_refused"] == 2
            for stream in ones[:2] + twos:  # the admitted ones work
                await stream.send_all(b"\r\n\r\n")
                assert await stream.receive_some(10) == b"\r\n"
            for stream in ones + twos + threes:
                await stream.aclose()
        nursery.cancel_scope.cancel()


async def test_stalled_tls_handshake_and_slowloris_are_reaped_on_real_sockets() -> None:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    limits = Limits(tls_handshake_timeout=0.3, message_read_timeout=0.3)
    config = TransportConfig(server_ssl_context=context)
    async with (
        open_transport_layer(limits=limits, config=config) as layer,
        trio.open_nursery() as nursery,
    ):
        tls = await nursery.start(layer.listen, "TLS", "127.0.0.1", 0)
        tcp = await nursery.start(layer.listen, "TCP", "127.0.0.1", 0)
        with trio.fail_after(10):
            stalled = await trio.open_tcp_stream(*tls)
            assert await read_all(stalled) == b""
            while layer.counters["tls_handshake_timeouts"] != 1:
                await trio.sleep(0.01)
            slow = await trio.open_tcp_stream(*tcp)
            data = bytes(make_request("TCP"))
            for byte in data[:20]:  # a byte every 50 ms: never idle, never complete
                try:
                    await slow.send_all(bytes([byte]))
                except trio.BrokenResourceError:
                    break
                await trio.sleep(0.05)
            assert await read_all(slow) == b""
            assert layer.counters["message_read_timeouts"] == 1
            await stalled.aclose()
            await slow.aclose()
        nursery.cancel_scope.cancel()


EMFILE_SCRIPT = textwrap.dedent(
    """
    import logging, os, resource
    import trio
    from trio_sip.transports import open_transport_layer

    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    logging.getLogger().addHandler(Keep())
    logging.getLogger().setLevel(logging.DEBUG)
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    async def main():
        async with open_transport_layer() as layer, trio.open_nursery() as nursery:
            port = (await nursery.start(layer.listen, "TCP", "127.0.0.1", 0))[1]
            clients = [trio.socket.socket() for _ in range(3)]  # their descriptors first
            hog = []
            while True:  # then use up every descriptor left
                try:
                    hog.append(os.open(os.devnull, os.O_RDONLY))
                except OSError:
                    break
            for sock in clients:  # connecting needs no descriptor; accepting one does
                await sock.connect(("127.0.0.1", port))
            await trio.sleep(2.0)  # accept fails with EMFILE all that time
            failing = len([r for r in records if "EMFILE" in r.getMessage()])
            tracebacks = len([r for r in records if r.exc_info])
            for fd in hog:  # descriptors come back: the waiting clients are served
                os.close(fd)
            served = 0
            with trio.move_on_after(5):
                for sock in clients:
                    await sock.send(b"\\r\\n\\r\\n")
                    if await sock.recv(10) == b"\\r\\n":
                        served += 1
            for sock in clients:
                sock.close()
            print("LOGGED", failing, "TRACEBACKS", tracebacks, "SERVED", served, flush=True)
            nursery.cancel_scope.cancel()

    trio.run(main)
    """
)


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_NOFILE and EMFILE as on Linux")
def test_accept_loop_backs_off_on_emfile_and_logs_once() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", EMFILE_SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = [x for x in result.stdout.splitlines() if x.startswith("LOGGED")][-1]
    _, logged, _, tracebacks, _, served = line.split()
    # Two seconds of EMFILE: one line (trio's serve_listeners logs a traceback every 0.1 s).
    assert (int(logged), int(tracebacks)) == (1, 0), line
    assert int(served) == 3, line
