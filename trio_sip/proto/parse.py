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
# Strict where laxity is a hole (issue #10, RFC 3261 §7.3.1, §25.1, RFC 4475): inside the
# header section a CR or LF is only ever part of a line end, so a bare CR, a bare LF between
# CRLF-ended lines (a peer that splits on CR or on CRLF would read other headers than we do:
# header injection) and a NUL (a C peer cuts the value there) are refused with 400. The one
# NUL the grammar allows is the escaped character of a quoted-pair inside a quoted string
# (RFC 4475 intmeth); bodies are octets and are never looked at (mpart01). A message whose
# lines all end in a bare LF (the RFC 5118 archive form) is still accepted. Content-Length
# may appear once. These checks are three C-level scans of the header text (``count`` and
# ``in``), so they cost nothing next to the split; the NUL rule only runs its character loop
# over a line that holds a NUL.
#
# Bounds (``trio_sip.Limits``, docs/security.md): the message, the header section and the body
# (513, §21.5.14), the number and length of header fields, Via and Route/Record-Route values
# (400), and the Request-URI's length and parameter count (414, §21.4.12). Each is a
# comparison of a length or count the parser already has, except the Via/Route counts (a
# ``str.count`` over those values) and a long Request-URI's parameter count.
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

from .abnf import LWS, bad_nul, excerpt, is_token
from .errors import ParseError
from .headers import _CANON, Headers, _index
from .limits import DEFAULT_LIMITS, Limits
from .message import Request, Response

__all__ = ["NEED_DATA", "PING", "PONG", "FramerEvent", "StreamFramer", "parse_message"]

_UNEXPECTED = (ValueError, IndexError, KeyError, TypeError, UnicodeError, RecursionError)
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


def _build(head: bytes, limits: Limits) -> tuple[Request | Response, int | None, bool]:
    """Parse a header block (no empty line). Returns the message (body still unset), the
    Content-Length (None if absent) and whether the raw bytes can be reused as they are."""
    text = head.decode("utf-8", "surrogateescape")
    built = _build_text(text, text.split("\r\n"), False, limits)
    if built is None:  # pragma: no cover  (only for datagrams)
        raise ParseError("empty line inside the header section")
    return built


def _build_text(
    text: str, lines: list[str], datagram: bool, limits: Limits
) -> tuple[Request | Response, int | None, bool] | None:
    """``_build`` of the decoded block split on CRLF. For a datagram, returns None if the block
    holds an LF LF: the empty line came earlier (bare-LF line ends), the caller cuts again."""
    faithful = True
    # After the split on CRLF, a CR or LF left inside a line is a bare one. Looking for them
    # in the lines joined back (a copy and two memchr) costs less than counting either in
    # the text (a loop over every character).
    rest = "".join(lines)
    if "\n" in rest:
        if datagram and "\n\n" in text:
            return None
        if len(lines) > 1 or "\r" in text:
            # An LF that does not end a CRLF line (or a CR in a bare-LF message): a peer that
            # splits lines differently would see other header fields than we do.
            raise ParseError("bare LF or CR inside a header line")
        # Bare LF line ends (RFC 5118's archive form): accept them, but re-format on output.
        lines = text.split("\n")
        faithful = False
    elif "\r" in rest:
        raise ParseError("bare CR inside a header line")
    if "\0" in rest:
        _check_nul(lines)
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
        if "content-length" in more:
            # RFC 4475 §3.3.9: the body length is undefined; a second, equal value is refused
            # too (one element must not frame differently from the next).
            raise ParseError(f"{len(more['content-length'])} Content-Length header fields")
        if not length.isdigit() or not length.isascii() or len(length.lstrip("0")) > 12:
            raise ParseError(f"bad Content-Length {excerpt(length)}")
        clen = int(length)
    else:
        faithful = False
    if len(pairs) > limits.max_headers or len(text) > limits.max_header_length:
        _check_fields(text, pairs, limits)
    # Via / Route / Record-Route values are counted only when one of them has several lines
    # or a comma: one value per line is the usual case, and it is within any bound.
    for key in _COUNTED:
        listed = first.get(key)
        if listed is not None and (key in more or "," in listed):
            _check_values(first, more, limits)
            break

    start = lines[0]
    headers = Headers._trusted(pairs, first, more)
    if start[:4].upper() == "SIP/":
        return _response(start, headers), clen, faithful
    parts = start.split(" ")
    if len(parts) != 3 or not parts[1]:
        raise ParseError(
            f"request line must be 'METHOD SP Request-URI SP SIP/2.0': {excerpt(start)}"
        )
    method, uri, version = parts
    if not is_token(method):
        raise ParseError(f"bad method {excerpt(method)}")
    if len(uri) > limits.max_uri_length or len(uri) > 2 * limits.max_uri_params:
        _check_request_uri(uri, limits)
    if version != "SIP/2.0":
        if version.upper() != "SIP/2.0":
            if _VERSION.fullmatch(version):
                raise ParseError(
                    f"SIP version {excerpt(version, 20)} not supported", status_hint=505
                )
            raise ParseError(f"bad SIP version {excerpt(version, 20)}")
        faithful = False
    return Request._parsed(method, uri, headers), clen, faithful


