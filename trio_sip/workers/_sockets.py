"""The listening sockets the workers share (SO_REUSEPORT), and the backend that serves them.

The supervisor binds, for each listener, one socket per worker, all with ``SO_REUSEPORT``
(socket(7)) on the same address and port, and keeps them open for as long as it runs; worker
*i* inherits the *i*-th socket of each listener (its file descriptor) and a restarted worker
inherits the same one. The kernel spreads incoming UDP datagrams and TCP connections over the
sockets of a group by a hash of the 4-tuple (source address and port, destination address and
port), which the *number* of sockets in the group also enters. Because the supervisor holds
every socket, that number never changes while it runs: a worker's death does not move anyone
else's peers to another worker, and the datagrams that reach a dead worker's socket wait in its
receive buffer for its successor.

A UDP socket is made as a single-process listener is (udp_socket.py): the 4 MB receive buffer
and ``IP_RECVERR``, so each worker still sends everything from its listening socket and hears
ICMP errors on its error queue (docs/transports.md, "One UDP binding"). The kernel hands an
ICMP error to the socket that datagrams *from* the unreachable address would reach (the same
4-tuple hash), so it reaches the worker that sent the datagram whenever that worker is the one
the peer's own datagrams reach
(tests/test_workers.py::test_icmp_error_reaches_the_socket_the_peer_hashes_to).
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterable, Sequence

import attrs
import trio

from trio_sip.proto.errors import ConfigError
from trio_sip.transports.base import Address, DatagramSocket, format_address, map_exceptions
from trio_sip.transports.tcp import TrioBackend
from trio_sip.transports.udp_socket import (
    ERROR_QUEUE,
    LISTENER_RECEIVE_BUFFER,
    TrioDatagramSocket,
    _enable_error_queue,
    family_for,
)

__all__ = ["SharedListener", "WorkerBackend", "bind_shared"]

#: The listen(2) backlog of each worker's TCP/TLS socket.
TCP_BACKLOG = 1024


@attrs.frozen
class SharedListener:
    """One listener of the workers: ``transport`` (UDP, TCP or TLS) on ``host``:``port``
    (the bound port, never 0), and the file descriptor of each worker's socket."""

    transport: str
    host: str
    port: int
    fds: tuple[int, ...] = ()

    @property
    def kind(self) -> str:
        """``"udp"`` or ``"tcp"`` (TLS listens on a TCP socket)."""
        return "udp" if self.transport == "UDP" else "tcp"


def _reuseport_socket(kind: str, host: str) -> socket.socket:
    if not hasattr(socket, "SO_REUSEPORT"):
        raise ConfigError("workers", "SO_REUSEPORT", "a platform with SO_REUSEPORT (Linux)")
    stype = socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM
    sock = socket.socket(family_for(host), stype)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if kind == "udp":
            with contextlib.suppress(OSError):  # the kernel caps it (net.core.rmem_max)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, LISTENER_RECEIVE_BUFFER)
            if ERROR_QUEUE:
                _enable_error_queue(sock)
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    except BaseException:
        sock.close()
        raise
    return sock


def bind_shared(
    listen: Iterable[tuple[str, str, int]], workers: int
) -> tuple[list[SharedListener], list[socket.socket]]:
    """Bind ``workers`` sockets with ``SO_REUSEPORT`` per ``(transport, host, port)`` (port
    0: a free port, the same for all of that listener's sockets); TCP/TLS ones listen.
    Returns the listeners and every socket (the caller keeps them open and closes them).
    Raises ``TransportError`` when an address cannot be bound."""
    listeners: list[SharedListener] = []
    opened: list[socket.socket] = []
    try:
        for transport, host, port in listen:
            transport = transport.upper()
            kind = "udp" if transport == "UDP" else "tcp"
            bound = port
            fds = []
            for _ in range(workers):
                with map_exceptions(f"{transport} listen on {format_address((host, bound))}"):
                    sock = _reuseport_socket(kind, host)
                    opened.append(sock)
                    sock.bind((host, bound))
                    bound = int(sock.getsockname()[1])
                    if kind == "tcp":
                        sock.listen(TCP_BACKLOG)
                sock.set_inheritable(True)
                fds.append(sock.fileno())
            listeners.append(SharedListener(transport, host, bound, tuple(fds)))
    except BaseException:
        for sock in opened:
            sock.close()
        raise
    return listeners, opened


class WorkerBackend(TrioBackend):
    """Real sockets, where a listener on one of the shared addresses is the inherited socket
    instead of a new one (:func:`trio_sip.workers.current_worker` makes it). Any other
    listener, and every client socket, is made as :class:`TrioBackend` makes it."""

    def __init__(self, sockets: Sequence[tuple[str, str, int, int]]) -> None:
        #: (kind, host, port) -> the inherited file descriptor, taken by the first listen.
        self._fds: dict[tuple[str, str, int], int] = {
            (kind, host, port): fd for kind, host, port, fd in sockets
        }

    @property
    def addresses(self) -> list[tuple[str, str, int]]:
        """``(kind, host, port)`` of the inherited sockets not taken by a listener yet."""
        return list(self._fds)

    def _take(self, kind: str, host: str, port: int) -> socket.socket | None:
        fd = self._fds.pop((kind, host, port), None)
        if fd is None:
            return None
        family = family_for(host)
        stype = socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM
        return socket.socket(family, stype, fileno=fd)

    async def open_udp(self, host: str, port: int, remote: Address | None = None) -> DatagramSocket:
        raw = self._take("udp", host, port) if remote is None else None
        if raw is None:
            return await super().open_udp(host, port, remote)
        made = TrioDatagramSocket(trio.socket.from_stdlib_socket(raw), raw)
        made.error_queue = ERROR_QUEUE and _error_queue_on(raw)
        return made

    async def open_tcp_listener(
        self, host: str, port: int
    ) -> tuple[trio.abc.Listener[trio.abc.Stream], Address]:
        raw = self._take("tcp", host, port)
        if raw is None:
            return await super().open_tcp_listener(host, port)
        listener = trio.SocketListener(trio.socket.from_stdlib_socket(raw))
        name = raw.getsockname()
        return listener, (str(name[0]), int(name[1]))

    def close(self) -> None:
        """Close the inherited sockets no listener took."""
        for key in list(self._fds):
            raw = self._take(*key)
            if raw is not None:
                raw.close()


def _error_queue_on(raw: socket.socket) -> bool:
    level, option = (41, 25) if raw.family == socket.AF_INET6 else (0, 11)  # IP(V6)_RECVERR
    try:
        return bool(raw.getsockopt(level, option))
    except OSError:
        return False
