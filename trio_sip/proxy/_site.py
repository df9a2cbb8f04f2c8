# A SIP site: registrar + proxy on one Stack. RFC 3261 §16 (proxy behaviour), §16.11
# (stateless proxy), §10.3 (registrar), §16.5 (a domain we are not responsible for: forward to
# the Request-URI, the outbound-proxy case), §18.2.2 (responses follow the Via).
#
# Theory of operation: ``open_proxy`` opens the site's nursery and a Stack in one of the two
# proxy timeout roles (docs/transactions.md "Timeout semantics per role"):
#
# * ``TimeoutRole.STATEFUL_PROXY``: the stack keeps server and client transactions and
#   retransmits; it reports TRANSACTION timeouts except a forwarded INVITE's Timer B (end to
#   end), never RETRANSMIT; a branch that ends without a final response becomes a 408 in the
#   response context; new requests go to ``_stateful.handle_stateful``. The stack's stray hook
#   gets the ACK for a 2xx (forwarded statelessly, §16.11 rules: it is its own transaction), a
#   CANCEL that matches no server transaction (§16.10: "If a response context is not found,
#   the element ... MUST statelessly forward the CANCEL request"), 2xx retransmissions and
#   responses without a transaction (forwarded upstream if the top Via is ours, "using the
#   stateless forwarding rules", §16.7 step 1).
# * ``TimeoutRole.STATELESS_PROXY``: no transactions, timers or timeouts at all; every message
#   reaches the stray hook and is forwarded in a task of the site's nursery: requests to one
#   target (§16.11: "MUST choose one and only one target"; the first binding by q) with a
#   branch derived from the received top Via, so every retransmission, its CANCEL and its
#   non-2xx ACK carry the same branch; responses to the next Via after removing ours.
#
# ``decide`` (``_decide.py``) holds the decisions both roles share: REGISTER for our domain →
# registrar; §16.3 validation; §16.4 route preprocessing; a request addressed to the site
# itself (no user part, no Route) is answered (OPTIONS → 200); the access policy (403 for a
# relay it does not allow, 407 until a user of ours authenticates); §16.5 targets from the
# location service, at most ``Limits.max_forks``, never this site itself (482).
#
# Security (issue #10, docs/proxy.md "Who may use the site"): a request from a source over its
# failed-authentication rate is dropped in the transport layer's callback, before it makes a
# transaction. Our branches and Record-Route values are signed with the site's secret
# (proto/proxy_forward.py): a stray response goes upstream only if its top Via is a branch we
# made for the Via below it, and an in-dialog request passes the access policy unchallenged
# only through a Record-Route we inserted for its dialog.
#
# Next hops are resolved by ``resolve``: an IP literal (or ``maddr``) directly, a domain in
# ``peers`` to its Target, our own domain to our own address, any other name through the
# optional RFC 3263 ``resolver``. Closing the site closes the stack (every transaction and
# handler) and then cancels the site's nursery: nothing is left running.
"""open_proxy and ProxySite: registrar + stateful or stateless proxy on a Stack."""

from __future__ import annotations

import hmac
import ipaddress
import logging
import random
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import final

import attrs
import trio

from trio_sip._groups import open_service_nursery
from trio_sip.dns import Resolver, default_resolver
from trio_sip.location import LocationStore, MemoryLocationStore
from trio_sip.proto.auth_server import AuthStatistics, DigestServer
from trio_sip.proto.errors import ConfigError, SipError
from trio_sip.proto.limits import DEFAULT_LIMITS, Limits
from trio_sip.proto.location import LocationService, by_q
from trio_sip.proto.message import Request, Response
from trio_sip.proto.proxy import (
    ProxyIdentity,
    Respond,
    record_route_value,
    route_token,
)
from trio_sip.proto.proxy_access import AccessPolicy
from trio_sip.proto.resolve import UriParts
from trio_sip.proto.target import Target, default_port
from trio_sip.proto.timers import TimerConfig
from trio_sip.proto.transaction import TimeoutRole
from trio_sip.proto.uri import SipUri, Uri
from trio_sip.registrar import Registrar
from trio_sip.stack import IncomingRequest, Stack, StackStatistics, open_stack
from trio_sip.transports import Flow, NetworkBackend, TransportConfig

from ._decide import decide, decide_async
from ._stateful import handle_stateful
from ._stray import _Strays

__all__ = ["ProxySite", "ProxyStatistics", "open_proxy"]

logger = logging.getLogger("trio_sip.proxy")

