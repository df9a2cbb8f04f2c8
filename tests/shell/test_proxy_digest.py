"""The registrar's digest and bounds on the wire (issue #10), in virtual time on the
in-memory network: captured credentials cannot be replayed, unknown users look like known
ones, password guessing is slowed to a crawl, bindings and forks are bounded."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from trio_sip.proto.auth import CredentialStore, DigestClient
from trio_sip.proto.limits import Limits
from trio_sip.proto.message import Request, Response
from trio_sip.proxy import ProxySite, open_proxy
from trio_sip.stack import Stack
from trio_sip.testing import FakeNetwork

from .proxy_support import ALICE, BOB, DOMAIN, PROXY, TO_PROXY, Phone, phone_stack, register

EVIL = "10.6.6.6"
AOR = f"sip:bob@{DOMAIN}"


@asynccontextmanager
async def site(net: FakeNetwork, **kw: Any) -> AsyncIterator[ProxySite]:
    async with open_proxy(
        [("UDP", PROXY, 5060)], domain=DOMAIN, backend=net.backend(PROXY),
        rng=random.Random(7), credentials={"bob": "zanzibar"}, **kw,
    ) as proxy:  # fmt: skip
        yield proxy


def with_auth(request: Request, challenge: Response, user: str, password: str) -> Request:
    client = DigestClient(CredentialStore(default=(user, password)), random.Random(9))
    client.handle_challenge(401, challenge.www_authenticate, sent=[])
    (name, value) = client.authorization_headers("REGISTER", request.uri_text)[0]
    return request.evolve(headers=request.headers.append(name, value))


async def registered(bob: Stack, seq: int = 1, **kw: Any) -> Request:
    """Bob registers (401, then credentials); returns the REGISTER that got the 200."""
    first = register("bob", BOB, seq=seq, **kw)
    challenge = await bob.request(first, TO_PROXY)
    assert challenge.status_code == 401
    second = with_auth(register("bob", BOB, seq=seq + 1, **kw), challenge, "bob", "zanzibar")
    assert (await bob.request(second, TO_PROXY)).status_code == 200
    return second


async def test_a_captured_authorization_cannot_be_replayed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    async with (
        site(net) as proxy,
        phone_stack(net, Phone(BOB)) as bob,
        phone_stack(net, Phone(EVIL)) as evil,
    ):
        good = await registered(bob)
        captured = good.headers["Authorization"]
        # The attacker's own binding, with Bob's Authorization: a new challenge, no binding.
        hijack = register("bob", EVIL, seq=3, headers=(("Authorization", captured),))
        answer = await evil.request(hijack, TO_PROXY)
        assert answer.status_code == 401 and answer.www_authenticate[0].stale is False
        # The wildcard that would wipe Bob's bindings: the same.
        wipe = register("bob", EVIL, seq=4, expires=0, contact="*")
        wipe = wipe.evolve(headers=wipe.headers.append("Authorization", captured))
        assert (await evil.request(wipe, TO_PROXY)).status_code == 401
        # The very datagram again, after its transaction is long gone: a replay too.
        (datagram,) = [
            p.data
            for p in net.packets()
            if p.src[0] == BOB and good.call_id.encode() in p.data and b"Authorization" in p.data
        ]
        await trio.sleep(40)
        sock = await net.backend(EVIL).open_udp(EVIL, 5070)
        await sock.sendto(datagram, (PROXY, 5060))
        with trio.fail_after(1):
            raw, _ = await sock.recvfrom()
        sock.close()
        assert raw.startswith(b"SIP/2.0 401 ")
        now = trio.current_time()
        assert [b.contact for b in proxy.location.lookup(AOR, now)] == [f"sip:bob@{BOB}:5060"]
        assert proxy.statistics().auth is not None
        assert proxy.statistics().auth.replays == 3  # type: ignore[union-attr]


async def test_unknown_users_get_the_answer_a_wrong_password_gets(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    async with site(net) as _, phone_stack(net, Phone(EVIL)) as evil:
        answers = []
        for user, password in (("bob", "wrong"), ("mallory", "wrong"), ("nobody", "")):
            first = register(user, EVIL)
            challenge = await evil.request(first, TO_PROXY)
            retry = with_auth(register(user, EVIL, seq=2), challenge, user, password)
            answers.append((challenge, await evil.request(retry, TO_PROXY)))
        shapes = {
            (c.status_code, c.reason, r.status_code, r.reason, tuple(n for n, _ in r.headers))
            for c, r in answers
        }
        assert len(shapes) == 1 and next(iter(shapes))[2] == 401
        assert all(not r.www_authenticate[0].stale for _, r in answers)


async def test_stale_nonce_with_good_credentials(autojump_clock: trio.testing.MockClock) -> None:
    net = FakeNetwork()
    async with site(net) as _, phone_stack(net, Phone(BOB)) as bob:
        first = register("bob", BOB)
        challenge = await bob.request(first, TO_PROXY)
        await trio.sleep(301)  # the nonce lives 300 s
        late = with_auth(register("bob", BOB, seq=2), challenge, "bob", "zanzibar")
        answer = await bob.request(late, TO_PROXY)
        assert answer.status_code == 401 and answer.www_authenticate[0].stale is True


async def test_password_guessing_is_dropped_above_the_failed_auth_rate(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    limits = Limits(failed_auth_rate=1.0, failed_auth_burst=10)
    async with (
        site(net, limits=limits) as proxy,
        phone_stack(net, Phone(EVIL)) as evil,
        phone_stack(net, Phone(BOB)) as bob,
    ):
        challenge = await evil.request(register("bob", EVIL), TO_PROXY)
        guesses = 0
        for i in range(10):
            guess = with_auth(register("bob", EVIL, seq=2 + i), challenge, "bob", f"guess{i}")
            challenge = await evil.request(guess, TO_PROXY)
            assert challenge.status_code == 401
            guesses += 1
        # Over the rate: the source's requests are dropped, not answered, until its bucket
        # has a token again (1/s): the client's retransmission at 1.5 s (Timer E) gets through.
        start = trio.current_time()
        answer = await evil.request(register("bob", EVIL, seq=20), TO_PROXY)
        assert answer.status_code == 401 and trio.current_time() - start == pytest.approx(1.5)
        assert proxy.statistics().dropped == 2  # the request and its first retransmission
        # Others are served meanwhile (another source).
        await registered(bob)
        # Guessing as fast as it can, the source gets about one guess a second.
        start, before = trio.current_time(), guesses
        while trio.current_time() - start < 30:
            guess = with_auth(register("bob", EVIL, seq=30 + guesses), answer, "bob", "g")
            answer = await evil.request(guess, TO_PROXY)
            guesses += 1
        # At most one a second; a client retrying at Timer E's pace (its retransmission
        # 0.5 s after a drop is dropped too) gets one every 1.5 s.
        assert 15 <= guesses - before <= 30
        auth = proxy.statistics().auth
        assert auth is not None and auth.failures == guesses


async def test_a_flooding_guesser_stays_out_until_it_pauses(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # svcrack's way: a request every few ms. Above the rate nothing gets through while the
    # flood lasts (each drop uses up what the bucket refilled); a one-second pause lets one in.
    net = FakeNetwork()
    async with site(net) as proxy, phone_stack(net, Phone(EVIL)) as evil:
        challenge = await evil.request(register("bob", EVIL), TO_PROXY)
        for i in range(10):
            guess = with_auth(register("bob", EVIL, seq=2 + i), challenge, "bob", f"g{i}")
            challenge = await evil.request(guess, TO_PROXY)
        sock = await net.backend(EVIL).open_udp(EVIL, 5070)
        probe = register("bob", EVIL).evolve(
            headers=register("bob", EVIL).headers.prepend(
                "Via", f"SIP/2.0/UDP {EVIL}:5070;branch=z9hG4bKflood;rport"
            )
        )
        answered = 0
        with trio.move_on_after(10):  # 10 s of one request every 20 ms
            async with trio.open_nursery() as nursery:

                async def count() -> None:
                    nonlocal answered
                    while True:
                        await sock.recvfrom()
                        answered += 1

                nursery.start_soon(count)
                while True:
                    await sock.sendto(bytes(probe), (PROXY, 5060))
                    await trio.sleep(0.02)
        assert answered == 0 and proxy.statistics().dropped >= 490
        await trio.sleep(1.0)  # the pause
        await sock.sendto(bytes(probe), (PROXY, 5060))
        with trio.fail_after(1):
            data, _ = await sock.recvfrom()
        assert data.startswith(b"SIP/2.0 401 ")
        sock.close()


async def test_bindings_per_aor_and_forks_are_bounded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    limits = Limits(max_bindings_per_aor=6, max_forks=3)
    hosts = [f"10.0.3.{i}" for i in range(1, 7)]
    async with (
        open_proxy(
            [("UDP", PROXY, 5060)], domain=DOMAIN, backend=net.backend(PROXY),
            rng=random.Random(7), limits=limits,
        ) as proxy,
        phone_stack(net, Phone(BOB)) as bob,
        phone_stack(net, Phone(ALICE)) as alice,
    ):  # fmt: skip
        contacts = tuple(
            ("Contact", f"<sip:bob@{h}:5060>;q=0.{i + 1}") for i, h in enumerate(hosts)
        )
        six = Request(
            "REGISTER", f"sip:{DOMAIN}",
            [*register("bob", BOB).headers.remove("Contact"), *contacts],
        )  # fmt: skip
        ok = await bob.request(six, TO_PROXY)
        assert ok.status_code == 200 and len(ok.contacts) == 6
        assert len(bytes(ok)) < 1300  # the 200 lists the bindings, now bounded: fits UDP
        seventh = register("bob", BOB, seq=2, call_id="other")
        refused = await bob.request(seventh, TO_PROXY)
        assert refused.status_code == 403
        # An INVITE forks to the 3 highest-q contacts only.
        inv = Request(
            "INVITE", AOR,
            [("Max-Forwards", "70"), ("From", f"<sip:alice@{DOMAIN}>;tag=a"), ("To", f"<{AOR}>"),
             ("Call-ID", "fork-1"), ("CSeq", "1 INVITE"), ("Contact", f"<sip:alice@{ALICE}>")],
        )  # fmt: skip
        with trio.move_on_after(1):
            await alice.request(inv, TO_PROXY)
        forked = {
            p.dst[0] for p in net.packets() if p.src[0] == PROXY and p.data.startswith(b"INVITE ")
        }
        assert forked == set(hosts[-3:])
        assert proxy.statistics().bindings == 6


async def test_total_bindings_are_bounded(autojump_clock: trio.testing.MockClock) -> None:
    net = FakeNetwork()
    async with (
        open_proxy(
            [("UDP", PROXY, 5060)], domain=DOMAIN, backend=net.backend(PROXY),
            rng=random.Random(7), limits=Limits(max_bindings=3, retry_after=9),
        ) as proxy,
        phone_stack(net, Phone(EVIL)) as evil,
    ):  # fmt: skip
        for i in range(3):
            assert (await evil.request(register(f"u{i}", EVIL), TO_PROXY)).status_code == 200
        full = await evil.request(register("u9", EVIL), TO_PROXY)
        assert (full.status_code, full.headers.get("Retry-After")) == (503, "9")
        assert proxy.statistics().bindings == 3
        # Expired AORs are pruned: room again, and nothing is left of them.
        await trio.sleep(3601)
        assert proxy.location.aors(trio.current_time()) == []
        assert (await evil.request(register("u9", EVIL), TO_PROXY)).status_code == 200
