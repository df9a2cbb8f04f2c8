"""Stream flows (TCP and TLS): a reader task per connection and a send lock.

Theory of operation
-------------------
A :class:`StreamFlow` wraps one ``trio.abc.Stream`` (a TCP socket stream, or a
``trio.SSLStream`` over one) the way trio-websocket wraps wsproto: :meth:`StreamFlow.serve` is
the reader task, feeding received bytes to the core's ``StreamFramer`` (RFC 3261 §18.3:
Content-Length frames messages on streams) and draining its events; :meth:`StreamFlow.send`
writes under a lock so that concurrent senders never interleave bytes of two messages.

*Sending without a convoy.* A message is first written synchronously when nobody holds the send
lock (a plain TCP socket; the kernel normally takes a whole SIP message at once), so senders do
not queue behind each other: with the lock taken for every message, each one cost a lock
hand-off plus ``send_all``'s checkpoint, a scheduler round or two, and a busy event loop (the
chaos soak: ~1,000 live calls, 20 new ones a second, on two shared cores) could not keep up
with ~50 messages a second on one connection: requests waited more than 4 s to reach the wire.
Only the rest of a partly written message (a full socket buffer) is written under the lock.

* A message is handed to the layer's ``deliver(message, flow)`` callback (no task per message).
* A CRLFCRLF "ping" is answered with a CRLF "pong" and a received pong is reported to the
  flow's watchers as :class:`~trio_sip.transports.base.PongReceived` (RFC 5626 §4.4.1).
* A malformed message (``ParseError``): when it was a request and the header lines needed for a
  response (Via, From, To, Call-ID, CSeq, §8.2.6.2) can be found in the bytes, a stateless
  error response with the parser's status is sent (§21.4.1 400; 505, 513, ...); then the flow
  is closed, because the framing of the rest of the stream cannot be trusted.
* End of stream, a reset or a TLS error fails the flow: its watchers get ``FlowFailed``
  (§17.1.4), and the flow is closed. The layer keeps running.

Bounds (``trio_sip.Limits``, docs/security.md), shared by the flows of one layer through a
:class:`StreamPolicy` that also counts what happened (``TransportLayer.counters``):

* what one connection buffers is one message at most: a header section over
  ``max_header_section`` or a body over ``max_body_size`` is a 513 (§21.5.14), then the flow is
  closed. After any such error response the flow half-closes and reads (and discards) what the
  peer still sends for up to ``LINGER_TIME`` seconds / ``LINGER_BYTES`` bytes before closing:
  closing a socket with unread data makes the kernel send a reset, which can destroy the
  response in the peer's receive buffer before it reads it;
* a message must arrive whole within ``message_read_timeout`` seconds of its first byte (a
  "slowloris" peer that trickles a byte a second is closed, although it is never idle;
  keep-alive CRLFs between messages do not start the clock);
* an accepted connection must carry its first complete message (or an RFC 5626 keep-alive)
  within ``first_message_timeout`` seconds of being accepted (one that only connects is
  closed).
"""

from __future__ import annotations

import contextlib
import logging
import math
import secrets
import socket
from collections import Counter
from collections.abc import Callable

import trio

from trio_sip.proto.errors import ParseError, TransportError
from trio_sip.proto.limits import DEFAULT_LIMITS, Limits
from trio_sip.proto.parse import NEED_DATA, PING, PONG, FramerEvent, StreamFramer

from .accept import LogThrottle
from .base import Address, Flow, Message, format_address, logger, map_exceptions

__all__ = ["CRLF", "CRLFCRLF", "StreamFlow", "StreamPolicy", "error_response_untrusted"]

CRLF = b"\r\n"
CRLFCRLF = b"\r\n\r\n"
RECEIVE_SIZE = 65536
#: How long closing a stream (TLS close_notify) may take before it is closed forcefully.
CLOSE_GRACE = 1.0
#: After an error response, what is still read (and discarded) before closing, so that the
#: peer gets the response rather than a reset: at most this long, at most this many bytes.
LINGER_TIME = 2.0
LINGER_BYTES = 1 << 20

_REASONS = {
    400: "Bad Request",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    483: "Too Many Hops",
    505: "Version Not Supported",
    513: "Message Too Large",
}
_COPY = {"via": "Via", "v": "Via", "from": "From", "f": "From", "to": "To", "t": "To"}
_COPY |= {"call-id": "Call-ID", "i": "Call-ID", "cseq": "CSeq"}


def _copyable(name: str, value: str) -> bool:
    """Whether a header line can be copied into a stateless answer. The wire fuzzer
    (tests/attack) found answers no parser takes: a NUL or an 8 KB CSeq (the reason for the
    400) copied back. Octets that are not UTF-8 would come back as U+FFFD, 3 octets each: the
    answer would outgrow the request."""
    return len(name) + len(value) <= DEFAULT_LIMITS.max_header_length and not any(
        c in value for c in "\r\n\0\ufffd"
    )


