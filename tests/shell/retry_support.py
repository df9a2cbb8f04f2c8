"""Helpers for the seed 002 retry-path tests (no tests here): our user agent between two
scripted proxies P1 and P2 of one cluster, on a FakeNetwork with 10 ms links.

The proxies are bare stacks driven by the test: they forward nothing by themselves, so every
message a test sees at P1 or P2 is one our agent sent there. ``Peer`` keeps what each received
(requests through its handler, strays such as a relayed 200 or an ACK through ``on_stray``)
with the virtual time.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import attrs
import trio

from trio_sip.proto.message import Request, Response
from trio_sip.proto.sdp import audio_offer
from trio_sip.proto.target import Target
from trio_sip.proto.timers import TimerConfig
from trio_sip.stack import IncomingRequest, Stack, open_stack
from trio_sip.testing import FakeNetwork, FakeResolver
from trio_sip.transports.base import Flow
from trio_sip.ua import UserAgent, open_user_agent

ALICE = "10.0.0.1"  # the caller's side (scripted, or our agent in the UAC tests)
UA = "10.0.0.2"  # our user agent
P1, P2 = "10.0.1.1", "10.0.1.2"
CLUSTER = "cluster.example.test"  # one name, two A records: P1 and P2
DELAY = 0.01  # one way


def target(host: str) -> Target:
    return Target("UDP", host, 5060)


@attrs.define
class Peer:
    """A scripted proxy: ``received`` holds (time, message) for every request and stray."""

    host: str
    stack: Stack | None = None
    received: list[tuple[float, Request | Response]] = attrs.field(factory=list)
    #: INVITEs stay unanswered (the test answers them through ``incoming``); the rest get 200.
    invites: list[IncomingRequest] = attrs.field(factory=list)
    got: trio.Event = attrs.field(factory=trio.Event)

    async def handler(self, incoming: IncomingRequest) -> None:
        self._keep(incoming.request)
        if incoming.method == "INVITE":
            self.invites.append(incoming)
            await trio.sleep_forever()  # the test answers; the stack ends it on close
        await incoming.respond(200)

    def on_stray(self, message: Request | Response, flow: Flow) -> None:
        self._keep(message)

    def _keep(self, message: Request | Response) -> None:
        self.received.append((trio.current_time(), message))
        self.got.set()
        self.got = trio.Event()

    def times(self, method: str | int) -> list[float]:
        """When ``method`` requests (or ``method`` responses, for an int) arrived."""
        status = method if isinstance(method, int) else None
        name = method if isinstance(method, str) else None
        return [at for at, message in self.received if matches(message, status, name)]

    async def wait_for(self, method: str | int, count: int = 1, limit: float = 120.0) -> None:
        """Wait until ``count`` of ``method`` arrived (at most ``limit`` s of virtual time)."""
        with trio.fail_after(limit):
            while len(self.times(method)) < count:
                await self.got.wait()


def matches(message: Request | Response, status: int | None, method: str | None) -> bool:
    """A response with ``status`` or a request with ``method``."""
    if isinstance(message, Response):
        return message.status_code == status
    return message.method == method


def linked() -> FakeNetwork:
    net = FakeNetwork()
    hosts = [ALICE, UA, P1, P2]
    for i, a in enumerate(hosts):
        for b in hosts[i + 1 :]:
            net.set_link(a, b, delay=DELAY)
    return net


@asynccontextmanager
async def cluster(
    net: FakeNetwork, *, timeout_ms: int = 4000, **ua_options: Any
) -> AsyncIterator[tuple[UserAgent, Peer, Peer]]:
    """Our agent at UA (``sip_transaction_timeout`` = ``timeout_ms``) and the peers P1, P2."""
    peers = [Peer(P1), Peer(P2)]
    async with AsyncExitStack() as stack:
        for i, peer in enumerate(peers):
            peer.stack = await stack.enter_async_context(
                open_stack(
                    [("UDP", peer.host, 5060)],
                    backend=net.backend(peer.host),
                    handler=peer.handler,
                    on_stray=peer.on_stray,
                    rng=random.Random(20 + i),
                )
            )
        ua_options.setdefault("resolver", FakeResolver({CLUSTER: [P1, P2]}))
        ua = await stack.enter_async_context(
            open_user_agent(
                [("UDP", UA, 5060)],
                aor=f"sip:bob@{UA}",
                backend=net.backend(UA),
                timer_config=TimerConfig(sip_transaction_timeout=timeout_ms),
                rng=random.Random(7),
                **ua_options,
            )
        )
        yield ua, peers[0], peers[1]


def incoming_invite(call_id: str) -> Request:
    """Alice's INVITE as P1 forwards it to our agent (P1 adds its own Via on top)."""
    return Request(
        "INVITE",
        f"sip:bob@{UA}:5060",
        [
            ("Via", f"SIP/2.0/UDP {ALICE}:5060;branch=z9hG4bKalice-{call_id};received={ALICE}"),
            ("Max-Forwards", "69"),
            ("Record-Route", f"<sip:{P1}:5060;lr>"),
            ("From", f"<sip:alice@{ALICE}>;tag=alice1"),
            ("To", f"<sip:bob@{UA}>"),
            ("Call-ID", call_id),
            ("CSeq", "1 INVITE"),
            ("Contact", f"<sip:alice@{ALICE}:5060>"),
            ("Content-Type", "application/sdp"),
        ],
        bytes(audio_offer(ALICE, 30000, session_id=1)),
    )


