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

# The real socket lives in udp_socket; these names are re-exported (they lived here first).
from .udp_socket import LISTENER_RECEIVE_BUFFER as LISTENER_RECEIVE_BUFFER
from .udp_socket import MAX_DATAGRAM as MAX_DATAGRAM
from .udp_socket import TrioDatagramSocket as TrioDatagramSocket
from .udp_socket import family_for as family_for
from .udp_socket import is_ip_literal as is_ip_literal

__all__ = ["TrioDatagramSocket", "UdpClientFlow", "UdpListener", "UdpServerFlow"]

#: At most this many queued datagrams are read between two schedule points.
RECEIVE_BATCH = 32
#: A listener keeps its UdpServerFlow per peer address; past this size the flows nobody
#: watches are dropped from the cache (watched ones stay: an ICMP error must find them).
MAX_CACHED_FLOWS = 4096

Deliver = Callable[[bytes, Flow], None]


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
