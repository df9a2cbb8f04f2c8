# Bytes -> messages: RFC 3261 §7 (start line, header fields, folding §7.3.1), §7.5 (framing:
# leading CRLFs are ignored), §18.3 (Content-Length: a datagram may carry trailing octets, a
# stream *requires* Content-Length), §21.5.6 (505) and RFC 5626 §3.5.1/§4.4.1 (CRLF
# keep-alives on streams: CRLFCRLF is a ping, a lone CRLF the pong).
#
# Theory of operation: find the empty line once, decode the header block once (UTF-8 with
# surrogateescape, so any octet survives a round trip), split it into lines once, and keep the
# header fields as ``(name, value)`` pairs; continuation lines are folded into the previous
# value. Only the start line and Content-Length are interpreted here, everything else waits in
# the Headers multimap until a typed view is read. A datagram is parsed by ``parse_message``;
# a byte stream goes through ``StreamFramer`` (h11's receive_data / next_event / NEED_DATA
# shape), which scans for the end of the header block incrementally (no quadratic rescans),
# then waits for exactly Content-Length body octets. The only exception that leaves this module
# is ParseError; its status says what a server should answer (0 for a response: drop it).
#
# Keep-alives between messages: TCP may cut a CRLFCRLF ping anywhere, so CRLFs are kept until
# it is clear what they are. CRLFCRLF is a PING; a CRLF followed by any byte but CR is a PONG
# (or a leading CRLF before a message, §7.5, which is the same harmless event). A lone CRLF at
# the end of the bytes received so far is ambiguous: the first half of a ping, or a pong after
# which the peer may send nothing for minutes. RFC 5626 §3.5.1 gives the two ends of a flow
# fixed roles (the client pings, the server answers with a pong), so the framer asks its
# role: ``expect_pongs`` (the side that pings) reports the lone CRLF as a PONG at once, since
# its peer never pings and waiting would let the pong timer kill a healthy flow; otherwise
# (the side that answers pings) it waits for the next byte: CR makes it a ping, anything else
# or the end of the stream a PONG. With a fixed role, any split of the same bytes gives the
# same events.
"""parse_message (datagrams) and StreamFramer (TCP/TLS byte streams)."""

from __future__ import annotations

import enum
import re

from .abnf import LWS, is_token
from .errors import ParseError
from .headers import _CANON, Headers, _index
from .message import Request, Response

__all__ = ["NEED_DATA", "PING", "PONG", "FramerEvent", "StreamFramer", "parse_message"]

_UNEXPECTED = (ValueError, IndexError, KeyError, TypeError, UnicodeError, RecursionError)
_LINE_END = re.compile(r"\r?\n")
_EMPTY_LINE = re.compile(rb"\r?\n\r?\n")
_VERSION = re.compile(r"SIP/[0-9]+\.[0-9]+", re.IGNORECASE)


class FramerEvent(enum.Enum):
    """What ``StreamFramer.next_event`` returns when it has no message."""

    NEED_DATA = "NEED_DATA"
    """Feed more bytes with ``receive_data``."""
    PING = "PING"
    """A CRLFCRLF keep-alive between messages (RFC 5626 §4.4.1): answer with a CRLF."""
    PONG = "PONG"
    """A lone CRLF: the answer to our ping (or a leading CRLF, RFC 3261 §7.5)."""

    def __repr__(self) -> str:
        return self.value


NEED_DATA = FramerEvent.NEED_DATA
PING = FramerEvent.PING
PONG = FramerEvent.PONG


def _build(head: bytes) -> tuple[Request | Response, int | None, bool]:
    """Parse a header block (no empty line). Returns the message (body still unset), the
    Content-Length (None if absent) and whether the raw bytes can be reused as they are."""
    text = head.decode("utf-8", "surrogateescape")
    built = _build_text(text, text.split("\r\n"), False)
    if built is None:  # pragma: no cover  (only for datagrams)
        raise ParseError("empty line inside the header section")
    return built


