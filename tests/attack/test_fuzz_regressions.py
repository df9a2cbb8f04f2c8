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
from trio_sip.proto.auth_digest import verify
from trio_sip.proto.location import LocationService
from trio_sip.proto.message import Response
from trio_sip.proto.parse import parse_message
from trio_sip.proxy import open_proxy
from trio_sip.stack import IncomingRequest, open_stack
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


@pytest.mark.parametrize("to_values", [1, 70])
async def test_a_received_written_by_the_sender_does_not_steer_the_answer(
    autojump_clock: trio.testing.MockClock, to_values: int
) -> None:
    """``Via: ...;received=<someone else>`` with the sender's own address as sent-by: the
    answer (a 200, or with 70 To values the 400 of tests/data/crashers/
    wire-forged-received-in-via.bin) goes to the source address, not to the address the
    sender wrote (§18.2.1 stamps ``received`` with the source; §18.2.2 sends there). Found by
    the wire fuzzer's sampled 4xx check: the 400 went to ``[2001:db8::9:255]``, a send fault."""
    net = FakeNetwork()
    victim = "10.0.0.66"

    async def answer(incoming: IncomingRequest) -> None:
        await incoming.respond(200)

    async with open_stack([("UDP", SITE, 5060)], backend=net.backend(SITE), handler=answer):
        eve = await net.backend(EVE).open_udp(EVE, 5060)
        bystander = await net.backend(victim).open_udp(victim, 5060)
        dest, src = (SITE, 5060), (EVE, 5060)
        via = f"SIP/2.0/UDP {EVE}:5060;received={victim};branch=z9hG4bK-forged"
        to = ",".join(["<sip:serve@10.0.0.2>"] * to_values)
        await eve.sendto(request(dest, src, method="OPTIONS", via=via, to=to), dest)
        with trio.fail_after(5):
            answer_data = (await eve.recvfrom())[0]
        response = parse_message(answer_data)
        assert isinstance(response, Response)
        assert response.status_code == (200 if to_values == 1 else 400)
        assert f"received={EVE}".encode() in answer_data
        with trio.move_on_after(5):
            await bystander.recvfrom()
            raise AssertionError("the answer also went to the forged received address")


@pytest.mark.parametrize("method", ["INVITE", "REGISTER"])
async def test_a_trusted_front_forwarding_a_second_via_that_does_not_parse(
    autojump_clock: trio.testing.MockClock, method: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A request from a ``trusted`` front whose second Via (the client below the front, whom
    a failed authentication is charged to) does not parse: it raised ParseError out of
    ``ProxySite.auth_source`` (a traceback in the log; found by the wire fuzzer against a
    proxy/registrar). Now the front itself is charged and the request is answered (a
    challenge: it carries no credentials), with no traceback."""
    net = FakeNetwork()
    async with open_proxy(
        [("UDP", SITE, 5060)], domain="fuzz.test", backend=net.backend(SITE),
        credentials={"alice": "secret"}, location_service=LocationService(), trusted=[EVE],
    ) as site:  # fmt: skip
        eve = await net.backend(EVE).open_udp(EVE, 5060)
        dest, src = (SITE, 5060), (EVE, 5060)
        data = request(dest, src, method=method).replace(
            f"sip:serve@{SITE}:5060".encode(), b"sip:alice@fuzz.test"
        )
        data = data.replace(b"\r\nMax-Forwards", b'\r\nVia: ""\r\nMax-Forwards', 1)
        await eve.sendto(data, dest)
        with trio.fail_after(5):
            answer = parse_message((await eve.recvfrom())[0])
        assert isinstance(answer, Response) and 400 <= answer.status_code < 500
        assert "Traceback" not in caplog.text
        assert site.stack.statistics().faults == site.stack.faults["rejected-request"]


def test_a_digest_response_with_non_ascii_characters_is_wrong_not_a_crash() -> None:
    """``hmac.compare_digest`` raises TypeError on a str with non-ASCII characters: a digest
    ``response`` with such characters (UTF-8 on the wire) raised out of the registrar (a
    traceback; found by the wire fuzzer). It is compared as octets now, and is simply wrong.
    (The proxy's branch MAC and Record-Route token compare as octets too, though the parser
    lets no such character into a Via or URI parameter.)"""
    wrong = '"\u00e9\u00e9\u00e9\u00e9"'
    assert not verify(
        f'Digest username="alice", realm="fuzz.test", nonce="n1", uri="sip:fuzz.test", '
        f"response={wrong}",
        "REGISTER",
        "secret",
    )
