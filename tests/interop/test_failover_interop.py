"""Failover over real UDP and TCP on loopback, with a real DNS server (dnsmasq).

Three proxies (our own ``open_stack`` UASes) share one free port on 127.0.0.2, 127.0.0.3 and
127.0.0.4. dnsmasq (Debian package, started here) serves them as one name with three A
records, as SRV records in three priorities, and behind a NAPTR record for TCP. Faults:

* refused: no stack on that address: UDP gets ICMP port unreachable on the UA's connected
  flow, TCP a RST. The proxy is left on that refusal, before any timeout.
* blackholed: the stack listens, but an nftables rule on the input hook (a table of our own,
  deleted afterwards: tests/interop/faults.py) drops every packet to it. The proxy is left at
  the transaction timeout (1000 ms here; for TCP the connect is bounded by it).

Times on these real sockets are checked for order and with generous bounds: never before a
timeout, and under 10x what is expected. The exact schedules are asserted in virtual time
(tests/shell/test_failover*.py, tests/test_docs_timelines.py); how long a refusal really
takes (target: 100 ms) is reported by ``python -m benchmarks failover``.
"""

from __future__ import annotations

import random
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import dns.message
import dns.query
import pytest
import trio

from trio_sip.dns import DnspythonResolver
from trio_sip.errors import TransactionTimeoutError
from trio_sip.failover import Attempt, FailoverClient
from trio_sip.proto.message import Request
from trio_sip.proto.retry import RequestKind
from trio_sip.proto.target import Target
from trio_sip.proto.timers import TimerConfig
from trio_sip.stack import IncomingRequest, open_stack

from .faults import blackhole
from .peers import assert_loopback, ensure_debian_packages, free_port, running_peer

pytestmark = pytest.mark.interop

DNS = assert_loopback("127.0.0.154")
UA = "127.0.0.1"
PROXIES = tuple(assert_loopback(f"127.0.0.{i}") for i in (2, 3, 4))
TIMEOUT_MS = 1000
TIMEOUT = TIMEOUT_MS / 1000


def common_port() -> int:
    """A port free for UDP and TCP on all three proxy addresses."""
    for _ in range(50):
        port = free_port(PROXIES[0])
        if all(free_port_is(host, port) for host in PROXIES[1:]):
            return port
    raise RuntimeError("no common free port")


