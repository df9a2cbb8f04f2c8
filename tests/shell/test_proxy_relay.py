"""The site is no open relay (issue #10), in virtual time on the in-memory network: requests
to other domains, forged in-dialog requests and forged responses go nowhere; a Route set that
points back at the site costs one pass; trusted sources and peers are configured explicitly."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from trio_sip.proto.auth import CredentialStore, DigestClient
from trio_sip.proto.message import Request, Response
from trio_sip.proto.target import Target
from trio_sip.proxy import ProxySite, open_proxy
from trio_sip.testing import FakeNetwork

from .proxy_support import (
    ALICE,
    BOB,
    DOMAIN,
    PROXY,
    TO_PROXY,
    Phone,
    in_dialog,
    phone_stack,
    register,
    request,
)

EVIL = "10.6.6.6"
VICTIM = "198.51.100.7"  # a third party: a premium-rate gateway, a DoS target
OTHER = "10.0.2.1"  # another site (a peer)


@asynccontextmanager
async def site(net: FakeNetwork, **kw: Any) -> AsyncIterator[ProxySite]:
    # TCP too: a request over 1,300 bytes goes over TCP (RFC 3261 §18.1.1).
    async with open_proxy(
        [("UDP", PROXY, 5060), ("TCP", PROXY, 5060)], domain=DOMAIN,
        backend=net.backend(PROXY), rng=random.Random(7), **kw,
    ) as proxy:  # fmt: skip
        yield proxy


def arrived(net: FakeNetwork, host: str) -> list[Request | Response]:
    """Every message delivered to ``host``."""
    return [p.message for p in net.packets() if p.dst[0] == host and p.fate == "delivered"]


def sent_to_self(net: FakeNetwork) -> int:
    return sum(1 for p in net.packets() if p.src[0] == PROXY and p.dst[0] == PROXY)


@pytest.mark.parametrize("role", ["stateful", "stateless"])
async def test_nothing_is_relayed_to_another_domain(
    autojump_clock: trio.testing.MockClock, role: str
) -> None:
    net = FakeNetwork()
    async with (
        site(net, role=role) as proxy,
        phone_stack(net, Phone(EVIL)) as evil,
        phone_stack(net, Phone(VICTIM)) as _victim,
    ):
        for uri in (f"sip:900123@{VICTIM}", "sip:bob@other.example", "tel:+19005550100"):
            for method in ("INVITE", "MESSAGE", "OPTIONS"):
                answer = await evil.request(request(method, uri, caller=EVIL), TO_PROXY)
                assert (answer.status_code, answer.reason) == (403, "Forbidden (relaying denied)")
        # Requests that look in-dialog (To tag) but came through no Record-Route of ours.
        bye = request("BYE", f"sip:x@{VICTIM}", caller=EVIL)
        bye = bye.evolve(headers=bye.headers.replace("To", f"<sip:x@{VICTIM}>;tag=t1"))
        assert (await evil.request(bye, TO_PROXY)).status_code == 403
        routed = bye.evolve(headers=bye.headers.append("Route", f"<sip:{PROXY}:5060;lr>"))
        assert (await evil.request(routed, TO_PROXY)).status_code == 403
        cancel = request("CANCEL", f"sip:x@{VICTIM}", caller=EVIL)
        assert (await evil.request(cancel, TO_PROXY)).status_code == 403
        await evil.send_stateless(request("ACK", f"sip:x@{VICTIM}", caller=EVIL), TO_PROXY)
        await trio.sleep(40)
        assert arrived(net, VICTIM) == []
        stats = proxy.statistics()
        # Every request above refused (the ACK silently); stateless, the transactions' ACKs
        # for the three 403s to INVITE reach the site too (a stateful one absorbs them).
        refused = 3 * 3 + 4 + (3 if role == "stateless" else 0)
        assert (stats.forwarded_requests, stats.refused) == (0, refused)


async def test_credentials_do_not_open_the_relay(autojump_clock: trio.testing.MockClock) -> None:
    net = FakeNetwork()
    async with (
        site(net, credentials={"alice": "secret"}) as _,
        phone_stack(net, Phone(ALICE)) as alice,
    ):
        answer = await alice.request(request("INVITE", f"sip:900@{VICTIM}"), TO_PROXY)
        assert answer.status_code == 403  # authorization would not help (§21.4.4)
        assert arrived(net, VICTIM) == []


async def test_forged_responses_are_not_reflected(autojump_clock: trio.testing.MockClock) -> None:
    # A response with the site's address in its top Via and a victim's below: §18.2.2 would
    # send it to the victim. The branch is not one the site made for that Via: dropped.
    net = FakeNetwork()
    async with site(net) as proxy:
        sock = await net.backend(EVIL).open_udp(EVIL, 5060)
        for status in (180, 200, 486):
            forged = (
                f"SIP/2.0 {status} X\r\n"
                f"Via: SIP/2.0/UDP {PROXY}:5060;branch=z9hG4bKaaaaaaaaaaaaaaaa.bbbb\r\n"
                f"Via: SIP/2.0/UDP {VICTIM}:5060;branch=z9hG4bKvictim\r\n"
                "From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>;tag=2\r\nCall-ID: forged\r\n"
                "CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
            )
            await sock.sendto(forged.encode(), (PROXY, 5060))
        await trio.sleep(1)
        assert arrived(net, VICTIM) == []
        assert proxy.statistics().stray_responses == 3
        sock.close()


async def test_in_dialog_requests_pass_only_with_the_dialogs_record_route(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    callee = Phone(BOB)
    async with (
        site(net, credentials={"alice": "secret", "bob": "zanzibar"}) as proxy,
        phone_stack(net, callee) as bob,
        phone_stack(net, Phone(ALICE)) as alice,
        phone_stack(net, Phone(EVIL)) as evil,
    ):
        proxy.location.add_static(f"sip:bob@{DOMAIN}", f"sip:bob@{BOB}:5060")
        inv = request("INVITE", f"sip:bob@{DOMAIN}")
        # A site with credentials and no trusted sources: the INVITE is challenged first.
        first = await alice.request(inv, TO_PROXY)
        assert first.status_code == 407
        client = DigestClient(CredentialStore(default=("alice", "secret")), random.Random(5))
        client.handle_challenge(407, first.proxy_authenticate, sent=[])
        inv = inv.evolve(
            headers=inv.headers.replace("CSeq", "2 INVITE").append(
                *client.authorization_headers("INVITE", inv.uri_text)[0]
            )
        )
        ok = await alice.request(inv, TO_PROXY)
        assert ok.status_code == 200
        # The callee got no Proxy-Authorization: it was for the site (§22.3).
        assert "Proxy-Authorization" not in callee.requests("INVITE")[0].headers
        # The caller's ACK and a re-INVITE-less BYE from the callee (To tag = the caller's
        # tag) go through without credentials: they carry the dialog's Record-Route.
        await alice.send_stateless(in_dialog("ACK", inv, ok, 2), TO_PROXY)
        rr = ok.headers.get_list("Record-Route")
        bye = Request(
            "BYE",
            f"sip:alice@{ALICE}:5060",
            [
                ("Max-Forwards", "70"),
                ("From", ok.headers["To"]),
                ("To", inv.headers["From"]),
                ("Call-ID", inv.call_id),
                ("CSeq", "1 BYE"),
                *[("Route", r) for r in rr],
            ],
        )
        assert (await bob.request(bye, TO_PROXY)).status_code == 200
        # The attacker copies that Route (token and all) into another dialog: refused.
        stolen = Request(
            "BYE",
            f"sip:900@{VICTIM}",
            [
                ("Max-Forwards", "70"),
                ("From", "<sip:x@evil.example>;tag=e1"),
                ("To", "<sip:900@victim.example>;tag=e2"),
                ("Call-ID", "another-call"),
                ("CSeq", "1 BYE"),
                *[("Route", r) for r in rr],
            ],
        )
        assert (await evil.request(stolen, TO_PROXY)).status_code == 403
        assert arrived(net, VICTIM) == []


async def test_trusted_sources_and_peers_are_explicit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    peers = {"other.example": Target("UDP", OTHER, 5060)}
    async with (
        site(net, trusted=[ALICE], relay="peers", peers=peers) as proxy,
        phone_stack(net, Phone(ALICE)) as alice,
        phone_stack(net, Phone(EVIL)) as evil,
        phone_stack(net, Phone(OTHER)) as _other,
        phone_stack(net, Phone(VICTIM)) as _victim,
    ):
        # relay="peers": anyone (no credentials here) may reach a peer domain, nothing else.
        answer = await evil.request(request("MESSAGE", "sip:bob@other.example"), TO_PROXY)
        assert answer.status_code == 200
        answer = await evil.request(request("MESSAGE", f"sip:900@{VICTIM}"), TO_PROXY)
        assert answer.status_code == 403
        # A trusted source (a gateway, a peer site) may go anywhere.
        answer = await alice.request(request("MESSAGE", f"sip:900@{VICTIM}"), TO_PROXY)
        assert answer.status_code == 200
        assert len(arrived(net, VICTIM)) == 1 and len(arrived(net, OTHER)) == 1
        assert proxy.statistics().refused == 1


@pytest.mark.parametrize("role", ["stateful", "stateless"])
async def test_routes_pointing_back_at_us_cost_one_pass(
    autojump_clock: trio.testing.MockClock, role: str
) -> None:
    # 69 Route values naming the site and Max-Forwards 255: they are all consumed at once, the
    # callee gets one INVITE, the site sends nothing to itself and makes no transaction per hop.
    net = FakeNetwork()
    callee = Phone(BOB)
    async with (
        site(net, role=role) as proxy,
        phone_stack(net, callee) as bob,
        phone_stack(net, Phone(ALICE)) as alice,
    ):
        assert (await bob.request(register("bob", BOB), TO_PROXY)).status_code == 200
        routes = ", ".join(f"<sip:{PROXY}:5060;lr;hop={i}>" for i in range(69))
        inv = request("INVITE", f"sip:bob@{DOMAIN}", max_forwards=255, headers=(("Route", routes),))
        with trio.fail_after(60):
            answer = await alice.request(inv, TO_PROXY)
        assert answer.status_code == 200
        (got,) = callee.requests("INVITE")
        assert "Route" not in got.headers and got.headers["Max-Forwards"] == "254"
        assert sent_to_self(net) == 0
        if role == "stateful":
            assert proxy.statistics().stack.server_transactions <= 2  # REGISTER, INVITE
        # A Route naming the site with a user part would send it to itself: 482 at once.
        looping = request(
            "INVITE", f"sip:bob@{DOMAIN}", headers=(("Route", f"<sip:me@{PROXY}:5060;lr>"),)
        )
        assert (await alice.request(looping, TO_PROXY)).status_code == 482
        assert sent_to_self(net) == 0


async def test_inbound_calls_with_open_federation(autojump_clock: trio.testing.MockClock) -> None:
    # proxy_auth="local": someone from another domain may call our users without credentials;
    # a request claiming our domain must authenticate. The default ("all") challenges both.
    net = FakeNetwork()
    stranger = request("MESSAGE", f"sip:bob@{DOMAIN}", caller=EVIL)
    stranger = stranger.evolve(
        headers=stranger.headers.replace("From", "<sip:x@far.example>;tag=f")
    )
    local = request("MESSAGE", f"sip:bob@{DOMAIN}", caller=EVIL)
    for mode, expected in (("local", (200, 407)), ("all", (407, 407))):
        async with (
            site(net, credentials={"bob": "zanzibar"}, proxy_auth=mode) as proxy,
            phone_stack(net, Phone(BOB)) as _bob,
            phone_stack(net, Phone(EVIL)) as evil,
        ):
            proxy.location.add_static(f"sip:bob@{DOMAIN}", f"sip:bob@{BOB}:5060")
            got = [(await evil.request(r, TO_PROXY)).status_code for r in (stranger, local)]
            assert tuple(got) == expected, mode