#: Timer C default: "MUST be greater than 3 minutes" (§16.6 step 11).
TIMER_C = 181.0


@attrs.frozen(slots=True)
class ProxyStatistics:
    """What a site has done and what is alive (``ProxySite.statistics()``)."""

    stack: StackStatistics
    #: Stateful requests being proxied (response contexts alive).
    contexts: int
    #: Tasks of the site itself (stateless forwarding, stray forwarding).
    tasks: int
    forwarded_requests: int
    forwarded_responses: int
    #: Current bindings in the location service.
    bindings: int
    #: Requests answered 407 (or 481: a CANCEL without the credentials it needed).
    challenged: int = 0
    #: Requests answered 403 by the access policy (a relay not allowed, a From not yours).
    refused: int = 0
    #: Requests dropped unanswered: their source was over ``Limits.failed_auth_rate``.
    dropped: int = 0
    #: Stray responses dropped: their top Via was not a branch of ours for the Via below.
    stray_responses: int = 0
    #: The digest server's counters (registrar and proxy), None without credentials.
    auth: AuthStatistics | None = None


Decision = Respond | None | tuple[Request, list[Uri]]


@final
class ProxySite(_Strays):
    """A running registrar + proxy. Made by :func:`open_proxy`."""

    def __init__(
        self,
        nursery: trio.Nursery,
        *,
        domain: str,
        location: LocationService,
        role: TimeoutRole,
        record_route: bool,
        registrar: bool,
        credentials: Mapping[str, str] | None,
        peers: Mapping[str, Target],
        resolver: Resolver | None,
        rng: random.Random,
        timer_c: float,
        aliases: Iterable[str],
        policy: AccessPolicy | None = None,
        secret: bytes | None = None,
        store: LocationStore | None = None,
    ) -> None:
        self._nursery = nursery
        self.domain = domain.lower()
        self.location = location
        #: Where the registrar commits bindings and the proxy finds them: ``location`` in this
        #: process by default, or a shared store (trio_sip.location; static bindings stay in
        #: ``location`` and are looked up there too).
        self.store: LocationStore = store if store is not None else MemoryLocationStore(location)
        self._shared_store = store is not None
        #: Trio clock + this offset = the wall clock: digest nonces carry it, so that nodes
        #: sharing ``secret`` accept each other's nonces (a cluster behind a round-robin front).
        self.auth_offset = time.time() - trio.current_time()
        self.role = role
        self.record_route = record_route
        self._want_registrar = registrar
        self._credentials = credentials
        self.peers = {k.lower(): v for k, v in peers.items()}
        self.resolver = resolver
        self.rng = rng
        self.timer_c = timer_c
        self._aliases = frozenset(a.lower() for a in aliases)
        self.identity = ProxyIdentity(self.domain, aliases=self._aliases)
        #: Who may use the site for what (``trusted``, ``relay``, ``proxy_auth``).
        self.policy = policy or AccessPolicy()
        key = secret if secret is not None else rng.getrandbits(256).to_bytes(32, "big")
        self._secret = key
        #: Keys of the signed branches and Record-Route tokens (proto/proxy_forward.py).
        self.branch_secret = hmac.new(key, b"trio-sip proxy branch", "sha256").digest()
        self.route_secret = hmac.new(key, b"trio-sip proxy route", "sha256").digest()
        self.limits = DEFAULT_LIMITS
        #: Digest authentication (registrar 401, proxy 407), None without credentials.
        self.auth: DigestServer | None = None
        self.registrar: Registrar | None = None
        self._stack: Stack | None = None
        self._tasks = 0
        self.counters = {"contexts": 0, "forwarded_requests": 0, "forwarded_responses": 0}
        self.counters.update(challenged=0, refused=0, dropped=0, stray_responses=0)

    def _attach(self, stack: Stack) -> None:
        self._stack = stack
        self.limits = stack.limits
        # A front or a peer site relays many users from one address: no per-source request
        # rate for the trusted networks and the peers' sites (docs/security.md, "Overload").
        trusted = stack.admission.trusted
        trusted.add(self.policy.trusted)
        for peer in self.peers.values():
            try:  # a Target's host is an address; a name given by hand is not trusted
                trusted.add([ipaddress.ip_network(peer.host.strip("[]"))])
            except ValueError:
                logger.info("peer %s not exempt from the request rate: not an address", peer)
        addresses = frozenset((h.lower(), p) for _, (h, p) in stack.listening)
        self.identity = ProxyIdentity(self.domain, addresses, self._aliases)
        if self._credentials is not None:
            self.auth = DigestServer(
                self.domain, self._credentials, rng=self.rng, secret=self._secret,
                limits=self.limits,
            )  # fmt: skip
        if self._want_registrar:
            self.registrar = Registrar(
                self.location,
                self.identity,
                credentials=self._credentials,
                rng=self.rng,
                auth=self.auth,
                store=self.store,
                auth_offset=self.auth_offset,
            )
        layer = stack.transport_layer
        deliver = layer.on_message
        assert deliver is not None

        def admit(message: Request | Response, flow: Flow) -> None:
            # A source over its failed-authentication rate: its requests go nowhere.
            auth = self.auth
            if (
                auth is not None
                and isinstance(message, Request)
                and not auth.admit(
                    self.auth_source(message, flow.remote[0]),
                    trio.current_time() + self.auth_offset,
                )
            ):
                self.counters["dropped"] += 1
                return
            deliver(message, flow)

        layer.on_message = admit

    # -- introspection ---------------------------------------------------------------------

    @property
    def stack(self) -> Stack:
        assert self._stack is not None
        return self._stack

    @property
    def listening(self) -> list[tuple[str, tuple[str, int]]]:
        return self.stack.listening

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) of the first listener."""
        return self.stack.listening[0][1]

    def statistics(self) -> ProxyStatistics:
        c = self.counters
        return ProxyStatistics(
            stack=self.stack.statistics(),
            contexts=c["contexts"],
            tasks=self._tasks,
            forwarded_requests=c["forwarded_requests"],
            forwarded_responses=c["forwarded_responses"],
            bindings=self.location.count(trio.current_time()),
            challenged=c["challenged"],
            refused=c["refused"],
            dropped=c["dropped"],
            stray_responses=c["stray_responses"],
            auth=self.auth.statistics() if self.auth is not None else None,
        )

    async def aclose(self) -> None:
        """Stop the site: close the stack (transactions, handlers, sockets), then our tasks."""
        if self._stack is not None:
            await self._stack.aclose()
        self._nursery.cancel_scope.cancel()

    # -- decisions shared by both roles ----------------------------------------------------

    def record_route_value(self, request: Request | None = None) -> str | None:
        """Our Record-Route value; with ``request`` (the dialog-creating request) it carries
        the dialog's token, so in-dialog requests can show they belong to it."""
        if not self.record_route:
            return None
        transport, (host, port) = self.stack.listening[0]
        token = None
        if request is not None:
            token = route_token(self.route_secret, request.call_id, request.from_.tag)
        return record_route_value(host, port, transport, token=token)

    def _lookup(self, aor: str) -> list[str]:
        return [b.contact for b in self.location.lookup(aor, trio.current_time())]

    async def contacts(self, aor: str) -> list[str]:
        """The contacts of ``aor`` from the store (and the static bindings of ``location``
        when the store is shared), highest q first. Raises StoreUnavailable."""
        bindings = await self.store.lookup(aor)
        if self._shared_store:
            static = self.location.lookup(aor, trio.current_time())
            if static:
                bindings = by_q([*static, *bindings])
        return [b.contact for b in bindings]

    def auth_source(self, request: Request, source: str) -> str:
        """Who is charged for a failed authentication: ``source``, or, for a request a
        ``trusted`` front forwarded, the client below it (the received= or sent-by host of
        the Via under the front's), so that one guesser behind a load balancer does not get
        the balancer itself dropped."""
        if not self.policy.is_trusted(source):
            return source
        try:  # Via values parse on first use: the second one too (found by the wire fuzzer)
            vias = request.vias
            if len(vias) < 2:
                return source
            client = vias[1].params.get("received") or vias[1].host
        except SipError:
            return source
        return client or source

    def decide(self, request: Request, source: str | None = None) -> Decision:
        """Respond (answer it), None (a REGISTER for the registrar) or (request, targets).
        ``source``: the sender's IP address (trusted peers, failed-authentication limits).
        Targets come from ``location`` (this process); the site itself uses
        :meth:`decide_async`, which asks the store."""
        return decide(self, request, source)

    async def decide_async(self, request: Request, source: str | None = None) -> Decision:
        """:meth:`decide` with the targets from the store (503 while it is unreachable)."""
        return await decide_async(self, request, source)

    async def resolve(self, uri: Uri) -> Target:
        """The Target for a next-hop URI (see the module comment). Raises SipError."""
        if not isinstance(uri, SipUri):
            raise SipError(f"cannot route to {uri}")
        transport = (uri.transport or ("TLS" if uri.secure else "UDP")).upper()
        host = (uri.params.get("maddr") or uri.host).strip("[]")
        port = uri.port or default_port(transport)
        try:
            ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            return Target(transport, host, port)
        name = host.lower()
        if name in self.peers:
            return self.peers[name]
        if self.identity.responsible_for(name):
            for t, (h, p) in self.stack.listening:
                if t == transport:
                    return Target(t, h, p)
        if self.resolver is not None:
            parts = UriParts(uri.scheme, host, uri.port, uri.transport)
            return (await self.resolver.resolve(parts))[0]
        raise SipError(f"no route to {host} (not an address, not a peer, no resolver)")


