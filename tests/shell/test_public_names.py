"""Public names of ``trio_sip`` that no other test named (tests/test_public_names_used.py lists
them): each is used here the way a user meets it, and what it carries is checked. In-memory network,
virtual time."""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing

import trio_sip
from trio_sip import (
    Attempt,
    Call,
    CallEvent,
    ClientTransaction,
    Connection,
    ConnectionEvent,
    ConnectionStatus,
    Endpoint,
    EndpointCall,
    FailoverClient,
    FailoverResult,
    IncomingCall,
    IncomingEndpointCall,
    IncomingMessage,
    IncomingRequest,
    InviteAttempts,
    LocationService,
    MessageReceived,
    ProxySite,
    ProxyStatistics,
    Registrar,
    RegistrationEvent,
    Request,
    Resolver,
    Response,
    SessionEvent,
    SipError,
    Stack,
    StackStatistics,
    Target,
    UserAgent,
    open_proxy,
    open_stack,
)
from trio_sip.proto import ProxyIdentity, UriParts, build_message, make_response
from trio_sip.testing import FakeBackend, FakeNetwork, LinkConfig, Packet, make_request

from .endpoint_support import BOB, DOMAIN, world
from .proxy_support import ALICE as PALICE
from .proxy_support import BOB as PBOB
from .proxy_support import DOMAIN as PDOMAIN
from .proxy_support import PROXY, TO_PROXY, Phone, phone_stack
from .proxy_support import register as proxy_register
from .proxy_support import request as proxy_request
from .test_ua_calls import BOB_URI, answer_next, two_agents

CS = ConnectionStatus
A, B = "10.0.0.1", "10.0.0.2"
CLIENT, SERVER = "10.0.3.1", "10.0.3.2"


def options(call_id: str = "names-1") -> Request:
    request = make_request("UDP")
    return request.evolve(headers=request.headers.remove("Via").set_first("Call-ID", call_id))


async def answer_200(incoming: IncomingRequest) -> None:
    if incoming.method == "INVITE":
        await incoming.respond(180)
    await incoming.respond(200)


# -- the stack ----------------------------------------------------------------------------------