def _build_text(
    text: str, lines: list[str], datagram: bool
) -> tuple[Request | Response, int | None, bool] | None:
    """``_build`` of the decoded block split on CRLF. For a datagram, returns None if the block
    holds an LF LF: the empty line came earlier (bare-LF line ends), the caller cuts again."""
    faithful = True
    if text.count("\n") != len(lines) - 1:
        # Bare LF line ends (RFC 5118's archive form): accept them, but re-format on output.
        if datagram and "\n\n" in text:
            return None
        lines = _LINE_END.split(text)
        faithful = False
    pairs: list[tuple[str, str]] = []
    first: dict[str, str] = {}
    more: dict[str, list[str]] = {}
    canon = _CANON.get
    # Fast path: every line is "<common spelling>:<value>". A name found in _CANON is a token
    # without whitespace, so this also rules out continuation lines and bad names; anything
    # else (folding, an unknown or odd name, no colon) goes to the general loop.
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        key = canon(name)
        if key is None or not sep:
            pairs = _fields(lines)
            first, more = _index(pairs)
            break
        value = value.strip(LWS)
        pairs.append((name, value))
        if key in first:
            values = more.get(key)
            if values is None:
                more[key] = [first[key], value]
            else:
                values.append(value)
        else:
            first[key] = value

    clen: int | None = None
    length = first.get("content-length")
    if length is not None:
        lengths = more.get("content-length")
        if lengths is not None:
            if len(set(lengths)) > 1:
                raise ParseError(f"conflicting Content-Length values {sorted(set(lengths))}")
            faithful = False
        if not length.isdigit() or not length.isascii() or len(length.lstrip("0")) > 12:
            raise ParseError(f"bad Content-Length {length!r}")
        clen = int(length)
    else:
        faithful = False

    start = lines[0]
    headers = Headers._trusted(pairs, first, more)
    if start[:4].upper() == "SIP/":
        return _response(start, headers), clen, faithful
    parts = start.split(" ")
    if len(parts) != 3 or not parts[1]:
        raise ParseError(f"request line must be 'METHOD SP Request-URI SP SIP/2.0': {start!r}")
    method, uri, version = parts
    if not is_token(method):
        raise ParseError(f"bad method {method[:60]!r}")
    if version != "SIP/2.0":
        if version.upper() != "SIP/2.0":
            if _VERSION.fullmatch(version):
                raise ParseError(f"SIP version {version} not supported", status_hint=505)
            raise ParseError(f"bad SIP version {version[:20]!r}")
        faithful = False
    return Request._parsed(method, uri, headers), clen, faithful


def _fields(lines: list[str]) -> list[tuple[str, str]]:
    """The general header loop: continuation lines (§7.3.1), LWS before the colon, names
    outside the common spellings."""
    pairs: list[tuple[str, str]] = []
    canon = _CANON.get
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):
            # §7.3.1: a line starting with whitespace continues the previous header value.
            if not pairs:
                raise ParseError("continuation line before the first header")
            cont = line.strip(LWS)
            name, prev = pairs[-1]
            pairs[-1] = (name, f"{prev} {cont}" if prev and cont else prev or cont)
            continue
        colon = line.find(":")
        if colon <= 0:
            raise ParseError(f"header line without a name and colon: {line[:60]!r}")
        name = line[:colon]
        if canon(name) is None:  # not a common spelling: check it is a token
            name = name.rstrip(LWS)
            if not is_token(name):
                raise ParseError(f"bad header name {name[:60]!r}")
        pairs.append((name, line[colon + 1 :].strip(LWS)))
    return pairs


def _response(first: str, headers: Headers) -> Response:
    code = first[8:11]
    if (  # the usual "SIP/2.0 180 Ringing"
        first[:8] == "SIP/2.0 "
        and first[11:12] == " "
        and "1" <= code[0] <= "6"
        and code.isdigit()
        and code.isascii()
    ):
        return Response._parsed(int(code), first[12:], headers)
    parts = first.split(" ", 2)
    version = parts[0]
    if version.upper() != "SIP/2.0":
        raise ParseError(f"response with unsupported version {version[:20]!r}", status_hint=0)
    code = parts[1] if len(parts) > 1 else ""
    if len(code) != 3 or not code.isdigit() or not code.isascii() or code[0] not in "123456":
        raise ParseError(f"bad status code {code[:20]!r}", status_hint=0)
    return Response._parsed(int(code), parts[2] if len(parts) > 2 else "", headers)


def parse_message(data: bytes) -> Request | Response:
    """Parse one complete message received as a datagram (RFC 3261 §18.3).

    The body is Content-Length octets (extra octets are discarded); without Content-Length it
    is everything after the empty line. Raises ParseError, whose ``status_code`` is what a
    server answers (400, 505, ...; 0 for a malformed response, which is dropped).
    """
    try:
        return _parse_datagram(bytes(data))
    except ParseError as exc:
        if exc.status_hint and data.lstrip(b"\r\n")[:4].upper() == b"SIP/":
            raise ParseError(str(exc), status_hint=0) from None
        raise
    except _UNEXPECTED as exc:
        raise ParseError(f"malformed message ({exc!r})") from exc


def _parse_datagram(data: bytes) -> Request | Response:
    start = 0
    while data.startswith(b"\r\n", start):
        start += 2
    end = data.find(b"\r\n\r\n", start)
    built = None
    if end > start:
        text = data[start:end].decode("utf-8", "surrogateescape")
        built = _build_text(text, text.split("\r\n"), True)
        body_start = end + 4
    if built is None:  # no CRLF CRLF, or an earlier empty line made of bare LFs
        m = _EMPTY_LINE.search(data, start)
        if m is None:
            raise ParseError("no empty line after the header fields (truncated message?)")
        end, body_start = m.start(), m.end()
        if end <= start:
            raise ParseError("empty message")
        built = _build(data[start:end])
    msg, clen, faithful = built
    if clen is None:
        body = data[body_start:]
    else:
        avail = len(data) - body_start
        if clen > avail:
            raise ParseError(f"Content-Length {clen} is larger than the {avail} body octets")
        body = data[body_start : body_start + clen]
    msg._body = body
    if faithful and body_start - end == 4:
        msg._raw = data[start:body_start]
    return msg


