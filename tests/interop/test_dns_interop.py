"""DnspythonResolver against a real dnsmasq on loopback: A, SRV and NAPTR records, and errors.

dnsmasq (Debian package ``dnsmasq``, installed by the fixture when missing and root) serves a
small zone from its own config on 127.0.0.153 and a free high port; ``--local=/example.test/``
makes it answer NXDOMAIN for unknown names there. Facts: it lower-cases names, rotates the
order of A records, and puts no addresses in the additional section of SRV answers.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import pytest
import trio

from trio_sip.dns import DnsError, DnspythonResolver
from trio_sip.proto.resolve import UriParts

from .peers import assert_loopback, ensure_debian_packages, free_port, running_peer

pytestmark = pytest.mark.interop

ADDRESS = assert_loopback("127.0.0.153")

ZONE = """\
# one proxy name, several A records (and one AAAA), no SRV: the common deployment
host-record=proxy.example.test,127.0.1.1
host-record=proxy.example.test,127.0.1.2
host-record=proxy.example.test,127.0.1.3
host-record=proxy.example.test,::1
# SRV without NAPTR: _sip._tcp (preferred to UDP by the client), _sip._udp in two priorities
srv-host=_sip._udp.srv.example.test,a.example.test,5070,10,60
srv-host=_sip._udp.srv.example.test,b.example.test,5080,20,0
srv-host=_sip._tcp.srv.example.test,c.example.test,5090,10,0
host-record=a.example.test,127.0.2.1
host-record=b.example.test,127.0.2.2
host-record=c.example.test,127.0.2.3
# NAPTR: UDP before TCP by order; a SIPS service; an unsupported SCTP one
naptr-record=naptr.example.test,10,50,S,SIP+D2U,,_sip._udp.naptr.example.test
naptr-record=naptr.example.test,20,50,S,SIP+D2T,,_sip._tcp.naptr.example.test
naptr-record=naptr.example.test,30,50,S,SIPS+D2T,,_sips._tcp.naptr.example.test
naptr-record=naptr.example.test,5,50,S,SIP+D2S,,_sip._sctp.naptr.example.test
srv-host=_sip._udp.naptr.example.test,n1.example.test,5060,0,0
srv-host=_sip._tcp.naptr.example.test,n2.example.test,5060,0,0
srv-host=_sips._tcp.naptr.example.test,n3.example.test,5061,0,0
srv-host=_sip._sctp.naptr.example.test,n1.example.test,5060,0,0
host-record=n1.example.test,127.0.3.1
host-record=n2.example.test,127.0.3.2
host-record=n3.example.test,127.0.3.3
# a service decidedly not available
srv-host=_sip._udp.closed.example.test
local=/example.test/
"""


@pytest.fixture(scope="module")
def dnsmasq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    binary = ensure_debian_packages("dnsmasq")["dnsmasq"]
    workdir: Path = tmp_path_factory.mktemp("dnsmasq")
    conf = workdir / "dnsmasq.conf"
    conf.write_text(ZONE)
    port = free_port(ADDRESS)
    argv = [
        binary,
        "--keep-in-foreground",
        f"--conf-file={conf}",
        "--no-resolv",
        "--no-hosts",
        "--bind-interfaces",
        f"--listen-address={ADDRESS}",
        f"--port={port}",
        "--local-ttl=60",
        "--pid-file=",
        "--log-facility=-",
        "--user=root",
    ]

    def answers() -> bool:
        query = dns.message.make_query("proxy.example.test", "A")
        return bool(dns.query.udp(query, ADDRESS, port=port, timeout=0.2).answer)

    with running_peer("dnsmasq", argv, workdir=workdir, ready=answers):
        yield ADDRESS, port


def resolver(server: tuple[str, int], seed: int = 1) -> DnspythonResolver:
    host, port = server
    return DnspythonResolver([host], port=port, timeout=2.0, rng=random.Random(seed))


async def test_one_name_several_addresses(dnsmasq: tuple[str, int]) -> None:
    targets = await resolver(dnsmasq).resolve(UriParts("sip", "proxy.example.test"))
    # No NAPTR, no SRV: every address on UDP 5060, A records (in dnsmasq's order) then AAAA.
    assert {str(t) for t in targets[:3]} == {
        "udp:127.0.1.1:5060",
        "udp:127.0.1.2:5060",
        "udp:127.0.1.3:5060",
    }
    assert str(targets[3]) == "udp:[::1]:5060"
    assert {t.hostname for t in targets} == {"proxy.example.test"}


async def test_explicit_port_and_transport(dnsmasq: tuple[str, int]) -> None:
    uri = UriParts("sip", "PROXY.example.test", 5070, "tcp")
    targets = await resolver(dnsmasq).resolve(uri)
    assert sorted(str(t) for t in targets) == [
        "tcp:127.0.1.1:5070",
        "tcp:127.0.1.2:5070",
        "tcp:127.0.1.3:5070",
        "tcp:[::1]:5070",
    ]


async def test_sips_without_srv_is_tls_on_5061(dnsmasq: tuple[str, int]) -> None:
    targets = await resolver(dnsmasq).resolve(UriParts("sips", "proxy.example.test"))
    assert {(t.transport, t.port) for t in targets} == {("TLS", 5061)}
    assert len(targets) == 4


async def test_srv_without_naptr(dnsmasq: tuple[str, int]) -> None:
    targets = await resolver(dnsmasq).resolve(UriParts("sip", "srv.example.test"))
    assert [str(t) for t in targets] == [
        "tcp:127.0.2.3:5090",  # _sip._tcp asked before _sip._udp
        "udp:127.0.2.1:5070",  # priority 10
        "udp:127.0.2.2:5080",  # priority 20
    ]
    udp_only = await resolver(dnsmasq).resolve(UriParts("sip", "srv.example.test", None, "udp"))
    assert [str(t) for t in udp_only] == ["udp:127.0.2.1:5070", "udp:127.0.2.2:5080"]


async def test_naptr_order(dnsmasq: tuple[str, int]) -> None:
    targets = await resolver(dnsmasq).resolve(UriParts("sip", "naptr.example.test"))
    assert [str(t) for t in targets] == [
        "udp:127.0.3.1:5060",
        "tcp:127.0.3.2:5060",
        "tls:127.0.3.3:5061",
    ]
    secure = await resolver(dnsmasq).resolve(UriParts("sips", "naptr.example.test"))
    assert [str(t) for t in secure] == ["tls:127.0.3.3:5061"]


async def test_missing_name_is_a_clear_error_not_a_timeout(dnsmasq: tuple[str, int]) -> None:
    with trio.fail_after(1.5):  # well under the 2 s lookup timeout
        with pytest.raises(DnsError) as info:
            await resolver(dnsmasq).resolve(UriParts("sip", "nope.example.test"))
    assert info.value.name == "nope.example.test"
    assert not info.value.timed_out
    assert "cannot resolve nope.example.test" in str(info.value)


async def test_srv_dot_means_not_available(dnsmasq: tuple[str, int]) -> None:
    with pytest.raises(DnsError, match=r"closed\.example\.test"):
        await resolver(dnsmasq).resolve(UriParts("sip", "closed.example.test", None, "udp"))


async def test_name_outside_the_zone_is_refused_clearly(dnsmasq: tuple[str, int]) -> None:
    # No upstream: dnsmasq answers REFUSED; still an error naming the name, not a timeout.
    with trio.fail_after(1.5):
        with pytest.raises(DnsError) as info:
            await resolver(dnsmasq).resolve(UriParts("sip", "elsewhere.invalid", 5060))
    assert info.value.name == "elsewhere.invalid"
    assert not info.value.timed_out


async def test_answers_are_cached_for_the_local_ttl(dnsmasq: tuple[str, int]) -> None:
    res = resolver(dnsmasq)
    uri = UriParts("sip", "srv.example.test")
    first = await res.resolve(uri)
    lookups = res.statistics().lookups
    assert await res.resolve(uri) == first
    stats = res.statistics()
    assert stats.lookups == lookups  # all from the cache (--local-ttl=60)
    assert stats.cache_hits >= lookups
