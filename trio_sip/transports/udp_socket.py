"""The real UDP socket under the transport layer, with its ICMP error queue (Linux).

:class:`TrioDatagramSocket` implements :class:`~trio_sip.transports.base.DatagramSocket` with a
stdlib socket driven by trio: non-blocking sends and batched receives without a task or a
checkpoint per datagram. An unconnected (listening) socket sets ``IP_RECVERR``
(``IPV6_RECVERR``) on Linux, ip(7): the kernel then queues each ICMP error with the original
destination, which :meth:`TrioDatagramSocket.take_errors` hands to the listener. The same
error is also the socket's pending error (``sk_err``), returned once to the next send or
receive whatever its peer: a send failing with it is made again, a receive failing with it
drains the queue. See :mod:`trio_sip.transports.udp` and docs/transports.md.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct
import sys

import trio

from .base import Address, DatagramSocket

__all__ = [
    "ERROR_QUEUE",
    "LISTENER_RECEIVE_BUFFER",
    "MAX_DATAGRAM",
    "TrioDatagramSocket",
    "family_for",
    "is_ip_literal",
    "local_address_facing",
]

#: Largest UDP payload (IPv4): the receive buffer size.
MAX_DATAGRAM = 65535
#: Receive buffer asked for a listening socket (bytes; the kernel caps the request at its
#: ``net.core.rmem_max``). The usual 208 KB default holds ~500 INVITEs: at 1,400 calls/s a
#: 150 ms stall (a full garbage collection, another process on the core) overflows it and the
#: kernel drops datagrams, which the peers must then retransmit.
LISTENER_RECEIVE_BUFFER = 4 * 1024 * 1024
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
#: A send on an unconnected socket never fails with ECONNREFUSED for its own datagram (UDP has
#: no refusal at send time): that error is the pending one an ICMP port-unreachable for an
#: earlier datagram left, and every further ICMP error sets it again. Under load the kernel
#: delivers those ICMPs from another core, between our attempts, so a burst of them from one
#: dead peer can refuse several sends in a row to a live one (the chaos soak's "DNS answer
#: changed" fault, docs/soak.md): such a send is tried again up to this many times, then the
#: datagram counts as lost (UDP: the transaction retransmits), never as that peer's refusal.
MAX_PENDING_REFUSALS = 64
#: Other asynchronous errors (host or network unreachable) may also be this destination's
#: own: a send failing with one this many times raises it.
MAX_PENDING_ERRORS = 3


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
            return self._resend(raw, data, address, exc)
        return True

    def _resend(self, raw: socket.socket, data: bytes, address: Address, first: OSError) -> bool:
        """The send failed with the socket's pending error, left by an ICMP error for an
        earlier datagram (maybe to another peer: the error queue says which, and the receive
        loop reports it). This datagram was not sent: send it again. A refusal is never this
        datagram's own (``MAX_PENDING_REFUSALS``); another error seen ``MAX_PENDING_ERRORS``
        times in a row is (no route...)."""
        refused, other = _pending_counts(first)
        while True:
            try:
                raw.sendto(data, address)
            except BlockingIOError:
                return False
            except OSError as exc:
                if exc.errno not in _ASYNC_ERRORS:
                    raise
                refused, other = _pending_counts(exc, refused, other)
                if other >= MAX_PENDING_ERRORS:
                    raise
                if refused >= MAX_PENDING_REFUSALS:
                    return True  # lost to other peers' ICMP errors, as UDP may lose it
                continue
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
        refused = other = 0
        while True:
            try:
                await self._sock.sendto(data, address)
                return
            except OSError as exc:  # see _resend
                if not self.error_queue or exc.errno not in _ASYNC_ERRORS:
                    raise
                refused, other = _pending_counts(exc, refused, other)
                if other >= MAX_PENDING_ERRORS:
                    raise
                if refused >= MAX_PENDING_REFUSALS:
                    return  # lost to other peers' ICMP errors, as UDP may lose it

    async def send(self, data: bytes) -> None:
        await self._sock.send(data)

    def close(self) -> None:
        self._sock.close()


def _pending_counts(exc: OSError, refused: int = 0, other: int = 0) -> tuple[int, int]:
    """Count one more pending error of a send: refusals apart from the rest."""
    if exc.errno == errno.ECONNREFUSED:
        return refused + 1, other
    return refused, other + 1