def ack_for(ok: Response) -> Request:
    """The caller's ACK for ``ok`` as a cluster member relays it to our agent."""
    return Request(
        "ACK",
        f"sip:bob@{UA}:5060",
        [
            ("Max-Forwards", "69"),
            ("From", ok.headers["From"]),
            ("To", ok.headers["To"]),
            ("Call-ID", ok.call_id),
            ("CSeq", f"{ok.cseq.seq} ACK"),
        ],
    )


def sent_by(net: FakeNetwork, src: str, *, status: int | None = None, method: str | None = None
            ) -> list[tuple[float, str, str]]:  # fmt: skip
    """(time, destination host, fate) of every UDP message ``src`` sent that matches."""
    out = []
    for packet in net.packets(transport="UDP"):
        if packet.src[0] != src:
            continue
        try:
            message = packet.message
        except Exception:
            continue
        if matches(message, status, method):
            out.append((packet.time, packet.dst[0], packet.fate))
    return out


def arrived(
    net: FakeNetwork, dst: str, *, status: int | None = None, method: str | None = None
) -> list[tuple[float, Request | Response]]:
    """(send time, message) of what was delivered to ``dst`` (whoever sent it)."""
    out: list[tuple[float, Request | Response]] = []
    for packet in net.packets(transport="UDP", fate="delivered"):
        if packet.dst[0] != dst:
            continue
        try:
            message = packet.message
        except Exception:
            continue
        if matches(message, status, method):
            out.append((packet.time, message))
    return out


async def wait_arrived(
    net: FakeNetwork,
    dst: str,
    *,
    status: int | None = None,
    method: str | None = None,
    limit: float = 60.0,
) -> tuple[float, Request | Response]:
    """The first message :func:`arrived` at ``dst`` (polled every 10 ms for ``limit`` s of
    virtual time: a stack drops a response whose top Via is not its own, §18.1.2, so the
    network is the observer)."""
    for _ in range(int(limit / 0.01)):
        found = arrived(net, dst, status=status, method=method)
        if found:
            return found[0]
        await trio.sleep(0.01)
    raise AssertionError(f"nothing ({status or method}) reached {dst} in {limit} s")


def rounded(rows: Sequence[tuple[float, str, str]]) -> list[tuple[float, str, str]]:
    return [(round(t, 3), host, fate) for t, host, fate in rows]
