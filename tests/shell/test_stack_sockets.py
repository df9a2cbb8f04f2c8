"""The stack over real UDP, TCP and TLS sockets on loopback: our client against our server."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trustme

from trio_sip.proto.errors import TransportError
from trio_sip.proto.message import Request, Response
from trio_sip.proto.target import Target
from trio_sip.stack import Handler, IncomingRequest, Stack, open_stack
from trio_sip.transports import TransportConfig

from .stack_support import Strays, make_ack, make_request

LOOPBACK = "127.0.0.1"
TRANSPORTS = ["UDP", "TCP", "TLS"]


@pytest.fixture(scope="module")
def tls_config() -> TransportConfig:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", LOOPBACK).configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return TransportConfig(server_ssl_context=server, client_ssl_context=client)


@asynccontextmanager
async def pair(
    transport: str,
    tls_config: TransportConfig,
    handler: Handler | None = None,
    *,
    strict: bool | None = None,
    **client_kw: Any,
) -> AsyncIterator[tuple[Stack, Stack, Target, Strays]]:
    strays = Strays()
    async with (
        open_stack(
            [(transport, LOOPBACK, 0)],
            handler=handler,
            transport_config=tls_config,
            on_stray=strays,
            strict=strict,
        ) as server,
        open_stack([(transport, LOOPBACK, 0)], transport_config=tls_config, **client_kw) as client,
    ):
        (_, (host, port)) = server.listening[0]
        yield client, server, Target(transport, host, port), strays


def _host(request: Request, target: Target) -> Request:
    return request.evolve(uri=f"sip:bob@{target.host}:{target.port}")


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_options_and_invite_flows(transport: str, tls_config: TransportConfig) -> None:
    async def handler(incoming: IncomingRequest) -> None:
        if incoming.method == "INVITE":
            await incoming.respond(180)
            if incoming.request.call_id.startswith("busy"):
                await incoming.respond(486)
                return
            await incoming.respond(200, headers=[("Contact", "<sip:bob@127.0.0.1>")])
        else:
            await incoming.respond(200)

    with trio.fail_after(30):
        async with pair(transport, tls_config, handler) as (client, _server, target, strays):
            response = await client.request(_host(make_request("OPTIONS"), target), target)
            assert response.status_code == 200
            via = response.vias[0]
            assert via.transport == transport and via.received == LOOPBACK

            invite = _host(make_request("INVITE", call_id="ok-1"), target)
            statuses = []
            async with client.send_request(invite, target) as tx:
                async for event in tx:
                    assert isinstance(event, Response)
                    statuses.append(event.status_code)
                final = tx.final_response
                assert final is not None
                await client.send_stateless(make_ack(tx.request, final), target)
            assert statuses == [180, 200]
            while not strays.of(Request):  # bounded by the fail_after above
                await trio.sleep(0.01)
            (ack,) = strays.of(Request)
            assert ack.method == "ACK" and ack.to.tag == final.to.tag

            busy = await client.request(
                _host(make_request("INVITE", call_id="busy"), target), target
            )
            assert busy.status_code == 486
            bye = await client.request(_host(make_request("BYE", seq=2), target), target)
            assert bye.status_code == 200
            stats = client.statistics()
            # One connection to the server, reused; over UDP none at all: every datagram
            # leaves from the client's listening socket (one NAT binding).
            assert stats.flows == (0 if transport == "UDP" else 1)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_cancel_and_handler_failure(transport: str, tls_config: TransportConfig) -> None:
    async def handler(incoming: IncomingRequest) -> None:
        if incoming.method == "MESSAGE":
            raise ValueError("broken handler")
        await incoming.respond(180)
        await incoming.wait_cancelled()

    with trio.fail_after(10):
        # strict=False: the handler's ValueError is the point here (strict mode would fail
        # the stack with it, as it should for a bug).
        async with pair(transport, tls_config, handler, strict=False) as (
            client,
            server,
            target,
            _strays,
        ):
            invite = _host(make_request("INVITE"), target)
            async with client.send_request(invite, target) as tx:
                ringing = await tx.__anext__()
                assert isinstance(ringing, Response) and ringing.status_code == 180
                cancelled = await client.request(tx.make_cancel(), target, new_via=False)
                assert cancelled.status_code == 200
                assert (await tx.wait_final()).status_code == 487
            failed = await client.request(_host(make_request("MESSAGE"), target), target)
            assert failed.status_code == 500
            again = await client.request(_host(make_request("MESSAGE"), target), target)
            assert again.status_code == 500  # and the stack still answers
            assert server.statistics().handlers == 0
            assert server.faults["handler"] == 2


async def test_icmp_port_unreachable_fails_udp_transaction_at_once() -> None:
    with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as sock:
        await sock.bind((LOOPBACK, 0))
        port = sock.getsockname()[1]
    # Nothing listens on ``port`` any more: the kernel answers with ICMP port unreachable.
    async with open_stack([("UDP", LOOPBACK, 0)]) as client:
        # A refusal, not Timer F (32 s, far past the 5 s guard); the latency is reported by
        # python -m benchmarks failover and udpbind.
        with trio.fail_after(5), pytest.raises(TransportError, match="refused"):
            await client.request(make_request("OPTIONS"), Target("UDP", LOOPBACK, port))
        assert client.statistics().client_transactions == 0


async def test_tcp_connect_refused() -> None:
    with trio.socket.socket() as sock:
        await sock.bind((LOOPBACK, 0))
        port = sock.getsockname()[1]
    async with open_stack() as client:
        with trio.fail_after(5), pytest.raises(TransportError):
            await client.request(make_request("OPTIONS"), Target("TCP", LOOPBACK, port))
        assert client.statistics().tasks == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_cancelling_and_closing_leave_nothing(
    transport: str, tls_config: TransportConfig
) -> None:
    handling = trio.Event()

    async def never(incoming: IncomingRequest) -> None:
        handling.set()
        await trio.sleep_forever()

    with trio.fail_after(30):
        async with pair(transport, tls_config, never) as (client, server, target, _strays):
            # Cancelled once the server's handler runs (was: after 0.3 s, which a TLS
            # handshake on a loaded machine could outlast).
            async with trio.open_nursery() as nursery:

                async def ask() -> None:
                    await client.request(_host(make_request("OPTIONS"), target), target)

                nursery.start_soon(ask)
                await handling.wait()
                nursery.cancel_scope.cancel()
            assert client.statistics().tasks == 0
            assert server.statistics().server_transactions == 1
            assert server.statistics().handlers == 1
        for stack in (client, server):
            stats = stack.statistics()
            assert (stats.tasks, stats.flows) == (0, 0)
            assert stack.listening == []
