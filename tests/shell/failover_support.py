"""Helpers for the failover tests (no tests here): a UA and proxies on one FakeNetwork."""

from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

import attrs
import trio

from trio_sip.failover import FailoverClient
from trio_sip.proto.message import Request
from trio_sip.proto.resolve import NaptrRecord, SrvRecord
from trio_sip.proto.target import Target
from trio_sip.proto.timers import TimerConfig
from trio_sip.stack import IncomingRequest, open_stack
from trio_sip.testing import FakeNetwork
from trio_sip.testing.dns import FakeResolver

UA = "10.0.0.1"
PROXIES = ("10.0.1.1", "10.0.1.2", "10.0.1.3")
NAME = "proxy.example.test"
DELAY = 0.01  # one way: every round trip is 20 ms
_calls = itertools.count(1)


def make_request(method: str, *, call_id: str | None = None, seq: int = 1) -> Request:
    """A request for the proxy cluster, without Via (the stack adds it)."""
    return Request(
        method,
        f"sip:bob@{NAME}",
        [
            ("Max-Forwards", "70"),
            ("From", "<sip:alice@example.test>;tag=a1"),
            ("To", "<sip:bob@example.test>"),
            ("Call-ID", call_id or f"fo-{next(_calls)}"),
            ("CSeq", f"{seq} {method}"),
            ("Contact", f"<sip:alice@{UA}>"),
        ],
    )


@attrs.define
class Proxy:
    """A small UAS: answers every request with ``status`` (an INVITE gets a 180 first) and
    keeps what it received with the (virtual) time."""

    host: str
    status: int = 200
    headers: Sequence[tuple[str, str]] = ()
    received: list[tuple[float, Request]] = attrs.field(factory=list)

    def methods(self) -> list[str]:
        return [r.method for _, r in self.received]

    async def __call__(self, incoming: IncomingRequest) -> None:
        self.received.append((trio.current_time(), incoming.request))
        if incoming.method == "INVITE":
            await incoming.respond(180)
        await incoming.respond(self.status, headers=list(self.headers))


def resolver(records: str = "a") -> FakeResolver:
    """DNS for the cluster: ``"a"``: one name with 3 A records; ``"naptr"``: NAPTR -> SRV
    (three records, priorities 10, 20, 30) -> one A record each."""
    if records == "a":
        return FakeResolver({NAME: list(PROXIES)})
    table: dict[str, list[object]] = {
        NAME: [NaptrRecord(10, 10, "S", "SIP+D2U", "", f"_sip._udp.{NAME}")],
        f"_sip._udp.{NAME}": [
            SrvRecord(10 * (i + 1), 10, 5060, f"p{i + 1}.{NAME}") for i in range(3)
        ],
    }
    for i, host in enumerate(PROXIES):
        table[f"p{i + 1}.{NAME}"] = [host]
    return FakeResolver(table)  # type: ignore[arg-type]


@attrs.define
class Cluster:
    net: FakeNetwork
    client: FailoverClient
    proxies: list[Proxy]

    def target(self, i: int) -> Target:
        return Target("UDP", PROXIES[i], 5060, NAME)


@asynccontextmanager
async def cluster(
    timeout_ms: int = 4000,
    *,
    statuses: Sequence[int] = (200, 200, 200),
    transport: str = "UDP",
    records: str = "a",
    configure: Callable[[FakeNetwork], None] | None = None,
) -> AsyncIterator[Cluster]:
    """A UA stack at UA and one proxy stack per PROXIES address, all on one FakeNetwork."""
    net = FakeNetwork()
    for host in PROXIES:
        net.set_link(UA, host, delay=DELAY)
    if configure is not None:
        configure(net)
    proxies = [Proxy(host, status) for host, status in zip(PROXIES, statuses, strict=True)]
    async with AsyncExitStack() as stack:
        for i, proxy in enumerate(proxies):
            await stack.enter_async_context(
                open_stack(
                    [(transport, proxy.host, 5060)],
                    backend=net.backend(proxy.host),
                    handler=proxy,
                    rng=random.Random(10 + i),
                )
            )
        ua = await stack.enter_async_context(
            open_stack(
                [(transport, UA, 5060)],
                backend=net.backend(UA),
                timer_config=TimerConfig(sip_transaction_timeout=timeout_ms),
                rng=random.Random(1),
            )
        )
        client = FailoverClient(ua, resolver=resolver(records), rng=random.Random(3))
        yield Cluster(net, client, proxies)
