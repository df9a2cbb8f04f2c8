# The geo-redundant endpoint: one user agent registered at several server sites at once
# (docs/endpoint.md; "Geo-redundancy" and "Failover policy" in docs/architecture.md).
#
# Theory of operation: ``open_endpoint(config)`` opens one UserAgent (its Stack: transports and
# transactions; its FailoverClient and blacklist, shared by every connection) and one nursery
# holding everything else: per connection a registration task and its watcher
# (connections.py), keep-alive loops, the task that sorts incoming calls by connection, and one
# task per call that follows its session events (calls.py).
#
# dial(connection_id, destination) tries the candidates in order: the named connection unless
# it is UNAVAILABLE or DISABLED, then every other REGISTERED connection in configuration order
# (the named one last if it was skipped). Each attempt is ``ua.call`` with the connection's
# AOR in From, its credentials and its site as the outbound proxy; inside one site the
# FailoverClient already moves between the site's addresses once. If the attempt ends before
# any answer because of the site (every address timed out or refused, or a 503/408), the
# connection is marked UNAVAILABLE and the next candidate is tried, reported as a Failover
# event; any other rejection (486, 404...) ends the session. ``hold_other_calls`` holds every
# other answered call before a call is placed or answered (each hold in parallel; a failure is
# logged, not raised). When a connection becomes unavailable because nothing answers at its
# site, the endpoint sends an INFO in each answered call on it: a timeout or transport error
# ends that call with 408 (calls.py). Transaction timeouts of the user agent come back with
# the connection they belong to (timeouts.py: ``on_timeout``, ``endpoint.timeouts()``).
"""open_endpoint and Endpoint."""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import TypedDict, Unpack, final

import attrs
import trio

from trio_sip._groups import open_service_nursery
from trio_sip._inputs import listen_arg, request_uri_arg
from trio_sip.config import ConnectionConfig, EndpointConfig
from trio_sip.config.tls import transport_config as tls_transport_config
from trio_sip.dns import DnspythonResolver, Resolver
from trio_sip.failover import FailoverClient
from trio_sip.keepalive import KeepAlives
from trio_sip.proto.auth import CredentialStore
from trio_sip.proto.blacklist import Blacklist
from trio_sip.proto.errors import ConfigError, ParseError, SipError, TransactionError
from trio_sip.proto.limits import Limits
from trio_sip.proto.registration import RegistrationState
from trio_sip.proto.sdp import SessionDescription
from trio_sip.proto.uri import NameAddress, SipUri, Uri, parse_uri
from trio_sip.stack import TimeoutStream
from trio_sip.stack._timeouts import TimeoutHub
from trio_sip.transports import TransportConfig
from trio_sip.transports.base import NetworkBackend
from trio_sip.ua import (
    AgentTimeout,
    CallFailed,
    CallState,
    Ended,
    EndReason,
    Failover,
    UserAgent,
    open_user_agent,
)
from trio_sip.ua.registration import RegistrationFailed

from .calls import EndpointCall, IncomingEndpointCall, site_failure, site_is_dead
from .connections import Connection, ConnectionSet
from .status import CallEvent, ConnectionStatus, StatusCallback, StatusStream
from .timeouts import EndpointTimeout, locate

__all__ = ["Endpoint", "destination_uri", "open_endpoint"]

logger = logging.getLogger("trio_sip.endpoint")
CS = ConnectionStatus