Deliver = Callable[[Message, Flow], None]


def error_response_untrusted(data: bytes, status: int) -> bytes | None:
    """A stateless error response to the (malformed) request at the start of ``data``.

    Returns ``None`` when ``data`` does not look like a request or lacks a header a response
    must copy (§8.2.6.2). The header lines are copied verbatim, a To tag is added if missing;
    a line that could not be sent back as it came (a NUL, octets that are not UTF-8, longer
    than ``max_header_length``: see ``_copyable``) is not copied.
    """
    head = data.lstrip(b"\r\n").split(b"\r\n\r\n", 1)[0]
    lines = head.decode("utf-8", "replace").split("\r\n")
    if not lines or lines[0].startswith("SIP/") or not status:
        return None
    found: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        key = _COPY.get(name.strip().lower())
        if sep and key and _copyable(name, value):
            found.setdefault(key, []).append(value.strip())
    if any(name not in found for name in ("Via", "From", "To", "Call-ID", "CSeq")):
        return None
    to = found["To"][0]
    if ";tag=" not in to.replace(" ", "").lower():
        found["To"] = [f"{to};tag={secrets.token_hex(4)}"]
    out = [f"SIP/2.0 {status} {_REASONS.get(status, 'Bad Request')}"]
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        out.extend(f"{name}: {value}" for value in found[name])
    out.append("Content-Length: 0")
    return ("\r\n".join(out) + "\r\n\r\n").encode()


class StreamPolicy:
    """What the stream flows of one transport layer share: the limits, the counters of what
    they refused (``TransportLayer.counters``) and a log throttle (one line per kind per
    interval, whatever the number of peers)."""

    __slots__ = ("counters", "limits", "throttle")

    def __init__(
        self,
        limits: Limits = DEFAULT_LIMITS,
        counters: Counter[str] | None = None,
        throttle: LogThrottle | None = None,
    ) -> None:
        self.limits = limits
        self.counters: Counter[str] = Counter() if counters is None else counters
        self.throttle = throttle or LogThrottle(logger)

    def note(self, kind: str, message: str, *args: object) -> None:
        """Count one ``kind`` and log it (throttled)."""
        self.counters[kind] += 1
        self.throttle.log(logging.INFO, kind, message, *args)


