"""A packet capture on the loopback interface for interop tests: what really went on the wire.

:func:`capture_udp` opens an ``AF_PACKET`` socket on ``lo`` (Linux, root: what tcpdump does)
and reads every IPv4 UDP datagram that *leaves* a socket (the kernel hands the tap a copy before
the input hook, so a datagram an nftables black hole drops is seen too) in a thread, keeping
those to or from the given addresses as :class:`Datagram` records with a ``time.monotonic()``
stamp. Other helpers' traffic on other loopback addresses is ignored, in the kernel already
(a classic BPF filter: IPv4 UDP whose source or destination shares the hosts' common prefix),
and the socket gets a 16 MB buffer, so that a busy machine's loopback does not make the tap
drop ours. Compare times between captured datagrams (relative), never with trio's clock.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import socket
import struct
import threading
import time
from collections.abc import Iterable, Iterator

import attrs
import pytest

from trio_sip.proto.message import Request, Response
from trio_sip.proto.parse import parse_message

_ETH_P_ALL = 0x0003
_PACKET_OUTGOING = 4
_ETH_HEADER = 14
_SO_ATTACH_FILTER = 26
_SO_RCVBUFFORCE = 33


def _bpf(hosts: Iterable[str]) -> tuple[bytes, ctypes.Array[ctypes.c_char]]:
    """A classic BPF program (and the buffer it lives in) accepting IPv4 UDP frames whose
    source or destination address shares the common prefix of ``hosts``."""
    values = [int(ipaddress.IPv4Address(h)) for h in hosts]
    prefix = 32
    while prefix and len({v >> (32 - prefix) for v in values}) > 1:
        prefix -= 1
    mask = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF
    net = values[0] & mask
    program = [  # (code, jt, jf, k): jumps are relative to the next instruction
        (0x28, 0, 0, 12),  # ldh [12]: the ethertype
        (0x15, 0, 9, 0x0800),  # IPv4, else drop
        (0x30, 0, 0, 23),  # ldb [23]: the IP protocol
        (0x15, 0, 7, 17),  # UDP, else drop
        (0x20, 0, 0, 26),  # ld [26]: the source address
        (0x54, 0, 0, mask),
        (0x15, 3, 0, net),  # ours: accept
        (0x20, 0, 0, 30),  # ld [30]: the destination address
        (0x54, 0, 0, mask),
        (0x15, 0, 1, net),  # ours: accept, else drop
        (0x06, 0, 0, 0xFFFF),  # accept
        (0x06, 0, 0, 0),  # drop
    ]
    code = b"".join(struct.pack("HBBI", *ins) for ins in program)
    buffer = ctypes.create_string_buffer(code)
    fprog = struct.pack("HL", len(program), ctypes.addressof(buffer))
    return fprog, buffer


@attrs.frozen
class Datagram:
    time: float
    src: tuple[str, int]
    dst: tuple[str, int]
    data: bytes

    @property
    def message(self) -> Request | Response | None:
        """The datagram as one SIP message, or None (a keep-alive, a fragment...)."""
        try:
            return parse_message(self.data)
        except Exception:
            return None


class Capture:
    """The datagrams seen so far (``datagrams``, in order); see the module comment."""

    def __init__(self, hosts: Iterable[str]) -> None:
        self.hosts = frozenset(hosts)
        self.datagrams: list[Datagram] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def snapshot(self) -> list[Datagram]:
        with self._lock:
            return list(self.datagrams)

    def sip(
        self, *, src: str | None = None, dst: str | None = None
    ) -> list[tuple[Datagram, Request | Response]]:
        """The SIP messages seen, optionally only from ``src`` / to ``dst`` (addresses)."""
        out = []
        for datagram in self.snapshot():
            if src is not None and datagram.src[0] != src:
                continue
            if dst is not None and datagram.dst[0] != dst:
                continue
            message = datagram.message
            if message is not None:
                out.append((datagram, message))
        return out

    def _run(self, sock: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                frame, address = sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            if address[2] != _PACKET_OUTGOING:
                continue  # loopback shows each datagram twice: keep the sending side's copy
            self._parse(frame)

    def _parse(self, frame: bytes) -> None:
        ip = frame[_ETH_HEADER:]
        if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != socket.IPPROTO_UDP:
            return
        header = (ip[0] & 0x0F) * 4
        src = socket.inet_ntoa(ip[12:16])
        dst = socket.inet_ntoa(ip[16:20])
        if src not in self.hosts and dst not in self.hosts:
            return
        sport, dport, length = struct.unpack("!HHH", ip[header : header + 6])
        payload = ip[header + 8 : header + length]
        datagram = Datagram(time.monotonic(), (src, sport), (dst, dport), payload)
        with self._lock:
            self.datagrams.append(datagram)


@contextlib.contextmanager
def capture_udp(*hosts: str) -> Iterator[Capture]:
    """Capture UDP on ``lo`` to or from ``hosts`` while the block runs (skips the test when
    the kernel refuses a packet socket)."""
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(_ETH_P_ALL))
    except (OSError, AttributeError) as exc:
        pytest.skip(f"no packet capture here (AF_PACKET on lo needs Linux and root): {exc}")
    capture = Capture(hosts)
    with sock:
        fprog, _program = _bpf(hosts)  # the buffer must live while the option is set
        sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)
        sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, 16 * 1024 * 1024)
        sock.bind(("lo", 0))
        sock.settimeout(0.1)
        thread = threading.Thread(target=capture._run, args=(sock,), daemon=True)
        thread.start()
        try:
            yield capture
        finally:
            time.sleep(0.05)  # the last datagrams reach the tap
            capture._stop.set()
            thread.join(timeout=2)
