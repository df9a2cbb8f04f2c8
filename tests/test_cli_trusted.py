"""``trio-sip serve --trusted``: a front proxy relays every caller's requests from its one
address, so the per-source request rate (``Limits.request_rate``, 50/s with a burst of 100)
must not apply to it. A real ``serve`` process on loopback, two sources: the trusted one and
a stranger, each sending a burst well over the rate."""

from __future__ import annotations

import io
import socket
import time

import pytest

from trio_sip.cli import main

from .test_cli_config import HOST, serve

TRUSTED, STRANGER = "127.0.0.3", "127.0.0.2"
BURST = 300  # three times the default request_burst


def options(port: int, source: str, n: int) -> bytes:
    return (
        f"OPTIONS sip:serve@{HOST}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {source}:{{port}};branch=z9hG4bK-{source}-{n}\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:load@{source}>;tag=t{n}\r\n"
        f"To: <sip:serve@{HOST}>\r\nCall-ID: {source}-{n}\r\nCSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def burst(port: int, source: str, marker: socket.socket) -> list[int]:
    """Send BURST OPTIONS from ``source``, then one from the trusted ``marker`` socket: serve
    handles datagrams in order, so once the marker is answered every answer to the burst has
    been sent. The status codes ``source`` got back."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.bind((source, 0))
        own = sock.getsockname()[1]
        for n in range(BURST):
            sock.sendto(options(port, source, n).replace(b"{port}", b"%d" % own), (HOST, port))
        mark = marker.getsockname()[1]
        marker.sendto(
            options(port, TRUSTED, 10_000 + len(source)).replace(b"{port}", b"%d" % mark),
            (HOST, port),
        )
        marker.settimeout(10.0)  # a hang guard, not a threshold
        assert marker.recv(65535).startswith(b"SIP/2.0 200 ")
        sock.setblocking(False)
        statuses = []
        deadline = time.monotonic() + 10.0  # bounded: the answers are already queued
        while len(statuses) < BURST and time.monotonic() < deadline:
            try:
                statuses.append(int(sock.recv(65535).split(b" ", 2)[1]))
            except BlockingIOError:
                break
        return statuses


def test_serve_exempts_a_trusted_front_from_the_per_source_rate() -> None:
    server, lines = serve("--listen", f"UDP:{HOST}:0", "--trusted", TRUSTED)
    try:
        port = int(lines[0].rsplit(":", 1)[1])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as marker:
            marker.bind((TRUSTED, 0))
            trusted = burst(port, TRUSTED, marker)
            stranger = burst(port, STRANGER, marker)
    finally:
        server.terminate()
        server.communicate(timeout=30)
    assert trusted == [200] * BURST  # every request of the front answered
    # The stranger gets its burst, then 503 + Retry-After (or silence once it ignores them).
    assert 0 < stranger.count(200) < BURST
    assert 503 in stranger
    assert set(stranger) <= {200, 503}


def test_serve_names_a_bad_trusted_value(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--listen", f"{HOST}:0", "--trusted", "front"], io.StringIO()) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("trio-sip serve: --trusted='front' is not allowed: IP addresses")
