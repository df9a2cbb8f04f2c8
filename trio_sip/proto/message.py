# SIP requests and responses: RFC 3261 §7 (messages), §8.1.1 (the mandatory header fields),
# §8.2.6.2 (building a response: copy Via, From, To, Call-ID, CSeq; add a To tag) and §21
# (reason phrases).
#
# Reason phrases we send may quote a peer (a registrar's "Bad Request (<what was wrong>)"): a
# peer's text must not make a response header injection (CR, LF) or a 5,000-character status
# line, so ``make_response`` passes every reason it is given through ``reason_phrase`` (control
# characters become spaces, cut to ``Limits.max_reason_length``). ``make_error_response`` is
# the refusal builder of the stack: it answers what ``make_response`` cannot (a request with no
# Call-ID, a malformed To) with whatever §8.2.6.2 header fields can be copied.
#
# Theory of operation: a message is a start line, a Headers multimap and a body. The typed
# views (``vias``, ``cseq``, ``from_``, ...) are *lazy*: the first read parses the header text
# via ``fields``/``uri`` and caches the value (in a slot for the common views, else a dict),
# so parsing a message costs only the framing and the header split, and a proxy that reads
# three headers pays for three.
# A malformed header surfaces as a ParseError when its view is read (never another exception
# type). Messages are immutable: edits go through ``evolve()`` and the Headers methods, which
# build a new message. A parsed, unedited message keeps its raw header bytes so that
# ``bytes(message)`` can return them without re-formatting (see ``serialize``).
"""Request / Response with lazily parsed, cached header views; ``make_response``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypedDict, TypeVar, Unpack, overload

from .abnf import excerpt
from .errors import ParseError
from .fields import (
    CSeq,
    LazySeq,
    MediaType,
    RetryAfter,
    Via,
    parse_cseq,
    parse_int,
    parse_media_type,
    parse_retry_after,
    parse_tokens,
    parse_via,
)
from .headers import _CANON, Headers, canonical_name, long_name
from .headers import _check as _check_header
from .limits import DEFAULT_LIMITS, Limits
from .serialize import serialize
from .uri import NameAddress, Uri, no_other_changes, parse_name_addr, parse_uri

if TYPE_CHECKING:
    from .auth import Challenge, Credentials

__all__ = [
    "REASON_PHRASES",
    "Message",
    "Request",
    "Response",
    "make_error_response",
    "make_response",
    "reason_phrase",
]

T = TypeVar("T")
_MISSING: Any = object()
_UNREAD = -2  # max_forwards not read yet (its values are None or 0..255)

# The errors a buggy or hostile header could still provoke below the parse functions; a view
# re-raises them as ParseError so callers only ever see one exception type.
_UNEXPECTED = (ValueError, IndexError, KeyError, TypeError, UnicodeError, RecursionError)


class _View(Generic[T]):
    """A lazily computed, cached, read-only attribute of a message (the less used views; the
    hot ones are properties over slots)."""

    def __init__(self, func: Callable[[Any], T]) -> None:
        self.func = func
        self.name = func.__name__
        self.__doc__ = func.__doc__

    @overload
    def __get__(self, obj: None, owner: type) -> _View[T]: ...
    @overload
    def __get__(self, obj: Message, owner: type) -> T: ...
    def __get__(self, obj: Message | None, owner: type) -> T | _View[T]:
        if obj is None:
            return self
        cache = obj._cache
        if cache is None:
            cache = obj._cache = {}
        value = cache.get(self.name, _MISSING)
        if value is _MISSING:
            try:
                value = self.func(obj)
            except ParseError:
                raise
            except _UNEXPECTED as exc:
                raise _malformed(self.name, exc) from exc
            cache[self.name] = value
        return value  # type: ignore[no-any-return]


def _malformed(view: str, exc: BaseException) -> ParseError:
    return ParseError(f"{view}: malformed header ({exc})")


def _one(msg: Message, name: str) -> str:
    value = msg._headers._first_value(name)
    if value is None:
        raise ParseError(f"missing {long_name(name)} header")
    return value


def _list(headers: Headers, key: str) -> list[str]:
    """``headers.get_list(key)`` for a canonical list-header ``key``, without copying when no
    value holds a comma (the result is not to be mutated)."""
    values = headers._values(key)
    for value in values:
        if "," in value:
            return headers.get_list(key)
    return values


def _addresses(msg: Message, name: str) -> tuple[NameAddress, ...]:
    # Cheap: each address parses its URI only when ``.uri`` is read.
    return tuple(map(parse_name_addr, _list(msg._headers, name)))


def _opt_int(msg: Message, name: str, maximum: int = 2**32 - 1) -> int | None:
    value = msg._headers._first_value(name)
    return None if value is None else parse_int(value, name, maximum)


class RequestChanges(TypedDict, total=False):
    """The fields ``Request.evolve`` changes."""

    method: str
    uri: Uri | str
    headers: Headers | Iterable[tuple[str, str]]
    body: bytes
    version: str


class ResponseChanges(TypedDict, total=False):
    """The fields ``Response.evolve`` changes."""

    status_code: int
    reason: str | None
    headers: Headers | Iterable[tuple[str, str]]
    body: bytes
    version: str


class Message:
    """What requests and responses share: headers, body and the typed views."""

    # The most read views live in slots (None / -2 = not read yet); the others in ``_cache``.
    __slots__ = (
        "_body",
        "_cache",
        "_call_id",
        "_contacts",
        "_cseq",
        "_from",
        "_headers",
        "_max_forwards",
        "_raw",
        "_to",
        "_version",
        "_vias",
    )

    _headers: Headers
    _body: bytes
    _raw: bytes | None
    _cache: dict[str, Any] | None
    _version: str
    _call_id: str | None
    _cseq: CSeq | None
    _vias: Sequence[Via] | None
    _from: NameAddress | None
    _to: NameAddress | None
    _contacts: tuple[NameAddress, ...] | None
    _max_forwards: int | None

    def _init(
        self, headers: Headers | Iterable[tuple[str, str]], body: bytes, version: str
    ) -> None:
        self._headers = headers if isinstance(headers, Headers) else Headers(headers)
        self._body = bytes(body)  # no copy for bytes; accepts bytearray/memoryview
        self._version = version
        self._raw = self._cache = None
        self._call_id = self._cseq = self._vias = self._from = self._to = self._contacts = None
        self._max_forwards = _UNREAD

    @property
    def headers(self) -> Headers:
        return self._headers

    @property
    def body(self) -> bytes:
        return self._body

    @property
    def version(self) -> str:
        return self._version

    @property
    def content_length(self) -> int:
        """The body length; serialisation always writes this as Content-Length."""
        return len(self._body)

    def __bytes__(self) -> bytes:
        return serialize(self)

    def start_line(self) -> str:
        raise NotImplementedError

    def _drop_views(self) -> None:
        """Forget the parsed views and the header index (both are rebuilt if read again): a
        message kept only to be matched or sent again then holds no parsed objects, which the
        garbage collector would traverse for as long as the transaction lingers."""
        self._cache = None
        self._call_id = self._cseq = self._vias = self._from = self._to = self._contacts = None
        self._max_forwards = _UNREAD
        headers = self._headers
        headers._first = headers._more = None

    # -- typed views (parsed on first read, cached) ----------------------------------------
    # Each catches the stray exceptions a hostile header could provoke and turns them into
    # ParseError, the only exception a view raises.

    @property
    def call_id(self) -> str:
        """Call-ID (§20.8); ParseError if missing or blank."""
        value = self._call_id
        if value is None:
            value = _one(self, "call-id")
            if not value or " " in value or "\t" in value:
                raise ParseError(f"Call-ID: bad value {excerpt(value)}")
            self._call_id = value
        return value

    @property
    def cseq(self) -> CSeq:
        """CSeq (§20.16); ParseError if missing or malformed."""
        value = self._cseq
        if value is None:
            try:
                text = (self._headers._first or self._headers._index()).get("cseq")
                if text is None:
                    raise ParseError("missing CSeq header")
                value = self._cseq = parse_cseq(text)
            except _UNEXPECTED as exc:
                raise _malformed("cseq", exc) from exc
        return value

    @property
    def vias(self) -> Sequence[Via]:
        """Every Via value, top first (§20.42); each is parsed when first indexed."""
        value = self._vias
        if value is None:
            try:
                value = self._vias = LazySeq(_list(self._headers, "via"), parse_via)
            except _UNEXPECTED as exc:
                raise _malformed("vias", exc) from exc
        return value

    @property
    def from_(self) -> NameAddress:
        """From (§20.20); ParseError if missing."""
        value = self._from
        if value is None:
            try:
                text = (self._headers._first or self._headers._index()).get("from")
                if text is None:
                    raise ParseError("missing From header")
                value = self._from = parse_name_addr(text)
            except _UNEXPECTED as exc:
                raise _malformed("from_", exc) from exc
        return value

    @property
    def to(self) -> NameAddress:
        """To (§20.39); ParseError if missing."""
        value = self._to
        if value is None:
            try:
                text = (self._headers._first or self._headers._index()).get("to")
                if text is None:
                    raise ParseError("missing To header")
                value = self._to = parse_name_addr(text)
            except _UNEXPECTED as exc:
                raise _malformed("to", exc) from exc
        return value

    @property
    def contacts(self) -> tuple[NameAddress, ...]:
        """Contact values (§20.10); a ``*`` is ``.is_wildcard``."""
        value = self._contacts
        if value is None:
            try:
                value = self._contacts = _addresses(self, "contact")
            except _UNEXPECTED as exc:
                raise _malformed("contacts", exc) from exc
        return value

    @_View
    def routes(self) -> tuple[NameAddress, ...]:
        return _addresses(self, "route")

    @_View
    def record_routes(self) -> tuple[NameAddress, ...]:
        return _addresses(self, "record-route")

    @property
    def max_forwards(self) -> int | None:
        """Max-Forwards (0..255, §20.22) or None."""
        value = self._max_forwards
        if value == _UNREAD:
            try:
                value = self._max_forwards = _opt_int(self, "max-forwards", 255)
            except _UNEXPECTED as exc:
                raise _malformed("max_forwards", exc) from exc
        return value

    @_View
    def expires(self) -> int | None:
        return _opt_int(self, "expires")

    @_View
    def min_expires(self) -> int | None:
        return _opt_int(self, "min-expires")

    @_View
    def content_type(self) -> MediaType | None:
        value = self._headers.get("content-type")
        return None if value is None else parse_media_type(value)

    @_View
    def retry_after(self) -> RetryAfter | None:
        value = self._headers.get("retry-after")
        return None if value is None else parse_retry_after(value)

    @_View
    def require(self) -> tuple[str, ...]:
        return parse_tokens(self._headers.get_list("require"), "Require")

    @_View
    def proxy_require(self) -> tuple[str, ...]:
        return parse_tokens(self._headers.get_list("proxy-require"), "Proxy-Require")

    @_View
    def supported(self) -> tuple[str, ...]:
        return parse_tokens(self._headers.get_list("supported"), "Supported")

    @_View
    def unsupported(self) -> tuple[str, ...]:
        return parse_tokens(self._headers.get_list("unsupported"), "Unsupported")

    @_View
    def allow(self) -> tuple[str, ...]:
        return parse_tokens(self._headers.get_list("allow"), "Allow")

    @_View
    def www_authenticate(self) -> tuple[Challenge, ...]:
        from .auth import parse_challenge

        return tuple(parse_challenge(v) for v in self._headers.get_all("www-authenticate"))

    @_View
    def proxy_authenticate(self) -> tuple[Challenge, ...]:
        from .auth import parse_challenge

        return tuple(parse_challenge(v) for v in self._headers.get_all("proxy-authenticate"))

    @_View
    def authorization(self) -> tuple[Credentials, ...]:
        from .auth import parse_credentials

        return tuple(parse_credentials(v) for v in self._headers.get_all("authorization"))

    @_View
    def proxy_authorization(self) -> tuple[Credentials, ...]:
        from .auth import parse_credentials

        return tuple(parse_credentials(v) for v in self._headers.get_all("proxy-authorization"))

    __hash__ = None  # type: ignore[assignment]


class Request(Message):
    """A SIP request. ``uri`` is parsed on first read; ``uri_text`` is the text as written."""

    __slots__ = ("_method", "_uri", "_uri_text")

    def __init__(
        self,
        method: str,
        uri: Uri | str,
        headers: Headers | Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        *,
        version: str = "SIP/2.0",
    ) -> None:
        self._method = method
        if isinstance(uri, str):
            self._uri: Uri | None = None
            self._uri_text = uri
        else:
            self._uri = uri
            self._uri_text = str(uri)
        self._init(headers, body, version)

    @classmethod
    def _parsed(cls, method: str, uri_text: str, headers: Headers) -> Request:
        # The parser's constructor: everything already checked, the body set by the caller.
        # (The constructor, not ``cls.__new__``: a class compiled by mypyc is only created
        # through its ``__init__``.)
        return cls(method, uri_text, headers)

    @property
    def method(self) -> str:
        return self._method

    @property
    def uri_text(self) -> str:
        return self._uri_text

    @property
    def uri(self) -> Uri:
        """The Request-URI; ParseError (400) if malformed."""
        uri = self._uri
        if uri is None:
            try:
                uri = self._uri = parse_uri(self._uri_text)
            except _UNEXPECTED as exc:
                raise ParseError(f"Request-URI: {exc}") from exc
        return uri

    def start_line(self) -> str:
        return f"{self._method} {self._uri_text} {self._version}"

    def _drop_views(self) -> None:
        super()._drop_views()
        self._uri = None

    def evolve(self, **changes: Unpack[RequestChanges]) -> Request:
        """A copy with some of ``method``, ``uri``, ``headers``, ``body``, ``version`` changed."""
        keep_uri = "uri" not in changes
        new = Request(
            changes.pop("method", self._method),
            changes.pop("uri", self._uri_text),
            changes.pop("headers", self._headers),
            changes.pop("body", self._body),
            version=changes.pop("version", self._version),
        )
        no_other_changes(changes)
        if keep_uri:
            new._uri = self._uri  # the same text, already parsed (or not)
        return new

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Request):
            return NotImplemented
        return (self.start_line(), self._headers, self._body) == (
            other.start_line(),
            other._headers,
            other._body,
        )

    __hash__ = None

    def __repr__(self) -> str:
        return f"<Request {self._method} {self._uri_text}>"


class Response(Message):
    """A SIP response."""

    __slots__ = ("_reason", "_status_code")

    def __init__(
        self,
        status_code: int,
        reason: str | None = None,
        headers: Headers | Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        *,
        version: str = "SIP/2.0",
    ) -> None:
        self._status_code = status_code
        self._reason = REASON_PHRASES.get(status_code, "") if reason is None else reason
        self._init(headers, body, version)

    @classmethod
    def _parsed(cls, status_code: int, reason: str, headers: Headers) -> Response:
        # The parser's constructor (see Request._parsed).
        return cls(status_code, reason, headers)

    @property
    def status_code(self) -> int:
        return self._status_code

    @property
    def reason(self) -> str:
        return self._reason

    def start_line(self) -> str:
        return f"{self._version} {self._status_code} {self._reason}"

    def evolve(self, **changes: Unpack[ResponseChanges]) -> Response:
        """A copy with some of ``status_code``, ``reason``, ``headers``, ``body`` changed."""
        new = Response(
            changes.pop("status_code", self._status_code),
            changes.pop("reason", self._reason),
            changes.pop("headers", self._headers),
            changes.pop("body", self._body),
            version=changes.pop("version", self._version),
        )
        no_other_changes(changes)
        return new

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Response):
            return NotImplemented
        return (self.start_line(), self._headers, self._body) == (
            other.start_line(),
            other._headers,
            other._body,
        )

    __hash__ = None

    def __repr__(self) -> str:
        return f"<Response {self._status_code} {self._reason}>"


REASON_PHRASES: dict[int, str] = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 199: "Early Dialog Terminated", 200: "OK", 202: "Accepted",
    204: "No Notification", 300: "Multiple Choices", 301: "Moved Permanently",
    302: "Moved Temporarily", 305: "Use Proxy", 380: "Alternative Service", 400: "Bad Request",
    401: "Unauthorized", 402: "Payment Required", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 406: "Not Acceptable", 407: "Proxy Authentication Required",
    408: "Request Timeout", 410: "Gone", 412: "Conditional Request Failed",
    413: "Request Entity Too Large", 414: "Request-URI Too Long", 415: "Unsupported Media Type",
    416: "Unsupported URI Scheme", 420: "Bad Extension", 421: "Extension Required",
    422: "Session Interval Too Small", 423: "Interval Too Brief", 428: "Use Identity Header",
    429: "Provide Referrer Identity", 439: "First Hop Lacks Outbound Support",
    480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    482: "Loop Detected", 483: "Too Many Hops", 484: "Address Incomplete", 485: "Ambiguous",
    486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here",
    489: "Bad Event", 491: "Request Pending", 493: "Undecipherable",
    494: "Security Agreement Required", 500: "Server Internal Error", 501: "Not Implemented",
    502: "Bad Gateway", 503: "Service Unavailable", 504: "Server Time-out",
    505: "Version Not Supported", 513: "Message Too Large", 580: "Precondition Failure",
    600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}  # fmt: skip


def reason_phrase(text: str, max_length: int = DEFAULT_LIMITS.max_reason_length) -> str:
    """``text`` made safe as a reason phrase (§25.1 Reason-Phrase): every control character
    (CR, LF, NUL, HTAB, ...) and every octet that was not UTF-8 becomes a space, and the result
    is cut to ``max_length`` characters. For reasons that quote a peer's input."""
    if len(text) <= max_length and text.isprintable():  # the usual "Bad Request"
        return text
    text = text[:max_length]
    return "".join([c if c.isprintable() else " " for c in text]).strip()


