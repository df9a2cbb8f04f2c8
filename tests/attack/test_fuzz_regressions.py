"""What the wire fuzzer found that is not one datagram's answer: state left behind. In virtual
time on the in-memory network (trio_sip.testing.FakeNetwork), so each test takes no real time.

* A CANCEL matching an INVITE's transaction but from which no response can be built (no Call-ID
  or no From) left its server transaction in Trying for ever in a proxy/registrar: the 200 (or
  481) raised, the stack answered 400 statelessly, and nobody ever answered the transaction (a
  non-INVITE server transaction has no timer of its own in Trying, RFC 3261 §17.2.2). Found by
  ``python -m tests.attack.run proxy``: 3 of them 100 s after a run of 4,000 datagrams, each
  holding a slot of ``Limits.max_transactions`` for good.
* A proxy answered 500 (its handler read a To that does not parse: a "handler" fault) where
  RFC 4475 §3.1.2.8 (quotbal, an unbalanced quote in To) wants 400: 763 of the 20,000
  datagrams of a run. A header of the request that does not parse is now 400 (the error's
  status hint) from a handler too, as it is when the stack reads it.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from tests.conftest import corpus_root
from trio_sip.proto.location import LocationService
from trio_sip.proto.message import Response
from trio_sip.proto.parse import parse_message
from trio_sip.proxy import open_proxy
from trio_sip.testing import FakeNetwork

from ..hostile import request

SITE, EVE = "10.0.0.2", "10.0.0.9"


@pytest.mark.parametrize("missing", ["Call-ID", "From"])
@pytest.mark.parametrize("gap", [0.0, 0.05])
async def test_a_cancel_that_cannot_be_answered_leaves_no_transaction(
    autojump_clock: trio.testing.MockClock, missing: str, gap: float
) -> None:
    net = FakeNetwork()
    async with open_proxy(
        [("UDP", SITE, 5060)], domain="fuzz.test", backend=net.backend(SITE),
        credentials={"alice": "secret"}, location_service=LocationService(),
    ) as site:  # fmt: skip
        eve = await net.backend(EVE).open_udp(EVE, 5060)
        dest, src = (SITE, 5060), (EVE, 5060)
        uri = f"sip:serve@{SITE}:5060".encode()
        invite = request(dest, src).replace(uri, b"sip:alice@fuzz.test")
        await eve.sendto(invite, dest)  # challenged (407): Eve is no one the site knows
        await trio.sleep(gap)
        cancel = request(dest, src, method="CANCEL").replace(uri, b"sip:alice@fuzz.test")
        lines = [ln for ln in cancel.split(b"\r\n") if not ln.startswith(missing.encode())]
        await eve.sendto(b"\r\n".join(lines), dest)
        await trio.sleep(64 * 0.5 + 5)  # every timer of the INVITE has run out
        assert site.stack.statistics().server_transactions == 0
        assert site.stack.faults["unanswerable-request"] == 1


async def test_a_proxy_answers_a_to_that_does_not_parse_with_400(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    async with open_proxy(
        [("UDP", SITE, 5060)], domain="fuzz.test", backend=net.backend(SITE),
        location_service=LocationService(), trusted=[EVE],
    ) as site:  # fmt: skip
        eve = await net.backend(EVE).open_udp(EVE, 5060)
        quotbal = (corpus_root() / "rfc4475" / "quotbal.dat").read_bytes()
        await eve.sendto(quotbal.replace(b"192.0.2.59:5050", f"{EVE}:5060".encode()), (SITE, 5060))
        with trio.fail_after(5):
            answer = parse_message((await eve.recvfrom())[0])
        assert isinstance(answer, Response) and answer.status_code == 400
        assert site.stack.faults["handler"] == 1
