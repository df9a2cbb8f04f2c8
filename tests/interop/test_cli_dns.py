"""``trio-sip register`` and ``trio-sip call`` with ``--dns-server``, against dnsmasq.

dnsmasq (Debian package, started here on 127.0.0.156) is the only DNS that knows the domain
``cli.test``: an SRV record sends ``_sip._udp.cli.test`` to ``site.cli.test`` on a port that is
not 5060, and ``site.cli.test`` has an A record for 127.0.0.21, where an embedded site
(open_proxy) listens. The system resolver has never heard of ``cli.test`` and nothing listens
on 5060 there, so a registration or a call that works went through ``--dns-server``, SRV port
included; dnsmasq's query log shows the lookups. (Nothing here asks the system resolver: that
would leave loopback.)
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import pytest
import trio

from trio_sip.cli import main
from trio_sip.proto.location import LocationService
from trio_sip.proxy import open_proxy
from trio_sip.ua import open_user_agent

from .peers import PeerProcess, assert_loopback, ensure_debian_packages, free_port, running_peer

pytestmark = pytest.mark.interop

DNS = assert_loopback("127.0.0.156")
SITE = assert_loopback("127.0.0.21")
DOMAIN = "cli.test"


def zone(port: int) -> str:
    return f"""\
host-record=site.{DOMAIN},{SITE}
srv-host=_sip._udp.{DOMAIN},site.{DOMAIN},{port},10,0
local=/{DOMAIN}/
"""


@pytest.fixture(scope="module")
def site_port() -> int:
    port = free_port(SITE)
    assert port != 5060
    return port


@pytest.fixture(scope="module")
def dnsmasq(
    tmp_path_factory: pytest.TempPathFactory, site_port: int
) -> Iterator[tuple[str, PeerProcess]]:
    binary = ensure_debian_packages("dnsmasq")["dnsmasq"]
    workdir: Path = tmp_path_factory.mktemp("dnsmasq-cli")
    conf = workdir / "dnsmasq.conf"
    conf.write_text(zone(site_port))
    dns_port = free_port(DNS)
    argv = [
        binary, "--keep-in-foreground", f"--conf-file={conf}", "--no-resolv", "--no-hosts",
        "--bind-interfaces", f"--listen-address={DNS}", f"--port={dns_port}",
        "--local-ttl=60", "--pid-file=", "--log-facility=-", "--log-queries", "--user=root",
    ]  # fmt: skip

    def answers() -> bool:
        query = dns.message.make_query(f"site.{DOMAIN}", "A")
        return bool(dns.query.udp(query, DNS, port=dns_port, timeout=0.2).answer)

    with running_peer("dnsmasq", argv, workdir=workdir, ready=answers) as peer:
        yield f"{DNS}:{dns_port}", peer


async def test_register_and_call_by_domain_through_dns_server(
    dnsmasq: tuple[str, PeerProcess], site_port: int
) -> None:
    dns_server, peer = dnsmasq
    location = LocationService()
    async with (
        open_proxy([("UDP", SITE, site_port)], domain=DOMAIN, location_service=location) as site,
        open_user_agent([("UDP", "127.0.0.1", 0)], aor=f"sip:bob@{DOMAIN}") as bob,
        trio.open_nursery() as nursery,
    ):
        assert site.address[:2] == (SITE, site_port)
        bob_port = bob.stack.listening[0][1][1]
        location.add_static(f"sip:bob@{DOMAIN}", f"sip:bob@127.0.0.1:{bob_port}")
        invites: list[tuple[str, int | None]] = []

        async def answer() -> None:
            async for incoming in bob.incoming_calls():
                via = incoming.request.vias[0]  # the hop that sent it to Bob: the site
                invites.append((via.host, via.port))
                await incoming.accept()

        nursery.start_soon(answer)
        common = ["--server", DOMAIN, "--dns-server", dns_server, "--transaction-timeout-ms",
                  "2000"]  # fmt: skip

        out = io.StringIO()
        argv = ["register", "--user", f"alice@{DOMAIN}", "--once", *common]
        with trio.fail_after(20):
            status = await trio.to_thread.run_sync(main, argv, out)
        assert status == 0, out.getvalue()
        assert f"[{DOMAIN}] registering -> REGISTERED  (200 OK)" in out.getvalue()
        assert "all 1 connections registered" in out.getvalue()

        out = io.StringIO()
        argv = ["call", f"sip:bob@{DOMAIN}", "--user", f"alice@{DOMAIN}", "--hangup-after",
                "0.1", *common]  # fmt: skip
        with trio.fail_after(20):
            status = await trio.to_thread.run_sync(main, argv, out)
        text = out.getvalue()
        assert status == 0, text
        assert f"on {DOMAIN}: ANSWERED (200 OK)" in text, text
        assert invites == [(SITE, site_port)]  # the call went through the SRV target
        nursery.cancel_scope.cancel()
    log = peer.log_tail(200)
    assert f"query[SRV] _sip._udp.{DOMAIN}" in log, log
    assert f"query[A] site.{DOMAIN}" in log, log
