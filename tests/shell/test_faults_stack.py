"""Fault isolation of the transaction layer (trio_sip/_faults.py), in virtual time.

What is answered (a 400 with what can be copied, a 500 where the transaction can still take
one), what is dropped, what is counted (``stack.faults``) and logged (once per kind per
interval, no traceback per datagram), and the strict mode that makes bugs fail the tests.
"""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

from trio_sip._faults import STRICT_ENV, Faults
from trio_sip.proto.errors import RemoteProtocolError
from trio_sip.proto.message import Request, Response
from trio_sip.proto.parse import parse_message
from trio_sip.stack import IncomingRequest, open_stack
from trio_sip.testing import FakeNetwork
from trio_sip.transports import Flow

from ..hostile import request

SERVER, EVE = "10.0.0.2", "10.0.0.9"

BAD_VIA_RESPONSE = (
    b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP\r\nTo: <sip:a@h>;tag=1\r\nFrom: <sip:b@h>;tag=2\r\n"
    b"Call-ID: stray@h\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
)


async def ok(incoming: IncomingRequest) -> None:
    await incoming.respond(200)


def answers(net: FakeNetwork) -> list[Response]:
    out = []
    for packet in net.packets(transport="UDP"):
        if packet.src[0] == SERVER:
            message = parse_message(packet.data)
            assert isinstance(message, Response)
            out.append(message)
    return out


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.exc_info]


