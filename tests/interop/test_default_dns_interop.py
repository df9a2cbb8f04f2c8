"""The library's default resolver against a real dnsmasq: ``ua.call``, ``ua.register`` and an
endpoint's connection take plain host names (RFC 3263: NAPTR, then SRV with its port, then A)
with no resolver built by the application.

The system's resolv.conf cannot point at a test server on a shared machine, so the test uses
the documented override, ``$TRIO_SIP_DNS_SERVER`` (docs/resolution.md); the rest of the path
(dnspython, RFC 3263, the failover client) is the default one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import pytest
import trio

from trio_sip import ConnectionConfig, EndpointConfig, open_endpoint, open_proxy, open_user_agent
from trio_sip.dns import DNS_SERVER_ENV
from trio_sip.proto.location import LocationService

from .peers import assert_loopback, ensure_debian_packages, free_port, running_peer

pytestmark = pytest.mark.interop

ADDRESS = assert_loopback("127.0.0.153")
LOOP = "127.0.0.1"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int, int]]:
    """dnsmasq serving SRV records for bob's user agent and for a registrar; yields the DNS
    port, bob's port and the registrar's port."""
    binary = ensure_debian_packages("dnsmasq")["dnsmasq"]
    workdir: Path = tmp_path_factory.mktemp("dnsmasq-default")
    bob_port, site_port, dns_port = free_port(LOOP), free_port(LOOP), free_port(ADDRESS)
    (workdir / "dnsmasq.conf").write_text(
        f"srv-host=_sip._udp.bob.example.test,bobhost.example.test,{bob_port},10,0\n"
        f"srv-host=_sip._udp.sites.example.test,site1.example.test,{site_port},10,0\n"
        f"host-record=bobhost.example.test,{LOOP}\n"
        f"host-record=site1.example.test,{LOOP}\n"
        "local=/example.test/\n"
    )
    argv = [
        binary, "--keep-in-foreground", f"--conf-file={workdir / 'dnsmasq.conf'}",
        "--no-resolv", "--no-hosts", "--bind-interfaces", f"--listen-address={ADDRESS}",
        f"--port={dns_port}", "--local-ttl=60", "--pid-file=", "--log-facility=-",
        "--user=root",
    ]  # fmt: skip

    def answers() -> bool:
        query = dns.message.make_query("bobhost.example.test", "A")
        return bool(dns.query.udp(query, ADDRESS, port=dns_port, timeout=0.2).answer)

    with running_peer("dnsmasq", argv, workdir=workdir, ready=answers):
        yield dns_port, bob_port, site_port


async def test_call_register_and_endpoint_resolve_srv_names_by_default(
    world: tuple[int, int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    dns_port, bob_port, site_port = world
    monkeypatch.setenv(DNS_SERVER_ENV, f"{ADDRESS}:{dns_port}")
    location = LocationService()
    async with (
        trio.open_nursery() as nursery,
        open_user_agent([("UDP", LOOP, bob_port)], aor="sip:bob@bob.example.test") as bob,
        open_proxy(
            [("UDP", LOOP, site_port)], domain="sites.example.test", location_service=location
        ),
    ):

        async def answer() -> None:
            async for incoming in bob.incoming_calls():
                await incoming.accept()

        nursery.start_soon(answer)
        with trio.fail_after(20):
            async with open_user_agent(aor="sip:alice@sites.example.test") as alice:
                async with alice.call("sip:bob@bob.example.test") as call:
                    await call.wait_answered()  # SRV gave bob's port
                reg = await alice.register("sip:sites.example.test", expires=60)
                await reg.wait_registered()
                assert reg.target is not None and reg.target.port == site_port
            config = EndpointConfig(
                connections=[
                    ConnectionConfig(
                        id="site", user="carol@sites.example.test", server="sites.example.test",
                        expires=60,
                    )
                ]
            )  # fmt: skip
            async with open_endpoint(config) as carol:
                await carol.wait_registered()
                assert location.lookup("sip:carol@sites.example.test", trio.current_time())
        nursery.cancel_scope.cancel()
