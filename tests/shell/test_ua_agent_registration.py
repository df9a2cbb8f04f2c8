"""The user agent's own registrations: ``ua.register`` and unregistering when the agent closes."""

from __future__ import annotations

import random

import trio
import trio.testing

from trio_sip.proto.registration import RegistrationState
from trio_sip.proto.target import Target
from trio_sip.proxy import open_proxy
from trio_sip.testing import FakeNetwork
from trio_sip.ua import open_user_agent

AGENT, SITE = "10.0.0.1", "10.0.0.9"
DOMAIN = "example.test"


async def test_agent_registers_with_digest_and_unregisters_on_close(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    async with open_proxy(
        [("UDP", SITE, 5060)],
        domain=DOMAIN,
        backend=net.backend(SITE),
        credentials={"alice": "secret"},
        rng=random.Random(3),
    ) as site:
        async with open_user_agent(
            [("UDP", AGENT, 5060)],
            aor=f"sip:alice@{DOMAIN}",
            credentials=("alice", "secret"),
            backend=net.backend(AGENT),
            rng=random.Random(1),
        ) as ua:
            registration = await ua.register(Target("UDP", SITE, 5060), expires=600)
            with trio.fail_after(5):
                await registration.wait_registered()
            assert registration.state is RegistrationState.REGISTERED
            now = trio.current_time()
            bindings = site.location.lookup(f"sip:alice@{DOMAIN}", now)
            assert [b.contact for b in bindings] == [str(ua.contact.uri)]
        # Closing the agent sent REGISTER with Expires: 0 before the stack went away.
        assert site.location.lookup(f"sip:alice@{DOMAIN}", trio.current_time()) == []
        registers = [
            p.message for p in net.packets(transport="UDP") if p.data.startswith(b"REGISTER")
        ]
        assert registers[-1].expires == 0 or "expires=0" in registers[-1].headers.get("Contact")


async def test_callee_copies_record_route_into_180_and_200(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    bob_host = "10.0.0.2"
    async with (
        open_proxy(
            [("UDP", SITE, 5060)], domain=DOMAIN, backend=net.backend(SITE), rng=random.Random(3)
        ) as _site,
        open_user_agent(
            [("UDP", AGENT, 5060)],
            aor=f"sip:alice@{DOMAIN}",
            backend=net.backend(AGENT),
            rng=random.Random(1),
        ) as alice,
        open_user_agent(
            [("UDP", bob_host, 5060)],
            aor=f"sip:bob@{DOMAIN}",
            backend=net.backend(bob_host),
            rng=random.Random(2),
        ) as bob,
        trio.open_nursery() as nursery,
    ):
        registration = await bob.register(Target("UDP", SITE, 5060))
        await registration.wait_registered()

        async def answer() -> None:
            async for incoming in bob.incoming_calls():
                await incoming.ring()
                await incoming.accept()
                return

        nursery.start_soon(answer)
        async with alice.call(f"sip:bob@{DOMAIN}", outbound_proxy=f"sip:{SITE}:5060;lr") as call:
            with trio.fail_after(10):
                await call.wait_answered()
        from_bob = [
            p.message
            for p in net.packets(transport="UDP")
            if p.src[0] == bob_host and p.data.startswith(b"SIP/2.0 ")
        ]
        statuses = {m.status_code for m in from_bob if m.cseq.method == "INVITE"}
        assert {180, 200} <= statuses
        record_routes = {
            tuple(message.headers.get_list("Record-Route"))
            for message in from_bob
            if message.cseq.method == "INVITE" and message.status_code in (180, 200)
        }
        # One Record-Route, the site's, with its dialog token (docs/proxy.md).
        ((rr,),) = record_routes
        assert rr.startswith(f"<sip:{SITE}:5060;lr;dlg=")
        # Alice's route set came from that Record-Route: her BYE goes through the site.
        with trio.fail_after(10):
            while not any(
                p.data.startswith(b"BYE ") and p.dst[0] == bob_host for p in net.packets()
            ):
                await trio.sleep(0.1)
        byes = [p for p in net.packets(transport="UDP") if p.data.startswith(b"BYE ")]
        assert [(p.src[0], p.dst[0]) for p in byes][:2] == [(AGENT, SITE), (SITE, bob_host)]