async def test_missing_call_id_gets_400_with_what_can_be_copied(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    net = FakeNetwork()
    async with open_stack([("UDP", SERVER, 5060)], backend=net.backend(SERVER), handler=ok) as st:
        eve = await net.backend(EVE).open_udp(EVE, 5060)
        await eve.sendto(request((SERVER, 5060), (EVE, 5060), call_id=None), (SERVER, 5060))
        # No usable Via (no host): nothing can route an answer, so nothing is sent.
        bad_via = request((SERVER, 5060), (EVE, 5060), via="SIP/2.0/UDP", call_id=None)
        await eve.sendto(bad_via, (SERVER, 5060))
        await trio.sleep(1)
        (answer,) = answers(net)
        assert answer.status_code == 400
        assert answer.vias[0].branch == "z9hG4bK-hostile-1"
        assert answer.to.tag and answer.from_.tag == "eve1" and answer.cseq.seq == 1
        assert answer.headers.get("Call-ID") is None
        assert st.faults["rejected-request"] == 1
        assert st.statistics().server_transactions == 0
    assert tracebacks(caplog) == []


async def test_bad_responses_are_counted_and_logged_once_per_interval(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """100 stray responses with a Via that does not parse: dropped, counted, two log lines
    (the first one at once, a summary after the interval), no traceback."""
    caplog.set_level(logging.INFO, logger="trio_sip")
    net = FakeNetwork()
    async with open_stack([("UDP", SERVER, 5060)], backend=net.backend(SERVER)) as stack:
        eve = await net.backend(EVE).open_udp(EVE, 5060)
        for _ in range(100):
            await eve.sendto(BAD_VIA_RESPONSE, (SERVER, 5060))
            await trio.sleep(0.1)
        lines = [r.getMessage() for r in caplog.records if "malformed-response" in r.getMessage()]
        assert len(lines) == 1 and "[1 so far]" in lines[0]
        await trio.sleep(60)
        lines = [r.getMessage() for r in caplog.records if "malformed-response" in r.getMessage()]
        assert len(lines) == 2
        assert "99 more in the last 60 s [100 so far]" in lines[1]
        assert stack.faults.counts == {"malformed-response": 100}
        assert stack.statistics().faults == 100
        assert answers(net) == []
    assert tracebacks(caplog) == []


async def test_handler_error_after_a_final_response_sends_nothing_more(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The 500 respects what was sent: a handler that answered 200, then raised, adds nothing."""
    net = FakeNetwork()

    async def answer_then_fail(incoming: IncomingRequest) -> None:
        await incoming.respond(200)
        raise RemoteProtocolError("a header read after answering was malformed")

    async with open_stack(
        [("UDP", SERVER, 5060)], backend=net.backend(SERVER), handler=answer_then_fail
    ) as stack:
        eve = await net.backend(EVE).open_udp(EVE, 5060)
        await eve.sendto(request((SERVER, 5060), (EVE, 5060), method="OPTIONS"), (SERVER, 5060))
        await trio.sleep(1)
        assert [r.status_code for r in answers(net)] == [200]
        assert stack.faults["handler"] == 1


async def test_strict_mode_fails_the_stack_with_a_bug(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()

    async def buggy(incoming: IncomingRequest) -> None:
        raise ZeroDivisionError("a bug")

    with pytest.raises(ZeroDivisionError):
        async with open_stack(
            [("UDP", SERVER, 5060)], backend=net.backend(SERVER), handler=buggy, strict=True
        ):
            eve = await net.backend(EVE).open_udp(EVE, 5060)
            invite = request((SERVER, 5060), (EVE, 5060), method="OPTIONS")
            await eve.sendto(invite, (SERVER, 5060))
            await trio.sleep(10)


async def test_strict_mode_counts_a_peers_fault_without_raising(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A SipError (what a peer can cause) is never raised, strict or not."""
    net = FakeNetwork()

    async def picky(incoming: IncomingRequest) -> None:
        raise RemoteProtocolError("the peer's header is malformed")

    async with open_stack(
        [("UDP", SERVER, 5060)], backend=net.backend(SERVER), handler=picky, strict=True
    ) as stack:
        eve = await net.backend(EVE).open_udp(EVE, 5060)
        await eve.sendto(request((SERVER, 5060), (EVE, 5060), method="OPTIONS"), (SERVER, 5060))
        await trio.sleep(1)
        assert stack.faults["handler"] == 1
    # The peer's fault: 400, as when the stack reads the header.
    assert [r.status_code for r in answers(net)] == [400]


@pytest.mark.parametrize("strict", [False, True])
async def test_a_failing_on_stray_hook(
    strict: bool, autojump_clock: trio.testing.MockClock
) -> None:
    """Not strict: counted, the stack serves on. Strict: the bug fails the stack."""
    net = FakeNetwork()

    def hook(message: Request | Response, flow: Flow) -> None:
        raise KeyError("hook bug")

    stray = BAD_VIA_RESPONSE.replace(b"Via: SIP/2.0/UDP", b"Via: SIP/2.0/UDP h;branch=z9hG4bKs")
    with pytest.raises(KeyError) if strict else trio.CancelScope():
        async with open_stack(
            [("UDP", SERVER, 5060)],
            backend=net.backend(SERVER),
            handler=ok,
            on_stray=hook,
            strict=strict,
        ) as stack:
            eve = await net.backend(EVE).open_udp(EVE, 5060)
            await eve.sendto(stray, (SERVER, 5060))
            await trio.sleep(1)
            assert stack.faults["stray-hook"] == 1
            options = request((SERVER, 5060), (EVE, 5060), method="OPTIONS")
            await eve.sendto(options, (SERVER, 5060))
            await trio.sleep(1)
            assert [r.status_code for r in answers(net)] == [200]


async def test_a_500_that_cannot_be_built_drops_the_transaction(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A To the response builder refuses (a bare CR): no 500 can be made. The parser now
    refuses a bare CR in the header section (400 when the lines a response copies are usable,
    else nothing), so such a request never reaches the stack: no transaction is created, none
    waits forever."""
    net = FakeNetwork()

    async def silent(incoming: IncomingRequest) -> None:
        return

    async with open_stack(
        [("UDP", SERVER, 5060)], backend=net.backend(SERVER), handler=silent, check_requests=False
    ) as stack:
        eve = await net.backend(EVE).open_udp(EVE, 5060)
        invite = request((SERVER, 5060), (EVE, 5060), to='"a\rb" <sip:x@h>')
        await eve.sendto(invite, (SERVER, 5060))
        await trio.sleep(1)
        assert stack.statistics().server_transactions == 0


def test_strict_mode_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    log = logging.getLogger("test")
    monkeypatch.setenv(STRICT_ENV, "0")
    assert not Faults(log).strict
    monkeypatch.setenv(STRICT_ENV, "1")
    assert Faults(log).strict
    assert not Faults(log, strict=False).strict
    monkeypatch.delenv(STRICT_ENV)
    assert not Faults(log).strict


async def test_faults_summary_then_quiet_then_first_line_again(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A steady flood logs one line per interval; after a quiet interval, the next fault is
    logged at once again."""
    caplog.set_level(logging.INFO, logger="faults-test")
    faults = Faults(logging.getLogger("faults-test"), strict=False, interval=10.0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(faults.serve)
        for _ in range(30):  # 30 s of one fault a second
            faults.record("kind")
            await trio.sleep(1)
        await trio.sleep(25)
        faults.record("kind")
        await trio.sleep(0)
        nursery.cancel_scope.cancel()
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "fault kind [1 so far]",
        "fault kind: 9 more in the last 10 s [10 so far]",
        "fault kind: 10 more in the last 10 s [20 so far]",
        "fault kind: 10 more in the last 10 s [30 so far]",
        "fault kind [31 so far]",
    ]
    assert faults.counts == {"kind": 31} and faults.total == 31
