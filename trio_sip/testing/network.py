"""An in-memory network for tests: loss, delay, reordering, partitions, refusals, capture.

Theory of operation
-------------------
:class:`FakeNetwork` is a :class:`~trio_sip.transports.base.NetworkBackend` factory (the idea
of trio's ``trio.testing._fake_net``: swap the socket layer, keep everything above it). Each
simulated host gets a :class:`FakeBackend`; ``TransportLayer(nursery, backend=...)`` (or
:meth:`FakeNetwork.open_layer`) runs the real transport layer on it, so parsing, Via stamping
(RFC 3261 §18.2.1), response routing (§18.2.2), connection reuse, ping/pong and idle closing are
the production code paths.

* UDP: a datagram is delivered into the receiving socket's queue at ``now + delay + jitter``
  (``jitter`` draws from the network's seeded ``random.Random``: reordering), unless it is lost
  (``loss`` probability, same generator), the hosts are partitioned (silently blackholed), or
  nothing listens / the port is refused: then the sender hears of it one round trip later, as
  Linux reports an ICMP port-unreachable (RFC 1122 §4.1.3.3): a *connected* socket as
  ``ECONNREFUSED`` from its receive, an unconnected (listening) one through its error queue,
  with the destination (``IP_RECVERR``, ip(7): :meth:`DatagramSocket.take_errors`).
  ``FakeNetwork(udp_error_queue=False)`` models a platform without that (the BSDs, macOS,
  Windows): unconnected sockets then hear nothing.
* TCP: ``connect`` takes one round trip (``2 * delay``), then yields a pair of in-memory
  streams; bytes keep their order (a later chunk never overtakes an earlier one), loss does
  not apply (TCP retransmits), a partition blackholes them and a refusal resets the stream
  (both ends get ``BrokenResourceError``), as a TCP RST would. Connecting into a partition
  hangs until the caller's cancel scope expires, like a SYN into a black hole.
* Everything sent is captured as a :class:`Packet` with its fate. TLS works over the fake
  streams (real ``trio.SSLStream``); captured TCP bytes are then ciphertext.

Every delay is a trio clock deadline, so runs are deterministic under ``MockClock`` with
``autojump_threshold=0`` and tests can assert exact virtual times.
"""

from __future__ import annotations

import errno
import heapq
import itertools
import math
import random
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import attrs
import trio

from trio_sip.proto.limits import Limits
from trio_sip.proto.message import Request, Response
from trio_sip.proto.parse import parse_message
from trio_sip.transports.base import Address, DatagramSocket, NetworkBackend, TransportConfig
from trio_sip.transports.pool import OnMessage, TransportLayer, open_transport_layer

__all__ = ["FakeBackend", "FakeNetwork", "LinkConfig", "Packet"]

_WILDCARDS = ("", "0.0.0.0", "::")


@attrs.frozen(slots=True, kw_only=True)
class LinkConfig:
    """One direction of a link: ``loss`` probability (UDP), one-way ``delay`` and ``jitter``
    (extra delay drawn uniformly from ``[0, jitter]``), in seconds."""

    loss: float = 0.0
    delay: float = 0.0
    jitter: float = 0.0


@attrs.frozen(slots=True)
class Packet:
    """One captured send. ``fate``: "delivered", "lost", "blackholed" or "refused"."""

    time: float
    transport: str
    src: Address
    dst: Address
    data: bytes
    fate: str

    @property
    def message(self) -> Request | Response:
        """The data parsed as one SIP message (raises ``ParseError`` for keep-alives etc.)."""
        return parse_message(self.data)


