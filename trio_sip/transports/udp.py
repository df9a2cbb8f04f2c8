"""UDP: one socket per listener, one receive task, one parse per datagram.

Theory of operation
-------------------
*Listening* (RFC 3261 §18.2.1). A :class:`UdpListener` owns one socket and one receive loop;
each datagram is handed to the layer together with a :class:`UdpServerFlow`, a cheap
``(listener, peer address)`` pair that owns no resource. Responses leave through the
listener's socket, so they come from the address the request was sent to (RFC 3581 §4
symmetric response routing).

*One binding* (issue #11). Requests, ACKs, responses and NULL keep-alives to a UDP peer all
leave through the listening socket too (a :class:`UdpServerFlow` per peer), so the source
address:port a NAT or a NAT-aware registrar records (Kamailio's ``fix_nated_register``) is the
one in our Via and Contact, and the binding a keep-alive refreshes is the one incoming requests
come back through.

*ICMP on the listening socket* (RFC 1122 §4.1.3.3). An unconnected socket normally hears
nothing about an ICMP port-unreachable. On Linux the listening socket sets ``IP_RECVERR``
(``IPV6_RECVERR``), ip(7): each ICMP error is queued on the socket's error queue, read with
``recvmsg(MSG_ERRQUEUE)``, whose ``msg_name`` is the original destination. The receive loop
drains it and fails that peer's flow (:meth:`UdpListener.unreachable`), which tells every
transaction watching it (§17.1.4) within a round trip, as a connected socket would. The error
also sets the socket's pending error (``sk_err``), which the kernel returns once, to whichever
``recvfrom`` or ``sendto`` comes next, whatever its peer: a send that fails with such an error
is retried (the error belongs to an earlier datagram; the queue still names its destination),
a receive that does drains the queue. docs/transports.md has the figures behind this choice
(``benchmarks/udp_binding_bench.py``). Elsewhere (no ``IP_RECVERR``), datagrams still leave
from the listening socket and a refused peer is noticed by the transaction's timeout.

*No listener* (a pure client). A request to a UDP target goes out on a :class:`UdpClientFlow`:
its own socket, *connected* to the target, with its own receive task; a connected socket
reports an ICMP port-unreachable as ``ECONNREFUSED`` (udp(7)). Its Via names its own port.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct
import sys
from collections.abc import Callable

import trio

from trio_sip.proto.errors import TransportError

from .base import (
    Address,
    DatagramSocket,
    Flow,
    format_address,
    logger,
    map_exceptions,
    map_os_error,
)

__all__ = ["TrioDatagramSocket", "UdpClientFlow", "UdpListener", "UdpServerFlow"]

#: Largest UDP payload (IPv4): the receive buffer size.
MAX_DATAGRAM = 65535
#: At most this many queued datagrams are read between two schedule points.
RECEIVE_BATCH = 32
#: Receive buffer asked for a listening socket (bytes; the kernel caps the request at its
#: ``net.core.rmem_max``). The usual 208 KB default holds ~500 INVITEs: at 1,400 calls/s a
#: 150 ms stall (a full garbage collection, another process on the core) overflows it and the
#: kernel drops datagrams, which the peers must then retransmit.
LISTENER_RECEIVE_BUFFER = 4 * 1024 * 1024
#: A listener keeps its UdpServerFlow per peer address; past this size the flows nobody
#: watches are dropped from the cache (watched ones stay: an ICMP error must find them).
MAX_CACHED_FLOWS = 4096

#: ip(7) / ipv6(7): queue ICMP errors of an unconnected socket with their destination. Linux
#: only; Python 3.11 has no constants for them (linux/in.h, linux/in6.h).
ERROR_QUEUE = sys.platform.startswith("linux")
_SOL_IP, _IP_RECVERR = 0, 11
_SOL_IPV6, _IPV6_RECVERR = 41, 25
_MSG_ERRQUEUE = getattr(socket, "MSG_ERRQUEUE", 0x2000)
#: ``struct sock_extended_err``: ee_errno (u32), ee_origin, ee_type, ee_code (u8) ...
_EXTENDED_ERR = struct.Struct("=IBBB")
#: Errors the kernel may hand to a later send or receive because of an earlier datagram.
_ASYNC_ERRORS = frozenset(
    {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.EPROTO}
)
#: At most this many queued errors are read per drain (the kernel bounds the queue by the
#: socket's receive buffer); the rest wait for the next wake-up.
MAX_ERRORS_PER_DRAIN = 64

Deliver = Callable[[bytes, Flow], None]


def family_for(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


#: IP literals seen (host -> is an IP literal): the synchronous send path never resolves names
#: (``socket.sendto`` would block on DNS), it leaves those to trio's async ``sendto``.
_IP_LITERAL: dict[str, bool] = {}


def is_ip_literal(host: str) -> bool:
    known = _IP_LITERAL.get(host)
    if known is None:
        known = False
        for family in (socket.AF_INET, socket.AF_INET6):
            try:
                socket.inet_pton(family, host)
            except (OSError, ValueError):
                continue
            known = True
            break
        if len(_IP_LITERAL) > 4096:
            _IP_LITERAL.clear()
        _IP_LITERAL[host] = known
    return known


_WILDCARDS = ("", "0.0.0.0", "::")


def _enable_error_queue(raw: socket.socket) -> bool:
    """Set ``IP_RECVERR`` (and ``IPV6_RECVERR`` on an IPv6 socket); False if refused."""
    try:
        if raw.family == socket.AF_INET6:
            raw.setsockopt(_SOL_IPV6, _IPV6_RECVERR, 1)
            with contextlib.suppress(OSError):  # IPv4-mapped peers of a dual-stack socket
                raw.setsockopt(_SOL_IP, _IP_RECVERR, 1)
        else:
            raw.setsockopt(_SOL_IP, _IP_RECVERR, 1)
    except OSError:
        return False
    return True


def local_address_facing(remote_host: str, default: str) -> str:
    """The local address the kernel's route to ``remote_host`` uses (a UDP ``connect`` on a
    throw-away socket: no packet is sent); ``default`` when there is no route or no literal."""
    if not is_ip_literal(remote_host):
        return default
    try:
        with socket.socket(family_for(remote_host), socket.SOCK_DGRAM) as probe:
            probe.connect((remote_host, 9))
            return str(probe.getsockname()[0])
    except OSError:
        return default


class TrioDatagramSocket(DatagramSocket):
    """A real UDP socket: ``trio.socket`` for the waits, the stdlib socket under it for the
    non-blocking sends and receives that need no wait (no checkpoint, no task)."""

    sync = True

    def __init__(self, sock: trio.socket.SocketType, raw: socket.socket | None = None) -> None:
        self._sock = sock
        self._raw = raw
        host, port = sock.getsockname()[:2]
        self.local = (str(host), int(port))
        self._errors: list[tuple[Address, OSError]] = []
        self._sources: dict[str, str] = {}

    @classmethod
    async def open(
        cls, host: str, port: int, remote: Address | None = None, *, error_queue: bool = True
    ) -> TrioDatagramSocket:
        """Bind (and with ``remote``, connect). An unconnected socket gets the large receive
        buffer and, on Linux unless ``error_queue=False``, ``IP_RECVERR``."""
        raw = socket.socket(family_for(host), socket.SOCK_DGRAM)
        sock = trio.socket.from_stdlib_socket(raw)  # makes ``raw`` non-blocking
        queued = False
        try:
            if remote is None:
                with contextlib.suppress(OSError):  # the kernel caps it (net.core.rmem_max)
                    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, LISTENER_RECEIVE_BUFFER)
                if error_queue and ERROR_QUEUE:
                    queued = _enable_error_queue(raw)
            await sock.bind((host, port))
            if remote is not None:
                await sock.connect(remote)
        except BaseException:
            sock.close()
            raise
        made = cls(sock, raw)
        made.error_queue = queued
        return made

    # -- ICMP errors (IP_RECVERR) ----------------------------------------------------------

    def take_errors(self) -> list[tuple[Address, OSError]]:
        if not self._errors:
            return []
        errors, self._errors = self._errors, []
        return errors

    def _drain_errors(self, raw: socket.socket) -> bool:
        """Read the error queue into ``_errors``; True if anything was read."""
        found = False
        for _ in range(MAX_ERRORS_PER_DRAIN):
            try:
                _data, ancdata, _flags, address = raw.recvmsg(0, 512, _MSG_ERRQUEUE)
            except OSError:  # EAGAIN: empty
                break
            code = 0
            for level, kind, payload in ancdata:
                if (level, kind) in ((_SOL_IP, _IP_RECVERR), (_SOL_IPV6, _IPV6_RECVERR)):
                    code = _EXTENDED_ERR.unpack_from(payload)[0]
            if code and isinstance(address, tuple):
                error = OSError(code, os.strerror(code))
                self._errors.append(((str(address[0]), int(address[1])), error))
                found = True
        return found

    def source_for(self, remote_host: str) -> str:
        host = self.local[0]
        if host not in _WILDCARDS:
            return host
        source = self._sources.get(remote_host)
        if source is None:
            source = local_address_facing(remote_host, self.local[0])
            if len(self._sources) > 1024:
                self._sources.clear()
            self._sources[remote_host] = source
        return source

    async def recvfrom(self) -> tuple[bytes, Address]:
        data, address = await self._sock.recvfrom(MAX_DATAGRAM)
        return data, (str(address[0]), int(address[1]))

    async def recvfrom_many(self, limit: int) -> list[tuple[bytes, Address]]:
        """See :meth:`DatagramSocket.recvfrom_many`. With the error queue on, an ICMP error
        ends the wait too: the batch may then be empty and :meth:`take_errors` has it."""
        raw = self._raw
        if raw is None:
            return [await self.recvfrom()]
        waited = False
        while True:
            if raw.fileno() < 0:
                raise trio.ClosedResourceError("socket closed")
            try:
                data, address = raw.recvfrom(MAX_DATAGRAM)
                break
            except BlockingIOError:
                # Woken with nothing to read: an error queued (POLLERR) whose pending error
                # a send already consumed.
                if waited and self.error_queue and self._drain_errors(raw):
                    return []
                await trio.lowlevel.wait_readable(raw)
                waited = True
            except OSError:
                if self.error_queue and self._drain_errors(raw):
                    if not waited:
                        await trio.lowlevel.cancel_shielded_checkpoint()
                    return []
                raise
        out = [(data, (str(address[0]), int(address[1])))]
        while len(out) < limit:
            try:
                data, address = raw.recvfrom(MAX_DATAGRAM)
            except BlockingIOError:
                break
            except OSError:  # a pending ICMP error (consumed by this call)
                if self.error_queue:
                    self._drain_errors(raw)
                break  # without the error queue it is seen again by the next call
            out.append((data, (str(address[0]), int(address[1]))))
        if not waited:
            await trio.lowlevel.cancel_shielded_checkpoint()  # one schedule point per batch
        return out

    def try_sendto(self, data: bytes, address: Address) -> bool:
        raw = self._raw
        host = address[0]
        # Only an IP literal of the socket's own family (trio's sendto maps the rest).
        if raw is None or (":" in host) != (raw.family == socket.AF_INET6):
            return False
        if not is_ip_literal(host):
            return False
        try:
            raw.sendto(data, address)
        except BlockingIOError:
            return False
        except OSError as exc:
            if not (self.error_queue and exc.errno in _ASYNC_ERRORS):
                raise
            return self._resend(raw, data, address)
        return True

    def _resend(self, raw: socket.socket, data: bytes, address: Address) -> bool:
        """The send failed with the socket's pending error, left by an ICMP error for an
        earlier datagram (maybe to another peer: the error queue says which, and the receive
        loop reports it). This datagram was not sent: send it again. A second failure with
        the same kind of error is this destination's own (no route...)."""
        for attempt in range(3):
            try:
                raw.sendto(data, address)
            except BlockingIOError:
                return False
            except OSError as exc:
                if attempt == 2 or exc.errno not in _ASYNC_ERRORS:
                    raise
                continue
            return True
        return False  # pragma: no cover - the loop returns or raises

    def try_send(self, data: bytes) -> bool:
        raw = self._raw
        if raw is None:
            return False
        try:
            raw.send(data)
        except BlockingIOError:
            return False
        return True

    async def sendto(self, data: bytes, address: Address) -> None:
        for attempt in range(3):
            try:
                await self._sock.sendto(data, address)
                return
            except OSError as exc:  # see _resend
                if not self.error_queue or attempt == 2 or exc.errno not in _ASYNC_ERRORS:
                    raise

    async def send(self, data: bytes) -> None:
        await self._sock.send(data)

    def close(self) -> None:
        self._sock.close()