@final
class Endpoint:
    """A running endpoint. Made by :func:`open_endpoint`; never constructed by users."""

    def __init__(
        self,
        ua: UserAgent,
        nursery: trio.Nursery,
        config: EndpointConfig,
        connections: ConnectionSet,
        *,
        incoming_queue: int,
        on_call_event: Callable[[CallEvent], object] | None,
        on_timeout: Callable[[EndpointTimeout], object] | None = None,
    ) -> None:
        self.ua = ua
        self.config = config
        self._nursery = nursery
        self._set = connections
        self._live: list[EndpointCall] = []
        self._on_call_event = on_call_event
        self._incoming_in, self._incoming_out = trio.open_memory_channel[IncomingEndpointCall](
            incoming_queue
        )
        self._closed = False
        self._timeout_hub: TimeoutHub[EndpointTimeout] = TimeoutHub(
            on_timeout, ua.stack._hook_failed
        )

    # -- connections ---------------------------------------------------------------------------

    @property
    def connections(self) -> Mapping[str, Connection]:
        """Connection id -> :class:`Connection` (read-only; ``status``, ``reason``, ``config``)."""
        return self._set.view

    async def add_connection(self, config: ConnectionConfig) -> Connection:
        """Add a connection; it starts registering at once when ``config.enabled``. Raises
        :class:`ConfigError` when its id is in use or the endpoint does not listen on its
        transport."""
        return await self._set.add(config)

    async def enable(self, connection_id: str) -> None:
        """Start registering a disabled connection again (the SDK's ``EnableConnection``).
        Raises :class:`ConfigError` naming ``connection_id`` for an unknown id."""
        await self._set.enable(connection_id)

    async def disable(self, connection_id: str) -> None:
        """Stop registering (unregister, bounded); the status becomes DISABLED. Raises
        :class:`ConfigError` naming ``connection_id`` for an unknown id."""
        await self._set.disable(connection_id)

    async def remove(self, connection_id: str) -> None:
        """Unregister and forget the connection; the last status event says REMOVED. Raises
        :class:`ConfigError` naming ``connection_id`` for an unknown id."""
        await self._set.remove(connection_id)

    @property
    def keepalives(self) -> KeepAlives:
        """The endpoint's keep-alive loops (``statistics()``: what runs, CRLFs sent)."""
        return self._set.keepalives

    async def set_keep_alive_period(self, seconds: int) -> None:
        """Change ``keep_alive_period`` at run time: every registered connection's keep-alive
        is re-timed (started when it was off), the others get theirs when they register
        again; 0 stops them all. Raises ``ConfigError`` outside 0..3600."""
        self.config = attrs.evolve(self.config, keep_alive_period=seconds)
        await self._set.set_keep_alive_period(self.config.keep_alive_period)

    def status_events(self) -> StatusStream:
        """``async for event in endpoint.status_events()``: each connection's current status
        first (the ConnectionEvent that brought it there), then every change; it ends when the
        endpoint closes. A stream opened late, or from a task that started late, misses
        nothing."""
        return self._set.stream()

    def timeouts(self, maxlen: int = 1024) -> TimeoutStream[EndpointTimeout]:
        """``async for timeout in endpoint.timeouts()``: each :class:`EndpointTimeout` (a
        transaction timeout with its connection id) from now until the endpoint closes."""
        return self._timeout_hub.stream(maxlen)

    def _on_timeout(self, timeout: AgentTimeout) -> None:
        if self._timeout_hub.listening:
            self._timeout_hub.publish(locate(self, timeout))

    async def wait_registered(self, *connection_ids: str, failures: int | None = 1) -> None:
        """Wait until every named connection (default: every enabled one) is REGISTERED.

        Raises :class:`~trio_sip.RegistrationFailed` (its ``reason`` names each connection and
        why) when that can no longer happen by itself: every named connection that is not
        REGISTERED has failed ``failures`` times during this wait (a site that answers 401,
        403 or 5xx, or never answers: a timeout, a transport error), is DISABLED or REMOVED,
        or failed with no retry scheduled (``reg_interval`` 0); or the endpoint closed.
        ``failures=None`` waits through every retry (until the application gives up, e.g.
        with ``trio.fail_after``). Raises ``ConfigError`` for an unknown connection id."""
        if failures is not None and (
            isinstance(failures, bool) or not isinstance(failures, int) or failures < 1
        ):
            raise ConfigError("failures", failures, "an integer >= 1, or None (wait forever)")
        ids = connection_ids or tuple(c.id for c in self._set if c.config.enabled)
        conns = [self._set.get(i) for i in ids]
        before = {c.id: c.failures for c in conns}

        def stuck(conn: Connection) -> bool:
            if conn.status in (CS.DISABLED, CS.REMOVED):
                return True
            registration = conn.registration
            if (
                conn.status is CS.UNAVAILABLE
                and registration is not None
                and registration.machine.state is RegistrationState.FAILED
                and registration.machine.deadline is None
            ):
                return True  # no retry will come
            return failures is not None and conn.failures - before[conn.id] >= failures

        while True:
            waiting = [c for c in conns if c.status is not CS.REGISTERED]
            if not waiting:
                await trio.lowlevel.checkpoint()
                return
            if self._set.closed:
                raise RegistrationFailed("the endpoint closed before the connections registered")
            if all(stuck(c) for c in waiting):
                reasons = "; ".join(f"{c.id}: {c.status.value} ({c.reason})" for c in waiting)
                raise RegistrationFailed(f"not registered: {reasons}")
            await self._set.changed()

    # -- calls ---------------------------------------------------------------------------------

    @property
    def calls(self) -> list[EndpointCall]:
        """The sessions not ended yet."""
        return list(self._live)

    def candidates(self, connection_id: str) -> list[Connection]:
        """The connections a dial on ``connection_id`` tries, in order (module comment)."""
        named = self._set.get(connection_id)
        others = [c for c in self._set if c is not named and c.status is CS.REGISTERED]
        if named.status in (CS.REGISTERED, CS.REGISTERING):
            return [named, *others]
        found = [*others, named] if named.status is CS.UNAVAILABLE else others
        if not found:
            raise CallFailed(None, f"connection {connection_id} is {named.status.value}")
        return found

    @asynccontextmanager
    async def dial(
        self,
        connection_id: str,
        destination: str | Uri,
        *,
        sdp: SessionDescription | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> AsyncIterator[EndpointCall]:
        """Place a call on ``connection_id`` (or another registered connection when its site is
        down); leaving the block hangs up. ``destination``: a SIP URI, ``user@domain`` or a bare
        user/DN (then the domain of the connection used). Raises ``CallFailed`` when no INVITE
        could even be sent on any connection."""
        candidates = self.candidates(connection_id)
        ecall = EndpointCall(self, outgoing=True, connection_id=candidates[0].id)
        await self._hold_others(None)
        self._adopt(ecall)
        try:
            await self._nursery.start(self._place, ecall, candidates, destination, sdp,
                                      list(headers))  # fmt: skip
        except BaseException:
            self._forget(ecall)
            raise
        try:
            yield ecall
        finally:
            await ecall.aclose()

    async def _place(
        self,
        ecall: EndpointCall,
        candidates: list[Connection],
        destination: str | Uri,
        sdp: SessionDescription | None,
        headers: list[tuple[str, str]],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        reasons: list[str] = []
        started = False
        previous: tuple[str, str] | None = None  # (connection id, Call-ID) of the failed try
        ua = self.ua
        last: Ended | None = None
        for conn in candidates:
            if ecall._hangup.is_set() or conn.status is CS.REMOVED:
                break
            uri = destination_uri(destination, conn)
            try:
                async with ua.call(
                    uri, sdp=sdp, outbound_proxy=conn.proxy, headers=headers,
                    aor=conn.aor, credentials=conn.credentials, proxies=self.proxies_for(conn),
                ) as call:  # fmt: skip
                    ecall._attach(conn.id, call)
                    if previous is not None:
                        why = f"connection {previous[0]}: {reasons[-1].partition(': ')[2]}"
                        ecall._emit(Failover(f"{why}; trying connection {conn.id}", previous[1],
                                             call.call_id or ""))  # fmt: skip
                    if not started:
                        started = True
                        task_status.started()
                    if ecall._hangup.is_set():
                        await call.hangup()
                    last = await ecall._follow(call)
                    reason = None if ecall._answered.is_set() else site_failure(last)
                    if reason is None or ecall._hangup.is_set():
                        ecall._end(last)
                        return
                    reasons.append(f"{conn.id}: {reason}")
                    previous = (conn.id, call.call_id or "")
                    self._set.mark_unavailable(conn, reason)
            except CallFailed as exc:  # nothing was sent on this connection (DNS, transport)
                reasons.append(f"{conn.id}: {exc.reason}")
                self._set.mark_unavailable(conn, exc.reason)
        detail = "; ".join(reasons) or "hung up"
        if not ecall.session_id:  # no INVITE went out: the session still has an id to show
            ecall.session_id = ua._new_session_id()
        ecall._end(Ended(EndReason.FAILED, last.response if last else None, detail))
        if not started:
            raise CallFailed(None, detail)

    def proxies_for(self, conn: Connection) -> list[SipUri]:
        """The configured proxies of a call on ``conn`` (seed 002's cycling list for its 2xx,
        ACK, BYE and CANCEL under a short sip_transaction_timeout): ``conn``'s outbound
        proxies (else its server), then those of the other connections that are not
        disabled, in configuration order (seed 001: "proxy0 and proxy1 are equivalent to the
        SIP Endpoint SDK connections"); each is resolved per RFC 3263 when used."""
        others = [
            c for c in self._set if c is not conn and c.status not in (CS.DISABLED, CS.REMOVED)
        ]
        found: list[SipUri] = []
        for uri in [*conn.proxies, *(u for c in others for u in c.proxies)]:
            if uri not in found:
                found.append(uri)
        return found

    async def incoming_calls(self) -> AsyncIterator[IncomingEndpointCall]:
        """Iterate over new incoming calls, each with its ``connection_id``."""
        async for incoming in self._incoming_out:
            yield incoming

    async def _sort_incoming(self) -> None:
        async for incoming in self.ua.incoming_calls():
            conn = self._set.match(incoming.request)
            wrapped = IncomingEndpointCall(self, incoming, conn.id if conn is not None else "")
            try:
                self._incoming_in.send_nowait(wrapped)
            except (trio.WouldBlock, trio.ClosedResourceError):
                self._spawn(incoming.reject, 486)

    async def _hold_others(self, keep: EndpointCall | None) -> None:
        if not self.config.hold_other_calls:
            return
        others = [c for c in self._live
                  if c is not keep and c.state is CallState.ANSWERED and not c.held]  # fmt: skip

        async def hold(call: EndpointCall) -> None:
            try:
                await call.hold()
            except SipError as exc:
                logger.info("%r: hold failed: %s", call, exc)

        async with trio.open_nursery() as nursery:
            for call in others:
                nursery.start_soon(hold, call)

    def _on_unavailable(self, conn: Connection, reason: str) -> None:
        """A connection became unavailable: check its answered calls if its site is dead."""
        if not site_is_dead(reason):
            return
        for ecall in self._live:
            if ecall.connection_id == conn.id and ecall.state is CallState.ANSWERED:
                self._spawn(self._check_call, ecall)

    async def _check_call(self, ecall: EndpointCall) -> None:
        call = ecall.call
        if call is None:
            return
        try:
            await call.send_info()
        except TransactionError as exc:
            if ecall.call is call:
                ecall._site_dead(call, str(exc))
        except SipError as exc:
            logger.info("%r: INFO check: %s", ecall, exc)

    # -- bookkeeping ---------------------------------------------------------------------------

    def _adopt(self, ecall: EndpointCall) -> None:
        self._live.append(ecall)

    def _forget(self, ecall: EndpointCall) -> None:
        if ecall in self._live:
            self._live.remove(ecall)

    def _publish_call_event(self, record: CallEvent) -> None:
        if self._on_call_event is not None:
            try:
                self._on_call_event(record)
            except Exception:
                logger.exception("the call event callback failed on %s", record)

    def _spawn(self, fn: Callable[..., Awaitable[object]], *args: object) -> None:
        if not self._closed:
            self._nursery.start_soon(fn, *args)

    async def aclose(self) -> None:
        """Hang up every call, unregister every connection (bounded), stop."""
        if self._closed:
            return
        with trio.CancelScope(shield=True):
            async with trio.open_nursery() as nursery:
                for ecall in list(self._live):
                    nursery.start_soon(ecall.aclose)
            self._closed = True
            await self._set.aclose()
            self._incoming_in.close()
            self._timeout_hub.close()
        self._nursery.cancel_scope.cancel()


def destination_uri(destination: str | Uri, conn: Connection) -> Uri:
    """A SIP URI as it is; ``user@domain`` gets ``sip:``; a bare user the connection's domain.
    Anything else is a ``ConfigError`` naming ``destination``."""
    if not isinstance(destination, str):
        return request_uri_arg("destination", destination)
    text = destination.strip()
    if ":" in text.partition("@")[0] or text.lower().startswith(("sip:", "sips:", "tel:")):
        return request_uri_arg("destination", text)
    if "@" in text:
        return request_uri_arg("destination", f"sip:{text}")
    try:
        return parse_uri(f"sip:{text}@{conn.domain}")
    except ParseError:
        raise ConfigError(
            "destination", destination, "a SIP URI, user@domain or a user (DN)"
        ) from None


def _listen_for(config: EndpointConfig) -> list[tuple[str, str, int]]:
    if config.listen:
        return [(a.transport, a.host, a.port) for a in config.listen]
    transports = sorted({c.transport for c in config.connections} or {"UDP"})
    return [(t, "127.0.0.1", 0) for t in transports]


class EndpointAgentOptions(TypedDict, total=False):
    """The :func:`~trio_sip.open_user_agent` arguments :func:`open_endpoint` passes on (the
    others come from the configuration or from its own arguments)."""

    display_name: str | None
    contact: str | NameAddress | None
    credentials: CredentialStore | None
    failover: FailoverClient | None
    blacklist: Blacklist | None
    transport_config: TransportConfig | None
    media_address: str | None
    media_port: int | None
    media_ports: range | None
    limits: Limits | None
    strict: bool | None


@asynccontextmanager
async def open_endpoint(
    config: EndpointConfig,
    *,
    backend: NetworkBackend | None = None,
    resolver: Resolver | None = None,
    rng: random.Random | None = None,
    listen: Iterable[tuple[str, str, int] | str] | None = None,
    on_status: StatusCallback | None = None,
    on_call_event: Callable[[CallEvent], object] | None = None,
    on_timeout: Callable[[EndpointTimeout], object] | None = None,
    retry_initial: float = 2.0,
    retry_max: float = 30.0,
    unregister_timeout: float = 2.0,
    cleanup_timeout: float = 4.0,
    incoming_queue: int = 16,
    **ua_options: Unpack[EndpointAgentOptions],
) -> AsyncIterator[Endpoint]:
    """A running :class:`Endpoint` for ``config`` (docs/endpoint.md for every argument).

    ``listen`` defaults to ``config.listen``, else 127.0.0.1 (any port) for each transport the
    connections use. Extra keyword arguments go to :func:`~trio_sip.ua.open_user_agent`;
    ``transport_config`` defaults to the configuration's TLS settings
    (:func:`trio_sip.config.tls.transport_config`)."""
    if not 0 < retry_initial <= retry_max:
        raise ConfigError(
            "retry_initial", retry_initial, f"seconds > 0 and <= retry_max ({retry_max})"
        )
    rng = rng if rng is not None else random.SystemRandom()
    if "transport_config" not in ua_options:  # the configuration's TLS files (config/tls.py)
        ua_options["transport_config"] = tls_transport_config(config)
    if resolver is None and config.dns_server is not None:
        resolver = DnspythonResolver.from_address(config.dns_server)
    addresses = listen_arg("listen", listen) if listen is not None else _listen_for(config)
    holder: list[Endpoint] = []

    def on_agent_timeout(timeout: AgentTimeout) -> None:
        if holder:
            holder[0]._on_timeout(timeout)

    first = config.connections[0] if config.connections else None
    aor = "sip:trio-sip@localhost"
    if first is not None:
        user, _, domain = first.user.partition("@")
        aor = f"sip:{user}@{domain or first.server_host}"
    async with open_user_agent(
        addresses, aor=aor, timer_config=config.timer_config(), resolver=resolver,
        backend=backend, rng=rng, cleanup_timeout=cleanup_timeout,
        user_agent=config.user_agent, on_timeout=on_agent_timeout, **ua_options,
    ) as ua, open_service_nursery() as nursery:  # fmt: skip
        keepalives = KeepAlives(ua.stack.transport_layer, nursery, rng=rng)

        def on_unavailable(conn: Connection, reason: str) -> None:
            if holder:
                holder[0]._on_unavailable(conn, reason)

        connections = ConnectionSet(
            ua, nursery, config, rng=rng, keepalives=keepalives, retry_initial=retry_initial,
            retry_max=retry_max, unregister_timeout=unregister_timeout, on_status=on_status,
            on_unavailable=on_unavailable,
        )  # fmt: skip
        endpoint = Endpoint(ua, nursery, config, connections, incoming_queue=incoming_queue,
                            on_call_event=on_call_event, on_timeout=on_timeout)  # fmt: skip
        holder.append(endpoint)
        nursery.start_soon(endpoint._sort_incoming)
        try:
            for connection in config.connections:
                await connections.add(connection)
            yield endpoint
        finally:
            await endpoint.aclose()