async def test_client_transaction_and_stack_statistics(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    async with (
        open_stack([("UDP", B, 5060)], handler=answer_200, backend=net.backend(B)) as server,
        open_stack([("UDP", A, 5060)], backend=net.backend(A)) as client,
    ):
        invite = proxy_request("INVITE", f"sip:bob@{B}")
        async with client.send_request(invite, Target("UDP", B, 5060)) as tx:
            assert isinstance(tx, ClientTransaction)
            codes = [event.status_code async for event in tx if isinstance(event, Response)]
            assert codes == [180, 200] and tx.final_response is not None
            assert tx.request.vias[0].branch.startswith("z9hG4bK")  # the Via the stack added
            during = client.statistics()
            assert isinstance(during, StackStatistics)
            assert (during.client_transactions, during.tasks, during.flows) == (1, 0, 0)
        await trio.sleep(40)  # every timer of both sides has run out
        for stack in (client, server):
            stats = stack.statistics()
            assert isinstance(stats, StackStatistics)
            assert stats == StackStatistics(0, 0, 0, 0, 0, 0, 0)


# -- failover ---------------------------------------------------------------------------------


class StaticResolver(Resolver):
    """A resolver written to the ``Resolver`` protocol: one name, two addresses."""

    def __init__(self, hosts: list[str]) -> None:
        self.hosts = hosts
        self.asked: list[str] = []

    async def naptr(self, name: str) -> list[trio_sip.proto.NaptrRecord]:
        return []

    async def srv(self, name: str) -> list[trio_sip.proto.SrvRecord]:
        return []

    async def addresses(self, name: str) -> list[str]:
        return list(self.hosts)

    async def resolve(self, uri: UriParts) -> list[Target]:
        await trio.lowlevel.checkpoint()
        self.asked.append(uri.host)
        return [Target("UDP", host, uri.port or 5060) for host in self.hosts]


async def test_failover_result_invite_attempts_and_a_resolver_of_our_own(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    dead, live = "10.0.9.1", "10.0.9.2"
    net.refuse(dead, 5060)  # ICMP port unreachable
    resolver = StaticResolver([dead, live])
    async with (
        open_stack([("UDP", live, 5060)], handler=answer_200, backend=net.backend(live)),
        open_stack([("UDP", A, 5060)], backend=net.backend(A)) as ua,
    ):
        client = FailoverClient(ua, resolver=resolver, rng=random.Random(1))
        result = await client.request(options(), "sip:proxy.example.test")
        assert isinstance(result, FailoverResult)
        assert result.response.status_code == 200 and result.target == Target("UDP", live, 5060)
        assert [a.target.host for a in result.attempts] == [dead, live]
        assert "refused" in (result.attempts[0].outcome or "")
        assert resolver.asked == ["proxy.example.test"]

        invite = proxy_request("INVITE", "sip:bob@proxy.example.test")
        async with client.invite(invite, "sip:proxy.example.test") as attempts:
            assert isinstance(attempts, InviteAttempts)
            codes = [response.status_code async for response in attempts]
        assert codes == [180, 200]
        assert attempts.target == Target("UDP", live, 5060)  # the dead one is blacklisted now
        assert [a.target.host for a in attempts.attempts] == [live]


# -- the user agent: MESSAGE outside and inside a dialog ------------------------------------------


async def test_incoming_message_and_message_received_in_a_call(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    async with two_agents(net) as (alice, bob), trio.open_nursery() as nursery:
        assert (await alice.send_message(BOB_URI, "lunch?")).status_code == 200
        async for message in bob.messages():
            assert isinstance(message, IncomingMessage)
            assert message.text == "lunch?" and message.request.method == "MESSAGE"
            break

        bob_calls: list[trio_sip.Call] = []

        async def answer() -> None:
            bob_calls.append(await answer_next(bob))

        nursery.start_soon(answer)
        async with alice.call(BOB_URI) as call:
            await call.wait_answered()
            assert call.dialog is not None
            # An in-dialog MESSAGE (RFC 3428), built by the core, sent through the stack.
            message = build_message(call.dialog, via="SIP/2.0/UDP x;branch=z9hG4bKx", body=b"hi")
            message = message.evolve(headers=message.headers.remove("Via"))  # the stack's Via
            target = Target("UDP", BOB, 5060)
            assert (await alice.stack.request(message, target)).status_code == 200
            events: list[SessionEvent] = []
            async for event in bob_calls[0].events:
                assert isinstance(event, SessionEvent)  # every event of a call is one
                events.append(event)
                if isinstance(event, MessageReceived):
                    break
            assert isinstance(events[-1], MessageReceived)
            assert events[-1].request.body == b"hi"


# -- the endpoint -----------------------------------------------------------------------------


async def test_endpoint_call_incoming_endpoint_call_and_connection(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with world() as (_net, _site_a, _site_b, alice, bob, _events), trio.open_nursery() as n:
        connection = alice.connections["b"]
        assert isinstance(connection, Connection)
        assert (connection.id, connection.status, connection.reason) == (
            "b",
            CS.REGISTERED,
            "200 OK",
        )
        assert str(connection.aor.uri) == f"sip:alice@{DOMAIN}"

        async with alice.dial("b", "bob") as call:
            assert isinstance(call, EndpointCall)
            await call.wait_answered()
            assert (call.connection_id, call.connections_tried) == ("b", ["b"])

        seen: list[IncomingEndpointCall] = []

        async def answer_on_alice() -> None:
            async for incoming in alice.incoming_calls():
                seen.append(incoming)
                await incoming.accept()
                return

        n.start_soon(answer_on_alice)
        async with bob.dial("a", "alice") as back:
            await back.wait_answered()
        (incoming,) = seen
        assert isinstance(incoming, IncomingEndpointCall)
        assert incoming.connection_id == "a" and str(incoming.caller.uri) == f"sip:bob@{DOMAIN}"
        assert isinstance(incoming.call, EndpointCall) and incoming.call.connection_id == "a"


# -- the proxy and the registrar --------------------------------------------------------------


async def test_proxy_statistics_count_what_the_site_did(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork()
    async with (
        open_proxy([("UDP", PROXY, 5060)], domain=PDOMAIN, backend=net.backend(PROXY)) as site,
        phone_stack(net, Phone(PBOB)) as bob,
        phone_stack(net, Phone(PALICE)) as alice,
    ):
        assert (await bob.request(proxy_register("bob", PBOB), TO_PROXY)).status_code == 200
        ok = await alice.request(proxy_request("OPTIONS", f"sip:bob@{PDOMAIN}"), TO_PROXY)
        nobody = await alice.request(proxy_request("OPTIONS", f"sip:carol@{PDOMAIN}"), TO_PROXY)
        assert (ok.status_code, nobody.status_code) == (200, 480)
        await trio.sleep(40)  # the transactions' timers have run out
        stats = site.statistics()
        assert isinstance(stats, ProxyStatistics) and isinstance(stats.stack, StackStatistics)
        assert (stats.bindings, stats.forwarded_requests, stats.forwarded_responses) == (1, 1, 1)
        assert (stats.contexts, stats.tasks, stats.stack.tasks) == (0, 0, 0)


async def test_registrar_on_a_stack_of_our_own(autojump_clock: trio.testing.MockClock) -> None:
    net = FakeNetwork()
    location = LocationService()
    registrar = Registrar(location, ProxyIdentity(DOMAIN), credentials={"alice": "secret"})
    async with (
        open_stack([("UDP", B, 5060)], handler=registrar.handle, backend=net.backend(B)),
        open_stack([("UDP", A, 5060)], backend=net.backend(A)) as client,
    ):
        register = Request(
            "REGISTER",
            f"sip:{DOMAIN}",
            [
                ("Max-Forwards", "70"),
                ("From", f"<sip:alice@{DOMAIN}>;tag=r1"),
                ("To", f"<sip:alice@{DOMAIN}>"),
                ("Call-ID", "names-reg"),
                ("CSeq", "1 REGISTER"),
                ("Contact", f"<sip:alice@{A}:5060>"),
                ("Expires", "600"),
            ],
        )
        challenge = await client.request(register, Target("UDP", B, 5060))
        assert challenge.status_code == 401 and challenge.www_authenticate
        assert location.lookup(f"sip:alice@{DOMAIN}", trio.current_time()) == []
        # Decided without a transaction too: a domain it is not responsible for is 404.
        elsewhere = register.evolve(
            uri="sip:elsewhere.test",
            headers=register.headers.set_first("To", "<sip:alice@elsewhere.test>")
            .set_first("From", "<sip:alice@elsewhere.test>;tag=r2")
            .set_first("Via", f"SIP/2.0/UDP {A}:5060;branch=z9hG4bK-r2"),
        )
        decided = registrar.decide(elsewhere, trio.current_time())
        assert (decided.status, decided.reason) == (404, "Not Found (not our domain)")


# -- errors -----------------------------------------------------------------------------------


def test_every_error_trio_sip_raises_on_purpose_is_a_sip_error() -> None:
    names = [n for n in trio_sip.errors.__all__ if n != "SipError"]
    for name in names:
        assert issubclass(getattr(trio_sip.errors, name), SipError), name
    assert trio_sip.SipError is trio_sip.errors.SipError is trio_sip.proto.SipError
    with pytest.raises(SipError, match="no scheme"):  # one except clause catches them all
        trio_sip.parse_uri("not a uri")
    with pytest.raises(SipError):
        make_response(Request("ACK", "sip:a@b", []), 200)


# -- trio_sip.testing ---------------------------------------------------------------------------


async def test_fake_backend_link_config_and_packets(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = FakeNetwork(seed=3)
    net.set_link(A, B, delay=0.05, loss=1.0, both_ways=False)  # every datagram A -> B is lost
    link = net.link(A, B)
    assert isinstance(link, LinkConfig) and (link.delay, link.loss, link.jitter) == (0.05, 1.0, 0)
    assert net.link(B, A) == LinkConfig()  # the other direction keeps the defaults
    backend_a, backend_b = net.backend(A), net.backend(B)
    assert isinstance(backend_a, FakeBackend) and backend_a.host == A
    receiver = await backend_b.open_udp(B, 5060)
    sender = await backend_a.open_udp(A, 0)
    await sender.sendto(b"lost", (B, 5060))
    sender_address = net.packets()[0].src
    await receiver.sendto(b"back", sender_address)
    data, source = (await sender.recvfrom_many(1))[0]
    assert (data, source) == (b"back", (B, 5060))
    lost, back = net.packets(transport="UDP")
    assert isinstance(lost, Packet) and isinstance(back, Packet)
    assert (lost.fate, lost.dst, lost.data) == ("lost", (B, 5060), b"lost")
    assert (back.fate, back.src, back.dst, back.time) == ("delivered", (B, 5060), sender_address, 0)
    assert net.packets(fate="lost") == [lost]


# -- the objects the API hands out --------------------------------------------------------------


async def test_the_documented_types_of_what_the_api_hands_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """open_* yield a Stack, UserAgent, ProxySite, Endpoint; a handler gets IncomingRequests,
    incoming_calls IncomingCalls, call() a Call; records are Attempt, RegistrationEvent,
    ConnectionEvent, CallEvent (docs/calls.md, endpoint.md, failover.md, proxy.md, stack.md)."""
    async with world() as (_net, _site_a, site_b, alice, _bob, events):
        assert isinstance(alice, Endpoint) and isinstance(alice.ua, UserAgent)
        assert isinstance(alice.ua.stack, Stack)
        assert site_b.proxy is not None and isinstance(site_b.proxy, ProxySite)
        assert events and all(isinstance(e, ConnectionEvent) for e in events)
        async with alice.dial("b", "bob") as call:
            await call.wait_answered()
            assert isinstance(call.call, Call)
        records = [record async for record in call.events]
        assert records and all(isinstance(r, CallEvent) for r in records)
        assert {type(r.event) for r in records} >= {trio_sip.Progress, trio_sip.Answered}

    net = FakeNetwork()
    handed: list[IncomingRequest] = []

    async def keep(incoming: IncomingRequest) -> None:
        handed.append(incoming)
        await incoming.respond(200)

    async with (
        open_stack([("UDP", SERVER, 5060)], handler=keep, backend=net.backend(SERVER)),
        open_stack([("UDP", CLIENT, 5060)], backend=net.backend(CLIENT)) as stack,
        two_agents(net) as (alice_ua, bob_ua),
        trio.open_nursery() as nursery,
    ):
        client = FailoverClient(stack)
        result = await client.request(options(), [Target("UDP", SERVER, 5060)])
        assert [type(a) for a in result.attempts] == [Attempt]
        assert [type(i) for i in handed] == [IncomingRequest]

        registration = await alice_ua.register(f"sip:{SERVER}:5060")
        await registration.wait_registered()
        assert registration.history and all(
            isinstance(e, RegistrationEvent) for e in registration.history
        )

        async def take_one() -> None:
            async for incoming in bob_ua.incoming_calls():
                assert isinstance(incoming, IncomingCall)
                await incoming.accept()
                return

        nursery.start_soon(take_one)
        async with alice_ua.call(BOB_URI) as outgoing:
            assert isinstance(outgoing, Call)
            await outgoing.wait_answered()