class UdpListener:
    """One bound UDP socket and its receive loop (:meth:`serve`)."""

    transport = "UDP"

    def __init__(self, sock: DatagramSocket) -> None:
        self.sock = sock
        self.local = sock.local
        #: True when an ICMP error for a datagram sent from here fails that peer's flow
        #: (``IP_RECVERR`` on Linux; the in-memory network): see the module docstring.
        self.reports_unreachable = sock.error_queue
        self._flows: dict[Address, UdpServerFlow] = {}

    def flow_for(self, remote: Address) -> UdpServerFlow:
        """The flow to ``remote`` through this listener: one per peer address, reused (a
        UdpServerFlow owns no resource; a failed or closed one is replaced)."""
        flow = self._flows.get(remote)
        if flow is None or not flow.usable:
            if len(self._flows) >= MAX_CACHED_FLOWS:
                self._flows = {a: f for a, f in self._flows.items() if f.watched and f.usable}
            flow = self._flows[remote] = UdpServerFlow(self, remote)
        return flow

    def source_for(self, remote: Address) -> Address:
        """The address:port datagrams to ``remote`` leave from: the listening address, or for
        a wildcard listener the local address the route to ``remote`` uses (for the Via)."""
        return (self.sock.source_for(remote[0]), self.local[1])

    def unreachable(self, destination: Address, error: OSError) -> None:
        """An ICMP error came back for a datagram sent to ``destination``: fail its flow, so
        that every transaction watching it hears at once (RFC 3261 §17.1.4)."""
        flow = self._flows.get(destination)
        logger.debug("UDP %s -> %s: %s", format_address(self.local), format_address(destination),
                     error)  # fmt: skip
        if flow is not None and flow.usable:
            flow._fail(map_os_error(error, f"UDP to {format_address(destination)}"))

    async def serve(self, deliver: Deliver) -> None:
        """Receive until the socket is closed; ``deliver(datagram, flow)`` each datagram (the
        datagrams already queued are read in batches of up to ``RECEIVE_BATCH``); ICMP errors
        from the socket's error queue fail their peer's flow."""
        sock = self.sock
        while True:
            try:
                batch = await sock.recvfrom_many(RECEIVE_BATCH)
            except trio.ClosedResourceError:
                return
            except OSError as exc:
                # Unconnected sockets may still see stray errors (Windows reports ICMP here).
                logger.debug("UDP listener %s: %s", format_address(self.local), exc)
                await trio.lowlevel.checkpoint()
                continue
            for destination, error in sock.take_errors():
                self.unreachable(destination, error)
            for data, source in batch:
                deliver(data, self.flow_for(source))

    def close(self) -> None:
        self.sock.close()

    def __repr__(self) -> str:
        return f"<UdpListener {format_address(self.local)}>"