class StreamFramer:
    """Cut a TCP/TLS byte stream into messages (RFC 3261 §18.3, RFC 5626 §4.4.1).

    Feed bytes with ``receive_data`` (``b""`` means the peer closed), then call ``next_event``
    until it returns ``NEED_DATA``. It returns a Request/Response, ``PING`` or ``PONG``. A
    framing error raises ParseError (400; 513 when a limit is exceeded); the stream cannot be
    resynchronised after that, so every later call raises it again: close the connection.

    ``expect_pongs`` is this end's RFC 5626 role (§3.5.1: the client pings, the server
    answers). True (the default, the side that sends pings): a lone CRLF is a ``PONG`` as soon
    as it arrives. False (the side that answers pings, e.g. an accepted connection): a lone
    CRLF at the end of the data is held until the next byte shows whether it starts a
    CRLFCRLF ping, so a ping split across two reads is still one ``PING``. Set it before
    feeding data; changing it later takes effect at the next ``next_event``.
    """

    __slots__ = (
        "_buf",
        "_eof",
        "_error",
        "_pending",
        "_scan",
        "expect_pongs",
        "max_body_size",
        "max_header_size",
    )

    def __init__(
        self,
        *,
        max_header_size: int = 65536,
        max_body_size: int = 1 << 20,
        expect_pongs: bool = True,
    ) -> None:
        self.max_header_size = max_header_size
        self.max_body_size = max_body_size
        self.expect_pongs = expect_pongs
        self._buf = bytearray()
        self._scan = 0
        self._pending: tuple[Request | Response, int, int, bool] | None = None
        self._eof = False
        self._error: ParseError | None = None

    def receive_data(self, data: bytes) -> None:
        """Add received bytes; ``b""`` marks the end of the stream."""
        if not data:
            self._eof = True
        elif self._error is None:
            self._buf += data

    @property
    def trailing_data(self) -> bytes:
        """Bytes received but not yet returned as an event."""
        return bytes(self._buf)

    def next_event(self) -> Request | Response | FramerEvent:
        if self._error is not None:
            raise ParseError(str(self._error), status_hint=self._error.status_hint)
        try:
            return self._next()
        except ParseError as exc:
            self._error = exc
            raise
        except _UNEXPECTED as exc:
            self._error = ParseError(f"malformed message ({exc!r})")
            raise self._error from exc

    def _next(self) -> Request | Response | FramerEvent:
        buf = self._buf
        if self._pending is None:
            if buf[:1] == b"\r":
                return self._keepalive(buf)
            if not buf:
                return NEED_DATA
            end = buf.find(b"\r\n\r\n", self._scan)
            if end < 0:
                if len(buf) > self.max_header_size:
                    raise ParseError("header section too large", status_hint=513)
                self._scan = max(0, len(buf) - 3)
                return self._wait("the header section")
            if end + 4 > self.max_header_size:
                raise ParseError("header section too large", status_hint=513)
            msg, clen, faithful = _build(bytes(buf[:end]))
            if clen is None:
                raise ParseError("Content-Length is required on a stream (RFC 3261 §18.3)")
            if clen > self.max_body_size:
                raise ParseError(f"body of {clen} octets is too large", status_hint=513)
            self._pending = (msg, clen, end + 4, faithful)
        msg, clen, start, faithful = self._pending
        stop = start + clen
        if len(buf) < stop:
            return self._wait("the body")
        msg._body = bytes(buf[start:stop])
        if faithful:
            msg._raw = bytes(buf[:start])
        del buf[:stop]
        self._pending = None
        self._scan = 0
        return msg

    def _keepalive(self, buf: bytearray) -> FramerEvent:
        """CRs between messages: a ping, a pong, or not yet known (see the module comment)."""
        if buf[:4] == b"\r\n\r\n":
            del buf[:4]
            return PING
        size = len(buf)
        if size < 2 or (size == 3 and buf[2:3] == b"\r" and buf[1:2] == b"\n"):
            return self._wait("a keep-alive")
        if buf[1:2] != b"\n":
            raise ParseError("stray CR before a message")
        if size == 2 and not self.expect_pongs and not self._eof:
            return NEED_DATA  # a pong, or the first half of a ping: the next byte tells
        del buf[:2]
        return PONG

    def _wait(self, what: str) -> FramerEvent:
        if self._eof:
            raise ParseError(f"stream closed in the middle of {what}")
        return NEED_DATA
