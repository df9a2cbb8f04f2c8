"""Proxy and registrar edges docs/proxy.md states, on the in-memory network in virtual time:
Timer C (RFC 3261 §16.6 step 11, §16.8) CANCELs a branch that rings and never answers, and the
caller gets the callee's 487 through the proxy; the registrar answers 404 for another domain
and 420 for an unknown Require (§10.3)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trio_sip.testing import FakeNetwork

from .proxy_support import ALICE, BOB, DOMAIN, PROXY, TO_PROXY, Phone, phone_stack, register
from .test_proxy_fake import invite, site


async def test_timer_c_cancels_a_branch_that_rings_forever(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    ringing = Phone(BOB, answer=None)  # 180, then rings until cancelled
    async with (
        site(net, timer_c=200.0),
        phone_stack(net, ringing) as bob,
        phone_stack(net, Phone(ALICE)) as alice,
    ):
        await bob.request(register("bob", BOB), TO_PROXY)
        start = trio.current_time()
        statuses, final = await invite(alice, f"sip:bob@{DOMAIN}")
        assert final.status_code == 487 and statuses[-1] == 487
        (cancel,) = [p for p in net.packets() if p.data.startswith(b"CANCEL")]
        assert (cancel.src[0], cancel.dst[0]) == (PROXY, BOB)
        assert cancel.time - start == pytest.approx(200.0, abs=0.1)


async def test_the_registrar_refuses_another_domain_404_and_an_unknown_require_420(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    async with site(net) as proxy, phone_stack(net, Phone(BOB)) as bob:
        foreign = register("bob", BOB)
        foreign = foreign.evolve(
            headers=foreign.headers.replace("To", "<sip:bob@elsewhere.example>")
        )
        assert (await bob.request(foreign, TO_PROXY)).status_code == 404
        required = register("bob", BOB, headers=(("Require", "gruu-nope"),))
        answer = await bob.request(required, TO_PROXY)
        assert (answer.status_code, answer.headers["Unsupported"]) == (420, "gruu-nope")
        assert proxy.location.lookup(f"sip:bob@{DOMAIN}", trio.current_time()) == []