class UdpServerFlow(Flow):
    """A peer as seen from a listener: sends leave through the listener's socket."""

    reliable = False

    def __init__(self, listener: UdpListener, remote: Address) -> None:
        super().__init__("UDP", listener.local, remote)
        self.listener = listener
        self.sync_send = listener.sock.sync

    def with_remote(self, remote: Address) -> UdpServerFlow:
        """The same listener, another destination (§18.2.2 ``received``/``rport``)."""
        if remote == self.remote and self.usable:
            return self
        return self.listener.flow_for(remote)

    async def send(self, data: bytes) -> None:
        self._check_usable()
        with map_exceptions(f"UDP to {format_address(self.remote)}"):
            await self.listener.sock.sendto(data, self.remote)
        self.touch()

    def try_send(self, data: bytes) -> bool:
        if self.failure is not None or self.closed:
            self._check_usable()
        try:
            sent = self.listener.sock.try_sendto(data, self.remote)
        except OSError as exc:
            raise map_os_error(exc, f"UDP to {format_address(self.remote)}") from exc
        if sent:
            self.touch()
        return sent

    async def aclose(self) -> None:
        # Owns no resource: the listener's socket belongs to the listener.
        if not self.closed:
            self.closed = True
            self._fail(TransportError(f"UDP flow to {format_address(self.remote)}: closed"))
        await trio.lowlevel.checkpoint()


