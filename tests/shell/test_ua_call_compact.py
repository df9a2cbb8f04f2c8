"""What an answered incoming call keeps, and what it rebuilds when read.

An incoming call keeps its SDPs as bytes, its 200 as text, its default media as (port, session
id) and its Answered event as a flag (10,000 established calls must fit in 100 MB); these tests
pin that every public attribute still reads as the values on the wire.
"""

from __future__ import annotations

import trio
import trio.testing

from trio_sip.proto.message import Response
from trio_sip.proto.sdp import SessionDescription, parse_sdp
from trio_sip.proto.uri import NameAddress, parse_uri
from trio_sip.testing import FakeNetwork
from trio_sip.ua import Answered, Call, Ended, Held, IncomingCall, Progress, Retrieved

from .test_ua_calls import ALICE, BOB, BOB_URI, answer_next, sent, two_agents


def without_length(response: Response) -> list[tuple[str, str]]:
    return [(n, v) for n, v in response.headers if n.lower() != "content-length"]


async def test_incoming_call_reads_back_what_went_on_the_wire(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    async with two_agents(net) as (alice, bob), trio.open_nursery() as nursery:
        bob_calls: list[Call] = []

        async def answer() -> None:
            bob_calls.append(await answer_next(bob))

        nursery.start_soon(answer)
        async with alice.call(BOB_URI) as call:
            ok = await call.wait_answered()
            theirs = bob_calls[0]
            (_, wire), *_ = sent(net, src=BOB, status=200)
            (_, invite), *_ = sent(net, src=ALICE, method="INVITE")
            # final_response: the 200 as Bob built it (the wire adds Content-Length only)
            final = theirs.final_response
            assert isinstance(final, Response)
            assert (final.status_code, final.reason, final.body) == (200, "OK", wire.body)
            assert final.headers.items() == without_length(wire)
            assert final == theirs.final_response and final is not theirs.final_response
            assert theirs.dialog is not None and final.to.tag == theirs.dialog.id.local_tag
            # the SDPs: the offer Bob received and the answer he sent, parsed
            assert theirs.remote_sdp == parse_sdp(invite.body) == call.local_sdp
            assert theirs.local_sdp == parse_sdp(wire.body) == call.remote_sdp == parse_sdp(ok.body)
            # the first event is the Answered with that 200
            first = await theirs.events.receive()
            assert isinstance(first, Answered) and first.response == final
            await call.hold()
            assert theirs.remote_sdp is not None
            assert theirs.remote_sdp.media_direction(0) == "sendonly"
            assert theirs.local_sdp is not None
            assert theirs.local_sdp.media_direction(0) == "recvonly"
            # Bob's answers to re-offers come from his default media: same origin, version + 1
            before = parse_sdp(wire.body).origin
            assert theirs.local_sdp.origin.session_id == before.session_id
            assert theirs.local_sdp.origin.version == before.version + 1
            await call.retrieve()
            assert theirs.local_sdp.media_direction(0) == "sendrecv"
        await theirs.wait_ended()
        events = [e async for e in theirs.events]
        assert [type(e) for e in events] == [Held, Retrieved, Ended]


async def test_events_read_after_the_call_ended_start_with_answered(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    async with two_agents(net) as (alice, bob), trio.open_nursery() as nursery:
        bob_calls: list[Call] = []

        async def answer() -> None:
            bob_calls.append(await answer_next(bob, ring=False))

        nursery.start_soon(answer)
        async with alice.call(BOB_URI) as call:
            await call.wait_answered()
        theirs = bob_calls[0]
        await theirs.wait_ended()
        events = [e async for e in theirs.events]
        assert [type(e) for e in events] == [Answered, Ended]
        first = events[0]
        assert isinstance(first, Answered) and first.response == theirs.final_response


async def test_offer_set_by_the_application_is_answered_and_kept(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    async with two_agents(net) as (alice, bob), trio.open_nursery() as nursery:
        bob_calls: list[Call] = []
        offers: list[SessionDescription | None] = []

        async def answer() -> None:
            async for incoming in bob.incoming_calls():
                offer = incoming.remote_sdp
                assert offer is not None
                assert incoming.remote_sdp == offer  # parsed once, then the same value
                changed = offer.with_direction("sendonly")
                incoming.remote_sdp = changed
                offers.append(incoming.remote_sdp)
                bob_calls.append(await incoming.accept())
                return

        nursery.start_soon(answer)
        async with alice.call(BOB_URI) as call:
            await call.wait_answered()
            theirs = bob_calls[0]
            assert theirs.remote_sdp is offers[0]  # the application's object, as given
            assert theirs.local_sdp is not None
            assert theirs.local_sdp.media_direction(0) == "recvonly"


async def test_odd_media_address_keeps_sdp_objects(autojump_clock: trio.testing.MockClock) -> None:
    # An address that does not survive writing and parsing (here: a space) makes the agent
    # keep the SDP objects themselves instead of their bytes.
    net = FakeNetwork()
    bob_kw = {"media_address": "media host"}
    async with two_agents(net, bob_kw=bob_kw) as (alice, bob), trio.open_nursery() as nursery:
        bob_calls: list[Call] = []
        incoming_calls: list[IncomingCall] = []

        async def answer() -> None:
            async for incoming in bob.incoming_calls():
                incoming_calls.append(incoming)
                bob_calls.append(await incoming.accept())
                return

        nursery.start_soon(answer)
        async with alice.call(BOB_URI) as call:
            await call.wait_answered()
            local = bob_calls[0].local_sdp
            assert local is not None
            connection = local.connection
            assert connection is not None and connection.address == "media host"


async def test_contact_change_reaches_the_responses(autojump_clock: trio.testing.MockClock) -> None:
    net = FakeNetwork()
    async with two_agents(net) as (alice, bob), trio.open_nursery() as nursery:
        bob.contact = NameAddress(parse_uri(f"sip:bob@{BOB}:5060;ob"))
        nursery.start_soon(answer_next, bob)
        async with alice.call(BOB_URI) as call:
            await call.wait_answered()
        for status in (180, 200):
            (_, response), *_ = sent(net, src=BOB, status=status)
            assert response.headers["Contact"] == f"<sip:bob@{BOB}:5060;ob>"


async def test_outgoing_call_reads_back_what_went_on_the_wire(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # An answered outgoing call keeps its 200 and its unread Progress/Answered as text, and
    # its default SDP as bytes; reading them gives the messages as received.
    net = FakeNetwork()
    async with two_agents(net) as (alice, bob), trio.open_nursery() as nursery:
        nursery.start_soon(answer_next, bob)
        async with alice.call(BOB_URI) as call:
            ok = await call.wait_answered()
            (_, ringing), *_ = sent(net, src=BOB, status=180)
            (_, wire_ok), *_ = sent(net, src=BOB, status=200)
            (_, invite), *_ = sent(net, src=ALICE, method="INVITE")
            assert ok == wire_ok == call.final_response
            assert call.local_sdp == parse_sdp(invite.body)
            assert call.remote_sdp == parse_sdp(wire_ok.body)
            await trio.sleep(40)  # the INVITE transaction is over: the call alone keeps these
            assert call.final_response == wire_ok
            await call.hold()
            assert call.local_sdp is not None
            assert call.local_sdp.media_direction(0) == "sendonly"
            assert call.local_sdp.origin.session_id == parse_sdp(invite.body).origin.session_id
        events = [e async for e in call.events]
        assert [type(e) for e in events] == [Progress, Answered, Held, Ended]
        progress, answered = events[0], events[1]
        assert isinstance(progress, Progress) and progress.response == ringing
        assert isinstance(answered, Answered) and answered.response == wire_ok
