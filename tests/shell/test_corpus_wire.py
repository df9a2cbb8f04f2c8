"""The conformance corpus on the wire: every RFC 4475 / RFC 5118 / basic message (role uas or
none) is sent as one UDP datagram on loopback to a user agent built with ``open_user_agent``
that answers its calls; the final status that comes back must be the manifest's ``respond``
(or one in ``respond_alt``; ``respond = 0``: nothing comes back), and the agent must still
answer an OPTIONS afterwards.

Where a response goes is what RFC 3261 §18.2.2 says, not necessarily the datagram's source: a
message that fails to parse is answered to its source; one that parses is answered to the top
Via (``received`` = our address, the sent-by port or 5060, over the Via's transport). So each
message is sent from its own loopback address (127.84.x.i, nobody else's) bound on the Via's
port, with a TCP (or TLS) listener there when the Via says so. A call the agent answers is
completed by the test (ACK, then BYE), so the agent never sends a request anywhere: the only
traffic is loopback. The corpus is read from ``$TRIO_SIP_CORPUS`` (never copied here).
"""

from __future__ import annotations

import errno
import os
import re
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import pytest
import trio
import trustme

from tests.conftest import corpus_root, load_manifest
from trio_sip.proto.errors import ParseError
from trio_sip.proto.message import Request, Response
from trio_sip.proto.parse import NEED_DATA, StreamFramer, parse_message
from trio_sip.transports import TransportConfig
from trio_sip.ua import UserAgent, open_user_agent

pytestmark = pytest.mark.slow

MANIFEST = load_manifest()
CASES = [
    (f"{group}.{name}", case)
    for group in ("rfc4475", "rfc5118", "basic")
    for name, case in MANIFEST[group].items()
    if case.get("role", "uas") == "uas"
]
#: Statuses that refuse a message as malformed or unacceptable: a valid message never gets one.
REFUSALS = {400, 406, 413, 414, 415, 416, 420, 500, 505, 513}
#: How long to wait for a final response that should come, and for one that should not.
ANSWER_WAIT = 5.0
SILENCE_WAIT = 0.5
#: Cases whose answer depends on the user agent's fault isolation (issue #10, fault isolation
#: and RFC 2543 peers): name -> why it fails today. Not strict: they pass once that is fixed.
XFAIL: dict[str, str] = {}

# The first Via's transport, host and port (tolerating the folding and odd spacing of wsinv).
_VIA = re.compile(
    rb"^(?:via|v)[ \t]*:[ \t\r\n]*SIP[ \t\r\n]*/[ \t\r\n]*\d\.\d[ \t\r\n]*/[ \t\r\n]*"
    rb"([A-Za-z]+)[ \t\r\n]+(\[[^\]]*\]|[^ \t\r\n;:,]+)(?::(\d+))?",
    re.IGNORECASE | re.MULTILINE,
)
_BASE = 20 + os.getpid() % 200  # 127.84.<_BASE>.<case>: our own loopback addresses


def top_via(data: bytes) -> tuple[str, int]:
    """The transport and port a response to ``data`` goes to (5060 by default, 5061 TLS)."""
    m = _VIA.search(data.split(b"\r\n\r\n", 1)[0])
    if m is None:
        return "UDP", 5060
    transport = m.group(1).decode().upper()
    return transport, int(m.group(3) or (5061 if transport == "TLS" else 5060))


class Peer:
    """The sending side of one case: a UDP socket (and a TCP/TLS listener) on its own address."""

    def __init__(self, ip: str, port: int) -> None:
        self.ip = ip
        self.port = port
        self.udp = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        self.finals: trio.MemorySendChannel[Response]
        self.finals, self.received = trio.open_memory_channel[Response](100)

    async def bind(self) -> None:
        await self.udp.bind((self.ip, self.port))

    def _got(self, data: bytes) -> None:
        try:
            message = parse_message(data)
        except ParseError:
            return
        if isinstance(message, Response) and message.status_code >= 200:
            self.finals.send_nowait(message)

    async def read_udp(self) -> None:
        while True:
            data = await self.udp.recv(65535)
            self._got(data)

    async def read_stream(self, stream: trio.abc.Stream) -> None:
        framer = StreamFramer()
        async with stream:
            while data := await stream.receive_some(65536):
                framer.receive_data(data)
                while (event := framer.next_event()) is not NEED_DATA:
                    if isinstance(event, Response) and event.status_code >= 200:
                        self.finals.send_nowait(event)

    async def final(self, timeout: float) -> Response | None:
        with trio.move_on_after(timeout):
            return await self.received.receive()
        return None


