"""Registration tasks against a small registrar on the in-memory network, in virtual time.

The registrar is an ordinary stack in the test: it checks digest credentials with
``auth.verify`` and stateless nonces with ``auth.check_nonce``, keeps bindings with their
expiry, and can be told to answer 423 / 503 for a while. Every time asserted is exact.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing

from trio_sip.keepalive import KeepAlives
from trio_sip.proto.auth import Challenge, NonceStatus, check_nonce, make_nonce, verify
from trio_sip.proto.message import Request
from trio_sip.proto.registration import RegistrationState
from trio_sip.proto.target import Target
from trio_sip.stack import IncomingRequest, Stack, open_stack
from trio_sip.testing import FakeNetwork
from trio_sip.transports.base import FlowEvent, FlowFailed
from trio_sip.ua.registration import (
    EventStream,
    RegistrationEvent,
    RegistrationFailed,
    Registrations,
    UaRegistration,
)

UA, REGISTRAR = "10.0.0.1", "10.0.0.2"
AOR = "<sip:alice@example.com>"
RS = RegistrationState
SECRET = b"test registrar"
#: When an unanswered REGISTER goes out over UDP (Timer E, then T2), until Timer F at 32 s.
TIMER_E_SCHEDULE = (0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5)


class Registrar:
    """A registrar: bindings, optional digest auth, Min-Expires, scripted answers."""

    def __init__(
        self,
        *,
        password: str | None = None,
        min_expires: int | None = None,
        nonce_lifetime: float = 3600.0,
    ) -> None:
        self.password = password
        self.min_expires = min_expires
        self.nonce_lifetime = nonce_lifetime
        self.rng = random.Random(5)
        #: (time, request, status answered)
        self.log: list[tuple[float, Request, int]] = []
        self.bindings: dict[str, tuple[str, float]] = {}
        #: The next answers to give regardless: (status, extra headers).
        self.script: deque[tuple[int, list[tuple[str, str]]]] = deque()

    def times(self) -> list[float]:
        return [t for t, _, _ in self.log]

    def statuses(self) -> list[int]:
        return [s for _, _, s in self.log]

    async def handler(self, incoming: IncomingRequest) -> None:
        status, headers = self._decide(incoming.request)
        self.log.append((trio.current_time(), incoming.request, status))
        await incoming.respond(status, headers=headers)

    def _decide(self, request: Request) -> tuple[int, list[tuple[str, str]]]:
        now = trio.current_time()
        if self.script:
            return self.script.popleft()
        if self.password is not None:
            refusal = self._check_auth(request, now)
            if refusal is not None:
                return refusal
        expires = request.expires if request.expires is not None else 3600
        if self.min_expires is not None and 0 < expires < self.min_expires:
            return 423, [("Min-Expires", str(self.min_expires))]
        aor = str(request.to.uri)
        contact = str(request.contacts[0].uri)
        if expires == 0:
            self.bindings.pop(aor, None)
            return 200, []
        self.bindings[aor] = (contact, now + expires)
        return 200, [("Contact", f"<{contact}>;expires={expires}")]

    def _check_auth(self, request: Request, now: float) -> tuple[int, list[tuple[str, str]]] | None:
        def challenge(stale: bool = False) -> tuple[int, list[tuple[str, str]]]:
            nonce = make_nonce(SECRET, now, self.rng)
            value = str(Challenge.digest("example.com", nonce, stale=stale))
            return 401, [("WWW-Authenticate", value)]

        if not request.authorization:
            return challenge()
        creds = request.authorization[0]
        status = check_nonce(SECRET, creds.nonce or "", now, lifetime=self.nonce_lifetime)
        if status is NonceStatus.STALE:
            return challenge(stale=True)
        if status is not NonceStatus.VALID or creds.uri != str(request.uri):
            return challenge()
        assert self.password is not None
        if creds.username != "alice" or not verify(creds, "REGISTER", self.password):
            return 403, []
        return None


@asynccontextmanager
async def setup(
    registrar: Registrar, net: FakeNetwork | None = None, transport: str = "UDP"
) -> AsyncIterator[tuple[Registrations, Stack, FakeNetwork, trio.Nursery]]:
    net = net or FakeNetwork()
    async with (
        open_stack(
            [(transport, REGISTRAR, 5060)],
            backend=net.backend(REGISTRAR),
            handler=registrar.handler,
            rng=random.Random(2),
        ),
        open_stack([(transport, UA, 5060)], backend=net.backend(UA), rng=random.Random(1)) as ua,
        trio.open_nursery() as nursery,
    ):
        keepalives = KeepAlives(ua.transport_layer, nursery, rng=random.Random(3))
        registrations = Registrations(ua, nursery, keepalives=keepalives, rng=random.Random(4))
        yield registrations, ua, net, nursery
        await registrations.aclose()
        nursery.cancel_scope.cancel()


async def register(
    registrations: Registrations, transport: str = "UDP", **kw: object
) -> UaRegistration:
    contact = f"<sip:alice@{UA}:5060>"
    if transport != "UDP":
        contact = f"<sip:alice@{UA}:5060;transport={transport.lower()}>"
    return await registrations.register(
        AOR,
        Target(transport, REGISTRAR, 5060),
        contact=contact,
        **kw,  # type: ignore[arg-type]
    )


def changes(registration: UaRegistration) -> list[tuple[RS, RS, str]]:
    return [(e.old, e.new, e.reason) for e in registration.history]


@pytest.mark.parametrize(("expires", "refresh"), [(600, 568.0), (60, 30.0)])
async def test_register_then_refresh_before_expiry_with_the_margin(
    autojump_clock: trio.testing.MockClock, expires: int, refresh: float
) -> None:
    registrar = Registrar()
    async with setup(registrar) as (registrations, _ua, _net, _n):
        reg = await register(registrations, expires=expires)
        await reg.wait_registered()
        assert trio.current_time() == 0.0
        assert registrar.bindings["sip:alice@example.com"][0] == f"sip:alice@{UA}:5060"
        await trio.sleep(3 * refresh + 1)
        assert registrar.times() == [0.0, refresh, 2 * refresh, 3 * refresh]
        assert reg.state is RS.REGISTERED
        first, second = registrar.log[0][1], registrar.log[1][1]
        assert first.headers["Expires"] == str(expires)
        assert str(first.uri) == "sip:example.com"
        assert (first.call_id, second.cseq.seq) == (second.call_id, first.cseq.seq + 1)
        assert changes(reg) == [
            (RS.UNREGISTERED, RS.REGISTERING, "start"),
            (RS.REGISTERING, RS.REGISTERED, "200 OK"),
        ]
        stats = reg.statistics()
        assert (stats.requests, stats.successes, stats.failures) == (4, 4, 0)
        assert stats.granted == expires and stats.next_attempt == 4 * refresh
        assert stats.target == Target("UDP", REGISTRAR, 5060)


async def test_423_interval_too_brief_resends_with_min_expires(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registrar = Registrar(min_expires=1800)
    async with setup(registrar) as (registrations, _ua, _net, _n):
        reg = await register(registrations, expires=300)
        await reg.wait_registered()
        assert registrar.statuses() == [423, 200]
        assert [r.headers["Expires"] for _, r, _ in registrar.log] == ["300", "1800"]
        await trio.sleep(1800)
        assert registrar.times() == [0.0, 0.0, 1768.0]
        assert registrar.log[2][1].headers["Expires"] == "1800"


async def test_digest_401_then_authorised_refresh_and_stale_nonce(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The nonce goes stale after 100 s: the refresh at 568 s is challenged with stale=true
    # and answered again at once, without any state change.
    registrar = Registrar(password="wonderland", nonce_lifetime=100)
    async with setup(registrar) as (registrations, _ua, _net, _n):
        reg = await register(registrations, expires=600, credentials=("alice", "wonderland"))
        await reg.wait_registered()
        assert registrar.statuses() == [401, 200]
        cseqs = [r.cseq.seq for _, r, _ in registrar.log]
        assert cseqs[1] == cseqs[0] + 1
        await trio.sleep(600)
        assert registrar.statuses() == [401, 200, 401, 200]
        assert registrar.times() == [0.0, 0.0, 568.0, 568.0]
        refresh = registrar.log[2][1]
        assert refresh.authorization  # authorised up front with the cached challenge
        assert reg.state is RS.REGISTERED
        assert changes(reg)[-1] == (RS.REGISTERING, RS.REGISTERED, "200 OK")


async def test_wrong_password_403_fails_with_the_reason_and_retries_at_reg_interval(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registrar = Registrar(password="wonderland")
    async with setup(registrar) as (registrations, _ua, _net, _n):
        reg = await register(registrations, credentials=("alice", "looking-glass"), reg_interval=60)
        with pytest.raises(RegistrationFailed, match="403 Forbidden") as info:
            await reg.wait_registered()
        assert info.value.response is not None and info.value.response.status_code == 403
        assert reg.statistics().state is RS.FAILED
        registrar.password = "looking-glass"
        await trio.sleep(61)
        # The retry is authorised up front with the cached (still valid) challenge.
        assert registrar.times() == [0.0, 0.0, 60.0]
        assert registrar.statuses() == [401, 403, 200]
        assert reg.state is RS.REGISTERED


async def test_503_retry_after_is_honoured(autojump_clock: trio.testing.MockClock) -> None:
    registrar = Registrar()
    registrar.script.append((503, [("Retry-After", "120")]))
    async with setup(registrar) as (registrations, _ua, _net, _n):
        reg = await register(registrations, reg_interval=0)  # Retry-After wins even so
        with pytest.raises(RegistrationFailed, match="503 Service Unavailable"):
            await reg.wait_registered()
        assert reg.statistics().next_attempt == 120.0
        await reg.wait_registered()
        assert trio.current_time() == 120.0
        assert registrar.statuses() == [503, 200]


async def test_timeout_and_refusal_are_events_and_retry_at_each_reg_interval_tick(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registrar = Registrar()
    net = FakeNetwork()
    net.partition(UA, REGISTRAR)
    async with setup(registrar, net) as (registrations, _ua, _net, _n):
        reg = await register(registrations, reg_interval=300)
        events = reg.events()
        with pytest.raises(RegistrationFailed, match="408 Request Timeout"):
            await reg.wait_registered()
        assert trio.current_time() == 32.0  # Timer F
        net.heal(UA, REGISTRAR)
        net.refuse(REGISTRAR, 5060)
        await trio.sleep(301)  # the retry at 332 s meets an ICMP port unreachable
        assert reg.state is RS.FAILED and "transport error" in reg.reason
        assert "refused" in reg.reason
        net.unrefuse(REGISTRAR, 5060)
        await reg.wait_registered()
        seen = [(e.old, e.new, e.reason.split(":")[0], e.time) async for e in _take(events)]
        assert seen == [
            (RS.UNREGISTERED, RS.REGISTERING, "start", 0.0),  # the state when events() was made
            (RS.REGISTERING, RS.FAILED, "408 Request Timeout", 32.0),
            (RS.FAILED, RS.REGISTERING, "retry", 332.0),
            (RS.REGISTERING, RS.FAILED, "transport error", 332.0),
            (RS.FAILED, RS.REGISTERING, "retry", 632.0),
            (RS.REGISTERING, RS.REGISTERED, "200 OK", 632.0),
        ]
        assert reg.statistics().failures == 2


async def _take(stream: EventStream) -> AsyncIterator[RegistrationEvent]:
    """The events already queued (stops at the first wait)."""
    while True:
        with trio.move_on_after(0.001) as scope:
            event = await stream.__anext__()
        if scope.cancelled_caught:
            return
        yield event


async def test_reg_interval_zero_never_resends(autojump_clock: trio.testing.MockClock) -> None:
    registrar = Registrar()
    net = FakeNetwork()
    net.partition(UA, REGISTRAR)
    async with setup(registrar, net) as (registrations, _ua, _net, _n):
        reg = await register(registrations, reg_interval=0)
        with pytest.raises(RegistrationFailed):
            await reg.wait_registered()
        net.heal(UA, REGISTRAR)
        await trio.sleep(100_000)
        assert registrar.log == [] and reg.state is RS.FAILED
        assert reg.statistics().next_attempt is None
        sent = [p for p in net.packets() if b"REGISTER" in p.data]
        assert {p.time for p in sent} <= set(TIMER_E_SCHEDULE)


async def test_close_unregisters_with_expires_zero(autojump_clock: trio.testing.MockClock) -> None:
    registrar = Registrar()
    async with setup(registrar) as (registrations, _ua, _net, _n):
        reg = await register(registrations, expires=600)
        await reg.wait_registered()
        events = reg.events()
        await trio.sleep(10)
        await reg.aclose()
        assert registrar.log[-1][1].headers["Expires"] == "0"
        assert registrar.log[-1][1].contacts[0].uri == registrar.log[0][1].contacts[0].uri
        assert registrar.bindings == {} and reg.state is RS.UNREGISTERED
        assert [(e.new, e.reason) async for e in events] == [
            (RS.REGISTERED, "200 OK"),  # the state when events() was made
            (RS.UNREGISTERING, "closing"),
            (RS.UNREGISTERED, "200 OK"),
        ]
        await trio.sleep(5000)
        assert len(registrar.log) == 2  # nothing after the close
        assert list(registrations) == []


async def test_nursery_cancellation_still_unregisters(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registrar = Registrar()
    async with setup(registrar) as (registrations, _ua, _net, nursery):
        reg = await register(registrations)
        await reg.wait_registered()
        nursery.cancel_scope.cancel()
        await trio.sleep(1)
        assert registrar.bindings == {} and reg.state is RS.UNREGISTERED


async def test_missing_pong_on_tcp_registration_reregisters_over_a_new_connection(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registrar = Registrar()
    net = FakeNetwork()
    async with setup(registrar, net, "TCP") as (registrations, ua, _net, _n):
        reg = await register(registrations, "TCP", keepalive_period=30)
        await reg.wait_registered()
        (flow,) = ua.transport_layer.flows

        def heal(event: FlowEvent) -> None:  # the path comes back once the flow is given up
            if isinstance(event, FlowFailed):
                net.heal(UA, REGISTRAR)

        flow.subscribe(heal)
        await trio.sleep(100)  # pings are answered: nothing happens
        assert len(registrar.log) == 1
        assert flow.state == "OPEN"
        net.partition(UA, REGISTRAR)
        cut = trio.current_time()
        await trio.sleep(60)
        dead_at = registrar.times()[1]
        pings = [p.time for p in net.packets(transport="TCP") if p.data == b"\r\n\r\n"]
        assert dead_at == max(t for t in pings if t < dead_at) + 10.0 and cut < dead_at <= cut + 40
        assert flow.state != "OPEN"
        (new_flow,) = ua.transport_layer.flows
        assert new_flow.local != flow.local  # a new connection
        assert reg.state is RS.REGISTERED
        flow_events = changes(reg)[-2:]
        assert flow_events[0][:2] == (RS.REGISTERED, RS.REGISTERING)
        assert "no CRLF pong within 10 s" in flow_events[0][2]
        assert flow_events[1] == (RS.REGISTERING, RS.REGISTERED, "200 OK")
        assert reg.statistics().failures == 1


def test_old_import_paths_name_the_shared_refresh_scaffolding() -> None:
    # endpoint/ imports EventStream from ua.registration: the split must keep that path.
    from trio_sip.ua import refresh, registration, subscription

    assert registration.EventStream is refresh.EventStream
    assert registration.send_once is refresh.send_once
    assert issubclass(registration.UaRegistration, refresh.RefreshTask)
    assert issubclass(subscription.UaSubscription, refresh.RefreshTask)
    assert issubclass(registration.Registrations, refresh.RefreshTasks)
    assert issubclass(subscription.Subscriptions, refresh.RefreshTasks)


async def test_a_tcp_connect_into_a_black_hole_fails_at_the_transaction_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """No SYN-ACK ever: the attempt ends at sip_transaction_timeout (32 s by default), connect
    included, as a 408, and waits for the next reg_interval tick."""
    registrar = Registrar()
    net = FakeNetwork()
    net.partition(UA, REGISTRAR)
    async with setup(registrar, net, "TCP") as (registrations, _ua, _net, _n):
        reg = await register(registrations, "TCP", reg_interval=300)
        with pytest.raises(RegistrationFailed, match="408 Request Timeout"):
            await reg.wait_registered()
        assert trio.current_time() == pytest.approx(32.0)
        assert reg.statistics().next_attempt == pytest.approx(332.0)
        assert registrar.log == []


async def test_unregistering_into_a_dead_path_is_bounded_by_unregister_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registrar = Registrar()
    net = FakeNetwork()
    async with setup(registrar, net) as (registrations, _ua, _net, _n):
        reg = await register(registrations, unregister_timeout=3)
        await reg.wait_registered()
        net.partition(UA, REGISTRAR)
        start = trio.current_time()
        await reg.aclose()
        assert trio.current_time() - start == pytest.approx(3.0)
        assert reg.state is RS.UNREGISTERED
        sent = [p for p in net.packets() if p.data.startswith(b"REGISTER")]
        assert len(sent) > 2 and b"Expires: 0" in sent[-1].data