class _Queue:
    """Timed items for one receiver; ``get`` waits until the earliest is due."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, object]] = []
        self._seq = itertools.count()
        self._lot = trio.lowlevel.ParkingLot()
        self.closed = False

    def push(self, at: float, item: object) -> None:
        heapq.heappush(self._heap, (at, next(self._seq), item))
        self._lot.unpark_all()

    def close(self) -> None:
        self.closed = True
        self._lot.unpark_all()

    async def get(self) -> object:
        await trio.lowlevel.checkpoint()
        while True:
            if self.closed:
                raise trio.ClosedResourceError("closed")
            if self._heap and self._heap[0][0] <= trio.current_time():
                return heapq.heappop(self._heap)[2]
            with trio.move_on_at(self._heap[0][0] if self._heap else math.inf):
                await self._lot.park()


_EOF = object()
_RESET = object()


@attrs.frozen(slots=True)
class _Refused:
    """An ICMP port-unreachable for a datagram sent to ``destination``."""

    destination: Address


class _FakeDatagramSocket(DatagramSocket):
    def __init__(self, net: FakeNetwork, local: Address, remote: Address | None) -> None:
        self._net = net
        self.local = local
        self.remote = remote
        self._queue = _Queue()
        self.error_queue = remote is None and net.udp_error_queue
        self._errors: list[tuple[Address, OSError]] = []

    async def recvfrom(self) -> tuple[bytes, Address]:
        while True:
            item = await self._queue.get()
            if not isinstance(item, _Refused):
                break
            if self.remote is not None:
                raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
            self._errors.append(_refusal(item))
        assert isinstance(item, tuple)
        return item[0], item[1]

    async def recvfrom_many(self, limit: int) -> list[tuple[bytes, Address]]:
        item = await self._queue.get()
        if isinstance(item, _Refused):
            if self.remote is not None:
                raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
            self._errors.append(_refusal(item))
            return []  # like the real socket: an error ends the wait
        assert isinstance(item, tuple)
        return [(item[0], item[1])]

    def take_errors(self) -> list[tuple[Address, OSError]]:
        errors, self._errors = self._errors, []
        return errors

    async def sendto(self, data: bytes, address: Address) -> None:
        await trio.lowlevel.checkpoint()
        if self._queue.closed:
            raise trio.ClosedResourceError("socket closed")
        self._net._send_datagram(self, bytes(data), address)

    async def send(self, data: bytes) -> None:
        if self.remote is None:
            raise OSError(errno.EDESTADDRREQ, "Destination address required")
        await self.sendto(data, self.remote)

    def close(self) -> None:
        if not self._queue.closed:
            self._queue.close()
            self._net._udp.pop(self.local, None)


def _refusal(item: _Refused) -> tuple[Address, OSError]:
    return item.destination, ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")


class _FakeStream(trio.abc.Stream):
    def __init__(self, net: FakeNetwork, local: Address, remote: Address) -> None:
        self._net = net
        self.local = local
        self.remote = remote
        self.peer: _FakeStream | None = None
        self._queue = _Queue()
        self._pending: deque[bytes] = deque()
        self._last_at = -math.inf
        self._eof = False
        self._broken = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()
        if self._queue.closed:
            raise trio.ClosedResourceError("stream closed")
        if self._broken:
            raise trio.BrokenResourceError("connection reset by peer")
        self._net._send_stream(self, bytes(data))

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if not self._pending:
            if self._eof:
                await trio.lowlevel.checkpoint()
                return b""
            item = await self._queue.get()
            if item is _EOF:
                self._eof = True
                return b""
            if item is _RESET:
                self._broken = True
                raise trio.BrokenResourceError("connection reset by peer")
            assert isinstance(item, bytes)
            self._pending.append(item)
        else:
            await trio.lowlevel.checkpoint()
        chunk = self._pending.popleft()
        if max_bytes is not None and len(chunk) > max_bytes:
            self._pending.appendleft(chunk[max_bytes:])
            chunk = chunk[:max_bytes]
        return chunk

    def _deliver(self, at: float, item: object) -> None:
        self._queue.push(at, item)

    async def aclose(self) -> None:
        if not self._queue.closed:
            self._queue.close()
            self._net._stream_closed(self)
        await trio.lowlevel.checkpoint()


class _FakeListener(trio.abc.Listener[trio.abc.Stream]):
    def __init__(self, net: FakeNetwork, local: Address) -> None:
        self._net = net
        self.local = local
        self._send, self._receive = trio.open_memory_channel[_FakeStream](math.inf)

    async def accept(self) -> trio.abc.Stream:
        try:
            return await self._receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError) as exc:
            raise trio.ClosedResourceError("listener closed") from exc

    async def aclose(self) -> None:
        self._net._tcp.pop(self.local, None)
        self._receive.close()
        await trio.lowlevel.checkpoint()


class FakeBackend(NetworkBackend):
    """The sockets of one simulated host (``host`` is its IP address)."""

    def __init__(self, network: FakeNetwork, host: str) -> None:
        self.network = network
        self.host = host

    def _bind(self, host: str, port: int, table: Mapping[Address, object]) -> Address:
        host = self.host if host in _WILDCARDS else host
        port = port or self.network._ephemeral()
        if (host, port) in table:
            raise OSError(errno.EADDRINUSE, "Address already in use")
        return (host, port)

    async def open_udp(self, host: str, port: int, remote: Address | None = None) -> DatagramSocket:
        await trio.lowlevel.checkpoint()
        net = self.network
        sock = _FakeDatagramSocket(net, self._bind(host, port, net._udp), remote)
        net._udp[sock.local] = sock
        return sock

    async def connect_tcp(
        self, host: str, port: int, *, local_host: str | None = None
    ) -> trio.abc.Stream:
        net = self.network
        dst = (host, port)
        source = self.host if local_host is None or local_host in _WILDCARDS else local_host
        if net.partitioned(source, host):
            net._record("TCP", (source, 0), dst, b"", "blackholed")
            await trio.sleep_forever()
        await trio.sleep(2 * net.link(source, host).delay)
        listener = net._tcp.get(dst)
        if listener is None or net.refused(host, port):
            net._record("TCP", (source, 0), dst, b"", "refused")
            raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
        client = _FakeStream(net, (source, net._ephemeral()), dst)
        server = _FakeStream(net, dst, client.local)
        client.peer, server.peer = server, client
        net._streams.extend((client, server))
        listener._send.send_nowait(server)
        return client

    async def open_tcp_listener(
        self, host: str, port: int
    ) -> tuple[trio.abc.Listener[trio.abc.Stream], Address]:
        await trio.lowlevel.checkpoint()
        net = self.network
        listener = _FakeListener(net, self._bind(host, port, net._tcp))
        net._tcp[listener.local] = listener
        return listener, listener.local

    def stream_addresses(self, stream: trio.abc.Stream) -> tuple[Address, Address]:
        while isinstance(stream, trio.SSLStream):
            stream = stream.transport_stream
        assert isinstance(stream, _FakeStream)
        return stream.local, stream.remote


class FakeNetwork:
    """A deterministic in-memory IP network (see the module docstring).

    ``seed`` seeds the generator behind loss and jitter; ``captured`` lists every send.
    ``udp_error_queue``: whether unconnected UDP sockets hear of ICMP errors (Linux's
    ``IP_RECVERR``, the default) or not (other platforms).
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        default_link: LinkConfig | None = None,
        udp_error_queue: bool = True,
    ) -> None:
        self.random = random.Random(seed)
        self.udp_error_queue = udp_error_queue
        self.default_link = default_link or LinkConfig()
        self.captured: list[Packet] = []
        self._links: dict[tuple[str, str], LinkConfig] = {}
        self._partitions: set[frozenset[str]] = set()
        self._refused: set[tuple[str, int | None]] = set()
        self._udp: dict[Address, _FakeDatagramSocket] = {}
        self._tcp: dict[Address, _FakeListener] = {}
        self._streams: list[_FakeStream] = []
        self._ports = itertools.count(49152)

    # -- building the network ----------------------------------------------------------

    def backend(self, host: str) -> FakeBackend:
        return FakeBackend(self, host)

    @asynccontextmanager
    async def open_layer(
        self,
        host: str,
        on_message: OnMessage | None = None,
        *,
        config: TransportConfig | None = None,
        limits: Limits | None = None,
    ) -> AsyncIterator[TransportLayer]:
        """A real :class:`TransportLayer` whose sockets are on this network, at ``host``."""
        async with open_transport_layer(
            on_message, config=config, backend=self.backend(host), limits=limits
        ) as layer:
            yield layer

    def set_link(
        self,
        src: str,
        dst: str,
        *,
        loss: float = 0.0,
        delay: float = 0.0,
        jitter: float = 0.0,
        both_ways: bool = True,
    ) -> None:
        """Configure the link from host ``src`` to host ``dst`` (and back, by default)."""
        config = LinkConfig(loss=loss, delay=delay, jitter=jitter)
        self._links[(src, dst)] = config
        if both_ways:
            self._links[(dst, src)] = config

    def link(self, src: str, dst: str) -> LinkConfig:
        return self._links.get((src, dst), self.default_link)

    def partition(self, a: str, b: str) -> None:
        """Blackhole everything between hosts ``a`` and ``b`` (both ways)."""
        self._partitions.add(frozenset((a, b)))

    def heal(self, a: str, b: str) -> None:
        self._partitions.discard(frozenset((a, b)))

    def partitioned(self, a: str, b: str) -> bool:
        return frozenset((a, b)) in self._partitions

    def refuse(self, host: str, port: int | None = None) -> None:
        """Make ``host`` (one port or all) answer like a closed port: ICMP unreachable for UDP,
        RST for TCP (open connections to it are reset now)."""
        self._refused.add((host, port))
        for stream in list(self._streams):
            if self.refused(*stream.local) and stream.peer is not None:
                now = trio.current_time()
                stream._deliver(now, _RESET)
                stream.peer._deliver(now, _RESET)

    def unrefuse(self, host: str, port: int | None = None) -> None:
        self._refused.discard((host, port))

    def refused(self, host: str, port: int) -> bool:
        return (host, port) in self._refused or (host, None) in self._refused

    def packets(self, *, transport: str | None = None, fate: str | None = None) -> list[Packet]:
        """The captured packets, optionally filtered."""
        return [
            p
            for p in self.captured
            if (transport is None or p.transport == transport) and (fate is None or p.fate == fate)
        ]

    # -- the wire ----------------------------------------------------------------------

    def _ephemeral(self) -> int:
        return next(self._ports)

    def _record(self, transport: str, src: Address, dst: Address, data: bytes, fate: str) -> None:
        self.captured.append(Packet(trio.current_time(), transport, src, dst, data, fate))

    def _arrival(self, link: LinkConfig) -> float:
        jitter = self.random.uniform(0, link.jitter) if link.jitter else 0.0
        return trio.current_time() + link.delay + jitter

    def _send_datagram(self, sock: _FakeDatagramSocket, data: bytes, dst: Address) -> None:
        link = self.link(sock.local[0], dst[0])
        target = self._udp.get(dst)
        if self.partitioned(sock.local[0], dst[0]):
            fate = "blackholed"
        elif target is None or self.refused(*dst) or target.remote not in (None, sock.local):
            fate = "refused"
            if sock.remote is not None or sock.error_queue:  # who hears about ICMP errors
                sock._queue.push(trio.current_time() + 2 * link.delay, _Refused(dst))
        elif link.loss and self.random.random() < link.loss:
            fate = "lost"
        else:
            fate = "delivered"
            target._queue.push(self._arrival(link), (data, sock.local))
        self._record("UDP", sock.local, dst, data, fate)

    def _send_stream(self, stream: _FakeStream, data: bytes) -> None:
        peer = stream.peer
        if self.partitioned(stream.local[0], stream.remote[0]) or peer is None:
            self._record("TCP", stream.local, stream.remote, data, "blackholed")
            return
        at = max(self._arrival(self.link(stream.local[0], stream.remote[0])), stream._last_at)
        stream._last_at = at
        peer._deliver(at, data)
        self._record("TCP", stream.local, stream.remote, data, "delivered")

    def _stream_closed(self, stream: _FakeStream) -> None:
        if stream in self._streams:
            self._streams.remove(stream)
        peer = stream.peer
        if peer is not None and not self.partitioned(stream.local[0], stream.remote[0]):
            at = max(self._arrival(self.link(stream.local[0], stream.remote[0])), stream._last_at)
            peer._deliver(at, _EOF)