def _check_nul(lines: list[str]) -> None:
    for line in lines:
        if "\0" in line and bad_nul(line):
            raise ParseError("NUL octet in a header line")


def _check_fields(text: str, pairs: list[tuple[str, str]], limits: Limits) -> None:
    """``max_headers`` and ``max_header_length`` (400)."""
    if len(pairs) > limits.max_headers:
        raise ParseError(f"{len(pairs)} header fields (max_headers is {limits.max_headers})")
    if len(text) > limits.max_header_length:  # else no field can be longer
        longest = limits.max_header_length
        for name, value in pairs:
            if len(name) + len(value) > longest:
                raise ParseError(f"header field {excerpt(name, 30)} is over max_header_length")


#: The list headers whose number of values is bounded (``max_vias``, ``max_routes``).
_COUNTED = ("via", "route", "record-route")


def _check_values(first: dict[str, str], more: dict[str, list[str]], limits: Limits) -> None:
    """``max_vias`` and ``max_routes`` (400). Each comma-separated value needs a comma:
    counting commas bounds the values from above."""
    vias = _values(first, more, "via")
    if vias > limits.max_vias:
        raise ParseError(f"{vias} Via values (max_vias is {limits.max_vias})")
    for key in ("route", "record-route"):
        routes = _values(first, more, key)
        if routes > limits.max_routes:
            raise ParseError(f"{routes} {key} values (max_routes is {limits.max_routes})")


def _values(first: dict[str, str], more: dict[str, list[str]], key: str) -> int:
    """How many comma-separated values the lines named ``key`` can hold, at most."""
    lines = more.get(key)
    if lines is None:
        value = first.get(key)
        return 0 if value is None else value.count(",") + 1
    return sum(value.count(",") + 1 for value in lines)


def _check_request_uri(uri: str, limits: Limits) -> None:
    """414 Request-URI Too Long (§21.4.12) for a Request-URI over ``max_uri_length`` or with
    more than ``max_uri_params`` parameters and headers."""
    if len(uri) > limits.max_uri_length:
        raise ParseError(
            f"Request-URI of {len(uri)} characters (max_uri_length is {limits.max_uri_length})",
            status_hint=414,
        )
    if len(uri) > 2 * limits.max_uri_params:  # ";p" is the shortest parameter
        # An upper bound (a ';' in a user part counts too): one C-level count per separator.
        count = uri.count(";") + uri.count("&") + uri.count("?")
        if count > limits.max_uri_params:
            raise ParseError(
                f"Request-URI with {count} parameters (max_uri_params is {limits.max_uri_params})",
                status_hint=414,
            )


def _fields(lines: list[str]) -> list[tuple[str, str]]:
    """The general header loop: continuation lines (§7.3.1), LWS before the colon, names
    outside the common spellings."""
    pairs: list[tuple[str, str]] = []
    # Folded values are joined once at the end (index in pairs -> pieces): joining at every
    # continuation line would copy the value again each time (quadratic).
    folded: dict[int, list[str]] = {}
    canon = _CANON.get
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):
            # §7.3.1: a line starting with whitespace continues the previous header value.
            if not pairs:
                raise ParseError("continuation line before the first header")
            cont = line.strip(LWS)
            if cont:
                last = len(pairs) - 1
                pieces = folded.get(last)
                if pieces is None:
                    folded[last] = [pairs[last][1], cont]
                else:
                    pieces.append(cont)
            continue
        colon = line.find(":")
        if colon <= 0:
            raise ParseError(f"header line without a name and colon: {excerpt(line)}")
        name = line[:colon]
        if canon(name) is None:  # not a common spelling: check it is a token
            name = name.rstrip(LWS)
            if not is_token(name):
                raise ParseError(f"bad header name {excerpt(name)}")
        pairs.append((name, line[colon + 1 :].strip(LWS)))
    for i, pieces in folded.items():
        pairs[i] = (pairs[i][0], " ".join([p for p in pieces if p]))
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
        raise ParseError(f"response with unsupported version {excerpt(version, 20)}", status_hint=0)
    code = parts[1] if len(parts) > 1 else ""
    if len(code) != 3 or not code.isdigit() or not code.isascii() or code[0] not in "123456":
        raise ParseError(f"bad status code {excerpt(code, 20)}", status_hint=0)
    return Response._parsed(int(code), parts[2] if len(parts) > 2 else "", headers)


