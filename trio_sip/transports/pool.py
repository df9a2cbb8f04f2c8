"""The transport layer: listeners, the flow pool and idle closing (RFC 3261 §18).

Theory of operation
-------------------
:class:`TransportLayer` owns every task and socket of the transport layer in one nursery (the
caller's, or its own with :func:`open_transport_layer`), like trio-websocket's
``connect_websocket(nursery, ...)`` / ``open_websocket(...)`` pair.

* ``await nursery.start(layer.listen, "UDP" | "TCP" | "TLS", host, port)`` binds, reports the
  bound ``(host, port)`` through ``task_status`` and serves until the layer closes. TCP and TLS
  are served by :func:`~trio_sip.transports.accept.accept_loop` (capacity errors such as
  EMFILE back off, logged once per interval) with a task per connection in the layer's
  nursery; connections are capped in total and per source, TLS handshakes are bounded
  (``trio_sip.Limits``, see :mod:`trio_sip.transports.accept`).
* ``layer.admit_source``, when set (the stack sets it), is asked about the source address of
  every datagram and accepted connection before anything is parsed: False drops it unread
  (a source the stack's admission control found flooding).
* Every received message is parsed once and handed to the single synchronous callback
  ``on_message(message, flow)``; requests first get ``received``/``rport`` in their top Via
  (§18.2.1, RFC 3581 §4). No task per message.
* ``await layer.connect(target)`` returns the open flow for ``(transport, host, port)`` if there
  is one (§18.1.1 / RFC 5923 connection reuse), else opens one; concurrent connects to the same
  key share one attempt. A UDP target gets the UDP listener's flow to it (one NAT binding: the
  datagram leaves from the listening address:port our Via and Contact name); only a layer
  with no UDP listener of that family opens a connected socket. TCP/TLS connections are made
  from the listener's address. ``connect_request`` adds the §18.1.1 size rule and its
  fallback to UDP; ``sent_by(flow)`` is the address our Via names for a flow.
* ``await layer.send_response(response, flow)`` routes a response per §18.2.2: back on the
  connection the request came in on, else a new connection to ``received`` and the sent-by
  port; over UDP from the receiving listener to ``received``/``rport``.
* Idle closing follows httpcore's pool: :meth:`FlowPool.decide` is a pure function of the pool
  and ``now`` that returns the flows to close and the next deadline; the reaper task closes
  them (shielded) and sleeps until that deadline or a change. Failed flows are dropped at once.

Resource handling: every task the layer starts runs in a cancel scope the layer keeps;
:meth:`TransportLayer.aclose` closes every flow and listener and cancels those scopes, so
nothing is left behind. Error handling: an exception while handling one peer's data is logged
and closes that peer's flow; it never propagates into the nursery.
"""

from __future__ import annotations

import math
import ssl
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import trio

from trio_sip._groups import open_service_nursery
from trio_sip.proto.errors import ConfigError, ParseError, TransportError
from trio_sip.proto.limits import DEFAULT_LIMITS, Limits
from trio_sip.proto.message import Request, Response
from trio_sip.proto.parse import parse_message
from trio_sip.proto.target import Target

from . import binding
from ._accepting import _Accepting
from .accept import ConnectionGate, LogThrottle, accept_loop, connection_cap, descriptor_limit
from .base import (
    Address,
    Flow,
    Message,
    NetworkBackend,
    TransportConfig,
    choose_transport,
    format_address,
    logger,
    map_exceptions,
    response_destination,
    stamp_via,
)
from .stream import StreamFlow, StreamPolicy, error_response_untrusted
from .tcp import TrioBackend
from .tls import client_context, wrap_client
from .udp import UdpClientFlow, UdpListener, UdpServerFlow
from .udp_socket import is_ip_literal

__all__ = ["FlowPool", "OnMessage", "TransportLayer", "open_transport_layer"]

OnMessage = Callable[[Message, Flow], None]
FlowKey = tuple[str, str, int]


