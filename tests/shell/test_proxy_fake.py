"""The registrar + proxy site on the in-memory network, in virtual time (RFC 3261 §10, §16)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from trio_sip.proto.errors import TransactionTimeoutError
from trio_sip.proto.location import LocationService
from trio_sip.proto.message import Request, Response
from trio_sip.proto.proxy import stateless_branch
from trio_sip.proto.timers import TimerConfig
from trio_sip.proto.transaction import TimeoutRole
from trio_sip.proxy import ProxySite, open_proxy
from trio_sip.stack import Stack
from trio_sip.testing import FakeNetwork

from .proxy_support import (
    ALICE,
    BOB,
    BOB2,
    DOMAIN,
    PROXY,
    TO_PROXY,
    Phone,
    in_dialog,
    phone_stack,
    register,
    request,
)


@asynccontextmanager
async def site(net: FakeNetwork, **kw: Any) -> AsyncIterator[ProxySite]:
    async with open_proxy(
        [("UDP", PROXY, 5060)],
        domain=DOMAIN,
        backend=net.backend(PROXY),
        rng=random.Random(7),
        **kw,
    ) as proxy:
        yield proxy


async def invite(alice: Stack, uri: str, **kw: Any) -> tuple[list[int], Response]:
    statuses: list[int] = []
    async with alice.send_request(request("INVITE", uri, **kw), TO_PROXY) as tx:
        async for event in tx:
            assert isinstance(event, Response)
            statuses.append(event.status_code)
        assert tx.final_response is not None
        return statuses, tx.final_response


async def test_register_lists_contacts_with_expires(autojump_clock: trio.testing.MockClock) -> None:
    net = FakeNetwork()
    async with site(net) as proxy, phone_stack(net, Phone(BOB)) as bob:
        ok = await bob.request(register("bob", BOB, expires=600), TO_PROXY)
        assert ok.status_code == 200
        assert ok.headers.get_all("Contact") == [f"<sip:bob@{BOB}:5060>;expires=600"]
        await trio.sleep(100)
        second = register("bob", BOB2, expires=600, call_id="other")
        ok = await bob.request(second, TO_PROXY)
        assert sorted(ok.headers.get_all("Contact")) == [
            f"<sip:bob@{BOB}:5060>;expires=500",
            f"<sip:bob@{BOB2}:5060>;expires=600",
        ]
        assert proxy.statistics().bindings == 2


async def test_register_with_digest(autojump_clock: trio.testing.MockClock) -> None:
    from trio_sip.proto.auth import CredentialStore, DigestClient

    net = FakeNetwork()
    async with site(net, credentials={"bob": "zanzibar"}) as _, phone_stack(net, Phone(BOB)) as bob:
        first = register("bob", BOB, seq=1)
        challenge = await bob.request(first, TO_PROXY)
        assert challenge.status_code == 401
        chal = challenge.www_authenticate[0]
        assert (chal.realm, chal.stale) == (DOMAIN, False)
        client = DigestClient(CredentialStore(default=("bob", "zanzibar")), random.Random(1))
        client.handle_challenge(401, challenge.www_authenticate, sent=[])
        auth = client.authorization_headers("REGISTER", first.uri_text)
        ok = await bob.request(register("bob", BOB, seq=2, headers=tuple(auth)), TO_PROXY)
        assert ok.status_code == 200
        assert ok.headers["Contact"] == f"<sip:bob@{BOB}:5060>;expires=3600"
        # The nonce lives 300 s: after that, the same credentials get stale=true.
        await trio.sleep(301)
        auth = client.authorization_headers("REGISTER", first.uri_text)
        stale = await bob.request(register("bob", BOB, seq=3, headers=tuple(auth)), TO_PROXY)
        assert stale.status_code == 401
        assert stale.www_authenticate[0].stale is True
        # A wrong password is challenged again, not stale.
        bad = DigestClient(CredentialStore(default=("bob", "wrong")), random.Random(2))
        bad.handle_challenge(401, stale.www_authenticate, sent=[])
        auth = bad.authorization_headers("REGISTER", first.uri_text)
        refused = await bob.request(register("bob", BOB, seq=4, headers=tuple(auth)), TO_PROXY)
        assert refused.status_code == 401
        assert refused.www_authenticate[0].stale is False


async def test_call_through_stateful_proxy(autojump_clock: trio.testing.MockClock) -> None:
    net = FakeNetwork()
    net.set_link(ALICE, PROXY, delay=0.01)
    net.set_link(PROXY, BOB, delay=0.01)
    callee = Phone(BOB, delay=1.0)
    async with (
        site(net) as proxy,
        phone_stack(net, callee) as bob,
        phone_stack(net, Phone(ALICE)) as alice,
    ):
        assert (await bob.request(register("bob", BOB), TO_PROXY)).status_code == 200
        inv = request("INVITE", f"sip:bob@{DOMAIN}")
        async with alice.send_request(inv, TO_PROXY) as tx:
            statuses = [e.status_code for e in [ev async for ev in tx] if isinstance(e, Response)]
            ok = tx.final_response
        assert statuses == [100, 180, 200]
        assert ok is not None
        # Our Record-Route carries the dialog's token (HMAC of Call-ID and From tag).
        rr = proxy.record_route_value(inv)
        assert rr is not None and rr.startswith(f"<sip:{PROXY}:5060;lr;dlg=")
        assert ok.headers.get_list("Record-Route") == [rr]
        assert len(ok.vias) == 1  # the proxy removed its own
        # What Bob got: our Request-URI, Max-Forwards decremented, Record-Route, two Vias.
        got = callee.requests("INVITE")[0]
        assert got.uri_text == f"sip:bob@{BOB}:5060"
        assert got.headers["Max-Forwards"] == "69"
        assert got.headers["Record-Route"] == rr
        assert [v.host for v in got.vias] == [PROXY, ALICE]
        branch = got.vias[0].branch
        assert branch is not None and branch.startswith("z9hG4bK") and "." in branch
        # ACK and BYE follow the route set: through the proxy, which pops its Route.
        await alice.send_stateless(in_dialog("ACK", inv, ok, 1), TO_PROXY)
        bye = await alice.request(in_dialog("BYE", inv, ok, 2), TO_PROXY)
        assert bye.status_code == 200
        acks = [m for m in callee.strays if isinstance(m, Request) and m.method == "ACK"]
        assert len(acks) == 1
        assert acks[0].uri_text == f"sip:bob@{BOB}:5060" and "Route" not in acks[0].headers
        got_bye = callee.requests("BYE")[0]
        assert "Route" not in got_bye.headers
        assert [v.host for v in got_bye.vias] == [PROXY, ALICE]
        await trio.sleep(40)  # Timers D/K/M
        stats = proxy.statistics()
        assert (stats.stack.tasks, stats.contexts, stats.tasks) == (0, 0, 0)
        assert stats.forwarded_requests == 3  # INVITE, ACK, BYE


def _sent(net: FakeNetwork, src: str, dst: str, what: str | int) -> list[Request | Response]:
    """Messages ``src`` sent to ``dst``: requests by method, responses by status code."""
    out: list[Request | Response] = []
    for p in net.packets():
        if p.src[0] != src or p.dst[0] != dst:
            continue
        m = p.message
        if (isinstance(m, Request) and m.method == what) or (
            isinstance(m, Response) and m.status_code == what
        ):
            out.append(m)
    return out


@pytest.mark.parametrize("role", ["stateful", "stateless"])
async def test_cancel_through_the_proxy(autojump_clock: trio.testing.MockClock, role: str) -> None:
    # §16.10: the CANCEL gets 200 hop by hop, the branch is CANCELled (same branch as the
    # forwarded INVITE) and the caller's final response is the callee's 487, not the proxy's.
    net = FakeNetwork()
    callee = Phone(BOB, answer=None)
    async with (
        site(net, role=role) as proxy,
        phone_stack(net, callee) as bob,
        phone_stack(net, Phone(ALICE)) as alice,
    ):
        await bob.request(register("bob", BOB), TO_PROXY)
        async with alice.send_request(request("INVITE", f"sip:bob@{DOMAIN}"), TO_PROXY) as tx:
            async for event in tx:
                if isinstance(event, Response) and event.status_code == 180:
                    break
            cancel = await alice.request(tx.make_cancel(), TO_PROXY, new_via=False)
            assert cancel.status_code == 200
            final = await tx.wait_final()
        await trio.sleep(1)
        ringing = callee.received[0]
        assert ringing.cancelled  # the proxy CANCELled its branch
        assert final.status_code == 487
        assert final.to.tag == ringing.to_tag  # the callee's 487, not one the proxy made
        (invite,) = _sent(net, PROXY, BOB, "INVITE")
        (bob_cancel,) = _sent(net, PROXY, BOB, "CANCEL")
        assert bob_cancel.vias[0].branch == invite.vias[0].branch
        assert [r.to.tag for r in _sent(net, BOB, PROXY, 487)] == [ringing.to_tag]
        upstream = _sent(net, PROXY, ALICE, 487)
        assert len(upstream) == 1 and upstream[0].to.tag == ringing.to_tag
        # The ACK for the 487 reaches the callee's INVITE transaction (same branch, with the
        # To tag it did not have in the INVITE), so the callee sent its 487 once.
        (ack,) = _sent(net, PROXY, BOB, "ACK")
        assert ack.vias[0].branch == invite.vias[0].branch
        await trio.sleep(40)
        assert proxy.statistics().stack.tasks == 0


@pytest.mark.parametrize("role", ["stateful", "stateless"])
async def test_unmatched_cancel_is_forwarded_statelessly(
    autojump_clock: trio.testing.MockClock, role: str
) -> None:
    # §16.10: "If a response context is not found, the element ... MUST statelessly forward
    # the CANCEL request" (§16.11 branch), rather than answer 481 itself.
    net = FakeNetwork()
    callee = Phone(BOB)
    async with (
        site(net, role=role) as proxy,
        phone_stack(net, callee) as bob,
        phone_stack(net, Phone(ALICE)) as alice,
    ):
        await bob.request(register("bob", BOB), TO_PROXY)
        await trio.sleep(40)  # the REGISTER's transactions are gone
        cancel = request("CANCEL", f"sip:bob@{DOMAIN}")
        via = f"SIP/2.0/UDP {ALICE}:5060;branch=z9hG4bKnever-seen;rport"
        cancel = cancel.evolve(headers=cancel.headers.prepend("Via", via))
        answer = await alice.request(cancel, TO_PROXY, new_via=False)
        (forwarded,) = _sent(net, PROXY, BOB, "CANCEL")
        (received,) = _sent(net, ALICE, PROXY, "CANCEL")
        assert forwarded.vias[0].branch == stateless_branch(received, secret=proxy.branch_secret)
        assert [v.host for v in forwarded.vias] == [PROXY, ALICE]
        # Bob's stack has no such INVITE either: its 481 comes back through the proxy.
        assert answer.status_code == 481
        (bobs,) = _sent(net, BOB, PROXY, 481)
        assert answer.to.tag == bobs.to.tag
        assert proxy.statistics().stack.server_transactions == 0
        await trio.sleep(40)
        assert proxy.statistics().stack.tasks == 0


async def test_unknown_and_expired_users(autojump_clock: trio.testing.MockClock) -> None:
    net = FakeNetwork()
    async with (
        site(net) as _,
        phone_stack(net, Phone(BOB)) as bob,
        phone_stack(net, Phone(ALICE)) as alice,
    ):
        _, nobody = await invite(alice, f"sip:nobody@{DOMAIN}")
        assert nobody.status_code == 480  # §16.5: an empty target set "SHOULD be ... 480"
        await bob.request(register("bob", BOB, expires=60), TO_PROXY)
        _, final = await invite(alice, f"sip:bob@{DOMAIN}")
        assert final.status_code == 200
        await trio.sleep(61)  # the binding expired
        _, final = await invite(alice, f"sip:bob@{DOMAIN}")
        # The same answer as for a user that never registered: no enumeration.
        assert (final.status_code, final.reason) == (nobody.status_code, nobody.reason)
        assert [n for n, _ in final.headers] == [n for n, _ in nobody.headers]


async def test_max_forwards_and_loop(autojump_clock: trio.testing.MockClock) -> None:
    net = FakeNetwork()
    location = LocationService()
    # A binding that points back at the proxy itself: the request comes back as a loop.
    location.add_static(f"sip:loop@{DOMAIN}", f"sip:loop@{PROXY}:5060")
    async with site(net, location_service=location) as _, phone_stack(net, Phone(ALICE)) as alice:
        _, final = await invite(alice, f"sip:bob@{DOMAIN}", max_forwards=0)
        assert final.status_code == 483
        options = request("OPTIONS", f"sip:bob@{DOMAIN}", max_forwards=0)
        answered = await alice.request(options, TO_PROXY)
        assert answered.status_code == 200 and "INVITE" in answered.headers["Allow"]
        statuses, final = await invite(alice, f"sip:loop@{DOMAIN}")
        # The only target is the proxy itself: 482 at once, without sending it to itself.
        assert statuses == [482]
        assert not _sent(net, PROXY, PROXY, "INVITE")


async def test_forked_invite_best_response(autojump_clock: trio.testing.MockClock) -> None:
    net = FakeNetwork()
    busy, ringing = Phone(BOB, answer=486), Phone(BOB2, answer=200, delay=2.0)
    async with (
        site(net) as _,
        phone_stack(net, busy) as bob,
        phone_stack(net, ringing) as _bob2,
        phone_stack(net, Phone(ALICE)) as alice,
    ):
        await bob.request(register("bob", BOB, call_id="c1"), TO_PROXY)
        await bob.request(register("bob", BOB2, call_id="c2"), TO_PROXY)
        statuses, final = await invite(alice, f"sip:bob@{DOMAIN}")
        assert final.status_code == 200  # 2xx beats the 486
        assert str(final.contacts[0].uri) == f"sip:bob@{BOB2}:5060"
        assert statuses.count(180) == 2  # both branches' ringing went upstream
        # Now a 6xx: it wins and cancels the branch that is still ringing.
        busy.answer, ringing.answer = 603, None
        _, final = await invite(alice, f"sip:bob@{DOMAIN}")
        assert final.status_code == 603
        await trio.sleep(1)
        assert ringing.received[-1].cancelled


async def test_all_branches_fail_lowest_class(autojump_clock: trio.testing.MockClock) -> None:
    net = FakeNetwork()
    a, b = Phone(BOB, answer=486), Phone(BOB2, answer=503)
    async with (
        site(net) as _,
        phone_stack(net, a) as bob,
        phone_stack(net, b) as _bob2,
        phone_stack(net, Phone(ALICE)) as alice,
    ):
        await bob.request(register("bob", BOB, call_id="c1"), TO_PROXY)
        await bob.request(register("bob", BOB2, call_id="c2"), TO_PROXY)
        _, final = await invite(alice, f"sip:bob@{DOMAIN}")
        assert final.status_code == 486
        a.answer = 503
        _, final = await invite(alice, f"sip:bob@{DOMAIN}")
        assert final.status_code == 500  # §16.7 step 6: only 503s → 500


async def test_partitioned_branch_times_out_408(autojump_clock: trio.testing.MockClock) -> None:
    net = FakeNetwork()
    async with (
        site(net) as proxy,
        phone_stack(net, Phone(BOB)) as bob,
        phone_stack(net, Phone(ALICE)) as alice,
    ):
        await bob.request(register("bob", BOB), TO_PROXY)
        net.partition(PROXY, BOB)
        start = trio.current_time()
        statuses, final = await invite(alice, f"sip:bob@{DOMAIN}")
        assert (statuses, final.status_code) == ([100, 408], 408)
        assert trio.current_time() - start == pytest.approx(32.0)  # Timer B = 64*T1
        # The stack retransmitted the INVITE itself (no RETRANSMIT notifications in this role).
        invites = [p for p in net.packets() if p.data.startswith(b"INVITE") and p.dst[0] == BOB]
        sent = [p.time - start for p in invites]
        assert sent == pytest.approx([0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5])
        assert proxy.role is TimeoutRole.STATEFUL_PROXY


async def test_transaction_timeout_setting_shortens_branches(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    config = TimerConfig(sip_transaction_timeout=4000)
    async with (
        site(net, timer_config=config) as _,
        phone_stack(net, Phone(BOB)) as bob,
        phone_stack(net, Phone(ALICE)) as alice,
    ):
        await bob.request(register("bob", BOB), TO_PROXY)
        net.partition(PROXY, BOB)
        start = trio.current_time()
        answer = await alice.request(request("MESSAGE", f"sip:bob@{DOMAIN}"), TO_PROXY)
        assert answer.status_code == 408
        assert trio.current_time() - start == pytest.approx(4.0)


async def test_stateless_role_forwards_without_transactions(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    callee = Phone(BOB, delay=1.0)
    async with (
        site(net, role="stateless") as proxy,
        phone_stack(net, callee) as bob,
        phone_stack(net, Phone(ALICE)) as alice,
    ):
        assert (await bob.request(register("bob", BOB), TO_PROXY)).status_code == 200
        inv = request("INVITE", f"sip:bob@{DOMAIN}")
        async with alice.send_request(inv, TO_PROXY) as tx:
            statuses = []
            async for event in tx:
                assert isinstance(event, Response)
                statuses.append(event.status_code)
                stats = proxy.statistics().stack
                assert (stats.client_transactions, stats.server_transactions) == (0, 0)
            ok = tx.final_response
        assert statuses == [180, 200]  # no 100 Trying: a stateless proxy sends none
        assert ok is not None
        await alice.send_stateless(in_dialog("ACK", inv, ok, 1), TO_PROXY)
        assert (await alice.request(in_dialog("BYE", inv, ok, 2), TO_PROXY)).status_code == 200
        # Partition Bob: each retransmission is forwarded with the same branch, and the caller
        # times out on its own (the proxy has no timers).
        net.partition(PROXY, BOB)
        start = trio.current_time()
        with pytest.raises(TransactionTimeoutError):
            await alice.request(request("INVITE", f"sip:bob@{DOMAIN}", call_id="lost"), TO_PROXY)
        forwarded = [p for p in net.packets() if p.dst[0] == BOB and b"lost" in p.data]
        assert [round(p.time - start, 2) for p in forwarded][:4] == [0.0, 0.5, 1.5, 3.5]
        assert len({p.message.vias[0].branch for p in forwarded}) == 1
        assert proxy.statistics().stack.tasks == 0


async def test_site_restarts_quickly(autojump_clock: trio.testing.MockClock) -> None:
    net = FakeNetwork()
    location = LocationService()
    async with phone_stack(net, Phone(BOB)) as bob:
        async with site(net, location_service=location) as proxy:
            await bob.request(register("bob", BOB), TO_PROXY)
        assert proxy.statistics().stack.tasks == 0
        # Back again with the same location service: the binding survived the restart.
        async with (
            site(net, location_service=location) as _,
            phone_stack(net, Phone(ALICE)) as alice,
        ):
            _, final = await invite(alice, f"sip:bob@{DOMAIN}")
            assert final.status_code == 200
