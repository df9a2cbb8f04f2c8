"""The transport interfaces: flows, flow events, configuration and the network backend seam.

Theory of operation
-------------------
A :class:`Flow` is one path to one peer (RFC 5626 §3 calls it a flow): a transport name
("UDP", "TCP", "TLS"), a local and a remote ``(host, port)``, ``reliable`` and
``async send(data)``. Everything that can go wrong on the wire surfaces as
:class:`~trio_sip.proto.errors.TransportError`: the I/O edge converts trio's and the OS's
exceptions with :func:`map_exceptions` (httpcore's ``map_exceptions`` idea), so the transaction
layer above sees one exception type (RFC 3261 §17.1.4, §17.2.4: "the transport layer" reports
a failure to the transaction).

Failures that happen while nobody is sending (a TCP reset read by the reader task, an ICMP
port-unreachable reported on a connected UDP socket, RFC 3261 §18.4 and RFC 1122 §4.1.3.3) are
pushed to whoever watches the flow: :meth:`Flow.subscribe` registers a synchronous callback that
receives :class:`FlowFailed` (once) and :class:`PongReceived` (RFC 5626 §4.4.1 keep-alive). A
flow with watchers is "in use" and is never closed for idleness.

:class:`NetworkBackend` is the seam between the transport layer and the sockets (httpcore's
``AsyncNetworkBackend``): :mod:`trio_sip.transports.tcp` implements it with real sockets and
:mod:`trio_sip.testing.network` with an in-memory network, so the same layer code runs on both.
"""

from __future__ import annotations

import errno
import logging
import ssl
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import attrs
import trio

from trio_sip.proto.abnf import LWS, split_top
from trio_sip.proto.errors import ConfigError, LocalProtocolError, TransportError
from trio_sip.proto.keepalive import PongReceived as PongReceived
from trio_sip.proto.message import Request, Response
from trio_sip.proto.target import Target, default_port

__all__ = [
    "Address",
    "DatagramSocket",
    "Flow",
    "FlowEvent",
    "FlowFailed",
    "NetworkBackend",
    "PongReceived",
    "TransportConfig",
    "choose_transport",
    "format_address",
    "map_exceptions",
    "map_os_error",
    "response_destination",
    "stamp_via",
]

logger = logging.getLogger("trio_sip.transports")

#: ``(host, port)``; IPv6 hosts without brackets.
Address = tuple[str, int]


