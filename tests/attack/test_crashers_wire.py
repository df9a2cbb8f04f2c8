"""What the wire fuzzer found (tests/data/crashers/wire-*.bin), replayed over real sockets.

Each file is one message that ended ``trio-sip serve`` or drew an answer no parser takes. It is
sent over UDP and over TCP to a user agent answering calls as ``trio-sip serve`` does (its own
``answer_calls``), in strict mode (tests/conftest.py: a bug fails the stack, and so the test),
followed by an OPTIONS that must be answered. Every answer must parse.

* wire-cancel-without-via.bin: a request with no Via ended ``trio-sip serve`` (exit 1): the
  stack built a 400 for it, whose sending raised IndexError in a stack task. Now dropped and
  counted (``unanswerable-request``), since no response can go back without a Via (§18.2.2).
* wire-400-would-copy-nul-in-via.bin, wire-400-would-copy-8k-cseq.bin: the stateless 400 to a
  request the parser refuses copied a NUL, or the 8 KB CSeq that was the reason for the
  refusal, back to the sender: answers our own parser (any parser) refuses. Such a line is no
  longer copied; without it the 400 cannot be made, and the request is dropped.
* wire-forged-received-in-via.bin: a BYE whose top Via names the sender as sent-by but
  carries a ``received`` the sender wrote (an IPv6 address): its 400 went there (a send
  fault, or, with an IPv4 address, to a third party). The source address now replaces it
  (tests/attack/test_fuzz_regressions.py checks where the answer goes).

``wire-proxy-*`` files go to a proxy/registrar (``open_proxy`` with credentials) instead, with
``127.0.0.1:5060`` in them (the fuzzed proxy's address) replaced by the proxy's:

* wire-proxy-ack-call-id-not-utf8.bin: an ACK with our Record-Route and a Call-ID holding octets
  that are not UTF-8 raised UnicodeEncodeError in the route token's MAC (a traceback in the
  log; in strict mode the end of the proxy). Such text is now hashed as the octets received
  (``surrogateescape``), there and in the branch and loop-detection hashes.
* wire-proxy-register-username-not-utf8.bin: the same in digest verification (a username that
  is not UTF-8): the REGISTER got a 500 and the log a traceback; now the 401 any wrong
  credentials get.
"""

from __future__ import annotations

import functools
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from trio_sip.cli._view import View
from trio_sip.cli.serve import answer_calls
from trio_sip.proto.location import LocationService
from trio_sip.proto.message import Response
from trio_sip.proto.parse import NEED_DATA, StreamFramer, parse_message
from trio_sip.proxy import ProxySite, open_proxy
from trio_sip.transports.stream import error_response_untrusted
from trio_sip.ua import UserAgent, open_user_agent

from .fuzzwire import ANSWER_LIMITS
from .mutator import dialog_request
from .seeds import DOMAIN, PASSWORDS

CRASHERS = Path(__file__).resolve().parent.parent / "data" / "crashers"
LOOPBACK = "127.0.0.1"


def _wire_crashers() -> list[Path]:
    return sorted(CRASHERS.glob("wire-*.bin"))


@asynccontextmanager
async def serving() -> AsyncIterator[UserAgent]:
    """A user agent on UDP and TCP answering every call as ``trio-sip serve`` does."""
    async with (
        open_user_agent(
            [("UDP", LOOPBACK, 0), ("TCP", LOOPBACK, 0)],
            aor=f"sip:serve@{LOOPBACK}",
            incoming_queue=1024,
        ) as ua,
        trio.open_nursery() as nursery,
    ):
        counts = {"answered": 0, "ended": 0, "failed": 0}
        nursery.start_soon(
            functools.partial(answer_calls, ua, View(io.StringIO()), counts, quiet=True)
        )
        yield ua
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def proxying() -> AsyncIterator[ProxySite]:
    """A proxy/registrar on UDP and TCP with credentials, as tests/attack/targets.py runs it."""
    async with open_proxy(
        [("UDP", LOOPBACK, 0), ("TCP", LOOPBACK, 0)],
        domain=DOMAIN,
        location_service=LocationService(),
        credentials=PASSWORDS,
    ) as site:
        yield site


