"""Helpers shared by the proxy/registrar shell tests (no tests here): phones, requests, a site."""

from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from trio_sip.proto.message import Request, Response
from trio_sip.proto.target import Target
from trio_sip.stack import IncomingRequest, Stack, open_stack
from trio_sip.testing import FakeNetwork
from trio_sip.transports import Flow

PROXY = "10.0.1.1"
ALICE = "10.0.1.10"
BOB = "10.0.1.20"
BOB2 = "10.0.1.21"
DOMAIN = "example.com"
_ids = itertools.count(1)


def register(
    user: str,
    host: str,
    *,
    expires: int | None = 3600,
    call_id: str | None = None,
    seq: int = 1,
    contact: str | None = None,
    headers: tuple[tuple[str, str], ...] = (),
) -> Request:
    pairs = [
        ("Max-Forwards", "70"),
        ("From", f"<sip:{user}@{DOMAIN}>;tag=r{next(_ids)}"),
        ("To", f"<sip:{user}@{DOMAIN}>"),
        ("Call-ID", call_id or f"reg-{user}-{host}"),
        ("CSeq", f"{seq} REGISTER"),
        ("Contact", contact or f"<sip:{user}@{host}:5060>"),
    ]
    if expires is not None:
        pairs.append(("Expires", str(expires)))
    return Request("REGISTER", f"sip:{DOMAIN}", [*pairs, *headers])


def request(
    method: str,
    uri: str,
    *,
    caller: str = ALICE,
    call_id: str | None = None,
    seq: int = 1,
    headers: tuple[tuple[str, str], ...] = (),
    max_forwards: int = 70,
) -> Request:
    return Request(
        method,
        uri,
        [
            ("Max-Forwards", str(max_forwards)),
            ("From", f"<sip:alice@{DOMAIN}>;tag=a{next(_ids)}"),
            ("To", f"<{uri}>"),
            ("Call-ID", call_id or f"call-{next(_ids)}"),
            ("CSeq", f"{seq} {method}"),
            ("Contact", f"<sip:alice@{caller}:5060>"),
            *headers,
        ],
    )


def in_dialog(method: str, invite: Request, ok: Response, seq: int) -> Request:
    """ACK/BYE from the caller (§12.2.1.1): Request-URI = remote target, Route = the route
    set (Record-Route of the 2xx, reversed), To with the tag."""
    routes = list(reversed(ok.headers.get_list("Record-Route")))
    headers = [
        ("Max-Forwards", "70"),
        ("From", invite.headers["From"]),
        ("To", ok.headers["To"]),
        ("Call-ID", invite.call_id),
        ("CSeq", f"{seq} {method}"),
    ]
    headers += [("Route", r) for r in routes]
    return Request(method, str(ok.contacts[0].uri), headers)


class Phone:
    """A UA on a stack: answers INVITE with 180 then ``answer`` after ``delay`` (None: ring
    until cancelled), everything else with 200; keeps what it receives."""

    def __init__(self, host: str, *, answer: int | None = 200, delay: float = 0.0) -> None:
        self.host = host
        self.port = 5060
        self.answer = answer
        self.delay = delay
        self.received: list[IncomingRequest] = []
        self.strays: list[Request | Response] = []

    def requests(self, method: str) -> list[Request]:
        return [i.request for i in self.received if i.method == method]

    async def handler(self, incoming: IncomingRequest) -> None:
        self.received.append(incoming)
        if incoming.method != "INVITE":
            await incoming.respond(200)
            return
        # §12.1.1: the UAS copies the Record-Route values into dialog-creating responses.
        rr = [("Record-Route", v) for v in incoming.request.headers.get_all("Record-Route")]
        await incoming.respond(180, headers=rr)
        if self.answer is None:
            await incoming.wait_cancelled()
            return
        await trio.sleep(self.delay)
        if incoming.cancelled:
            return
        contact = [("Contact", f"<sip:bob@{self.host}:{self.port}>"), *rr]
        await incoming.respond(self.answer, headers=contact if self.answer < 300 else ())

    def on_stray(self, message: Request | Response, flow: Flow) -> None:
        self.strays.append(message)


@asynccontextmanager
async def phone_stack(net: FakeNetwork, phone: Phone, **kw: Any) -> AsyncIterator[Stack]:
    async with open_stack(
        [("UDP", phone.host, 5060)],
        backend=net.backend(phone.host),
        handler=phone.handler,
        on_stray=phone.on_stray,
        rng=random.Random(phone.host),
        **kw,
    ) as stack:
        yield stack


TO_PROXY = Target("UDP", PROXY, 5060)
