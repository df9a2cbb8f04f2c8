"""DNS by default: a host name works in ``ua.call``, ``ua.register`` and an endpoint's
connection without building a resolver (RFC 3263 with dnspython and the system's
configuration, or ``$TRIO_SIP_DNS_SERVER``: docs/resolution.md).

The lookups go to a small DNS server on a loopback UDP port (dnspython builds its answers), so
the default suite needs no network; tests/interop/test_dns_interop.py does the same against
dnsmasq.
"""

from __future__ import annotations

import re

import dns.message
import dns.rcode
import dns.rdatatype
import dns.resolver
import dns.rrset
import pytest
import trio

from trio_sip import (
    ConfigError,
    ConnectionConfig,
    DnspythonResolver,
    EndpointConfig,
    open_endpoint,
    open_proxy,
    open_user_agent,
)
from trio_sip.dns import DNS_SERVER_ENV, default_resolver
from trio_sip.proto.location import LocationService

LOOP = "127.0.0.1"


class DnsServer:
    """Answers A queries for ``names`` (NXDOMAIN for others, no data for other types)."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names
        self.queries: list[tuple[str, str]] = []
        self.port = 0

    async def serve(self, *, task_status: trio.TaskStatus[None]) -> None:
        with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as sock:
            await sock.bind((LOOP, 0))
            self.port = sock.getsockname()[1]
            task_status.started()
            while True:
                data, peer = await sock.recvfrom(4096)
                query = dns.message.from_wire(data)
                question = query.question[0]
                name = question.name.to_text(omit_final_dot=True).lower()
                self.queries.append((dns.rdatatype.to_text(question.rdtype), name))
                response = dns.message.make_response(query)
                if name not in self.names:
                    response.set_rcode(dns.rcode.NXDOMAIN)
                elif question.rdtype == dns.rdatatype.A:
                    answer = dns.rrset.from_text(question.name, 60, "IN", "A", self.names[name])
                    response.answer.append(answer)
                await sock.sendto(response.to_wire(), peer)


def test_the_default_is_dnspython_with_the_systems_configuration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(DNS_SERVER_ENV, raising=False)
    resolver = default_resolver()
    assert isinstance(resolver, DnspythonResolver)
    system = dns.resolver.Resolver(configure=True)  # what resolv.conf says
    assert resolver._resolver.nameservers == system.nameservers
    assert resolver._resolver.port == system.port

    monkeypatch.setenv(DNS_SERVER_ENV, "127.0.0.2:5353")
    resolver = default_resolver()
    assert isinstance(resolver, DnspythonResolver)
    assert (resolver._resolver.nameservers, resolver._resolver.port) == (["127.0.0.2"], 5353)
    monkeypatch.setenv(DNS_SERVER_ENV, "127.0.0.2:x")
    with pytest.raises(ConfigError, match=re.escape("TRIO_SIP_DNS_SERVER='127.0.0.2:x' is not")):
        default_resolver()


async def test_a_user_agent_without_a_resolver_uses_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(DNS_SERVER_ENV, raising=False)
    async with open_user_agent(aor="sip:alice@example.com") as ua:
        resolver = ua.failover.resolver
        assert isinstance(resolver, DnspythonResolver)
        assert resolver._resolver.nameservers == dns.resolver.Resolver().nameservers


async def test_host_names_in_call_register_and_endpoint_resolve_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = DnsServer({"bob.example.test": LOOP, "registrar.example.test": LOOP})
    location = LocationService()
    async with (
        trio.open_nursery() as nursery,
        open_user_agent(aor="sip:bob@example.test") as bob,
        open_proxy(
            [("UDP", LOOP, 0)], domain="example.test", location_service=location
        ) as registrar,
    ):
        await nursery.start(server.serve)
        monkeypatch.setenv(DNS_SERVER_ENV, f"{LOOP}:{server.port}")
        bob_port = bob.stack.listening[0][1][1]
        site_port = registrar.address[1]

        async def answer() -> None:
            async for incoming in bob.incoming_calls():
                await incoming.accept()

        nursery.start_soon(answer)
        with trio.fail_after(20):
            async with open_user_agent(aor="sip:alice@example.test") as alice:
                async with alice.call(f"sip:bob@bob.example.test:{bob_port}") as call:
                    await call.wait_answered()
                reg = await alice.register(f"sip:registrar.example.test:{site_port}", expires=60)
                await reg.wait_registered()
                assert location.lookup("sip:alice@example.test", trio.current_time())

            config = EndpointConfig(
                connections=[
                    ConnectionConfig(
                        id="site", user="carol@example.test", expires=60,
                        server=f"registrar.example.test:{site_port}",
                    )
                ]
            )  # fmt: skip
            async with open_endpoint(config) as carol:
                await carol.wait_registered()
                assert location.lookup("sip:carol@example.test", trio.current_time())
        nursery.cancel_scope.cancel()
    # Each name was looked up in DNS (A records: the port was given, RFC 3263 §4.2).
    assert ("A", "bob.example.test") in server.queries
    assert ("A", "registrar.example.test") in server.queries
