"""The real-socket network backend: TCP streams and listeners, UDP sockets (RFC 3261 §18).

Theory of operation
-------------------
:class:`TrioBackend` implements :class:`~trio_sip.transports.base.NetworkBackend` with trio's
sockets: ``trio.open_tcp_stream`` to connect (the target host is normally an address already
resolved by RFC 3263 planning; the socket is bound to ``local_host``, the address of our
listener, so that its source is the address our Via and Contact name),
``trio.open_tcp_listeners`` to listen (served by the layer
with ``trio.serve_listeners``), and :class:`~trio_sip.transports.udp.TrioDatagramSocket` for
UDP. The backend raises trio's and the OS's exceptions; the layer maps them to
``TransportError`` at its edge. Per RFC 3261 §18.3 a SIP connection carries many messages and
either side may close it; TCP_NODELAY is set by trio.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket

import trio

from .base import Address, DatagramSocket, NetworkBackend
from .udp_socket import TrioDatagramSocket, family_for

__all__ = ["TrioBackend"]


def _socket_of(stream: trio.abc.Stream) -> trio.socket.SocketType:
    while isinstance(stream, trio.SSLStream):
        stream = stream.transport_stream
    if not isinstance(stream, trio.SocketStream):
        raise TypeError(f"not a socket stream: {stream!r}")
    return stream.socket


def _address(raw: object) -> Address:
    assert isinstance(raw, tuple)
    return (str(raw[0]), int(raw[1]))


class TrioBackend(NetworkBackend):
    """Real sockets."""

    async def open_udp(self, host: str, port: int, remote: Address | None = None) -> DatagramSocket:
        return await TrioDatagramSocket.open(host, port, remote)

    async def connect_tcp(
        self, host: str, port: int, *, local_host: str | None = None
    ) -> trio.abc.Stream:
        try:
            ipaddress.ip_address(host)
        except ValueError:  # a host name (e.g. a Via sent-by): let trio resolve it
            return await trio.open_tcp_stream(host, port, local_address=local_host)
        # An address literal: one attempt, so that the OS error (ECONNREFUSED...) is kept.
        sock = trio.socket.socket(family_for(host), socket.SOCK_STREAM)
        try:
            if local_host is not None and family_for(local_host) == sock.family:
                # The port is chosen at connect time, per 4-tuple (as trio does).
                with contextlib.suppress(OSError, AttributeError):
                    sock.setsockopt(socket.IPPROTO_IP, socket.IP_BIND_ADDRESS_NO_PORT, 1)
                await sock.bind((local_host, 0))
            await sock.connect((host, port))
        except BaseException:
            sock.close()
            raise
        return trio.SocketStream(sock)

    async def open_tcp_listener(
        self, host: str, port: int
    ) -> tuple[trio.abc.Listener[trio.abc.Stream], Address]:
        listeners = await trio.open_tcp_listeners(port, host=host)
        for extra in listeners[1:]:  # one host literal gives one listener; be safe anyway
            await extra.aclose()
        listener = listeners[0]
        return listener, _address(listener.socket.getsockname())

    def stream_addresses(self, stream: trio.abc.Stream) -> tuple[Address, Address]:
        sock = _socket_of(stream)
        return _address(sock.getsockname()), _address(sock.getpeername())