class UdpClientFlow(Flow):
    """A connected UDP socket to one target, with its own receive task (:meth:`serve`)."""

    reliable = False

    def __init__(self, sock: DatagramSocket, remote: Address) -> None:
        super().__init__("UDP", sock.local, remote)
        self.sock = sock
        self.sync_send = sock.sync

    def try_send(self, data: bytes) -> bool:
        self._check_usable()
        try:
            sent = self.sock.try_send(data)
        except OSError as exc:
            error = map_os_error(exc, f"UDP to {format_address(self.remote)}")
            self._fail(error)
            self.sock.close()
            raise error from exc
        if sent:
            self.touch()
        return sent

    async def send(self, data: bytes) -> None:
        self._check_usable()
        try:
            with map_exceptions(f"UDP to {format_address(self.remote)}"):
                await self.sock.send(data)
        except TransportError as exc:
            self._fail(exc)
            self.sock.close()
            raise
        self.touch()

    async def serve(self, deliver: Deliver) -> None:
        """Receive responses (and ICMP errors) until the flow closes or fails."""
        while True:
            try:
                with map_exceptions(f"UDP to {format_address(self.remote)}"):
                    batch = await self.sock.recvfrom_many(RECEIVE_BATCH)
            except TransportError as exc:
                if not self.closed:
                    self._fail(exc)
                    self.sock.close()
                return
            self.touch()
            for data, _source in batch:
                deliver(data, self)

    async def aclose(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.sock.close()
        self._fail(TransportError(f"UDP flow to {format_address(self.remote)}: closed"))
        await trio.lowlevel.checkpoint()
