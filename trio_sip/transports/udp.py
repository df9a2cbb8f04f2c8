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

import socket
from collections.abc import Callable

import trio

from trio_sip.proto.errors import TransportError

from .base import Address, DatagramSocket, Flow, format_address, logger, map_exceptions

__all__ = ["TrioDatagramSocket", "UdpClientFlow", "UdpListener", "UdpServerFlow"]

#: Largest UDP payload (IPv4): the receive buffer size.
MAX_DATAGRAM = 65535

Deliver = Callable[[bytes, Flow], None]


def family_for(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class TrioDatagramSocket(DatagramSocket):
    """A real ``trio.socket`` UDP socket."""

    def __init__(self, sock: trio.socket.SocketType) -> None:
        self._sock = sock
        host, port = sock.getsockname()[:2]
        self.local = (str(host), int(port))

    @classmethod
    async def open(cls, host: str, port: int, remote: Address | None = None) -> TrioDatagramSocket:
        sock = trio.socket.socket(family_for(host), socket.SOCK_DGRAM)
        try:
            await sock.bind((host, port))
            if remote is not None:
                await sock.connect(remote)
        except BaseException:
            sock.close()
            raise
        return cls(sock)

    async def recvfrom(self) -> tuple[bytes, Address]:
        data, address = await self._sock.recvfrom(MAX_DATAGRAM)
        return data, (str(address[0]), int(address[1]))

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

    async def serve(self, deliver: Deliver) -> None:
        """Receive until the socket is closed; ``deliver(datagram, flow)`` each datagram."""
        while True:
            try:
                data, source = await self.sock.recvfrom()
            except trio.ClosedResourceError:
                return
            except OSError as exc:
                # Unconnected sockets may still see stray errors (Windows reports ICMP here).
                logger.debug("UDP listener %s: %s", format_address(self.local), exc)
                continue
            deliver(data, UdpServerFlow(self, source))

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

    def with_remote(self, remote: Address) -> UdpServerFlow:
        """The same listener, another destination (§18.2.2 ``received``/``rport``)."""
        return self if remote == self.remote else UdpServerFlow(self.listener, remote)

    async def send(self, data: bytes) -> None:
        self._check_usable()
        with map_exceptions(f"UDP to {format_address(self.remote)}"):
            await self.listener.sock.sendto(data, self.remote)
        self.touch()

    async def aclose(self) -> None:
        self.closed = True  # owns no resource: the listener's socket belongs to the listener


class UdpClientFlow(Flow):
    """A connected UDP socket to one target, with its own receive task (:meth:`serve`)."""

    reliable = False

    def __init__(self, sock: DatagramSocket, remote: Address) -> None:
        super().__init__("UDP", sock.local, remote)
        self.sock = sock

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
                    data, _source = await self.sock.recvfrom()
            except TransportError as exc:
                if not self.closed:
                    self._fail(exc)
                    self.sock.close()
                return
            self.touch()
            deliver(data, self)

    async def aclose(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.sock.close()
        self._fail(TransportError(f"UDP flow to {format_address(self.remote)}: closed"))
        await trio.lowlevel.checkpoint()