def make_response(
    request: Request,
    status_code: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    limits: Limits = DEFAULT_LIMITS,
) -> Response:
    """Build a response to ``request`` (§8.2.6.2).

    Copies every Via line, From, To, Call-ID and CSeq (as written), adds ``;tag=to_tag`` to the
    To unless it already has a tag, then appends ``headers``. Raises ParseError if the request
    lacks one of those headers or its To is malformed. ``reason`` is passed through
    :func:`reason_phrase` (cut to ``limits.max_reason_length``).
    """
    if not 100 <= status_code <= 699:
        raise ValueError(f"status code {status_code} is not in 100..699")
    if reason is not None:
        reason = reason_phrase(reason, limits.max_reason_length)
    src = request._headers
    index = src._index()
    for name in ("from", "to", "call-id", "cseq"):
        if name not in index:
            raise ParseError(f"cannot answer a request without {name}")
    tagged = to_tag is not None and request.to.tag is None
    canon = _CANON.get
    pairs: list[tuple[str, str]] = []
    for n, v in src._pairs:
        key = canon(n) or canonical_name(n)
        if key in _COPIED:
            if tagged and key == "to":
                v = f"{v};tag={to_tag}"
                _check_header(n, v)
            pairs.append((n, v))
    extra = Headers(headers)._pairs
    shared = True  # the copied lines are the request's: so are their parsed views
    for n, _ in extra:
        if (canon(n) or canonical_name(n)) in _COPIED:
            shared = False
    response = Response(status_code, reason, Headers._trusted(pairs + extra), body)
    if shared:
        response._vias = request._vias
        response._call_id = request._call_id
        response._cseq = request._cseq
        response._from = request._from
        if not tagged:
            response._to = request._to
    return response