async def serve_stream(peer: Peer, transport: str, ca: trustme.CA, nursery: trio.Nursery) -> None:
    listeners = await trio.open_tcp_listeners(peer.port, host=peer.ip)
    context: ssl.SSLContext | None = None
    if transport == "TLS":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(peer.ip, "fold-and-staple.example.com").configure_cert(context)

    async def handle(stream: trio.abc.Stream) -> None:
        if context is not None:
            stream = trio.SSLStream(stream, context, server_side=True)
        with suppress(trio.BrokenResourceError, ParseError, ssl.SSLError):
            await peer.read_stream(stream)

    nursery.start_soon(trio.serve_listeners, handle, listeners)


async def complete_call(agent: UserAgent, peer: Peer, invite: Request, ok: Response) -> None:
    """ACK the 200 and hang up with a BYE (answered 200): the agent sends no request itself."""
    target = ok.contacts[0].uri
    via = f"SIP/2.0/UDP {peer.ip}:{peer.port};rport;branch=z9hG4bK"
    common = [
        ("Max-Forwards", "70"),
        ("From", invite.headers["From"]),
        ("To", ok.headers["To"]),
        ("Call-ID", invite.call_id),
    ]
    seq = invite.cseq.seq
    ack = Request("ACK", target, [("Via", via + "ack"), *common, ("CSeq", f"{seq} ACK")])
    bye = Request("BYE", target, [("Via", via + "bye"), *common, ("CSeq", f"{seq + 1} BYE")])
    address = agent.stack.listening[0][1]
    await peer.udp.sendto(bytes(ack), address)
    await peer.udp.sendto(bytes(bye), address)
    answer = await peer.final(ANSWER_WAIT)
    while answer is not None and answer.cseq.method != "BYE":  # a 200 retransmission
        answer = await peer.final(ANSWER_WAIT)
    assert answer is not None and answer.status_code == 200, f"BYE got {answer}"


@asynccontextmanager
async def agents(ca: trustme.CA) -> AsyncIterator[tuple[UserAgent, UserAgent]]:
    client = ssl.create_default_context()
    ca.configure_trust(client)
    config = TransportConfig(client_ssl_context=client)
    async with (
        open_user_agent(
            [("UDP", "127.0.0.1", 0)], aor="sip:bob@127.0.0.1", transport_config=config
        ) as bob,
        open_user_agent([("UDP", "127.0.0.1", 0)], aor="sip:prober@127.0.0.1") as prober,
        trio.open_nursery() as nursery,
    ):

        async def answer_calls() -> None:
            async for incoming in bob.incoming_calls():
                nursery.start_soon(accept, incoming)

        async def accept(incoming: Any) -> None:
            # A failed accept shows as a missing 200 (checked); the agent must not stop.
            with suppress(Exception):
                await incoming.accept()

        nursery.start_soon(answer_calls)
        yield bob, prober
        nursery.cancel_scope.cancel()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.mark.parametrize(
    ("index", "name", "case"),
    [
        pytest.param(
            i,
            n,
            c,
            id=n,
            marks=[pytest.mark.xfail(reason=XFAIL[n], strict=False)] if n in XFAIL else [],
        )
        for i, (n, c) in enumerate(CASES)
    ],
)
async def test_corpus_message_on_the_wire(
    index: int, name: str, case: dict[str, Any], ca: trustme.CA
) -> None:
    data = (corpus_root() / case.get("wire_file", case["file"])).read_bytes()
    transport, port = top_via(data)
    peer = Peer(f"127.84.{_BASE}.{index + 1}", port)
    with trio.fail_after(30):
        async with agents(ca) as (bob, prober), trio.open_nursery() as nursery:
            try:
                await peer.bind()
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    pytest.skip(f"{peer.ip}:{port} is in use")
                raise
            if transport in ("TCP", "TLS"):
                await serve_stream(peer, transport, ca, nursery)
            nursery.start_soon(peer.read_udp)
            await peer.udp.sendto(data, bob.stack.listening[0][1])
            await check_answer(name, case, data, bob, peer)
            probe = await prober.options(str(bob.contact.uri))
            assert probe.status_code == 200, f"{name}: the agent no longer answers OPTIONS"
            nursery.cancel_scope.cancel()


async def check_answer(
    name: str, case: dict[str, Any], data: bytes, bob: UserAgent, peer: Peer
) -> None:
    expected = case.get("respond")
    method = case.get("method")
    silent = expected == 0 or (expected is None and (case["kind"] == "response" or method == "ACK"))
    if silent:
        answer = await peer.final(SILENCE_WAIT)
        assert answer is None, f"{name}: nothing may come back, got {answer}"
        return
    answer = await peer.final(ANSWER_WAIT)
    assert answer is not None, f"{name}: no final response"
    status = answer.status_code
    if expected is None or (case.get("may_accept") and status not in REFUSALS):
        assert status not in REFUSALS, f"{name} is valid but got {status} {answer.reason}"
    else:
        assert status in {expected, *case.get("respond_alt", ())}, f"{name}: got {status}"
    if method == "INVITE" and status == 200:
        invite = parse_message(data)
        assert isinstance(invite, Request)
        await complete_call(bob, peer, invite, answer)
