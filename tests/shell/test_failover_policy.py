"""Each row of the failover policy with exact virtual times (10 ms links, 20 ms round trips)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio
import trio.testing

from trio_sip.dns import DnsError
from trio_sip.failover import Attempt
from trio_sip.proto.blacklist import FailureReason
from trio_sip.proto.errors import LocalProtocolError, TransactionTimeoutError, TransportError
from trio_sip.proto.message import Request
from trio_sip.proto.retry import RequestKind
from trio_sip.proto.target import Target
from trio_sip.testing import FakeNetwork

from .failover_support import NAME, PROXIES, UA, cluster, make_request

RTT = 0.02
URI = f"sip:bob@{NAME}"


def blackhole(*indexes: int) -> Callable[[FakeNetwork], None]:
    def configure(net: FakeNetwork) -> None:
        for i in indexes:
            net.partition(UA, PROXIES[i])

    return configure


def refuse(*indexes: int) -> Callable[[FakeNetwork], None]:
    def configure(net: FakeNetwork) -> None:
        for i in indexes:
            net.refuse(PROXIES[i], 5060)

    return configure


def hosts(attempts: tuple[Attempt, ...]) -> list[str]:
    return [a.target.host for a in attempts]


# -- mid-call re-INVITE: once, transparently -------------------------------------------------


async def test_reinvite_moves_on_once(autojump_clock: trio.testing.MockClock) -> None:
    async with cluster(configure=blackhole(0)) as c:
        seen: list[Attempt] = []
        reinvite = make_request("INVITE", seq=2)
        async with c.client.invite(
            reinvite, URI, kind=RequestKind.REINVITE, on_attempt=seen.append
        ) as att:
            responses = [r.status_code async for r in att]
        assert responses == [180, 200]
        assert trio.current_time() == pytest.approx(4.0 + RTT)
        assert hosts(att.attempts) == [PROXIES[0], PROXIES[1]]
        assert hosts(tuple(seen)) == [PROXIES[1]]


async def test_reinvite_double_failure(autojump_clock: trio.testing.MockClock) -> None:
    async with cluster(configure=blackhole(0, 1)) as c:
        with pytest.raises(TransactionTimeoutError):
            async with c.client.invite(make_request("INVITE"), URI, kind=RequestKind.REINVITE) as a:
                async for _ in a:
                    pass
        assert trio.current_time() == 8.0
        assert hosts(a.attempts) == [PROXIES[0], PROXIES[1]]


async def test_invite_408_and_503_fail_over(autojump_clock: trio.testing.MockClock) -> None:
    async with cluster(statuses=(408, 200, 200)) as c:
        async with c.client.invite(make_request("INVITE"), URI) as att:
            responses = [r.status_code async for r in att]
        # The 180 of the first attempt is seen; its 408 is not: the second attempt's 200 is.
        assert responses == [180, 180, 200]
        assert trio.current_time() == pytest.approx(2 * RTT)
        assert [a.outcome for a in att.attempts] == ["408 Request Timeout", "200 OK"]
    async with cluster(statuses=(503, 503, 200)) as c:
        async with c.client.invite(make_request("INVITE"), URI) as att:
            final = [r async for r in att][-1]
        assert final.status_code == 503  # a double failure: the last 503 is the answer
        assert hosts(att.attempts) == [PROXIES[0], PROXIES[1]]
        assert c.proxies[2].received == []


# -- BYE, CANCEL, the 2xx path: cycle until 32 s -----------------------------------------------


async def test_bye_cycles_until_32_s(autojump_clock: trio.testing.MockClock) -> None:
    async with cluster(configure=blackhole(0, 1, 2)) as c:
        with pytest.raises(TransactionTimeoutError):
            await c.client.request(make_request("BYE", call_id="bye-32"), URI, kind=RequestKind.BYE)
        assert trio.current_time() == 32.0
        starts = [p.time for p in c.net.captured if b"Call-ID: bye-32" in p.data]
        first_sends = sorted({t for t in starts if t % 4 == 0})
        assert first_sends == [0.0, 4.0, 8.0, 12.0, 16.0, 20.0, 24.0, 28.0]
        dests = [p.dst[0] for p in c.net.captured if p.time in first_sends]
        assert dests == [PROXIES[i % 3] for i in range(8)]


async def test_bye_single_attempt_with_the_rfc_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with cluster(32000, configure=blackhole(0)) as c:
        with pytest.raises(TransactionTimeoutError):
            await c.client.request(make_request("BYE", call_id="bye-1"), URI, kind=RequestKind.BYE)
        assert trio.current_time() == 32.0
        assert {p.dst[0] for p in c.net.captured if b"Call-ID: bye-1" in p.data} == {PROXIES[0]}


async def test_bye_reaches_the_third_after_two_timeouts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with cluster(configure=blackhole(0, 1)) as c:
        result = await c.client.request(make_request("BYE"), URI, kind=RequestKind.BYE)
        assert result.response.status_code == 200
        assert trio.current_time() == pytest.approx(8.0 + RTT)
        assert hosts(result.attempts) == list(PROXIES)
        assert [a.started for a in result.attempts] == [0.0, 4.0, 8.0]


async def test_bye_window_counts_from_first_attempt_at(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with cluster(configure=blackhole(0, 1, 2)) as c:
        await trio.sleep(20)  # the 2xx path began 20 s ago: 12 s of the window are left
        with pytest.raises(TransactionTimeoutError):
            await c.client.request(
                make_request("BYE"), URI, kind=RequestKind.BYE, first_attempt_at=0.0
            )
        assert trio.current_time() == 32.0


async def test_refusing_targets_cycle_at_the_timeout_pace(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with cluster(configure=refuse(0, 1, 2)) as c:
        with pytest.raises(TransportError):
            await c.client.request(make_request("BYE"), URI, kind=RequestKind.BYE)
        # Rounds of three refusals (one round trip each), a round every 4 s, none after 28 s.
        assert trio.current_time() == pytest.approx(28.0 + 3 * RTT)
        stats = c.client.blacklist.statistics(trio.current_time())
        assert {e.reason for e in stats.entries} == {FailureReason.UNREACHABLE}
        assert [e.failures for e in stats.entries] == [8, 8, 8]


async def test_cancel_cycles_with_its_invite_branch(autojump_clock: trio.testing.MockClock) -> None:
    async with cluster(configure=blackhole(0)) as c:
        via = f"SIP/2.0/UDP {UA}:5060;branch=z9hG4bKinvite1;rport"
        cancel = Request(
            "CANCEL",
            URI,
            [
                ("Via", via),
                ("Max-Forwards", "70"),
                ("From", "<sip:alice@example.test>;tag=a1"),
                ("To", "<sip:bob@example.test>"),
                ("Call-ID", "cancel-1"),
                ("CSeq", "1 CANCEL"),
            ],
        )
        result = await c.client.request(cancel, URI, kind=RequestKind.CANCEL)
        assert result.target.host == PROXIES[1]
        assert result.response.status_code == 481  # p2 knows no such INVITE, but it got it
        assert trio.current_time() == pytest.approx(4.0 + RTT)
        to_p2 = [p.message for p in c.net.captured if p.dst[0] == PROXIES[1]]
        assert [m.vias[0].branch for m in to_p2] == ["z9hG4bKinvite1"]


# -- REGISTER / SUBSCRIBE: no immediate retry --------------------------------------------------


async def test_register_is_not_retried_at_once(autojump_clock: trio.testing.MockClock) -> None:
    async with cluster(configure=blackhole(0)) as c:
        with pytest.raises(TransactionTimeoutError):
            await c.client.request(make_request("REGISTER"), URI, kind=RequestKind.REGISTER)
        assert trio.current_time() == 4.0
        assert all(p.dst[0] == PROXIES[0] for p in c.net.captured)
        # The caller's next reg_interval tick goes elsewhere, thanks to the blacklist.
        await trio.sleep(60)
        result = await c.client.request(make_request("REGISTER"), URI, kind=RequestKind.REGISTER)
        assert result.target.host == PROXIES[1]
        assert len(result.attempts) == 1


async def test_subscribe_refused_is_not_retried(autojump_clock: trio.testing.MockClock) -> None:
    async with cluster(configure=refuse(0)) as c:
        with pytest.raises(TransportError):
            await c.client.request(make_request("SUBSCRIBE"), URI, kind=RequestKind.SUBSCRIBE)
        assert trio.current_time() == pytest.approx(RTT)
        assert c.proxies[1].received == [] and c.proxies[2].received == []


# -- anything else: once; 503 and Retry-After ----------------------------------------------------


async def test_503_retry_after_holds_the_address(autojump_clock: trio.testing.MockClock) -> None:
    async with cluster(statuses=(503, 200, 200)) as c:
        c.proxies[0].headers = [("Retry-After", "120")]
        result = await c.client.request(make_request("MESSAGE"), URI)
        assert result.response.status_code == 200
        assert result.target.host == PROXIES[1]
        assert trio.current_time() == pytest.approx(2 * RTT)
        p1 = c.target(0)
        assert c.client.blacklist.is_held(p1, RTT + 119.9)
        assert not c.client.blacklist.is_held(p1, RTT + 120.1)
        entry = c.client.blacklist.statistics(trio.current_time()).entries[0]
        assert entry.reason is FailureReason.SERVICE_UNAVAILABLE
        assert entry.held_until == pytest.approx(RTT + 120)
        # While held, p1 is last even once p2 and p3 have failed more recently.
        c.client.blacklist.failed(c.target(1), trio.current_time())
        c.client.blacklist.failed(c.target(2), trio.current_time())
        assert [t.host for t in await c.client.targets(URI)] == [PROXIES[1], PROXIES[2], PROXIES[0]]


async def test_other_requests_give_up_after_one_retry(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with cluster(statuses=(503, 503, 200)) as c:
        result = await c.client.request(make_request("OPTIONS"), URI)
        assert result.response.status_code == 503
        assert hosts(result.attempts) == [PROXIES[0], PROXIES[1]]
        assert trio.current_time() == pytest.approx(2 * RTT)
    async with cluster(configure=blackhole(0, 1)) as c:
        start = trio.current_time()
        with pytest.raises(TransactionTimeoutError):
            await c.client.request(make_request("OPTIONS"), URI)
        assert trio.current_time() - start == pytest.approx(8.0)


# -- transports and resolution -----------------------------------------------------------------


async def test_tcp_blackhole_and_reset(autojump_clock: trio.testing.MockClock) -> None:
    def faults(net: FakeNetwork) -> None:
        net.partition(UA, PROXIES[0])  # the SYN goes nowhere
        net.refuse(PROXIES[1], 5060)  # RST

    async with cluster(transport="TCP", configure=faults) as c:
        async with c.client.invite(make_request("INVITE"), f"sip:{NAME};transport=tcp") as att:
            final = [r async for r in att][-1]
        assert final.status_code == 200
        assert hosts(att.attempts) == list(PROXIES)
        assert att.attempts[2].started == pytest.approx(4.0 + RTT)
        # connect (one round trip) then the INVITE and its answers (one round trip)
        assert trio.current_time() == pytest.approx(4.0 + 3 * RTT)


async def test_naptr_srv_order_and_refusal(autojump_clock: trio.testing.MockClock) -> None:
    async with cluster(records="naptr", configure=refuse(0)) as c:
        targets = await c.client.targets(URI)
        assert [(t.transport, t.host, t.port) for t in targets] == [
            ("UDP", h, 5060) for h in PROXIES
        ]
        result = await c.client.request(make_request("OPTIONS"), URI)
        assert result.target.host == PROXIES[1]
        assert trio.current_time() == pytest.approx(2 * RTT)


async def test_destinations(autojump_clock: trio.testing.MockClock) -> None:
    async with cluster() as c:
        # Numeric hosts need no DNS; explicit targets are only reordered.
        assert await c.client.targets(f"sip:bob@{PROXIES[2]}:5070;transport=tcp") == [
            Target("TCP", PROXIES[2], 5070)
        ]
        explicit = [c.target(0), c.target(1)]
        c.client.blacklist.failed(explicit[0], trio.current_time())
        assert await c.client.targets(explicit) == [explicit[1], explicit[0]]
        assert await c.client.targets(explicit[0], transport="tcp") == [
            Target("TCP", PROXIES[0], 5060, NAME)
        ]
        with pytest.raises(DnsError):
            await c.client.request(make_request("OPTIONS"), "sip:bob@nowhere.example.test")
        c.client.resolver = None
        with pytest.raises(DnsError):
            await c.client.targets(URI)
        with pytest.raises(LocalProtocolError):
            await c.client.request(make_request("ACK"), [c.target(0)], kind=RequestKind.INVITE_2XX)


async def test_leaving_early_leaves_nothing_running(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with cluster(configure=blackhole(0, 1)) as c:
        async with c.client.invite(make_request("INVITE"), URI) as att:
            with trio.move_on_after(5.0):
                async for _ in att:
                    pass
            assert att.target.host == PROXIES[1]
        assert c.client.stack.statistics().client_transactions == 0
