"""Two SIP sites (open_proxy) and two endpoints on the in-memory network, for endpoint tests."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from trio_sip.config import ConnectionConfig, EndpointConfig
from trio_sip.endpoint import ConnectionEvent, Endpoint, open_endpoint
from trio_sip.proto.location import LocationService
from trio_sip.proto.message import Request
from trio_sip.proxy import ProxySite, open_proxy
from trio_sip.testing import FakeNetwork

DOMAIN = "geo.example"
ALICE, BOB = "10.0.0.1", "10.0.0.2"
SITE_A, SITE_B = "10.0.1.1", "10.0.2.1"


class Site:
    """A registrar + proxy in a cancel scope of its own: ``stop()`` and ``start()`` again
    (its location service survives, as a site's database would)."""

    def __init__(self, net: FakeNetwork, host: str, nursery: trio.Nursery) -> None:
        self.net = net
        self.host = host
        self.location = LocationService()
        self._nursery = nursery
        self._scope: trio.CancelScope | None = None
        self.proxy: ProxySite | None = None

    async def start(self) -> None:
        self.proxy = await self._nursery.start(self._run)

    def stop(self) -> None:
        assert self._scope is not None
        self._scope.cancel()

    async def _run(self, *, task_status: trio.TaskStatus[ProxySite]) -> None:
        with trio.CancelScope() as self._scope:
            async with open_proxy(
                [("UDP", self.host, 5060)],
                domain=DOMAIN,
                location_service=self.location,
                backend=self.net.backend(self.host),
                rng=random.Random(self.host),
            ) as proxy:
                task_status.started(proxy)
                await trio.sleep_forever()


def endpoint_config(user: str, **kw: Any) -> EndpointConfig:
    conn: dict[str, Any] = {"reg_interval": 60, "expires": 600}
    conn.update(kw.pop("conn", {}))
    return EndpointConfig(
        sip_transaction_timeout=2000,
        connections=[
            ConnectionConfig(id="a", user=f"{user}@{DOMAIN}", server=f"{SITE_A}:5060", **conn),
            ConnectionConfig(id="b", user=f"{user}@{DOMAIN}", server=f"{SITE_B}:5060", **conn),
        ],
        **kw,
    )


@asynccontextmanager
async def world(
    alice_config: EndpointConfig | None = None, **alice_kw: Any
) -> AsyncIterator[tuple[FakeNetwork, Site, Site, Endpoint, Endpoint, list[ConnectionEvent]]]:
    """Sites A and B, Alice's endpoint (events recorded by callback) and Bob's, who answers
    every call; both registered at both sites."""
    net = FakeNetwork()
    events: list[ConnectionEvent] = []
    async with trio.open_nursery() as nursery:
        site_a, site_b = Site(net, SITE_A, nursery), Site(net, SITE_B, nursery)
        await site_a.start()
        await site_b.start()
        async with (
            open_endpoint(
                alice_config or endpoint_config("alice"), backend=net.backend(ALICE),
                listen=[("UDP", ALICE, 5060)], rng=random.Random(1), on_status=events.append,
                **alice_kw,
            ) as alice,
            open_endpoint(
                endpoint_config("bob"), backend=net.backend(BOB), listen=[("UDP", BOB, 5060)],
                rng=random.Random(2),
            ) as bob,
        ):  # fmt: skip
            nursery.start_soon(answer_all, bob)
            await alice.wait_registered()
            await bob.wait_registered()
            yield net, site_a, site_b, alice, bob, events
        nursery.cancel_scope.cancel()


async def answer_all(endpoint: Endpoint) -> None:
    async for incoming in endpoint.incoming_calls():
        await incoming.ring()
        await incoming.accept()


def first_sends(net: FakeNetwork, method: str, src: str, dst: str) -> list[float]:
    """When each new ``method`` request (by CSeq) first left ``src`` for ``dst``."""
    seen: dict[tuple[str, int], float] = {}
    for packet in net.packets(transport="UDP"):
        if packet.src[0] != src or packet.dst[0] != dst:
            continue
        try:
            message = packet.message
        except Exception:
            continue
        if isinstance(message, Request) and message.method == method:
            seen.setdefault((message.call_id, message.cseq.seq), packet.time)
    return sorted(seen.values())