def free_port_is(host: str, port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                return False
    return True


def zone(port: int) -> str:
    p1, p2, p3 = PROXIES
    return f"""\
host-record=proxy.failover.test,{p1}
host-record=proxy.failover.test,{p2}
host-record=proxy.failover.test,{p3}
host-record=p1.failover.test,{p1}
host-record=p2.failover.test,{p2}
host-record=p3.failover.test,{p3}
srv-host=_sip._udp.srv.failover.test,p1.failover.test,{port},10,0
srv-host=_sip._udp.srv.failover.test,p2.failover.test,{port},20,0
srv-host=_sip._udp.srv.failover.test,p3.failover.test,{port},30,0
naptr-record=naptr.failover.test,10,50,S,SIP+D2T,,_sip._tcp.naptr.failover.test
srv-host=_sip._tcp.naptr.failover.test,p1.failover.test,{port},10,0
srv-host=_sip._tcp.naptr.failover.test,p2.failover.test,{port},20,0
srv-host=_sip._tcp.naptr.failover.test,p3.failover.test,{port},30,0
local=/failover.test/
"""


@pytest.fixture(scope="module")
def port() -> int:
    return common_port()


@pytest.fixture(scope="module")
def dnsmasq(tmp_path_factory: pytest.TempPathFactory, port: int) -> Iterator[tuple[str, int]]:
    binary = ensure_debian_packages("dnsmasq")["dnsmasq"]
    workdir: Path = tmp_path_factory.mktemp("dnsmasq-failover")
    conf = workdir / "dnsmasq.conf"
    conf.write_text(zone(port))
    dns_port = free_port(DNS)
    argv = [
        binary,
        "--keep-in-foreground",
        f"--conf-file={conf}",
        "--no-resolv",
        "--no-hosts",
        "--bind-interfaces",
        f"--listen-address={DNS}",
        f"--port={dns_port}",
        "--local-ttl=60",
        "--pid-file=",
        "--log-facility=-",
        "--user=root",
    ]

    def answers() -> bool:
        query = dns.message.make_query("proxy.failover.test", "A")
        return bool(dns.query.udp(query, DNS, port=dns_port, timeout=0.2).answer)

    with running_peer("dnsmasq", argv, workdir=workdir, ready=answers):
        yield DNS, dns_port


def make_request(method: str, host: str) -> Request:
    return Request(
        method,
        f"sip:bob@{host}",
        [
            ("Max-Forwards", "70"),
            ("From", "<sip:alice@failover.test>;tag=a1"),
            ("To", "<sip:bob@failover.test>"),
            ("Call-ID", f"fo-{random.getrandbits(48):x}"),
            ("CSeq", f"1 {method}"),
            ("Contact", f"<sip:alice@{UA}>"),
        ],
    )


async def answer(incoming: IncomingRequest) -> None:
    if incoming.method == "INVITE":
        await incoming.respond(180)
    await incoming.respond(200)


@asynccontextmanager
async def proxies_and_ua(
    port: int, dns_server: tuple[str, int], *, listening: tuple[int, ...]
) -> AsyncIterator[FailoverClient]:
    """UAS stacks on the proxies numbered in ``listening`` (the others refuse), and a UA."""
    async with AsyncExitStack() as stack:
        for i in listening:
            await stack.enter_async_context(
                open_stack([("UDP", PROXIES[i], port), ("TCP", PROXIES[i], port)], handler=answer)
            )
        ua = await stack.enter_async_context(
            open_stack(
                [("UDP", UA, 0), ("TCP", UA, 0)],
                timer_config=TimerConfig(sip_transaction_timeout=TIMEOUT_MS),
            )
        )
        host, dns_port = dns_server
        resolver = DnspythonResolver([host], port=dns_port, timeout=2.0)
        yield FailoverClient(ua, resolver=resolver)


def durations(attempts: tuple[Attempt, ...], end: float) -> list[float]:
    starts = [a.started for a in attempts]
    return [b - a for a, b in zip(starts, [*starts[1:], end], strict=True)]


async def test_udp_a_records_refused_and_blackholed(port: int, dnsmasq: tuple[str, int]) -> None:
    # p1 refuses (nothing listens), p2 listens behind a black hole, p3 answers. dnsmasq
    # rotates A records, so the order varies; each fault must cost what it should.
    with blackhole(("UDP", PROXIES[1], port)), trio.fail_after(40):
        async with proxies_and_ua(port, dnsmasq, listening=(1, 2)) as client:
            destination = f"sip:proxy.failover.test:{port}"
            targets = await client.targets(destination)
            assert sorted(t.host for t in targets) == list(PROXIES)
            # p3 failed a minute ago, so it comes last and both faults are met first.
            client.blacklist.failed(Target("UDP", PROXIES[2], port), trio.current_time() - 60)
            async with client.invite(make_request("INVITE", "failover.test"), destination) as att:
                statuses = [r.status_code async for r in att]
            end = trio.current_time()
            assert statuses == [180, 200]
            assert att.target.host == PROXIES[2]
            hosts = [a.target.host for a in att.attempts]
            assert sorted(hosts[:2]) == [PROXIES[0], PROXIES[1]]  # in dnsmasq's order
            took = dict(zip(hosts, durations(att.attempts, end), strict=True))
            outcome = {a.target.host: a.outcome or "" for a in att.attempts}
            # Refused: left on the ICMP error, before any timeout could fire.
            assert "refused" in outcome[PROXIES[0]] and took[PROXIES[0]] < TIMEOUT
            # Blackholed: one attempt (the list above), a whole timeout, never less.
            assert outcome[PROXIES[1]] == "timeout"
            assert TIMEOUT <= took[PROXIES[1]] < 10 * TIMEOUT
            # The next request goes straight to the live proxy.
            result = await client.request(make_request("OPTIONS", "failover.test"), destination)
            assert [a.target.host for a in result.attempts] == [PROXIES[2]]


async def test_udp_srv_refused_is_left_at_once(port: int, dnsmasq: tuple[str, int]) -> None:
    with trio.fail_after(40):
        async with proxies_and_ua(port, dnsmasq, listening=(1, 2)) as client:
            destination = "sip:srv.failover.test"
            assert [t.host for t in await client.targets(destination)] == list(PROXIES)
            await client.targets(destination)  # DNS answers are cached from here on
            start = trio.current_time()
            result = await client.request(make_request("OPTIONS", "srv.failover.test"), destination)
            assert result.response.status_code == 200
            assert [a.target.host for a in result.attempts] == [PROXIES[0], PROXIES[1]]
            assert result.attempts[0].outcome is not None
            assert "refused" in result.attempts[0].outcome
            assert trio.current_time() - start < TIMEOUT  # no timeout was waited for


async def test_tcp_naptr_reset_then_blackhole(port: int, dnsmasq: tuple[str, int]) -> None:
    # NAPTR -> _sip._tcp SRV in priority order p1, p2, p3: p1 resets, p2's SYN is dropped.
    with blackhole(("TCP", PROXIES[1], port)), trio.fail_after(40):
        async with proxies_and_ua(port, dnsmasq, listening=(1, 2)) as client:
            destination = "sip:naptr.failover.test"
            targets = await client.targets(destination)
            assert [(t.transport, t.host) for t in targets] == [("TCP", h) for h in PROXIES]
            async with client.invite(
                make_request("INVITE", "naptr.failover.test"), destination
            ) as att:
                statuses = [r.status_code async for r in att]
            end = trio.current_time()
            assert statuses == [180, 200]
            assert [a.target.host for a in att.attempts] == list(PROXIES)
            reset, dropped, _ = durations(att.attempts, end)
            first, second, _ = (a.outcome or "" for a in att.attempts)
            assert "refused" in first and reset < TIMEOUT  # the RST, before any timeout
            assert second == "timeout" and TIMEOUT <= dropped < 10 * TIMEOUT


async def test_bye_cycles_through_black_holes(port: int, dnsmasq: tuple[str, int]) -> None:
    # Every proxy blackholed; the BYE's 32 s window began 29 s ago (say, on the 2xx path):
    # it cycles p1, p2, p3 at the timeout's pace and gives up when the window is over.
    drops = [("UDP", host, port) for host in PROXIES]
    with blackhole(*drops), trio.fail_after(40):
        async with proxies_and_ua(port, dnsmasq, listening=(0, 1, 2)) as client:
            destination = "sip:srv.failover.test"
            await client.targets(destination)
            start = trio.current_time()
            with pytest.raises(TransactionTimeoutError):
                await client.request(
                    make_request("BYE", "srv.failover.test"),
                    destination,
                    kind=RequestKind.BYE,
                    first_attempt_at=start - 29.0,
                )
            # The window's last 3 s: p1, p2, p3 one timeout each, then no fourth attempt.
            assert 3 * TIMEOUT <= trio.current_time() - start < 10 * 3 * TIMEOUT
            stats = client.blacklist.statistics(trio.current_time())
            assert sorted(e.key[1] for e in stats.entries) == list(PROXIES)
            assert [e.failures for e in stats.entries] == [1, 1, 1]
