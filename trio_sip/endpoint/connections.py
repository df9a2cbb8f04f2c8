# The endpoint's connections: one user (DN) at one server site each, registered at once and
# with equal priority (docs/endpoint.md; "Geo-redundancy" in docs/architecture.md).
#
# Theory of operation: every enabled connection runs one registration task
# (trio_sip.ua.registration.UaRegistration, over the user agent's FailoverClient, so the
# site's addresses share the endpoint's blacklist) plus a watcher task that turns the task's
# RegistrationEvents into connection statuses (status.py). The REGISTER machine is the core's,
# with one change of policy (``BackoffRegistration``): after the n-th failure in a row the next
# attempt is ``retry_delay(n, reg_interval, retry_initial, retry_max)`` seconds later, not a
# whole reg_interval, so a site that comes back is used again within ``retry_max`` seconds.
#
# Each registration's Contact carries a ``line`` URI parameter unique to the connection; a
# registrar hands it back in the Request-URI of incoming requests, which is how ``match``
# finds the connection an incoming call arrived on (then the user, then the site's address).
#
# An INVITE through a connection that fails at its site (timeout, transport error, 503) makes
# the connection UNAVAILABLE at once although its binding looked current; its registration is
# then renewed (unregister, bounded by unregister_timeout, and a new registration task), so
# the retry schedule runs and a site that comes back without its bindings gets ours again.
#
# Keep-alives: with ``keep_alive_period`` > 0, each time a connection becomes REGISTERED its
# keep-alive is pointed at the target the REGISTER actually reached (the address the site's
# DNS names resolved to, SRV port included, after any failover inside the site): NULL CRLFs
# to that address for UDP, RFC 5626 CRLFCRLF pings on the registration's flow for TCP/TLS. A
# ping without a pong aborts the flow; the registration task sees the flow fail and refreshes
# at once over a new connection (REGISTERED -> REGISTERING "transport error: ... no CRLF pong"),
# and the next REGISTERED watches the new flow. Connections that share a destination share one
# loop (counted per destination: disabling one does not silence the other).
# ``set_keep_alive_period`` re-times every loop at run time; 0 stops them.
"""Connection, BackoffRegistration and ConnectionSet."""

from __future__ import annotations

import contextlib
import logging
import math
import random
import weakref
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, final

import attrs
import trio

from trio_sip.config import ConnectionConfig, EndpointConfig
from trio_sip.keepalive import KeepAlives
from trio_sip.proto.auth import CredentialStore, DigestClient
from trio_sip.proto.errors import ConfigError, SipError, TransportError
from trio_sip.proto.ids import new_tag
from trio_sip.proto.message import Request
from trio_sip.proto.registration import Registration as RegisterMachine
from trio_sip.proto.registration import RegistrationState, StateChanged
from trio_sip.proto.target import Target
from trio_sip.proto.uri import NameAddress, SipUri, parse_uri
from trio_sip.transports import Flow
from trio_sip.ua import UserAgent
from trio_sip.ua.registration import EventStream, RegistrationEvent, UaRegistration

from .status import ConnectionEvent, ConnectionStatus, StatusCallback, StatusStream, retry_delay

__all__ = ["BackoffRegistration", "Connection", "ConnectionSet", "site_uri"]

logger = logging.getLogger("trio_sip.endpoint")
RS = RegistrationState
CS = ConnectionStatus


def site_uri(server: str, transport: str) -> SipUri:
    """``host[:port]`` or a SIP URI as a loose-routing URI with the connection's transport."""
    text = server if server.lower().startswith(("sip:", "sips:")) else f"sip:{server}"
    uri = parse_uri(text)
    if not isinstance(uri, SipUri):
        raise ConfigError("server", server, "host[:port] or a sip:/sips: URI")
    params = uri.params
    if transport != "UDP" and "transport" not in params and not uri.secure:
        params = params.with_param("transport", transport.lower())
    return uri.evolve(user=None, params=params)


