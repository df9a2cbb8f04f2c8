"""The DNS shell: resolve() over FakeResolver in virtual time, and DnspythonResolver on Trio
against a small in-process DNS server on loopback (dnspython's wire format, real UDP)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Mapping

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
import trio
import trio.testing

from trio_sip.dns import DnsError, DnspythonResolver, parse_dns_server
from trio_sip.proto.errors import ConfigError
from trio_sip.proto.resolve import NaptrRecord, SrvRecord, UriParts
from trio_sip.proto.target import Target
from trio_sip.testing.dns import FakeResolver

PROXY = ["192.0.2.1", "192.0.2.2", "2001:db8::3"]


def scenario(**kwargs: object) -> FakeResolver:
    return FakeResolver(
        {
            "proxy.example.test": PROXY,
            "example.test": [
                NaptrRecord(10, 10, "S", "SIP+D2T", "", "_sip._tcp.example.test"),
                NaptrRecord(20, 10, "S", "SIP+D2U", "", "_sip._udp.example.test"),
            ],
            "_sip._tcp.example.test": [SrvRecord(10, 0, 5070, "tcp.example.test")],
            "_sip._udp.example.test": [SrvRecord(10, 0, 5080, "udp.example.test")],
            "tcp.example.test": ["198.51.100.1"],
            "udp.example.test": ["198.51.100.2"],
        },
        **kwargs,  # type: ignore[arg-type]
    )


async def test_common_deployment_every_address_is_a_target(autojump_clock: object) -> None:
    resolver = scenario()
    targets = await resolver.resolve(UriParts("sip", "proxy.example.test"))
    assert targets == [Target("UDP", h, 5060, "proxy.example.test") for h in PROXY]


async def test_naptr_srv_chain_in_naptr_order(autojump_clock: object) -> None:
    resolver = scenario(latency=0.05)
    start = trio.current_time()
    targets = await resolver.resolve(UriParts("sip", "example.test"))
    assert [str(t) for t in targets] == ["tcp:198.51.100.1:5070", "udp:198.51.100.2:5080"]
    # Three steps (NAPTR, SRV, A/AAAA), each step's lookups concurrent.
    assert trio.current_time() - start == pytest.approx(0.15)


async def test_answers_are_cached_for_their_ttl(autojump_clock: object) -> None:
    resolver = scenario(ttl=60)
    uri = UriParts("sip", "proxy.example.test", 5060)
    await resolver.resolve(uri)
    assert sorted(resolver.lookups) == [("A", "proxy.example.test"), ("AAAA", "proxy.example.test")]
    resolver.set("proxy.example.test", ["192.0.2.9"])
    await trio.sleep(59)
    assert [t.host for t in await resolver.resolve(uri)] == PROXY  # still cached
    assert len(resolver.lookups) == 2
    assert resolver.statistics().cache_hits == 2
    await trio.sleep(1)
    assert [t.host for t in await resolver.resolve(uri)] == ["192.0.2.9"]
    assert len(resolver.lookups) == 4


async def test_zero_ttl_is_never_cached(autojump_clock: object) -> None:
    resolver = scenario(ttl=0)
    uri = UriParts("sip", "proxy.example.test", 5060)
    await resolver.resolve(uri)
    await resolver.resolve(uri)
    assert len(resolver.lookups) == 4


async def test_missing_name_is_a_clear_error_and_negatively_cached(autojump_clock: object) -> None:
    resolver = scenario(negative_ttl=30)
    with pytest.raises(DnsError) as info:
        await resolver.resolve(UriParts("sip", "nope.example.test"))
    assert info.value.name == "nope.example.test"
    assert not info.value.timed_out
    assert "NAPTR nope.example.test" in str(info.value)
    assert "A/AAAA nope.example.test" in str(info.value)
    sent = len(resolver.lookups)
    resolver.set("nope.example.test", ["192.0.2.50"])
    with pytest.raises(DnsError):
        await resolver.resolve(UriParts("sip", "nope.example.test"))
    assert len(resolver.lookups) == sent  # NXDOMAIN remembered
    await trio.sleep(30)
    targets = await resolver.resolve(UriParts("sip", "nope.example.test"))
    assert targets == [Target("UDP", "192.0.2.50", 5060, "nope.example.test")]


async def test_dead_nameserver_fails_after_one_timeout(autojump_clock: object) -> None:
    resolver = scenario(timeout=2.0)
    resolver.unreachable = True
    start = trio.current_time()
    with pytest.raises(DnsError) as info:
        await resolver.resolve(UriParts("sip", "example.test"))
    assert info.value.timed_out
    assert trio.current_time() - start == pytest.approx(2.0)  # not one timeout per step


async def test_numeric_host_needs_no_dns(autojump_clock: object) -> None:
    resolver = scenario()
    resolver.unreachable = True
    assert await resolver.resolve(UriParts("sips", "192.0.2.7")) == [
        Target("TLS", "192.0.2.7", 5061)
    ]
    assert resolver.lookups == []


async def test_families_choose_address_types(autojump_clock: object) -> None:
    resolver = scenario(families=("AAAA", "A"))
    targets = await resolver.resolve(UriParts("sip", "proxy.example.test", 5060))
    assert [t.host for t in targets] == ["2001:db8::3", "192.0.2.1", "192.0.2.2"]
    with pytest.raises(ConfigError):
        FakeResolver(families=("MX",))


def test_parse_dns_server() -> None:
    assert parse_dns_server("127.0.0.9") == ("127.0.0.9", 53)
    assert parse_dns_server("127.0.0.9:5353") == ("127.0.0.9", 5353)
    assert parse_dns_server("[::1]:5353") == ("::1", 5353)
    assert parse_dns_server("::1") == ("::1", 53)
    with pytest.raises(ConfigError, match="dns-server"):
        parse_dns_server("127.0.0.1:http")


# -- DnspythonResolver on a real loopback socket -------------------------------------------

Zone = Mapping[tuple[str, str], list[str]]

ZONE: Zone = {
    ("example.test", "NAPTR"): ['10 50 "S" "SIP+D2U" "" _sip._udp.example.test.'],
    ("_sip._udp.example.test", "SRV"): [
        "20 0 5080 b.example.test.",
        "10 0 5070 a.example.test.",
    ],
    ("a.example.test", "A"): ["127.0.1.1", "127.0.1.2"],
    ("a.example.test", "AAAA"): ["::1"],
    ("b.example.test", "A"): ["127.0.1.3"],
    ("dot.example.test", "SRV"): ["0 0 0 ."],
}


class MiniDns:
    """Answers from ZONE with a fixed TTL; NXDOMAIN for unknown names; counts queries."""

    def __init__(self, zone: Zone, ttl: int) -> None:
        self.zone = zone
        self.ttl = ttl
        self.queries: list[tuple[str, str]] = []
        self.names = {name for name, _ in zone}

    async def serve(self, sock: trio.socket.SocketType) -> None:
        while True:
            data, addr = await sock.recvfrom(4096)
            query = dns.message.from_wire(data)
            response = dns.message.make_response(query)
            question = query.question[0]
            name = question.name.to_text(omit_final_dot=True).lower()
            rdtype = dns.rdatatype.to_text(question.rdtype)
            self.queries.append((rdtype, name))
            if name not in self.names:
                response.set_rcode(dns.rcode.NXDOMAIN)
            elif self.zone.get((name, rdtype)):
                response.answer.append(
                    dns.rrset.from_text(
                        question.name, self.ttl, "IN", rdtype, *self.zone[(name, rdtype)]
                    )
                )
            await sock.sendto(response.to_wire(), addr)


@pytest.fixture
async def mini_dns() -> AsyncIterator[tuple[MiniDns, int]]:
    server = MiniDns(ZONE, ttl=120)
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await sock.bind(("127.0.0.1", 0))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.serve, sock)
        yield server, sock.getsockname()[1]
        nursery.cancel_scope.cancel()
    sock.close()


async def test_dnspython_resolver_follows_naptr_srv_a(
    mini_dns: tuple[MiniDns, int], mock_clock: trio.testing.MockClock
) -> None:
    _, port = mini_dns
    resolver = DnspythonResolver(["127.0.0.1"], port=port, rng=random.Random(1))
    targets = await resolver.resolve(UriParts("sip", "example.test"))
    # SRV priority 10 (a: two A records and one AAAA, A first) before priority 20 (b); the
    # order of the A records inside one answer is the server's.
    assert {str(t) for t in targets[:2]} == {"udp:127.0.1.1:5070", "udp:127.0.1.2:5070"}
    assert [str(t) for t in targets[2:]] == ["udp:[::1]:5070", "udp:127.0.1.3:5080"]
    assert {t.hostname for t in targets} == {"example.test"}
    assert await resolver.naptr("example.test") == [
        NaptrRecord(10, 50, "S", "SIP+D2U", "", "_sip._udp.example.test")
    ]


async def test_dnspython_resolver_caches_for_the_ttl(
    mini_dns: tuple[MiniDns, int], mock_clock: trio.testing.MockClock
) -> None:
    server, port = mini_dns
    resolver = DnspythonResolver.from_address(f"127.0.0.1:{port}")
    uri = UriParts("sip", "a.example.test", 5060)
    await resolver.resolve(uri)
    assert len(server.queries) == 2  # A and AAAA
    mock_clock.jump(119)
    await resolver.resolve(uri)
    assert len(server.queries) == 2
    mock_clock.jump(1)
    await resolver.resolve(uri)
    assert len(server.queries) == 4


async def test_dnspython_resolver_missing_name(
    mini_dns: tuple[MiniDns, int], mock_clock: trio.testing.MockClock
) -> None:
    _, port = mini_dns
    resolver = DnspythonResolver(["127.0.0.1"], port=port)
    with pytest.raises(DnsError, match=r"cannot resolve nope\.example\.test") as info:
        await resolver.resolve(UriParts("sip", "nope.example.test"))
    assert not info.value.timed_out
    with pytest.raises(DnsError, match=r"dot\.example\.test"):
        await resolver.resolve(UriParts("sip", "dot.example.test", None, "udp"))


async def test_dnspython_resolver_silent_server_is_a_timeout() -> None:
    # A bound socket that never answers: a nameserver that is down (real clock, short timeout).
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await sock.bind(("127.0.0.1", 0))
    resolver = DnspythonResolver(["127.0.0.1"], port=sock.getsockname()[1], timeout=0.3)
    with trio.fail_after(5):
        with pytest.raises(DnsError, match=r"within 0\.3 s") as info:
            await resolver.resolve(UriParts("sip", "example.test"))
    assert info.value.timed_out
    assert info.value.name == "example.test"
    sock.close()