class StreamFlow(Flow):
    """A TCP or TLS connection. The layer runs :meth:`serve` as its reader task."""

    reliable = True

    def __init__(
        self,
        transport: str,
        stream: trio.abc.Stream,
        local: Address,
        remote: Address,
        *,
        accepted: bool = False,
        limits: Limits = DEFAULT_LIMITS,
        policy: StreamPolicy | None = None,
    ) -> None:
        super().__init__(transport, local, remote)
        self.stream = stream
        self._send_lock = trio.Lock()
        self._accepted = accepted
        if policy is None:  # a flow of its own (tests): its own counters
            policy = _DEFAULT_POLICY if limits is DEFAULT_LIMITS else StreamPolicy(limits)
        self._policy = policy
        limits = policy.limits
        # RFC 5626 §3.5.1 roles: we ping on connections we opened and answer pings on the
        # ones we accepted, where a lone CRLF may be the first half of a split CRLFCRLF.
        self._framer = StreamFramer(expect_pongs=not accepted, limits=limits)
        self._context = f"{transport} to {format_address(remote)}"
        #: The plain TCP socket, for the synchronous write (None: TLS, or not a socket).
        self._raw = _raw_socket(stream)

    async def send(self, data: bytes) -> None:
        self._check_usable()
        lock = self._send_lock
        if self._raw is not None and not lock.locked():
            try:
                written = self._write_now(data)  # nobody is sending: no queue, no hand-off
            except TransportError:
                await self._close_stream()
                raise
            if written == len(data):
                self.touch()
                await trio.lowlevel.cancel_shielded_checkpoint()
                return
            data = data[written:]
            lock.acquire_nowait()  # free (nothing awaited since the check): the rest goes next
        else:
            await lock.acquire()
        try:
            try:
                with map_exceptions(self._context):
                    await self.stream.send_all(data)
            except TransportError as exc:
                self._fail(exc)
                await self._close_stream()
                raise
        finally:
            lock.release()
        self.touch()

    def _write_now(self, data: bytes) -> int:
        """Write what the socket takes without waiting; the count of bytes written."""
        raw = self._raw
        assert raw is not None
        try:
            return raw.send(data, _NO_SIGNAL)
        except BlockingIOError:
            return 0
        except OSError as exc:
            error = TransportError(f"{self._context}: connection broken ({exc})")
            self._fail(error)
            raise error from exc

    async def send_ping(self) -> None:
        """Send an RFC 5626 §4.4.1 ping (CRLFCRLF); the pong reaches watchers."""
        await self.send(CRLFCRLF)

    async def serve(self, deliver: Deliver) -> None:
        """The reader task: runs until the stream ends, fails, times out (see the module
        comment) or the flow is closed."""
        limits = self._policy.limits
        framer = self._framer
        # When the first complete message is due (accepted connections only), and when the
        # message being received now started (inf: none is).
        first_due = (
            trio.current_time() + limits.first_message_timeout if self._accepted else math.inf
        )
        started = math.inf
        try:
            with trio.CancelScope(deadline=first_due) as scope:
                while True:
                    with map_exceptions(self._context):
                        data = await self.stream.receive_some(RECEIVE_SIZE)
                    if not data:
                        self._fail(TransportError(f"{self._context}: connection closed by peer"))
                        return
                    now = self.last_activity = trio.current_time()
                    framer.receive_data(bytes(data))
                    delivered = await self._drain(deliver)
                    if delivered < 0:
                        return
                    if delivered:
                        first_due = started = math.inf
                    if not framer.in_message:
                        started = math.inf
                    elif started == math.inf:
                        started = now
                    scope.deadline = min(first_due, started + limits.message_read_timeout)
            self._timed_out(first_due <= started + limits.message_read_timeout)
        except TransportError as exc:
            self._fail(exc)
        except Exception as exc:
            logger.exception("%r: error while handling received data", self)
            self._fail(TransportError(f"{self._context}: internal error: {exc!r}"))
        finally:
            await self._close_stream()

    def _timed_out(self, first: bool) -> None:
        limits = self._policy.limits
        if first:
            kind, what = "first_message_timeouts", "no complete message"
            seconds = limits.first_message_timeout
        else:
            kind, what = "message_read_timeouts", "a message still incomplete"
            seconds = limits.message_read_timeout
        self._policy.note(kind, "%r: %s after %g s: closing the connection", self, what, seconds)
        self._fail(TransportError(f"{self._context}: {what} after {seconds:g} s"))

    async def _drain(self, deliver: Deliver) -> int:
        """Hand out every complete event; the number of messages and keep-alives handled, or
        -1 when the stream was rejected (the flow failed)."""
        delivered = 0
        while True:
            try:
                event = self._framer.next_event()
            except ParseError as exc:
                await self._reject(exc, self._framer.trailing_data)
                return -1
            if event is NEED_DATA:
                return delivered
            if event is PING:
                delivered += 1  # a complete exchange too (RFC 5626 §4.4.1): not "only connects"
                await self.send(CRLF)
            elif event is PONG:
                delivered += 1
                self._pong()
            elif not isinstance(event, FramerEvent):
                delivered += 1
                deliver(event, self)

    async def _reject(self, exc: ParseError, data: bytes) -> None:
        if exc.status_code == 513:
            self._policy.note("messages_too_large", "%r: %s: 513, closing the flow", self, exc)
        else:
            logger.info("%r: malformed message (%s): closing the flow", self, exc)
        response = error_response_untrusted(data, exc.status_code)
        if response is not None:
            with contextlib.suppress(TransportError):
                await self.send(response)
                await self._linger()
        self._fail(TransportError(f"{self._context}: malformed message from peer: {exc}"))

    async def _linger(self) -> None:
        """Half-close, then read and discard what the peer still sends (bounded: see
        ``LINGER_TIME`` / ``LINGER_BYTES``), so that our error response is not destroyed by the
        reset that closing a socket with unread data sends."""
        stream = self.stream
        ignored = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)
        with trio.move_on_after(LINGER_TIME), contextlib.suppress(*ignored):
            if isinstance(stream, trio.abc.HalfCloseableStream):
                # Under the send lock: a send_all still running in another task (a response
                # to an earlier request) and send_eof at once raise trio.BusyResourceError.
                async with self._send_lock:
                    await stream.send_eof()
            drained = 0
            while drained < LINGER_BYTES:
                data = await stream.receive_some(RECEIVE_SIZE)
                if not data:
                    break
                drained += len(data)

    async def _close_stream(self) -> None:
        ignored = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)
        shield = trio.CancelScope(shield=True)
        with shield, trio.move_on_after(CLOSE_GRACE), contextlib.suppress(*ignored):
            await self.stream.aclose()
        self.closed = True

    async def aclose(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._fail(TransportError(f"{self._context}: closed"))
        await self._close_stream()


_NO_SIGNAL = getattr(socket, "MSG_NOSIGNAL", 0) | getattr(socket, "MSG_DONTWAIT", 0)


def _raw_socket(stream: trio.abc.Stream) -> socket.socket | None:
    """The stdlib socket under a plain ``trio.SocketStream`` (trio keeps it non-blocking), for
    :meth:`StreamFlow._write_now`; None for TLS or anything else (then every write awaits)."""
    if not isinstance(stream, trio.SocketStream):
        return None
    raw = getattr(stream.socket, "_sock", None)  # trio's wrapped socket (no public accessor)
    return raw if isinstance(raw, socket.socket) and raw.type == socket.SOCK_STREAM else None


_DEFAULT_POLICY = StreamPolicy()