def format_address(address: Address) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _check_timeout(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not (isinstance(value, int | float) and value > 0):
        raise ConfigError(attribute.name, value, "a positive number of seconds, or None")


@attrs.frozen(slots=True, kw_only=True)
class TransportConfig:
    """Settings of a :class:`~trio_sip.transports.TransportLayer` (see docs/transports.md).

    * ``idle_timeout``: a client or accepted flow (TCP, TLS, connected UDP) with no traffic and
      no watcher for this many seconds is closed. ``None`` keeps flows open forever. UDP sent
      through a listener has nothing to close: the listening socket stays.
    * ``udp_max_size``: a request larger than this (bytes) goes over TCP instead of UDP
      (RFC 3261 §18.1.1: 1300 when the path MTU is unknown). ``udp_size_fallback=False``
      turns the switch off (for peers without TCP).
    * ``client_ssl_context``: used for outgoing TLS. ``None`` means
      ``ssl.create_default_context()``: certificate and host name verification ON.
    * ``server_ssl_context``: required to listen on TLS.
    """

    idle_timeout: float | None = attrs.field(default=120.0, validator=_check_timeout)
    udp_max_size: int = 1300
    udp_size_fallback: bool = True
    client_ssl_context: ssl.SSLContext | None = None
    server_ssl_context: ssl.SSLContext | None = None

    def __attrs_post_init__(self) -> None:
        if not 500 <= self.udp_max_size <= 65507:
            raise ConfigError("udp_max_size", self.udp_max_size, "500..65507 bytes")


Message = Request | Response


def _bare(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def stamp_via(request: Request, source: Address) -> Request:
    """Add ``received`` / fill ``rport`` in the top Via of a request that arrived from ``source``.

    RFC 3261 §18.2.1: add ``received=<source IP>`` when the sent-by host differs from the
    source address. RFC 3581 §4: when the request has ``rport`` (no value), set it to the
    source port and add ``received`` even if it equals the sent-by host. A ``received`` the
    sender wrote itself is replaced by the source address, whatever the sent-by: responses go
    to ``received`` (§18.2.2), and a forged one would send them to a third party (found by
    the wire fuzzer, tests/attack/test_fuzz_regressions.py).
    """
    raw = request.headers.get_list("Via")
    if not raw:
        return request
    via = request.vias[0]
    host, port = source
    has_rport = via.rport is not None
    stamped = via.received is None or _bare(via.received).lower() == host.lower()
    if _bare(via.host).lower() == host.lower() and not has_rport and stamped:
        return request
    sent_by, *params = split_top(raw[0], ";")
    out: list[str] = []
    for param in params:
        name = param.split("=", 1)[0].strip(LWS).lower()
        if name == "received":
            continue
        out.append(f"rport={port}" if name == "rport" else param.strip(LWS))
    out.append(f"received={host}")
    new = ";".join([sent_by.strip(LWS), *out])
    return request.evolve(headers=request.headers.set_first("Via", new))


def response_destination(response: Response) -> Target:
    """Where a response goes when its flow is gone or is UDP (RFC 3261 §18.2.2, RFC 3581 §4).

    Reliable transports: the ``received`` address (else the sent-by host) and the sent-by port.
    UDP: the ``received`` address and the ``rport`` port when present, else the sent-by host
    and port. Missing ports default per §19.1.2. (The ``maddr`` multicast case is not handled.)
    """
    vias = response.vias
    if not vias:
        raise LocalProtocolError("a response without a Via has no destination (§18.2.2)")
    via = vias[0]
    transport = via.transport.upper()
    host = _bare(via.received or via.host)
    port = via.port or default_port(transport)
    rport = via.rport
    if transport == "UDP" and isinstance(rport, int) and not isinstance(rport, bool):
        port = rport
    return Target(transport, host, port, hostname=None if via.received else _bare(via.host))


def choose_transport(target: Target, size: int, config: TransportConfig) -> Target:
    """The target a request of ``size`` bytes really goes to (RFC 3261 §18.1.1).

    A request over ``config.udp_max_size`` bytes (1300: path MTU unknown) for a UDP target is
    sent over TCP to the same address and port, unless ``config.udp_size_fallback`` is off. The
    caller puts the returned transport in the top Via before sending, and per §18.1.1 retries
    over UDP if that TCP connection is refused or reset.
    """
    udp = target.transport.upper() == "UDP"
    if udp and config.udp_size_fallback and size > config.udp_max_size:
        return attrs.evolve(target, transport="TCP")
    return target


@attrs.frozen(slots=True)
class FlowFailed:
    """The flow is dead (reset, closed, ICMP unreachable); ``error`` says why. Sent once."""

    error: TransportError


FlowEvent = FlowFailed | PongReceived
Watcher = Callable[[FlowEvent], None]


@contextmanager
def map_exceptions(context: str) -> Iterator[None]:
    """Convert trio, OS and TLS exceptions raised inside the block into ``TransportError``."""
    try:
        yield
    except TransportError:
        raise
    except trio.ClosedResourceError as exc:
        raise TransportError(f"{context}: flow closed") from exc
    except trio.BrokenResourceError as exc:
        cause = exc.__cause__
        if isinstance(cause, ssl.SSLError | ssl.CertificateError):
            raise TransportError(f"{context}: TLS error: {cause}") from exc
        detail = f" ({cause})" if cause is not None else ""
        raise TransportError(f"{context}: connection broken{detail}") from exc
    except (ssl.SSLError, ssl.CertificateError) as exc:
        raise TransportError(f"{context}: TLS error: {exc}") from exc
    except OSError as exc:
        raise map_os_error(exc, context) from exc


def map_os_error(exc: OSError, context: str) -> TransportError:
    """The ``TransportError`` for an ``OSError`` from a socket call (as :func:`map_exceptions`).

    The message names the real cause: over UDP a refusal is an ICMP port unreachable; over
    TCP/TLS (``context`` starting with "TCP" or "TLS") it is the peer's TCP reset (RST).
    """
    stream = context[:3] in ("TCP", "TLS")
    if isinstance(exc, ConnectionRefusedError) or exc.errno == errno.ECONNREFUSED:
        cause = "TCP reset" if stream else "ICMP port unreachable"
        return TransportError(f"{context}: connection refused ({cause})")
    if isinstance(exc, ConnectionResetError) or exc.errno == errno.ECONNRESET:
        return TransportError(f"{context}: connection reset (TCP reset)")
    return TransportError(f"{context}: {exc.strerror or exc}")


class Flow(ABC):
    """One path to one peer. Created by the transport layer, never by users.

    ``state`` is ``"OPEN"``, ``"FAILED"`` or ``"CLOSED"``; ``failure`` is the error that
    failed it. :meth:`send` raises :class:`TransportError` on a failed or closed flow.
    """

    reliable: bool
    #: True when :meth:`try_send` can send without a task (a UDP socket of the real backend).
    sync_send: bool = False

    def __init__(self, transport: str, local: Address, remote: Address) -> None:
        self.transport = transport
        self.local = local
        self.remote = remote
        self.failure: TransportError | None = None
        self.closed = False
        self.last_activity = trio.current_time()
        self.last_pong: float | None = None
        # Made on first use: a UDP flow is made per received datagram and rarely watched.
        self._watchers: list[Watcher] | None = None
        self._failed: trio.Event | None = None
        #: Set by the pool: called when the watchers change (idle decisions change).
        self._on_change: Callable[[], None] | None = None

    @abstractmethod
    async def send(self, data: bytes) -> None:
        """Send bytes (one datagram for UDP). Raises :class:`TransportError`."""

    def try_send(self, data: bytes) -> bool:
        """Send now, without blocking, if the flow can (see ``sync_send``): True if ``data``
        went out, False if the caller must ``await send(data)`` instead (the socket's buffer is
        full, or this kind of flow has no synchronous path). Raises :class:`TransportError`."""
        return False

    @abstractmethod
    async def aclose(self) -> None:
        """Close the flow; watchers get :class:`FlowFailed` if they have not had it yet."""

    @property
    def key(self) -> tuple[str, str, int]:
        """``(transport, remote host, remote port)``: what ``connect`` reuses flows by."""
        return (self.transport, self.remote[0], self.remote[1])

    @property
    def state(self) -> str:
        if self.failure is not None and not self.closed:
            return "FAILED"
        return "CLOSED" if self.closed else "OPEN"

    @property
    def usable(self) -> bool:
        return not self.closed and self.failure is None

    @property
    def watched(self) -> bool:
        return bool(self._watchers)

    def subscribe(self, watcher: Watcher) -> Callable[[], None]:
        """Call ``watcher(event)`` for each :data:`FlowEvent`; returns the unsubscribe function.

        Subscribing to a flow that already failed delivers :class:`FlowFailed` at once.
        """
        watchers = self._watchers
        if watchers is None:
            watchers = self._watchers = []
        watchers.append(watcher)
        self._changed()
        if self.failure is not None:
            self._notify(watcher, FlowFailed(self.failure))

        def unsubscribe() -> None:
            if watcher in watchers:
                watchers.remove(watcher)
                self._changed()

        return unsubscribe

    async def wait_failed(self) -> TransportError:
        """Wait until the flow fails or closes; return the error."""
        if self.failure is None:
            if self._failed is None:
                self._failed = trio.Event()
            await self._failed.wait()
        else:
            await trio.lowlevel.checkpoint()
        assert self.failure is not None
        return self.failure

    def touch(self) -> None:
        self.last_activity = trio.current_time()

    async def abort(self, error: TransportError) -> None:
        """Declare the flow dead (e.g. no RFC 5626 pong): watchers get ``error``, then close."""
        self._fail(error)
        await self.aclose()

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    def _notify(self, watcher: Watcher, event: FlowEvent) -> None:
        try:
            watcher(event)
        except Exception:
            logger.exception("flow watcher %r failed on %r", watcher, event)

    def _emit(self, event: FlowEvent) -> None:
        if self._watchers:
            for watcher in list(self._watchers):
                self._notify(watcher, event)

    def _fail(self, error: TransportError) -> None:
        """Record the first failure and tell the watchers (idempotent)."""
        if self.failure is not None:
            return
        self.failure = error
        if self._failed is not None:
            self._failed.set()
        logger.debug("%r failed: %s", self, error)
        self._emit(FlowFailed(error))
        self._changed()

    def _pong(self) -> None:
        self.last_pong = trio.current_time()
        self._emit(PongReceived(self.last_pong))

    def _check_usable(self) -> None:
        if self.failure is not None:
            raise TransportError(str(self.failure))
        if self.closed:
            raise TransportError(f"{self.transport} flow to {format_address(self.remote)}: closed")

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.transport} {format_address(self.local)} -> "
            f"{format_address(self.remote)} {self.state}, watchers: {len(self._watchers or ())}>"
        )