class BackoffRegistration(RegisterMachine):
    """The core's REGISTER machine with the endpoint's retry schedule (module comment)."""

    def __init__(self, *args: Any, retry_initial: float, retry_max: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        #: Failures in a row (0 after a 2xx).
        self.failures = 0

    def handle(self, event: Any, now: float) -> list[Any]:
        outputs = super().handle(event, now)
        for output in outputs:
            if not isinstance(output, StateChanged):
                continue
            if output.new is RS.FAILED:
                self.failures += 1
                plain = now + self.reg_interval  # no Retry-After: our schedule applies
                if self.deadline is not None and math.isclose(self.deadline, plain):
                    delay = retry_delay(
                        self.failures, self.reg_interval, self.retry_initial, self.retry_max
                    )
                    self.deadline = now + delay
            elif output.new is RS.REGISTERED:
                self.failures = 0
        return outputs


@final
class Connection:
    """One connection of an endpoint (``endpoint.connections[id]``); never built by users."""

    def __init__(self, config: ConnectionConfig, line: str, now: float) -> None:
        #: The connection's configuration (replaced by ``add_connection`` only).
        self.config = config
        #: The ``line`` parameter of this connection's Contact.
        self.line = line
        self.status = CS.DISABLED
        self.reason = "added"
        self.since = now
        #: The event that brought the connection to its current status (what a new
        #: ``status_events()`` stream delivers first).
        self.last_event: ConnectionEvent | None = None
        #: Failed attempts since the connection was added: REGISTERs the site refused or never
        #: answered, and calls that failed at its site (``wait_registered`` counts them).
        self.failures = 0
        self.registration: UaRegistration | None = None
        #: What this connection's keep-alives go to: the ``Target`` its registration went
        #: to (NULL CRLFs for UDP, RFC 5626 pings on the flow for TCP/TLS), None when off.
        self.keep_alive: Target | None = None
        self._keep_alive_key: object = None
        self._restarting = False

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def user(self) -> str:
        return self.config.user.partition("@")[0]

    @property
    def domain(self) -> str:
        """The AOR's domain: the user's ``@domain``, else the server's host."""
        _, at, domain = self.config.user.partition("@")
        if at:
            return domain
        host = self.config.server_host
        return f"[{host}]" if ":" in host else host

    @property
    def aor(self) -> NameAddress:
        return NameAddress(parse_uri(f"sip:{self.user}@{self.domain}"), self.config.display_name)

    @property
    def proxy(self) -> SipUri:
        """Where this connection's requests go first: its first outbound proxy, else the
        server."""
        cfg = self.config
        return site_uri(cfg.outbound_proxies[0] if cfg.outbound_proxies else cfg.server,
                        cfg.transport)  # fmt: skip

    @property
    def proxies(self) -> list[SipUri]:
        """This connection's configured proxies: its outbound proxies, else its server."""
        cfg = self.config
        return [site_uri(p, cfg.transport) for p in cfg.outbound_proxies or (cfg.server,)]

    @property
    def credentials(self) -> CredentialStore | None:
        cfg = self.config
        if cfg.password is None:
            return None
        pair = (cfg.auth_user or self.user, cfg.password)
        if cfg.realm is not None:
            return CredentialStore(realms={cfg.realm: pair})
        return CredentialStore(default=pair)

    @property
    def next_attempt(self) -> float | None:
        """When the next REGISTER (refresh or retry) is due, in trio time."""
        return self.registration.machine.deadline if self.registration is not None else None

    def site_hosts(self) -> set[str]:
        hosts = {self.proxy.host.lower(), self.config.server_host.lower()}
        if self.registration is not None and self.registration.target is not None:
            hosts.add(self.registration.target.host.lower())
        return hosts

    def __repr__(self) -> str:
        cfg = self.config
        return f"<Connection {self.id} {cfg.user} at {cfg.server}: {self.status.value}>"


class ConnectionSet:
    """The connections of one endpoint and their tasks, supervised in ``nursery``."""

    def __init__(
        self,
        ua: UserAgent,
        nursery: trio.Nursery,
        config: EndpointConfig,
        *,
        rng: random.Random,
        keepalives: KeepAlives,
        retry_initial: float,
        retry_max: float,
        unregister_timeout: float,
        on_status: StatusCallback | None,
        on_unavailable: Callable[[Connection, str], None],
    ) -> None:
        self.ua = ua
        self.config = config
        self._nursery = nursery
        self._rng = rng
        self._keepalives = keepalives
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self._unregister_timeout = unregister_timeout
        self._on_status = on_status
        self._on_unavailable = on_unavailable
        self._all: dict[str, Connection] = {}
        self.view: Mapping[str, Connection] = MappingProxyType(self._all)
        self._streams: weakref.WeakSet[StatusStream] = weakref.WeakSet()  # dropped: gone
        #: Keep-alive destinations (an address or a Flow) -> the connections using them.
        self._keep_alive_users: dict[object, set[str]] = {}
        self._closed = False
        self._changed = trio.Event()

    def __iter__(self) -> Iterator[Connection]:
        return iter(list(self._all.values()))

    def get(self, connection_id: str) -> Connection:
        try:
            return self._all[connection_id]
        except KeyError:
            raise ConfigError(
                "connection_id", connection_id, f"one of {sorted(self._all)}"
            ) from None

    # -- status ------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def stream(self) -> StatusStream:
        """A new stream: each connection's current status first (the event that brought it
        there), then every change."""
        stream = StatusStream()
        for conn in self:
            if conn.last_event is not None:
                stream._put(conn.last_event)
        if self._closed:
            stream._close()
        self._streams.add(stream)
        return stream

    async def changed(self) -> None:
        """Wait for the next status change or failure (of any connection)."""
        await self._changed.wait()

    def _pulse(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def failed(self, conn: Connection, new: ConnectionStatus, reason: str, when: float) -> None:
        """An attempt through ``conn`` failed: count it, then set the status."""
        conn.failures += 1
        self.set_status(conn, new, reason, when)
        self._pulse()

    def set_status(
        self, conn: Connection, new: ConnectionStatus, reason: str, when: float | None = None
    ) -> None:
        conn.reason = reason
        old = conn.status if conn.id in self._all or new is CS.REMOVED else None
        if old is new:
            return
        conn.status = new
        conn.since = trio.current_time() if when is None else when
        event = conn.last_event = ConnectionEvent(conn.id, old, new, reason, conn.since)
        self._pulse()
        logger.info("%s", event)
        for stream in list(self._streams):
            stream._put(event)
        if self._on_status is not None:
            try:
                self._on_status(event)
            except Exception:
                logger.exception("the status callback failed on %s", event)
        if new is CS.UNAVAILABLE:
            self._on_unavailable(conn, reason)

    # -- run-time changes --------------------------------------------------------------------

    async def add(self, config: ConnectionConfig) -> Connection:
        if config.id in self._all:
            raise ConfigError("id", config.id, "a connection id not in use")
        if config.transport not in {t for t, _ in self.ua.stack.listening}:
            raise ConfigError("transport", config.transport, "a transport the endpoint listens on")
        conn = Connection(config, f"{len(self._all)}{new_tag(self._rng)[:8]}", trio.current_time())
        self.set_status(conn, CS.DISABLED if not config.enabled else CS.REGISTERING, "added")
        self._all[config.id] = conn
        if config.enabled:
            await self._start(conn)
        return conn

    async def enable(self, connection_id: str) -> None:
        conn = self.get(connection_id)
        if conn.registration is not None or conn.status is not CS.DISABLED:
            return
        conn.config = attrs.evolve(conn.config, enabled=True)
        self.set_status(conn, CS.REGISTERING, "enabled")
        await self._start(conn)

    async def disable(self, connection_id: str, *, reason: str = "disabled") -> None:
        conn = self.get(connection_id)
        conn.config = attrs.evolve(conn.config, enabled=False)
        await self._stop(conn)
        self.set_status(conn, CS.DISABLED, reason)

    async def remove(self, connection_id: str) -> None:
        conn = self.get(connection_id)
        await self._stop(conn)
        del self._all[connection_id]
        self.set_status(conn, CS.REMOVED, "removed")

    async def aclose(self) -> None:
        """Unregister every connection (in parallel, each bounded); end the status streams."""
        async with trio.open_nursery() as nursery:
            for conn in self:
                nursery.start_soon(self._stop, conn)
        self._closed = True
        for stream in list(self._streams):
            stream._close()
        self._pulse()

    # -- tasks -------------------------------------------------------------------------------

    def _contact(self, conn: Connection) -> str:
        transport = conn.config.transport
        host, port = next(a for t, a in self.ua.stack.listening if t == transport)
        bracket = f"[{host}]" if ":" in host else host
        extra = "" if transport == "UDP" else f";transport={transport.lower()}"
        return f"<sip:{conn.user}@{bracket}:{port};line={conn.line}{extra}>"

    async def _start(self, conn: Connection) -> None:
        cfg = conn.config
        # The site's calls all come from its proxies: exempt from the request rate (ua/trust.py).
        self.ua._trust.add([*conn.proxies, site_uri(cfg.server, cfg.transport)])
        if cfg.expires == 0:  # standalone: usable without registering
            self.set_status(conn, CS.REGISTERED, "registration off (expires = 0)")
            return
        credentials = conn.credentials
        machine = BackoffRegistration(
            str(conn.aor),
            self._contact(conn),
            rng=self._rng,
            registrar=f"sip:{conn.domain}",
            expires=cfg.expires,
            reg_interval=cfg.reg_interval,
            digest=DigestClient(credentials, self._rng) if credentials is not None else None,
            config=self.ua.stack.timer_config,
            retry_initial=self.retry_initial,
            retry_max=self.retry_max,
        )
        registration = UaRegistration(
            machine,
            self.ua.failover,
            conn.proxy,
            stack=self.ua.stack,
            keepalives=None,  # the keep-alives follow the registration's target (_keep_alive)
            keepalive_period=0.0,
            flow_retry=self.retry_max,
            unregister_timeout=self._unregister_timeout,
        )
        conn.registration = registration
        events = registration.events()
        self._nursery.start_soon(self._watch, conn, registration, events)
        await self._nursery.start(registration.run)

    async def _stop(self, conn: Connection) -> None:
        registration, conn.registration = conn.registration, None
        if registration is not None:
            await registration.aclose()
        await self._drop_keep_alive(conn)

    # -- keep-alives -------------------------------------------------------------------------

    @property
    def keepalives(self) -> KeepAlives:
        return self._keepalives

    async def set_keep_alive_period(self, seconds: int) -> None:
        """Change ``keep_alive_period`` at run time (0 stops every keep-alive)."""
        self.config = attrs.evolve(self.config, keep_alive_period=seconds)
        for conn in self:
            if seconds > 0 and conn.status is CS.REGISTERED:
                await self.keep_alive(conn, retime=True)
            else:  # off, or not registered now: back at the new period once registered
                await self._drop_keep_alive(conn)

    async def keep_alive(self, conn: Connection, *, retime: bool = False) -> None:
        """Point ``conn``'s keep-alives at the target its registration reached (module
        comment); ``retime`` applies a changed period to a running loop."""
        period = self.config.keep_alive_period
        registration = conn.registration
        target = registration.target if registration is not None else None
        if period <= 0 or target is None or self._closed:
            await self._drop_keep_alive(conn)
            return
        key: object
        try:
            if target.reliable:
                key = self._flow_to(target)
                if conn._keep_alive_key is not key:
                    await self._drop_keep_alive(conn)
                elif retime:
                    self._keepalives.unwatch_flow(key)
                await self._keepalives.watch_flow(
                    key, period, pong_timeout=self.config.rfc5626_pong_timeout
                )
            else:
                key = (target.host, target.port)
                if conn._keep_alive_key != key:
                    await self._drop_keep_alive(conn)
                if conn._keep_alive_key != key or retime:
                    await self._keepalives.send_sip_keepalive(target.host, target.port, True,
                                                              period)  # fmt: skip
        except SipError as exc:
            logger.warning("%s: no keep-alives to %s: %s", conn.id, target, exc)
            await self._drop_keep_alive(conn)
            return
        if conn.registration is not registration:  # stopped meanwhile
            await self._drop_keep_alive(conn)
            await self._release(key)
            return
        self._keep_alive_users.setdefault(key, set()).add(conn.id)
        conn._keep_alive_key, conn.keep_alive = key, target

    def _flow_to(self, target: Target) -> Flow:
        """The open flow the REGISTER to ``target`` went over (never a new connection)."""
        for flow in self.ua.stack.transport_layer.flows:
            if flow.transport == target.transport and flow.remote == (target.host, target.port):
                return flow
        raise TransportError(f"no open {target.transport} flow to {target.host}:{target.port}")

    async def _drop_keep_alive(self, conn: Connection) -> None:
        key, conn._keep_alive_key, conn.keep_alive = conn._keep_alive_key, None, None
        if key is None:
            return
        users = self._keep_alive_users.get(key, set())
        users.discard(conn.id)
        if not users:
            await self._release(key)

    async def _release(self, key: object) -> None:
        """Stop the keep-alive loop of ``key`` unless another connection uses it."""
        if self._keep_alive_users.get(key):
            return
        self._keep_alive_users.pop(key, None)
        if isinstance(key, Flow):
            self._keepalives.unwatch_flow(key)
        else:
            assert isinstance(key, tuple)
            with contextlib.suppress(SipError):
                await self._keepalives.send_sip_keepalive(key[0], key[1], False)

    async def _watch(
        self, conn: Connection, registration: UaRegistration, events: EventStream[RegistrationEvent]
    ) -> None:
        async for event in events:
            if conn.registration is not registration:
                return
            if event.new is RS.REGISTERED:
                await self.keep_alive(conn)  # in place when the application sees REGISTERED
                if conn.registration is not registration:
                    return
                self.set_status(conn, CS.REGISTERED, event.reason, event.time)
            elif event.new is RS.FAILED:
                self.failed(conn, CS.UNAVAILABLE, event.reason, event.time)
            elif event.new is RS.REGISTERING and conn.status is not CS.UNAVAILABLE:
                self.set_status(conn, CS.REGISTERING, event.reason, event.time)

    # -- sites that failed a call -----------------------------------------------------------

    def mark_unavailable(self, conn: Connection, reason: str) -> None:
        """An INVITE through ``conn`` failed at its site: UNAVAILABLE now, and the binding is
        renewed (unregister, bounded, then a new registration on the retry schedule), since a
        site that comes back may have lost it (module comment)."""
        if conn.status not in (CS.REGISTERED, CS.REGISTERING) or self._closed:
            return
        self.failed(conn, CS.UNAVAILABLE, reason, trio.current_time())
        if conn.registration is not None and not conn._restarting:
            conn._restarting = True
            self._nursery.start_soon(self._restart, conn)

    async def _restart(self, conn: Connection) -> None:
        try:
            registration, conn.registration = conn.registration, None
            if registration is not None:
                await registration.aclose()
            if self._all.get(conn.id) is conn and conn.config.enabled and not self._closed:
                await self._start(conn)
        finally:
            conn._restarting = False

    # -- incoming requests -------------------------------------------------------------------

    def match(self, request: Request) -> Connection | None:
        """The connection an incoming request arrived on: by the Contact's ``line`` parameter
        in the Request-URI, else by user and the site it came from, else by either."""
        live = [c for c in self if c.status is not CS.REMOVED]
        uri = request.uri
        if isinstance(uri, SipUri):
            line = uri.params.get("line")
            for conn in live:
                if line is not None and conn.line == line:
                    return conn
        user = uri.user if isinstance(uri, SipUri) else None
        to = request.to.uri
        users = {u for u in (user, to.user if isinstance(to, SipUri) else None) if u}
        via = request.vias[0] if request.vias else None
        source = (via.received or via.host).lower() if via is not None else ""
        by_user = [c for c in live if c.user in users]
        by_site = [c for c in live if source in c.site_hosts()]
        for conn in by_user:
            if conn in by_site:
                return conn
        found = by_user or by_site
        return found[0] if found else None
