"""UDP: one socket per listener, one receive task, one parse per datagram.

Theory of operation
-------------------
*Listening* (RFC 3261 §18.2.1). A :class:`UdpListener` owns one socket and one receive loop;
each datagram is handed to the layer together with a :class:`UdpServerFlow`, a cheap
``(listener, source address)`` pair that owns no resource. Responses leave through the
listener's socket, so they come from the address the request was sent to (RFC 3581 §4
symmetric response routing).

*Sending requests* (§18.1.1). A request to a UDP target goes out on a :class:`UdpClientFlow`:
its own socket, *connected* to the target, with its own receive task. On Linux (and BSD) a
connected UDP socket reports an ICMP port-unreachable for an earlier datagram as
``ECONNREFUSED`` on the next ``recv``/``send`` (RFC 1122 §4.1.3.3; udp(7)); an unconnected
socket does not. The receive task therefore learns within a round trip that a proxy is dead
and fails the flow, which tells the watching transaction (§17.1.4: "the client transaction
SHOULD inform the TU that a transport failure has occurred"). Responses to such a request come
back to the flow's own port when the Via carries ``rport`` or names that port.
"""

from __future__ import annotations

import contextlib
import socket
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
#: A listener keeps its UdpServerFlow per peer address; the cache is emptied past this size.
MAX_CACHED_FLOWS = 4096

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


class TrioDatagramSocket(DatagramSocket):
    """A real UDP socket: ``trio.socket`` for the waits, the stdlib socket under it for the
    non-blocking sends and receives that need no wait (no checkpoint, no task)."""

    sync = True

    def __init__(self, sock: trio.socket.SocketType, raw: socket.socket | None = None) -> None:
        self._sock = sock
        self._raw = raw
        host, port = sock.getsockname()[:2]
        self.local = (str(host), int(port))

    @classmethod
    async def open(cls, host: str, port: int, remote: Address | None = None) -> TrioDatagramSocket:
        raw = socket.socket(family_for(host), socket.SOCK_DGRAM)
        sock = trio.socket.from_stdlib_socket(raw)  # makes ``raw`` non-blocking
        try:
            if remote is None:
                with contextlib.suppress(OSError):  # the kernel caps it (net.core.rmem_max)
                    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, LISTENER_RECEIVE_BUFFER)
            await sock.bind((host, port))
            if remote is not None:
                await sock.connect(remote)
        except BaseException:
            sock.close()
            raise
        return cls(sock, raw)

    async def recvfrom(self) -> tuple[bytes, Address]:
        data, address = await self._sock.recvfrom(MAX_DATAGRAM)
        return data, (str(address[0]), int(address[1]))

    async def recvfrom_many(self, limit: int) -> list[tuple[bytes, Address]]:
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
                await trio.lowlevel.wait_readable(raw)
                waited = True
        out = [(data, (str(address[0]), int(address[1])))]
        while len(out) < limit:
            try:
                data, address = raw.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, OSError):
                break  # an error is seen again by the next call, after this batch
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
        return True

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
        await self._sock.sendto(data, address)

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
        self._flows: dict[Address, UdpServerFlow] = {}

    def flow_for(self, remote: Address) -> UdpServerFlow:
        """The flow to ``remote`` through this listener: one per peer address, reused (a
        UdpServerFlow owns no resource; a closed one is replaced)."""
        flow = self._flows.get(remote)
        if flow is None or not flow.usable:
            if len(self._flows) >= MAX_CACHED_FLOWS:
                self._flows.clear()
            flow = self._flows[remote] = UdpServerFlow(self, remote)
        return flow

    async def serve(self, deliver: Deliver) -> None:
        """Receive until the socket is closed; ``deliver(datagram, flow)`` each datagram (the
        datagrams already queued are read in batches of up to ``RECEIVE_BATCH``)."""
        while True:
            try:
                batch = await self.sock.recvfrom_many(RECEIVE_BATCH)
            except trio.ClosedResourceError:
                return
            except OSError as exc:
                # Unconnected sockets may still see stray errors (Windows reports ICMP here).
                logger.debug("UDP listener %s: %s", format_address(self.local), exc)
                await trio.lowlevel.checkpoint()
                continue
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
        return self if remote == self.remote else self.listener.flow_for(remote)

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
        self.closed = True  # owns no resource: the listener's socket belongs to the listener


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