def probe(transport: str, sent_by: str, port: int) -> bytes:
    return dialog_request(
        "OPTIONS",
        uri=f"sip:serve@{LOOPBACK}:{port}",
        via=f"SIP/2.0/{transport} {sent_by};branch=z9hG4bKprobe1;rport",
        from_=f"<sip:probe@{LOOPBACK}>;tag=p1",
        to=f"<sip:serve@{LOOPBACK}>",
        call_id="probe-1",
        cseq=1,
        contact=f"<sip:probe@{sent_by}>",
    )


def _is_probe_answer(data: bytes) -> bool:
    return data.startswith(b"SIP/2.0 ") and b"Call-ID: probe-1\r\n" in data


async def over_udp(port: int, data: bytes) -> list[bytes]:
    """``data``, then a probe, from one socket; what came back until the probe's answer."""
    got: list[bytes] = []
    with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as sock:
        await sock.bind((LOOPBACK, 0))
        host, local = sock.getsockname()
        await sock.sendto(data, (LOOPBACK, port))
        await sock.sendto(probe("UDP", f"{host}:{local}", port), (LOOPBACK, port))
        with trio.fail_after(10):
            while not got or not _is_probe_answer(got[-1]):
                got.append(await sock.recv(65535))
    return got


async def over_tcp(port: int, data: bytes) -> list[bytes]:
    """``data`` on one connection (read to its end or a second's quiet), then a probe on a
    second; the messages that came back on both."""
    got: list[bytes] = []
    for payload in (data, None):
        stream = await trio.open_tcp_stream(LOOPBACK, port)
        async with stream:
            framer = StreamFramer(expect_pongs=True, limits=ANSWER_LIMITS)
            if payload is None:
                host, local = stream.socket.getsockname()[:2]
                payload = probe("TCP", f"{host}:{local}", port)
            await stream.send_all(payload)
            with trio.move_on_after(1 if payload is data else 10):
                while not got or not _is_probe_answer(got[-1]):
                    chunk = await stream.receive_some(65536)
                    framer.receive_data(chunk)
                    for _ in range(100):
                        event = framer.next_event()
                        if event is NEED_DATA:
                            break
                        if isinstance(event, Response):
                            got.append(bytes(event))
                    if not chunk:
                        break
    return got


@pytest.mark.parametrize("transport", ["UDP", "TCP"])
@pytest.mark.parametrize("path", _wire_crashers(), ids=lambda p: p.name)
async def test_wire_crashers_stay_fixed(path: Path, transport: str) -> None:
    target = proxying() if path.name.startswith("wire-proxy-") else serving()
    async with target as server:
        port = next(p for t, (_, p) in server.stack.listening if t == transport)
        data = path.read_bytes().replace(b"127.0.0.1:5060", f"{LOOPBACK}:{port}".encode())
        send = over_udp if transport == "UDP" else over_tcp
        answers = await send(port, data)
        assert answers and _is_probe_answer(answers[-1]), answers  # alive, and answering
        for answer in answers:
            parse_message(answer, limits=ANSWER_LIMITS)  # every answer parses
            assert b"\0" not in answer


def test_there_are_wire_crashers() -> None:
    assert len(_wire_crashers()) >= 5


def test_stateless_400_copies_no_line_that_cannot_come_back() -> None:
    """The lines a stateless 400 copies (§8.2.6.2) are dropped when they hold a NUL, octets
    that are not UTF-8 or more than max_header_length; a mandatory one dropped: no answer."""
    good = probe("UDP", "127.0.0.1:5555", 5060).replace(b"SIP/2.0\r\n", b"SIP/2.0\r\nX: \0\r\n", 1)
    answer = error_response_untrusted(good, 400)
    assert answer is not None and parse_message(answer).status_code == 400
    for line in (
        b"CSeq: 1 OPTIONS" + b"\0",
        b"CSeq: " + b"9" * 9000 + b" OPTIONS",
        b"CSeq: 1 OPTIONS\xff",
    ):
        bad = good.replace(b"CSeq: 1 OPTIONS", line)
        assert error_response_untrusted(bad, 400) is None, line[:40]