#: The canonical names of the header fields a response copies from its request (§8.2.6.2).
_COPIED = frozenset(("via", "from", "to", "call-id", "cseq"))


def make_error_response(
    request: Request,
    status_code: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    limits: Limits = DEFAULT_LIMITS,
) -> Response | None:
    """A response refusing ``request`` (400, 415, 503, ...) that never raises ParseError.

    The same as :func:`make_response` for a well-formed request. For one that
    ``make_response`` cannot answer (no Call-ID, From, To or CSeq; a malformed To; two of
    them), it copies what it can (§8.2.6.2): every Via line and the first From, To, Call-ID
    and CSeq line present, as written (the parser already refused CR, LF and NUL in them), with
    ``;tag=to_tag`` added to a To that shows no tag. None if the request has no Via: there is
    nowhere to send a response (RFC 4475 §3.1.2 ``test``).
    """
    if "via" not in request._headers._index():
        return None
    try:
        return make_response(
            request, status_code, reason, to_tag=to_tag, headers=headers, limits=limits
        )
    except ParseError:
        pass
    canon = _CANON.get
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for n, v in request._headers._pairs:
        key = canon(n) or canonical_name(n)
        if key not in _COPIED or (key != "via" and key in seen):
            continue
        seen.add(key)
        if key == "to" and to_tag is not None and not _has_tag(v):
            v = f"{v};tag={to_tag}"
        pairs.append((n, v))
    if "via" not in seen:
        return None
    if reason is not None:
        reason = reason_phrase(reason, limits.max_reason_length)
    return Response(status_code, reason, Headers._trusted(pairs + Headers(headers)._pairs))


def _has_tag(to: str) -> bool:
    try:
        return parse_name_addr(to).tag is not None
    except ParseError:
        pass
    except _UNEXPECTED:
        pass
    return ";tag=" in to.replace(" ", "").lower()