class FlowPool:
    """The open flows, by ``(transport, host, port)``. Deciding is separate from acting."""

    def __init__(self, on_change: Callable[[], None] | None = None) -> None:
        self._flows: dict[Flow, FlowKey] = {}
        self._by_key: dict[FlowKey, Flow] = {}
        self._on_change = on_change

    def add(self, flow: Flow, key: FlowKey | None = None) -> None:
        key = key or flow.key
        self._flows[flow] = key
        if key not in self._by_key or not self._by_key[key].usable:
            self._by_key[key] = flow
        flow._on_change = self._on_change
        if self._on_change is not None:
            self._on_change()

    def get(self, key: FlowKey) -> Flow | None:
        """The usable flow for ``key``, if any."""
        flow = self._by_key.get(key)
        return flow if flow is not None and flow.usable else None

    def remove(self, flow: Flow) -> None:
        key = self._flows.pop(flow, None)
        if key is not None and self._by_key.get(key) is flow:
            del self._by_key[key]
        flow._on_change = None

    def decide(self, now: float, idle_timeout: float | None) -> tuple[list[Flow], float | None]:
        """Return ``(flows to close, next deadline)``: pure, no I/O.

        A flow is closed when it failed or was closed, or when nobody watches it and it has
        carried nothing for ``idle_timeout`` seconds.
        """
        close: list[Flow] = []
        deadline: float | None = None
        for flow in self._flows:
            if not flow.usable:
                close.append(flow)
            elif idle_timeout is not None and not flow.watched:
                expiry = flow.last_activity + idle_timeout
                if expiry <= now:
                    close.append(flow)
                elif deadline is None or expiry < deadline:
                    deadline = expiry
        return close, deadline

    def __iter__(self) -> Iterator[Flow]:
        return iter(list(self._flows))

    def __len__(self) -> int:
        return len(self._flows)

    def __repr__(self) -> str:
        states = [f.state for f in self._flows]
        counts = ", ".join(f"{s} {states.count(s)}" for s in sorted(set(states)))
        return f"<FlowPool flows: {len(states)}" + (f" ({counts})>" if counts else ">")


