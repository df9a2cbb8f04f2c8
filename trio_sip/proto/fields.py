# Typed views of header values: RFC 3261 §20 (Via §20.42, CSeq §20.16, Max-Forwards §20.22,
# Content-Length §20.14, Content-Type §20.15, Expires §20.19, Min-Expires §20.23,
# Retry-After §20.33, Require/Supported/Allow/Proxy-Require/Unsupported §20.32/§20.37/
# §20.5/§20.29/§20.40), RFC 3581 (rport) and RFC 5118 (bracketed IPv6 in Via received).
#
# Theory of operation: each ``parse_*`` function turns the header text the Headers multimap
# holds into a small frozen value, raising ParseError (status 400) with a message that names
# the header when the text is malformed. Messages call these lazily, the first time a view is
# read, and cache the result; nothing here runs for a header nobody reads. Integers are checked
# for digits and length *before* ``int()`` so an absurd value costs nothing and cannot overflow
# (RFC 4475 §3.1.2.4, §3.1.2.5).
"""Typed header values: Via, CSeq, Content-Type, Retry-After and integer/token headers."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final, Generic, TypedDict, TypeVar, Unpack, overload

import attrs

from .abnf import LWS, STRING_FAST_PATHS, TOKEN_CHARS, excerpt, is_token
from .errors import ParseError
from .uri import (
    EMPTY_PARAMS,
    HOSTNAME,
    SIMPLE_PARAMS,
    NameAddress,
    Params,
    _ascii_hostname,
    _ascii_port,
    _token_params,
    format_host,
    no_other_changes,
    parse_hostport,
    parse_params,
    simple_params,
)

__all__ = [
    "MAGIC_COOKIE",
    "CSeq",
    "LazySeq",
    "NameAddress",
    "MediaType",
    "RetryAfter",
    "Via",
    "parse_cseq",
    "parse_int",
    "parse_media_type",
    "parse_retry_after",
    "parse_tokens",
    "parse_via",
]

MAGIC_COOKIE = "z9hG4bK"
"""Branch prefix of RFC 3261 transactions (§8.1.1.7)."""

MAX_UINT32 = 2**32 - 1
T = TypeVar("T")


class LazySeq(Sequence[T], Generic[T]):
    """A read-only sequence whose items are parsed from text on first access (then cached).

    ``vias[0].branch`` parses only the top Via. Compares equal to a sequence of equal items.
    """

    __slots__ = ("_items", "_parse", "_raw")

    def __init__(self, raw: list[str], parse: Callable[[str], T]) -> None:
        self._raw = raw
        self._parse = parse
        self._items: list[T | None] = [None] * len(raw)

    def __len__(self) -> int:
        return len(self._raw)

    @overload
    def __getitem__(self, i: int) -> T: ...
    @overload
    def __getitem__(self, i: slice) -> tuple[T, ...]: ...
    def __getitem__(self, i: int | slice) -> T | tuple[T, ...]:
        if isinstance(i, slice):
            return tuple(self[j] for j in range(*i.indices(len(self._raw))))
        item = self._items[i]
        if item is None:
            item = self._items[i] = self._parse(self._raw[i])
        return item

    def __iter__(self) -> Iterator[T]:
        for i in range(len(self._raw)):
            yield self[i]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"LazySeq({list(self)!r})"


def parse_int(text: str, header: str, maximum: int = MAX_UINT32) -> int:
    """A non-negative decimal integer no larger than ``maximum`` (leading zeros allowed)."""
    if text.isdigit() and text.isascii() and len(text) < 10:  # the usual short number
        value = int(text)
        if value <= maximum:
            return value
    return _parse_int(text, header, maximum)


def _parse_int(text: str, header: str, maximum: int = MAX_UINT32) -> int:
    """``parse_int`` without the fast path (the general parser)."""
    t = text.strip(LWS)
    if not t.isdigit() or not t.isascii():
        raise ParseError(f"{header}: not a number: {excerpt(text)}")
    # Strip leading zeros before the length check so '0068' is fine but 10**100 is cheap.
    digits = t.lstrip("0") or "0"
    if len(digits) > 20 or int(digits) > maximum:
        raise ParseError(f"{header}: value too large: {excerpt(text)}")
    return int(digits)


class CSeqChanges(TypedDict, total=False):
    """The fields ``CSeq.evolve`` changes."""

    seq: int
    method: str


class ViaChanges(TypedDict, total=False):
    """The fields ``Via.evolve`` changes."""

    transport: str
    host: str
    port: int | None
    params: Params
    protocol: str


class MediaTypeChanges(TypedDict, total=False):
    """The fields ``MediaType.evolve`` changes."""

    type: str
    subtype: str
    params: Params


class CSeq:
    """``CSeq: <seq> <method>`` (§20.16); ``seq`` fits in 32 bits. Immutable, compares and
    hashes by value."""

    # A plain class (not attrs) so that mypyc compiles it natively; read-only properties over
    # private slots, as with every value class of the parse path (see Via).
    __slots__ = ("_method", "_seq")
    __match_args__: Final = ("seq", "method")

    def __init__(self, seq: int, method: str) -> None:
        self._seq: Final = seq
        self._method: Final = method

    @property
    def seq(self) -> int:
        return self._seq

    @property
    def method(self) -> str:
        return self._method

    def evolve(self, **changes: Unpack[CSeqChanges]) -> CSeq:
        """A copy with some fields changed (as ``attrs.evolve`` did)."""
        new = CSeq(changes.pop("seq", self._seq), changes.pop("method", self._method))
        no_other_changes(changes)
        return new

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CSeq):
            return NotImplemented
        return self._seq == other._seq and self._method == other._method

    def __hash__(self) -> int:
        return hash((self._seq, self._method))

    def __reduce__(self) -> tuple[Any, ...]:
        return CSeq, (self._seq, self._method)

    def __repr__(self) -> str:
        return f"CSeq(seq={self._seq!r}, method={self._method!r})"

    def __str__(self) -> str:
        return f"{self._seq} {self._method}"


def parse_cseq(text: str) -> CSeq:
    parts = text.split()
    if len(parts) == 2:
        seq, method = parts
        if seq.isdigit() and seq.isascii() and len(seq) < 10 and is_token(method):
            return CSeq(int(seq), method)  # under 10 digits: fits in 32 bits
    return _parse_cseq(text)


def _parse_cseq(text: str) -> CSeq:
    """``parse_cseq`` without the fast path (the general parser)."""
    parts = text.split()
    if len(parts) != 2 or not is_token(parts[1]):
        raise ParseError(f"CSeq: expected '<number> <method>', got {excerpt(text)}")
    return CSeq(parse_int(parts[0], "CSeq"), parts[1])


class Via:
    """One Via value (§20.42): ``SIP/2.0/<transport> <host>[:<port>];params``. Immutable,
    compares and hashes by value."""

    # A plain class, not attrs: mypyc compiles it to a native class (a C struct and a C
    # constructor; it cannot compile an attrs class's generated __init__). The fields are
    # read-only properties over private slots (Final: no setter in the compiled build).
    __slots__ = ("_host", "_params", "_port", "_protocol", "_transport")
    __match_args__: Final = ("transport", "host", "port", "params", "protocol")

    def __init__(
        self,
        transport: str,
        host: str,
        port: int | None = None,
        params: Params = EMPTY_PARAMS,
        protocol: str = "SIP/2.0",
    ) -> None:
        self._transport: Final = transport
        self._host: Final = host
        self._port: Final = port
        self._params: Final = params
        self._protocol: Final = protocol

    @property
    def transport(self) -> str:
        return self._transport

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int | None:
        return self._port

    @property
    def params(self) -> Params:
        return self._params

    @property
    def protocol(self) -> str:
        return self._protocol

    def evolve(self, **changes: Unpack[ViaChanges]) -> Via:
        """A copy with some fields changed (as ``attrs.evolve`` did)."""
        new = Via(
            changes.pop("transport", self._transport),
            changes.pop("host", self._host),
            changes.pop("port", self._port),
            changes.pop("params", self._params),
            changes.pop("protocol", self._protocol),
        )
        no_other_changes(changes)
        return new

    def _key(self) -> tuple[str, str, int | None, Params, str]:
        return self._transport, self._host, self._port, self._params, self._protocol

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Via):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __reduce__(self) -> tuple[Any, ...]:
        return Via, self._key()

    def __repr__(self) -> str:
        return (
            f"Via(transport={self._transport!r}, host={self._host!r}, port={self._port!r}, "
            f"params={self._params!r}, protocol={self._protocol!r})"
        )

    @property
    def branch(self) -> str | None:
        return self._params.get("branch")

    @property
    def received(self) -> str | None:
        """The received parameter, without the brackets of an IPv6 reference (RFC 5118 §4.5)."""
        v = self._params.get("received")
        if v is not None and v.startswith("[") and v.endswith("]"):
            return v[1:-1]
        return v

    @property
    def rport(self) -> int | bool | None:
        """RFC 3581: ``True`` for a bare ``;rport``, the port if it has a value, else None."""
        if "rport" not in self._params:
            return None
        v = self._params.get("rport")
        if v is None:
            return True
        return parse_int(v, "Via rport", 65535)

    @property
    def maddr(self) -> str | None:
        return self._params.get("maddr")

    @property
    def ttl(self) -> str | None:
        return self._params.get("ttl")

    @property
    def sent_by(self) -> tuple[str, int | None]:
        return self._host, self._port

    @property
    def is_rfc3261(self) -> bool:
        """The branch carries the magic cookie (§17.2.3 matching applies)."""
        b = self.branch
        return b is not None and b.startswith(MAGIC_COOKIE)

    def __str__(self) -> str:
        port = "" if self._port is None else f":{self._port}"
        return f"{self._protocol}/{self._transport} {format_host(self._host)}{port}{self._params}"


# The usual Via: "SIP/2.0/UDP host[:port];token[=token];...", no LWS, no IPv6, no quotes.
# Whatever this accepts, the general code below accepts with the same result; anything else
# goes to it.
_VIA_FAST = re.compile(
    rf"SIP/2\.0/([{TOKEN_CHARS}]+) ({HOSTNAME})(?::([0-9]{{1,5}}))?({SIMPLE_PARAMS})"
).fullmatch


def parse_via(text: str) -> Via:
    """Parse one Via value; LWS around the ``/`` is allowed (RFC 4475 §3.1.1.1)."""
    if STRING_FAST_PATHS:
        via = _fast_via(text)
        return _parse_via(text) if via is None else via
    m = _VIA_FAST(text)
    if m is not None:
        transport, host, port, ptext = m.groups()
        if port is None or int(port) <= 65535:
            params = simple_params(ptext, "branch")  # None: a valueless branch (an error)
            if params is not None:
                return Via(transport.upper(), host, None if port is None else int(port), params)
    return _parse_via(text)


def _fast_via(text: str) -> Via | None:
    """The string-operation fast path of ``parse_via`` (None: not for it)."""
    # Fast path (string operations) for the usual Via: "SIP/2.0/UDP host[:port];token[=token]
    # ...", ASCII, no LWS, no IPv6, no quotes. Whatever it accepts, _parse_via accepts with
    # the same value; anything else (and a valueless branch, an error) goes to it.
    if text.startswith("SIP/2.0/") and text.isascii():
        sp = text.find(" ", 8)
        if sp > 8:
            transport = text[8:sp]
            semi = text.find(";", sp)
            host = text[sp + 1 :] if semi < 0 else text[sp + 1 : semi]
            port: int | None = None
            colon = host.find(":")
            if colon >= 0:
                port = _ascii_port(host[colon + 1 :])
                host = host[:colon]
            if host and port != -1 and is_token(transport) and _ascii_hostname(host):
                params = EMPTY_PARAMS if semi < 0 else _token_params(text[semi:], "branch")
                if params is not None:
                    return Via(transport.upper(), host, port, params)
    return None


def _parse_via(text: str) -> Via:
    """``parse_via`` without the fast path (the general parser)."""
    semi = text.find(";")
    head = text if semi < 0 else text[:semi]
    parts = head.split("/")
    if len(parts) != 3:
        raise ParseError(f"Via: bad sent-protocol in {excerpt(text)}")
    name = parts[0].strip(LWS)
    version = parts[1].strip(LWS)
    rest = parts[2].split()
    if len(rest) != 2 or not is_token(name) or not is_token(version) or not is_token(rest[0]):
        raise ParseError(f"Via: expected 'SIP/2.0/<transport> <host>' in {excerpt(text)}")
    host, port = parse_hostport(rest[1])
    params = parse_params(text[semi + 1 :]) if semi >= 0 else EMPTY_PARAMS
    if "branch" in params and not params.get("branch"):
        raise ParseError(f"Via: empty branch in {excerpt(text)}")
    return Via(rest[0].upper(), host, port, params, f"{name}/{version}")


def parse_tokens(elements: list[str], header: str) -> tuple[str, ...]:
    """Option tags / method names of Require, Supported, Allow, ... (empty elements skipped)."""
    out = []
    for e in elements:
        if not e:
            continue
        if not is_token(e):
            raise ParseError(f"{header}: {excerpt(e)} is not a token")
        out.append(e)
    return tuple(out)


class MediaType:
    """``type/subtype;params`` (§20.15); ``mime`` is the lower-cased ``type/subtype``.
    Immutable, compares and hashes by value (a plain class for mypyc, like Via)."""

    __slots__ = ("_params", "_subtype", "_type")
    __match_args__: Final = ("type", "subtype", "params")

    def __init__(self, type: str, subtype: str, params: Params = EMPTY_PARAMS) -> None:
        self._type: Final = type
        self._subtype: Final = subtype
        self._params: Final = params

    @property
    def type(self) -> str:
        return self._type

    @property
    def subtype(self) -> str:
        return self._subtype

    @property
    def params(self) -> Params:
        return self._params

    def evolve(self, **changes: Unpack[MediaTypeChanges]) -> MediaType:
        """A copy with some fields changed (as ``attrs.evolve`` did)."""
        new = MediaType(
            changes.pop("type", self._type),
            changes.pop("subtype", self._subtype),
            changes.pop("params", self._params),
        )
        no_other_changes(changes)
        return new

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MediaType):
            return NotImplemented
        return (self._type, self._subtype, self._params) == (
            other._type,
            other._subtype,
            other._params,
        )

    def __hash__(self) -> int:
        return hash((self._type, self._subtype, self._params))

    def __reduce__(self) -> tuple[Any, ...]:
        return MediaType, (self._type, self._subtype, self._params)

    def __repr__(self) -> str:
        return f"MediaType(type={self._type!r}, subtype={self._subtype!r}, params={self._params!r})"

    @property
    def mime(self) -> str:
        return f"{self._type}/{self._subtype}".lower()

    def matches(self, pattern: str) -> bool:
        """True if ``pattern`` (``*/*``, ``application/*`` or a full type) covers this type."""
        t, _, s = pattern.partition(";")[0].strip(LWS).lower().partition("/")
        return (t == "*" or t == self._type.lower()) and (s == "*" or s == self._subtype.lower())

    def __str__(self) -> str:
        return f"{self._type}/{self._subtype}{self._params}"


def parse_media_type(text: str) -> MediaType:
    semi = text.find(";")
    mime = text if semi < 0 else text[:semi]
    t, slash, s = mime.partition("/")
    t, s = t.strip(LWS), s.strip(LWS)
    if not slash or not is_token(t) or not is_token(s):
        raise ParseError(f"Content-Type: bad media type {excerpt(text)}")
    params = parse_params(text[semi + 1 :]) if semi >= 0 else EMPTY_PARAMS
    return MediaType(t, s, params)


@attrs.frozen
class RetryAfter:
    """``Retry-After: <seconds> [(comment)] [;duration=n]`` (§20.33)."""

    seconds: int
    comment: str | None = None
    params: Params = EMPTY_PARAMS

    @property
    def duration(self) -> int | None:
        d = self.params.get("duration")
        return None if d is None else parse_int(d, "Retry-After duration")


def parse_retry_after(text: str) -> RetryAfter:
    t = text.strip(LWS)
    comment = None
    i = 0
    while i < len(t) and t[i].isdigit():
        i += 1
    seconds = parse_int(t[:i], "Retry-After")
    rest = t[i:].lstrip(LWS)
    if rest.startswith("("):
        end = rest.rfind(")")
        if end < 0:
            raise ParseError(f"Retry-After: unterminated comment in {excerpt(text)}")
        comment = rest[1:end]
        rest = rest[end + 1 :].lstrip(LWS)
    if rest and rest[0] != ";":
        raise ParseError(f"Retry-After: junk in {excerpt(text)}")
    params = parse_params(rest[1:]) if rest else EMPTY_PARAMS
    return RetryAfter(seconds, comment, params)