class DatagramSocket(ABC):
    """A UDP socket as the transport layer needs it (real or in-memory).

    The synchronous methods (``try_sendto``, ``try_send``; ``sync = True``) are optional: the
    defaults say "not now", and the layer then uses the async ones.
    """

    local: Address
    #: True when ``try_sendto`` / ``try_send`` may send without a task.
    sync: bool = False
    #: True when this unconnected socket reports ICMP errors with the destination they are
    #: about (``IP_RECVERR`` on Linux): :meth:`take_errors` returns them.
    error_queue: bool = False

    def take_errors(self) -> list[tuple[Address, OSError]]:
        """The ICMP errors read since the last call, as ``(original destination, error)``;
        a :meth:`recvfrom_many` that ends because of them may return an empty batch."""
        return []

    def source_for(self, remote_host: str) -> str:
        """The local address datagrams to ``remote_host`` leave from (for a socket bound to a
        wildcard address: the one the route uses)."""
        return self.local[0]

    async def recvfrom_many(self, limit: int) -> list[tuple[bytes, Address]]:
        """Wait for one datagram; return it with up to ``limit - 1`` more that are already
        queued (one checkpoint for the batch). The default receives one."""
        return [await self.recvfrom()]

    def try_sendto(self, data: bytes, address: Address) -> bool:
        """Send one datagram now if the socket accepts it without blocking (True), else False.
        Raises OSError like ``sendto``."""
        return False

    def try_send(self, data: bytes) -> bool:
        """``try_sendto`` on a connected socket."""
        return False

    @abstractmethod
    async def recvfrom(self) -> tuple[bytes, Address]:
        """Receive one datagram. A connected socket raises ``ConnectionRefusedError`` on ICMP."""

    @abstractmethod
    async def sendto(self, data: bytes, address: Address) -> None: ...

    @abstractmethod
    async def send(self, data: bytes) -> None:
        """Send on a connected socket."""

    @abstractmethod
    def close(self) -> None: ...


class NetworkBackend(ABC):
    """Where sockets come from (real: :class:`~trio_sip.transports.tcp.TrioBackend`)."""

    @abstractmethod
    async def open_udp(self, host: str, port: int, remote: Address | None = None) -> DatagramSocket:
        """Bind a UDP socket to ``(host, port)``; with ``remote``, connect it too. An
        unconnected socket should report ICMP errors when the platform can
        (:attr:`DatagramSocket.error_queue`)."""

    @abstractmethod
    async def connect_tcp(
        self, host: str, port: int, *, local_host: str | None = None
    ) -> trio.abc.Stream:
        """Open a TCP connection (raises ``OSError``); from ``local_host`` (an ephemeral port
        on that address) when given, so the source is the address our Via names."""

    @abstractmethod
    async def open_tcp_listener(
        self, host: str, port: int
    ) -> tuple[trio.abc.Listener[trio.abc.Stream], Address]:
        """Listen on ``(host, port)``; return the listener and the bound address."""

    @abstractmethod
    def stream_addresses(self, stream: trio.abc.Stream) -> tuple[Address, Address]:
        """``(local, remote)`` of a stream this backend made (under any TLS wrapper)."""