class TransportLayer(_Accepting):
    """Listeners and flows in one nursery (see the module docstring and docs/transports.md).

    ``on_message`` may be set after construction (``layer.on_message = endpoint.receive``).
    """

    def __init__(
        self,
        nursery: trio.Nursery,
        on_message: OnMessage | None = None,
        *,
        config: TransportConfig | None = None,
        backend: NetworkBackend | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.on_message = on_message
        self.config = config or TransportConfig()
        #: Message sizes, connection counts and stream timeouts (docs/security.md).
        self.limits = limits = limits or DEFAULT_LIMITS
        #: What the layer refused or closed, by kind (``connections_refused``,
        #: ``tls_handshake_timeouts``, ``message_read_timeouts``, ``first_message_timeouts``,
        #: ``messages_too_large``, ``sources_dropped``...; docs/security.md).
        self.counters: Counter[str] = Counter()
        #: ``admit_source(ip) -> bool``, asked before anything from ``ip`` is parsed (a
        #: datagram, an accepted connection); False drops it. Set by the stack's admission.
        self.admit_source: Callable[[str], bool] | None = None
        self._throttle = LogThrottle(logger)
        self._policy = StreamPolicy(limits, self.counters, self._throttle)
        self._gate = ConnectionGate(
            connection_cap(limits.max_connections, descriptor_limit()),
            limits.max_connections_per_source,
        )
        self.backend = backend or TrioBackend()
        self._nursery = nursery
        self._wakeup = trio.Event()
        self._pool = FlowPool(self._poke)
        self._connecting: dict[FlowKey, trio.Event] = {}
        self._udp_listeners: list[UdpListener] = []
        self._listening: list[tuple[str, Address]] = []
        self._scopes: set[trio.CancelScope] = set()
        self._client_ssl: ssl.SSLContext | None = self.config.client_ssl_context
        self._closed = False
        nursery.start_soon(self._supervise, self._reap_idle)

    # -- public API --------------------------------------------------------------------

    @property
    def listening(self) -> list[tuple[str, Address]]:
        """``[(transport, bound address), ...]`` of the running listeners."""
        return list(self._listening)

    @property
    def flows(self) -> list[Flow]:
        """The flows in the pool (client and accepted connections, connected UDP)."""
        return list(self._pool)

    async def listen(
        self,
        transport: str,
        host: str = "0.0.0.0",
        port: int = 0,
        *,
        task_status: trio.TaskStatus[Address] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on ``(host, port)`` (0: any free port); ``nursery.start`` returns the address.

        Runs until the layer closes. Raises ``TransportError`` if binding fails and
        ``ConfigError`` for an unknown transport or TLS without ``server_ssl_context``.
        """
        transport = transport.upper()
        if transport == "TLS" and self.config.server_ssl_context is None:
            raise ConfigError("server_ssl_context", None, "an ssl.SSLContext to listen on TLS")
        if transport not in ("UDP", "TCP", "TLS"):
            raise ConfigError("transport", transport, "UDP, TCP or TLS")
        self._check_open()
        with self._scope():
            if transport == "UDP":
                with map_exceptions(f"UDP listen on {format_address((host, port))}"):
                    sock = await self.backend.open_udp(host, port)
                await self._serve_udp(UdpListener(sock), task_status)
            else:
                with map_exceptions(f"{transport} listen on {format_address((host, port))}"):
                    listener, address = await self.backend.open_tcp_listener(host, port)
                entry = (transport, address)
                name = f"{transport} listener {format_address(address)}"

                def spawn(stream: trio.abc.Stream) -> None:
                    self._nursery.start_soon(self._accepted, transport, stream)

                try:
                    self._listening.append(entry)
                    task_status.started(address)
                    await accept_loop(listener, spawn, self._throttle, name)
                finally:
                    if entry in self._listening:
                        self._listening.remove(entry)
                    await trio.aclose_forcefully(listener)

    async def connect(self, target: Target) -> Flow:
        """The open flow to ``target`` (reused), or a new one. Raises ``TransportError``.

        UDP with a UDP listener of the target's address family: that listener's flow to the
        target, so the datagrams leave from the listening address:port (one NAT binding; see
        docs/transports.md). TCP/TLS: a connection from the listener's address.
        """
        transport = target.transport.upper()
        if transport == "UDP":
            listener = self._udp_listener_for(target.host)
            if listener is not None:
                self._check_open()
                host = target.host
                if not is_ip_literal(host):
                    v6 = ":" in listener.local[0]
                    host = await binding.resolve_udp(host, target.port, v6)
                return listener.flow_for((host, target.port))
        key = (transport, target.host, target.port)
        while True:
            self._check_open()
            flow = self._pool.get(key)
            if flow is not None:
                return flow
            pending = self._connecting.get(key)
            if pending is None:
                break
            await pending.wait()
        event = self._connecting[key] = trio.Event()
        try:
            flow = await self._open(transport, target)
        finally:
            del self._connecting[key]
            event.set()
        if self._closed:
            await flow.aclose()
            self._check_open()
        self._pool.add(flow, key)
        return flow

    async def datagram_flow(self, remote: Address) -> Flow:
        """A UDP flow to ``remote`` that sends from a listening socket when there is one.

        NAT keep-alives must leave from the SIP port itself: that is the binding the NAT
        keeps open for incoming requests. With no UDP listener of the right family, a
        connected client flow is used instead. (Since every UDP send now leaves from the
        listener, this is :meth:`connect` for a UDP target.)
        """
        return await self.connect(Target("UDP", remote[0], remote[1]))

    def choose_target(self, target: Target, size: int) -> Target:
        """§18.1.1: the target for a request of ``size`` bytes (UDP over the limit → TCP)."""
        return choose_transport(target, size, self.config)

    async def connect_request(self, target: Target, size: int) -> tuple[Target, Flow]:
        """The target and flow for a request of ``size`` bytes to ``target`` (RFC 3261
        §18.1.1): over TCP when a UDP request is over ``udp_max_size`` (:meth:`choose_target`),
        and back over UDP when that TCP connection is refused or reset: "if the attempt to
        establish the connection generates either an ICMP Protocol Not Supported, or results
        in a TCP reset, the element SHOULD retry the request, using UDP". Put the returned
        flow's transport in the Via. Raises ``TransportError``.
        """
        chosen = choose_transport(target, size, self.config)
        try:
            return chosen, await self.connect(chosen)
        except TransportError as exc:
            if chosen is target or not binding.refused_or_reset(exc):
                raise
            logger.info("%s; retrying over UDP (RFC 3261 §18.1.1)", exc)
            return target, await self.connect(target)

    def sent_by(self, flow: Flow) -> Address:
        """The address:port our Via (and a Contact) names for a message sent on ``flow``
        (:func:`~trio_sip.transports.binding.sent_by`): the listening address for the flow's
        transport, else the flow's own local address."""
        return binding.sent_by(self._listening, flow)

    async def send_response(self, response: Response, flow: Flow | None = None) -> Flow:
        """Send ``response`` per §18.2.2; ``flow`` is the one its request arrived on.

        Returns the flow used. Raises ``TransportError`` if every way failed.
        """
        data = bytes(response)
        dest = response_destination(response)
        if dest.reliable:
            if flow is not None and flow.reliable and flow.usable:
                try:
                    await flow.send(data)
                    return flow
                except TransportError as exc:
                    logger.info("response flow failed (%s): reconnecting per §18.2.2", exc)
            out: Flow = await self.connect(dest)
        else:
            address = (dest.host, dest.port)
            if isinstance(flow, UdpServerFlow):
                out = flow.with_remote(address)
            elif isinstance(flow, UdpClientFlow) and flow.usable and flow.remote == address:
                out = flow
            else:
                listener = self._udp_listener_for(dest.host)
                if listener is not None:
                    out = listener.flow_for(address)
                else:
                    out = await self.connect(dest)
        await out.send(data)
        return out

    def sync_response_flow(self, response: Response, flow: Flow | None = None) -> Flow | None:
        """The flow ``send_response`` would use for ``response`` when that one can send
        synchronously (UDP from a listener, or a connected UDP flow to the same address), else
        None: the caller then awaits :meth:`send_response`. Computed once per transaction by
        the stack (every response of a transaction has the same top Via)."""
        dest = response_destination(response)
        if dest.reliable:
            return None
        address = (dest.host, dest.port)
        out: Flow
        if isinstance(flow, UdpServerFlow):
            out = flow.with_remote(address)
        elif isinstance(flow, UdpClientFlow) and flow.usable and flow.remote == address:
            out = flow
        else:
            listener = self._udp_listener_for(dest.host)
            if listener is None:
                return None
            out = listener.flow_for(address)
        return out if out.sync_send else None

    async def aclose(self) -> None:
        """Close every flow and listener and stop every task of the layer."""
        if self._closed:
            return
        self._closed = True
        with trio.CancelScope(shield=True):
            for flow in list(self._pool):
                self._pool.remove(flow)
                await flow.aclose()
            for listener in self._udp_listeners:
                listener.close()
        for scope in list(self._scopes):
            scope.cancel()

    def __repr__(self) -> str:
        listening = ", ".join(f"{t} {format_address(a)}" for t, a in self._listening)
        state = "CLOSED" if self._closed else "OPEN"
        return f"<TransportLayer {state} listening: [{listening}] {self._pool!r}>"

    # -- internals ---------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise TransportError("the transport layer is closed")

    def _poke(self) -> None:
        self._wakeup.set()

    @contextmanager
    def _scope(self) -> Iterator[trio.CancelScope]:
        with trio.CancelScope() as scope:
            self._scopes.add(scope)
            if self._closed:
                scope.cancel()
            try:
                yield scope
            finally:
                self._scopes.discard(scope)

    async def _supervise(self, fn: Callable[..., Awaitable[object]], *args: Any) -> None:
        with self._scope():
            try:
                await fn(*args)
            except Exception:
                logger.exception("transport task %r failed", fn)

    async def _serve_udp(
        self, listener: UdpListener, task_status: trio.TaskStatus[Address]
    ) -> None:
        self._udp_listeners.append(listener)
        entry = ("UDP", listener.local)
        self._listening.append(entry)
        try:
            task_status.started(listener.local)
            await listener.serve(self._datagram_received)
        finally:
            self._listening.remove(entry)
            self._udp_listeners.remove(listener)
            listener.close()

    async def _open(self, transport: str, target: Target) -> Flow:
        remote = (target.host, target.port)
        context = f"{transport} connect to {format_address(remote)}"
        if transport == "UDP":
            with map_exceptions(context):
                sock = await self.backend.open_udp(self._udp_bind_host(target.host), 0, remote)
            udp = UdpClientFlow(sock, remote)
            self._nursery.start_soon(self._supervise, udp.serve, self._datagram_received)
            return udp
        if transport not in ("TCP", "TLS"):
            raise TransportError(f"unknown transport {transport!r} for {target}")
        local_host = binding.stream_bind_host(self._listening, transport, target.host)
        with map_exceptions(context):
            stream = await self.backend.connect_tcp(target.host, target.port, local_host=local_host)
        try:
            if transport == "TLS":
                if self._client_ssl is None:
                    self._client_ssl = client_context()
                name = target.hostname or target.host
                stream = await wrap_client(stream, self._client_ssl, name)
            with map_exceptions(context):
                local, peer = self.backend.stream_addresses(stream)
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        flow = StreamFlow(transport, stream, local, peer, policy=self._policy)
        self._nursery.start_soon(self._supervise, flow.serve, self._message_received)
        return flow

    def _udp_bind_host(self, remote_host: str) -> str:
        v6 = ":" in remote_host
        for listener in self._udp_listeners:
            host = listener.local[0]
            if (":" in host) == v6 and host not in ("0.0.0.0", "::"):
                return host
        return "::" if v6 else "0.0.0.0"

    def _udp_listener_for(self, host: str) -> UdpListener | None:
        v6 = ":" in host
        for listener in self._udp_listeners:
            if (":" in listener.local[0]) == v6:
                return listener
        return None

    def _datagram_received(self, data: bytes, flow: Flow) -> None:
        screen = self.admit_source
        if screen is not None and not screen(flow.remote[0]):
            self.counters["datagrams_dropped"] += 1
            return  # a flooding source: not even parsed
        if data[:1] in (b"\r", b"\n", b"") and not data.strip(b"\r\n"):
            return  # a NULL keep-alive (bare CRLFs) over UDP
        try:
            message = parse_message(data, limits=self.limits)
        except ParseError as exc:
            self._reject_datagram(data, flow, exc)
            return
        try:
            self._message_received(message, flow, data)
        except Exception:
            logger.exception("on_message failed for a datagram from %r", flow)

    def _reject_datagram(self, data: bytes, flow: Flow, exc: ParseError) -> None:
        """§8.2 / §16.3: a malformed request gets its 4xx/5xx; a malformed response is dropped.

        The answer goes only to the datagram's source address (never to a Via sent-by taken
        from the bad message), and it is no larger than the request: nothing to reflect.
        """
        raw = error_response_untrusted(data, exc.status_code)
        if raw is None:
            logger.info("dropping malformed datagram from %s: %s", format_address(flow.remote), exc)
            return
        logger.info("answering malformed request from %r with %d: %s", flow, exc.status_code, exc)
        self._nursery.start_soon(self._send_quietly, flow, raw)

    @staticmethod
    async def _send_quietly(flow: Flow, data: bytes) -> None:
        try:
            await flow.send(data)
        except TransportError as exc:
            logger.info("could not send the error response to %r: %s", flow, exc)

    def _message_received(self, message: Message, flow: Flow, data: bytes | None = None) -> None:
        if isinstance(message, Request):
            try:
                message = stamp_via(message, flow.remote)
            except ParseError as exc:
                if data is not None and isinstance(flow, UdpServerFlow):
                    self._reject_datagram(data, flow, exc)
                else:
                    logger.info("dropping request with a bad Via from %r: %s", flow, exc)
                return
        if self.on_message is None:
            logger.debug("no on_message callback: dropping %r", message)
            return
        self.on_message(message, flow)

    async def _reap_idle(self) -> None:
        while True:
            self._wakeup = trio.Event()
            close, deadline = self._pool.decide(trio.current_time(), self.config.idle_timeout)
            for flow in close:
                self._pool.remove(flow)
                logger.debug("closing %r", flow)
                await flow.aclose()
            with trio.move_on_at(math.inf if deadline is None else deadline):
                await self._wakeup.wait()


@asynccontextmanager
async def open_transport_layer(
    on_message: OnMessage | None = None,
    *,
    config: TransportConfig | None = None,
    backend: NetworkBackend | None = None,
    limits: Limits | None = None,
) -> AsyncIterator[TransportLayer]:
    """A :class:`TransportLayer` with its own nursery, closed on exit (the block's exception
    leaves as itself, docs/errors.md)."""
    async with open_service_nursery() as nursery:
        layer = TransportLayer(nursery, on_message, config=config, backend=backend, limits=limits)
        try:
            yield layer
        finally:
            await layer.aclose()
