"""The endpoint over TLS on loopback: a site (open_proxy) listening on TLS with a certificate
from a test CA (trustme, as in test_tcp_tls.py); Alice and Bob register over TLS and Alice
calls Bob through the site; a certificate the endpoint does not trust, or one for another
name, shows in the connection's status reason.

The endpoint takes its TLS settings as ``transport_config`` (a TransportConfig with the client
and server SSL contexts), which it hands to ``open_user_agent`` with its other options.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trustme

from trio_sip.config import ConnectionConfig, EndpointConfig
from trio_sip.endpoint import ConnectionStatus, Endpoint, open_endpoint
from trio_sip.proxy import ProxySite, open_proxy
from trio_sip.transports import TransportConfig

CS = ConnectionStatus
DOMAIN = "tls.example"
HOST = "127.0.0.1"


def tls_config(issuer: trustme.CA, trusted: trustme.CA, *names: str) -> TransportConfig:
    """A certificate for ``names`` from ``issuer``; trusting only ``trusted``'s certificates."""
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    issuer.issue_cert(*names).configure_cert(server)
    client = ssl.create_default_context()
    trusted.configure_trust(client)
    return TransportConfig(server_ssl_context=server, client_ssl_context=client)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@asynccontextmanager
async def tls_site(ca: trustme.CA, *names: str) -> AsyncIterator[ProxySite]:
    async with open_proxy(
        [("TLS", HOST, 0)], domain=DOMAIN, transport_config=tls_config(ca, ca, *names)
    ) as site:
        yield site


def config(user: str, site: ProxySite) -> EndpointConfig:
    host, port = site.address[0], site.address[1]
    return EndpointConfig(
        sip_transaction_timeout=2000,
        connections=[
            ConnectionConfig(
                id="tls", user=f"{user}@{DOMAIN}", server=f"{host}:{port}", transport="TLS",
                reg_interval=60, expires=600,
            )
        ],
    )  # fmt: skip


async def answer_all(endpoint: Endpoint) -> None:
    async for incoming in endpoint.incoming_calls():
        await incoming.accept()


async def test_register_and_call_over_tls(ca: trustme.CA) -> None:
    with trio.fail_after(20):
        async with (
            tls_site(ca, "localhost", HOST) as site,
            open_endpoint(
                config("alice", site), transport_config=tls_config(ca, ca, HOST)
            ) as alice,
            open_endpoint(config("bob", site), transport_config=tls_config(ca, ca, HOST)) as bob,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(answer_all, bob)
            await alice.wait_registered()
            await bob.wait_registered()
            for endpoint in (alice, bob):
                conn = endpoint.connections["tls"]
                assert (conn.status, conn.reason) == (CS.REGISTERED, "200 OK")
                assert conn.registration is not None and conn.registration.target is not None
                assert conn.registration.target.transport == "TLS"
                assert {t for t, _ in endpoint.ua.stack.listening} == {"TLS"}
            async with alice.dial("tls", "bob") as call:
                answer = await call.wait_answered()
                assert answer.status_code == 200
                assert call.connection_id == "tls"
                (bob_call,) = bob.calls
                await call.hangup()
            await bob_call.wait_ended()
            assert bob_call.connection_id == "tls"
            nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("case", "names", "why"),
    [
        ("untrusted CA", ("localhost", HOST), "certificate verify failed"),
        ("another name", ("other.example",), "IP address mismatch"),
    ],
)
async def test_wrong_certificate_shows_in_the_status(
    ca: trustme.CA, case: str, names: tuple[str, ...], why: str
) -> None:
    stranger = trustme.CA()
    issuer = stranger if case == "untrusted CA" else ca
    with trio.fail_after(20):
        async with (
            open_proxy(
                [("TLS", HOST, 0)], domain=DOMAIN, transport_config=tls_config(issuer, ca, *names)
            ) as site,
            open_endpoint(
                config("alice", site), transport_config=tls_config(ca, ca, HOST)
            ) as alice,
        ):
            stream = alice.status_events()
            conn = alice.connections["tls"]
            for _ in range(5):  # registering -> unavailable
                if conn.status is not CS.REGISTERING:
                    break
                await anext(stream)
            assert conn.status is CS.UNAVAILABLE
            assert conn.reason.startswith("transport error: TLS handshake with 127.0.0.1")
            assert why in conn.reason, conn.reason
