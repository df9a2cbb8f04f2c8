"""Helpers shared by the stack tests (no tests here): requests, a client/server pair."""

from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from trio_sip.proto.message import Request, Response
from trio_sip.proto.target import Target
from trio_sip.stack import Handler, IncomingRequest, Stack, open_stack
from trio_sip.testing import FakeNetwork
from trio_sip.transports import Flow

CLIENT = "10.0.0.1"
SERVER = "10.0.0.2"
_calls = itertools.count(1)


def make_request(
    method: str = "OPTIONS",
    *,
    host: str = SERVER,
    call_id: str | None = None,
    seq: int = 1,
    headers: tuple[tuple[str, str], ...] = (),
    body: bytes = b"",
) -> Request:
    """A request with no Via (the stack adds it)."""
    return Request(
        method,
        f"sip:bob@{host}",
        [
            ("Max-Forwards", "70"),
            ("From", "<sip:alice@example.com>;tag=alice1"),
            ("To", f"<sip:bob@{host}>"),
            ("Call-ID", call_id or f"call-{next(_calls)}"),
            ("CSeq", f"{seq} {method}"),
            *headers,
        ],
        body,
    )


def make_ack(request: Request, response: Response) -> Request:
    """The ACK for a 2xx (§13.2.2.4): new transaction, To from the response, CSeq number kept."""
    headers = [
        ("Max-Forwards", "70"),
        ("From", request.headers["From"]),
        ("To", response.headers["To"]),
        ("Call-ID", request.call_id),
        ("CSeq", f"{request.cseq.seq} ACK"),
    ]
    return Request("ACK", request.uri_text, headers)


def answer(status: int) -> Handler:
    async def handler(incoming: IncomingRequest) -> None:
        await incoming.respond(status)

    return handler


class Strays:
    """An ``on_stray`` hook that keeps what it gets."""

    def __init__(self) -> None:
        self.messages: list[tuple[Request | Response, Flow]] = []

    def __call__(self, message: Request | Response, flow: Flow) -> None:
        self.messages.append((message, flow))

    def of(self, kind: type[Any]) -> list[Any]:
        return [m for m, _ in self.messages if isinstance(m, kind)]


@asynccontextmanager
async def stack_pair(
    net: FakeNetwork,
    handler: Handler | None = None,
    *,
    transport: str = "UDP",
    client_kw: dict[str, Any] | None = None,
    server_kw: dict[str, Any] | None = None,
) -> AsyncIterator[tuple[Stack, Stack, Target]]:
    """A server stack at SERVER:5060 and a client stack at CLIENT:5060 on ``net``."""
    async with (
        open_stack(
            [(transport, SERVER, 5060)],
            backend=net.backend(SERVER),
            handler=handler,
            rng=random.Random(2),
            **(server_kw or {}),
        ) as server,
        open_stack(
            [(transport, CLIENT, 5060)],
            backend=net.backend(CLIENT),
            rng=random.Random(1),
            **(client_kw or {}),
        ) as client,
    ):
        yield client, server, Target(transport, SERVER, 5060)


def sent_times(net: FakeNetwork, marker: bytes, *, start: bytes = b"") -> list[float]:
    """Times of captured packets containing ``marker`` (and starting with ``start``)."""
    return [p.time for p in net.captured if marker in p.data and p.data.startswith(start)]
