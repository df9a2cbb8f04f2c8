"""What the stack does by itself (docs/stack.md), in virtual time on the in-memory network: a
handler that returns without answering gets a 500 sent for it; a request with no usable Via is
dropped and counted."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trio_sip.stack import IncomingRequest
from trio_sip.testing import FakeNetwork

from .stack_support import CLIENT, SERVER, make_request, stack_pair


async def test_a_handler_that_returns_without_answering_gets_a_500_sent_for_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def silent(incoming: IncomingRequest) -> None:
        return

    net = FakeNetwork()
    async with stack_pair(net, silent) as (client, server, target):
        response = await client.request(make_request("MESSAGE"), target)
        assert response.status_code == 500
        assert (await client.request(make_request("OPTIONS"), target)).status_code == 500
        assert server.statistics().handlers == 0


async def drop_test(via: str, *, strict: bool) -> None:
    seen: list[IncomingRequest] = []

    async def handler(incoming: IncomingRequest) -> None:
        seen.append(incoming)
        await incoming.respond(200)

    net = FakeNetwork()
    async with stack_pair(net, handler, server_kw={"strict": strict}) as (_client, server, _):
        sock = await net.backend(CLIENT).open_udp(CLIENT, 7000)
        raw = (
            f"OPTIONS sip:bob@{SERVER} SIP/2.0\r\n{via}Max-Forwards: 70\r\n"
            "From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: novia\r\n"
            "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
        await sock.sendto(raw.encode(), (SERVER, 5060))
        await trio.sleep(5)
        assert seen == []
        assert [p for p in net.packets() if p.src[0] == SERVER] == []
        assert server.faults["unanswerable-request"] == 1
        sock.close()


async def test_a_request_over_a_via_transport_we_do_not_have_is_dropped_and_counted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    await drop_test("Via: SIP/2.0/FOO 10.0.0.1:7000;branch=z9hG4bKfoo\r\n", strict=True)


# Was an xfail (a 400 with no Via, IndexError in send_response, the stack's nursery gone):
# fixed on wp-fuzz (stack/_receive.py _reject: no Via, nothing to answer; found by the wire
# fuzzer, tests/data/crashers/wire-cancel-without-via.bin).
@pytest.mark.parametrize("strict", [True, False])
async def test_a_request_without_any_via_is_dropped_and_counted(
    autojump_clock: trio.testing.MockClock, strict: bool
) -> None:
    await drop_test("", strict=strict)
