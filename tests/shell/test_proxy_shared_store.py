"""Sites that share a location store, as the nodes of a cluster do (issue #16), in virtual
time on the in-memory network: a REGISTER through one node is found by another, digest nonces
of one node are good on another when they share a secret, a node whose store is unreachable
answers 503 with Retry-After and recovers by itself, and a password guesser behind a trusted
front gets itself dropped, not the front."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
import trio.testing

from trio_sip.location import Change, MemoryLocationStore, StoreUnavailable
from trio_sip.proto.location import Binding, LocationService, Planned
from trio_sip.proto.message import Request, Response
from trio_sip.proto.parse import parse_message
from trio_sip.proto.target import Target
from trio_sip.proxy import ProxySite, open_proxy
from trio_sip.testing import FakeNetwork

from .proxy_support import ALICE, BOB, DOMAIN, Phone, phone_stack, register, request
from .test_proxy_digest import with_auth

NODE_A, NODE_B, FRONT = "10.0.1.1", "10.0.1.2", "10.0.1.100"
GUESSER, OTHER = "10.0.7.7", "10.0.7.8"
SECRET = b"one secret for every node of the cluster"


class Outage(MemoryLocationStore):
    """A shared store that can be made unreachable (what a node sees when Redis is down)."""

    def __init__(self) -> None:
        super().__init__(LocationService())
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailable("connection refused")

    async def lookup(self, aor: str) -> list[Binding]:
        self._check()
        return await super().lookup(aor)

    async def update(self, aor: str, change: Change) -> Planned:
        self._check()
        return await super().update(aor, change)


@asynccontextmanager
async def node(net: FakeNetwork, host: str, store: Any, **kw: Any) -> AsyncIterator[ProxySite]:
    async with open_proxy(
        [("UDP", host, 5060)], domain=DOMAIN, backend=net.backend(host),
        rng=random.Random(host), location_store=store, secret=SECRET, **kw,
    ) as site:  # fmt: skip
        yield site


async def test_a_registration_through_one_node_is_found_by_the_other(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    store = MemoryLocationStore()
    phone = Phone(BOB)
    async with (
        node(net, NODE_A, store, credentials={"bob": "zanzibar"}, trusted=[ALICE]) as a,
        node(net, NODE_B, store, credentials={"bob": "zanzibar"}, trusted=[ALICE]) as b,
        phone_stack(net, phone) as bob,
        phone_stack(net, Phone(ALICE)) as alice,
    ):
        # The 401 from node A, the answer to it through node B (a round-robin front): B
        # takes A's nonce, since both nodes share the secret.
        challenge = await bob.request(register("bob", BOB, seq=1), Target("UDP", NODE_A, 5060))
        assert challenge.status_code == 401
        second = with_auth(register("bob", BOB, seq=2), challenge, "bob", "zanzibar")
        ok = await bob.request(second, Target("UDP", NODE_B, 5060))
        assert ok.status_code == 200 and ok.headers["Contact"].startswith(f"<sip:bob@{BOB}")
        assert [b.contact for b in await store.lookup(f"sip:bob@{DOMAIN}")] == [
            f"sip:bob@{BOB}:5060"
        ]
        # The binding lives in the shared store, not in either node's own LocationService.
        assert a.location.count(trio.current_time()) == b.location.count(trio.current_time()) == 0
        # A call through node A reaches Bob; a static binding of node B's own is found too.
        b.location.add_static(f"sip:gw@{DOMAIN}", f"sip:gw@{BOB}:5060")
        for site, uri in ((a, f"sip:bob@{DOMAIN}"), (b, f"sip:gw@{DOMAIN}")):
            response = await alice.request(
                request("OPTIONS", uri), Target("UDP", site.address[0], 5060)
            )
            assert response.status_code == 200
        assert len(phone.requests("OPTIONS")) == 2


async def test_a_node_without_its_store_answers_503_and_recovers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    store = Outage()
    async with (
        node(net, NODE_A, store, trusted=[ALICE]) as a,
        phone_stack(net, Phone(BOB)) as bob,
        phone_stack(net, Phone(ALICE)) as alice,
    ):
        to_a = Target("UDP", NODE_A, 5060)
        assert (await bob.request(register("bob", BOB, seq=1), to_a)).status_code == 200
        store.down = True
        refused = await bob.request(register("bob", BOB, seq=2), to_a)
        invite = await alice.request(request("MESSAGE", f"sip:bob@{DOMAIN}"), to_a)
        for answer in (refused, invite):
            # §21.5.4: "temporarily unable to process the request"; Retry-After from Limits.
            assert answer.status_code == 503
            assert answer.headers["Retry-After"] == str(a.limits.retry_after)
        store.down = False  # Redis is back: the next request works, nothing to reset
        assert (await bob.request(register("bob", BOB, seq=3), to_a)).status_code == 200
        assert (
            await alice.request(request("MESSAGE", f"sip:bob@{DOMAIN}"), to_a)
        ).status_code == 200


def _through_front(req: Request, client: str, n: int) -> bytes:
    """``req`` as a stateless front forwards it: the client's Via (with received=) below the
    front's own."""
    client_via = f"SIP/2.0/UDP {client}:5060;branch=z9hG4bK-{client}-{n};received={client}"
    front_via = f"SIP/2.0/UDP {FRONT}:5060;branch=z9hG4bK-front-{n}"
    headers = req.headers.prepend("Via", client_via).prepend("Via", front_via)
    return bytes(req.evolve(headers=headers))


async def test_a_guesser_behind_a_trusted_front_is_dropped_not_the_front(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    async with node(
        net, NODE_A, MemoryLocationStore(), credentials={"bob": "zanzibar"}, trusted=[FRONT]
    ) as a:
        front = await net.backend(FRONT).open_udp(FRONT, 5060)

        async def forward(req: Request, client: str, n: int) -> Response | None:
            await front.sendto(_through_front(req, client, n), (NODE_A, 5060))
            with trio.move_on_after(0.2):  # a guesser that does not pause
                raw, _ = await front.recvfrom()
                response = parse_message(raw)
                assert isinstance(response, Response)
                return response
            return None  # dropped: no answer at all

        wrong = ('Digest username="bob", realm="example.com", nonce="not-ours", '
                 'uri="sip:example.com", response="00000000000000000000000000000000"')  # fmt: skip
        answers = []
        for n in range(15):  # the failed-authentication burst is 10
            guess = register("bob", GUESSER, seq=n + 1, headers=(("Authorization", wrong),))
            answers.append(await forward(guess, GUESSER, n))
        assert [r.status_code if r else None for r in answers] == [401] * 10 + [None] * 5
        assert a.statistics().dropped == 5
        # Someone else behind the same front still gets in.
        challenge = await forward(register("bob", OTHER, seq=1), OTHER, 100)
        assert challenge is not None and challenge.status_code == 401
        second = with_auth(register("bob", OTHER, seq=2), challenge, "bob", "zanzibar")
        ok = await forward(second, OTHER, 101)
        assert ok is not None and ok.status_code == 200
        front.close()