@asynccontextmanager
async def open_proxy(
    listen: Iterable[tuple[str, str, int] | str],
    *,
    domain: str,
    location_service: LocationService | None = None,
    role: TimeoutRole | str = TimeoutRole.STATEFUL_PROXY,
    record_route: bool = True,
    timer_config: TimerConfig | None = None,
    backend: NetworkBackend | None = None,
    registrar: bool = True,
    credentials: Mapping[str, str] | None = None,
    peers: Mapping[str, Target] | None = None,
    resolver: Resolver | None = None,
    aliases: Iterable[str] = (),
    timer_c: float = TIMER_C,
    rng: random.Random | None = None,
    transport_config: TransportConfig | None = None,
    limits: Limits | None = None,
    trusted: Iterable[str] = (),
    relay: str = "none",
    proxy_auth: str = "all",
    secret: bytes | None = None,
    location_store: LocationStore | None = None,
) -> AsyncIterator[ProxySite]:
    """A running site for ``domain``: registrar + proxy listening on ``listen``.

    ``role``: ``TimeoutRole.STATEFUL_PROXY`` (or "stateful") or ``STATELESS_PROXY``
    ("stateless"). ``location_service`` is shared with the caller (add static bindings to it;
    ``limits``, when given, becomes its ``limits``); ``credentials`` (username -> password)
    turns digest authentication on at the registrar (401) and the proxy (407, per
    ``proxy_auth``: "all", "local" or "none"); ``peers`` maps other domains to the Target of
    their site; ``relay`` ("none", "peers" or "any") says where requests from untrusted
    sources may go outside our domain; ``trusted`` source addresses or networks skip both
    checks; ``secret`` keys nonces, branches and Record-Route tokens (default: drawn from
    ``rng``, so give one when ``rng`` is seeded; give the same bytes to a restarted site to keep
    its dialogs). ``location_store``: where dynamic bindings live (trio_sip.location, e.g.
    Redis shared by several sites: docs/scaling.md); ``location_service`` then holds the
    static bindings and the REGISTER rules. Leaving the block stops everything.
    """
    policy = AccessPolicy.make(trusted, relay, proxy_auth)
    if isinstance(role, str):
        names = {"stateful": TimeoutRole.STATEFUL_PROXY, "stateless": TimeoutRole.STATELESS_PROXY}
        if role.lower() not in names:
            raise ConfigError("role", role, '"stateful" or "stateless"')
        role = names[role.lower()]
    if role not in (TimeoutRole.STATEFUL_PROXY, TimeoutRole.STATELESS_PROXY):
        raise ConfigError("role", role, "STATEFUL_PROXY or STATELESS_PROXY")
    if timer_c <= 180:
        raise ConfigError("timer_c", timer_c, "more than 180 s (RFC 3261 §16.6 step 11)")
    rng = rng or random.SystemRandom()
    location = location_service if location_service is not None else LocationService()
    if limits is not None:
        location.limits = limits
    async with open_service_nursery() as nursery:
        site = ProxySite(
            nursery,
            domain=domain,
            location=location,
            role=role,
            record_route=record_route,
            registrar=registrar,
            credentials=credentials,
            peers=peers or {},
            resolver=resolver if resolver is not None else default_resolver(rng=rng),
            rng=rng,
            timer_c=timer_c,
            aliases=aliases,
            policy=policy,
            secret=secret,
            store=location_store,
        )

        async def handler(incoming: IncomingRequest) -> None:
            await handle_stateful(site, incoming)

        stateful = role is TimeoutRole.STATEFUL_PROXY
        try:
            async with open_stack(
                listen,
                timer_config=timer_config,
                role=role,
                handler=handler if stateful else None,
                on_stray=site._on_stray,
                transport_config=transport_config,
                backend=backend,
                rng=rng,
                check_requests=False,
                limits=limits,
            ) as stack:
                site._attach(stack)
                yield site
        finally:
            nursery.cancel_scope.cancel()
