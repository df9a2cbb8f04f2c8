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