def parse_message(data: bytes, *, limits: Limits = DEFAULT_LIMITS) -> Request | Response:
    """Parse one complete message received as a datagram (RFC 3261 §18.3).

    The body is Content-Length octets (extra octets are discarded); without Content-Length it
    is everything after the empty line. Raises ParseError, whose ``status_code`` is what a
    server answers (400, 414, 505, 513, ...; 0 for a malformed response, which is dropped).
    ``limits`` bounds sizes and counts (see docs/security.md).
    """
    try:
        return _parse_datagram(bytes(data), limits)
    except ParseError as exc:
        if exc.status_hint and data.lstrip(b"\r\n")[:4].upper() == b"SIP/":
            raise ParseError(str(exc), status_hint=0) from None
        raise
    except _UNEXPECTED as exc:
        raise ParseError(f"malformed message ({exc!r})") from exc


def _too_large(what: str, size: int, setting: str, limit: int) -> ParseError:
    return ParseError(f"{what} of {size} bytes ({setting} is {limit})", status_hint=513)


def _parse_datagram(data: bytes, limits: Limits) -> Request | Response:
    if len(data) > limits.max_message_size:
        raise _too_large("message", len(data), "max_message_size", limits.max_message_size)
    start = 0
    while data.startswith(b"\r\n", start):
        start += 2
    end = data.find(b"\r\n\r\n", start)
    built = None
    if end > start:
        if end + 4 - start > limits.max_header_section:
            size = end + 4 - start
            raise _too_large(
                "header section", size, "max_header_section", limits.max_header_section
            )
        text = data[start:end].decode("utf-8", "surrogateescape")
        built = _build_text(text, text.split("\r\n"), True, limits)
        body_start = end + 4
    if built is None:  # no CRLF CRLF, or an earlier empty line made of bare LFs
        m = _EMPTY_LINE.search(data, start)
        if m is None:
            raise ParseError("no empty line after the header fields (truncated message?)")
        end, body_start = m.start(), m.end()
        if end <= start:
            raise ParseError("empty message")
        if body_start - end != 2:  # "\r\n\n" or "\n\r\n": CRLF and bare LF line ends mixed
            raise ParseError("bare LF or CR inside a header line")
        if body_start - start > limits.max_header_section:
            size = body_start - start
            raise _too_large(
                "header section", size, "max_header_section", limits.max_header_section
            )
        built = _build(data[start:end], limits)
    msg, clen, faithful = built
    if clen is None:
        body = data[body_start:]
    else:
        avail = len(data) - body_start
        if clen > avail:
            raise ParseError(f"Content-Length {clen} is larger than the {avail} body octets")
        body = data[body_start : body_start + clen]
    if len(body) > limits.max_body_size:
        raise _too_large("body", len(body), "max_body_size", limits.max_body_size)
    msg._body = body
    if faithful and body_start - end == 4:
        msg._raw = data[start:body_start]
    return msg


class StreamFramer:
    """Cut a TCP/TLS byte stream into messages (RFC 3261 §18.3, RFC 5626 §4.4.1).

    Feed bytes with ``receive_data`` (``b""`` means the peer closed), then call ``next_event``
    until it returns ``NEED_DATA``. It returns a Request/Response, ``PING`` or ``PONG``. A
    framing error raises ParseError (400; 513 when a size limit is exceeded, 414 for an
    overlong Request-URI); the stream cannot be resynchronised after that, so every later call
    raises it again: answer if you can, then close the connection.

    ``limits`` (a :class:`~trio_sip.Limits`) bounds the header section
    (``max_header_section``), the body (``max_body_size``) and the whole message
    (``max_message_size``), and the header checks of ``parse_message``;
    ``max_header_size`` / ``max_body_size``, when given, override the first two.

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
        "_limits",
        "_pending",
        "_scan",
        "expect_pongs",
        "max_body_size",
        "max_header_size",
    )

    def __init__(
        self,
        *,
        max_header_size: int | None = None,
        max_body_size: int | None = None,
        expect_pongs: bool = True,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self._limits = limits
        self.max_header_size = (
            limits.max_header_section if max_header_size is None else max_header_size
        )
        self.max_body_size = limits.max_body_size if max_body_size is None else max_body_size
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

    @property
    def in_message(self) -> bool:
        """True while part of a message (not keep-alive CRLFs) is buffered: the message has
        started and is not complete yet (the slowloris clock of the stream runs)."""
        return bool(self._buf) and self._buf[0] != 13  # not "\r"

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
            limit = self.max_header_size
            if end < 0:
                if len(buf) > limit:  # no need to wait for the end of it
                    raise _too_large("header section", len(buf), "max_header_section", limit)
                self._scan = max(0, len(buf) - 3)
                return self._wait("the header section")
            if end + 4 > limit:
                raise _too_large("header section", end + 4, "max_header_section", limit)
            msg, clen, faithful = _build(bytes(buf[:end]), self._limits)
            if clen is None:
                raise ParseError("Content-Length is required on a stream (RFC 3261 §18.3)")
            if clen > self.max_body_size:
                raise _too_large("body", clen, "max_body_size", self.max_body_size)
            total = self._limits.max_message_size
            if end + 4 + clen > total:
                raise _too_large("message", end + 4 + clen, "max_message_size", total)
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
