# Acceptance checks above the parser: RFC 3261 §8.2.1 (method inspection, 405/501), §8.2.2.1
# (To and Request-URI, 416), §8.2.2.3 (Require, 420), §8.2.3 (content processing, 415),
# §8.1.1 / §20 (mandatory, single-valued headers, 400), §16.3 (proxy request validation:
# Max-Forwards 483, Proxy-Require 420), §10.3 (a registrar's To must be a SIP/SIPS AOR),
# §21.4.7 (406), §8.1.3.3 (responses with more than one Via), RFC 3261 §20.17 (Date in GMT),
# and RFC 4475 §3 (what the torture tests ask of each element).
#
# The split with the parser: ``parse_message`` refuses what cannot be framed or split into
# lines safely (bare CR/LF, NUL, Content-Length twice, the size bounds of ``Limits``: a
# ParseError); everything that needs a header's *meaning* is here (a Rejection): missing or
# duplicated single-valued headers (§8.1.1, §20, RFC 4475 §3.3.8), malformed values, the URI
# parameter bound of the addresses (``Limits.max_uri_params``), 416, 420, 415, 406.
# ``check_response`` never raises: a response it cannot read is one to drop (False).
#
# Theory of operation: the parser only guarantees that a message is framed and that its start
# line and header lines are well-formed. ``check_request`` reads the typed views a server
# needs and turns the first problem it finds into a ``Rejection`` (a RemoteProtocolError whose
# ``status_hint`` is the status to answer and whose ``headers`` are the ones that response
# must carry, e.g. Unsupported for 420 or Allow for 501). It returns None when the request is
# acceptable. The checks run in the order RFC 3261 §8.2 lists them, so a request that is both
# an unknown method and malformed gets 501 at a UAS, as RFC 4475 §3.1.2.18 prefers.
"""check_request / check_response: the message-level acceptance rules of a UAS or proxy."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from ..errors import Rejection as Rejection
from .errors import ParseError
from .fields import MAGIC_COOKIE, parse_media_type
from .headers import Headers, long_name
from .limits import DEFAULT_LIMITS, Limits
from .message import Request, Response
from .uri import NameAddress, SipUri, TelUri

__all__ = [
    "DEFAULT_METHODS",
    "SESSION_TYPES",
    "SINGLE_VALUED",
    "Rejection",
    "check_request",
    "check_response",
]

DEFAULT_METHODS = frozenset(
    [
        "INVITE",
        "ACK",
        "BYE",
        "CANCEL",
        "OPTIONS",
        "REGISTER",
        "PRACK",
        "SUBSCRIBE",
        "NOTIFY",
        "REFER",
        "INFO",
        "UPDATE",
        "MESSAGE",
        "PUBLISH",
    ]
)

Role = Literal["uas", "proxy", "registrar"]

# Headers that must appear exactly once in every request and response (§8.1.1).
_SINGLE = ("call-id", "from", "to", "cseq")

#: Header fields (canonical names) that may appear at most once: their grammar holds one
#: value (§20, RFC 3262, 3265, 3515, 4028). A second line is a 400 (RFC 4475 §3.3.8: "the
#: element must not crash ... and answers 400"), whatever its value.
SINGLE_VALUED = frozenset(
    [
        "call-id",
        "content-disposition",
        "content-length",
        "content-type",
        "cseq",
        "date",
        "event",
        "expires",
        "from",
        "max-forwards",
        "mime-version",
        "min-expires",
        "min-se",
        "priority",
        "rack",
        "refer-to",
        "reply-to",
        "retry-after",
        "rseq",
        "session-expires",
        "subscription-state",
        "to",
    ]
)

#: The body types a UAS takes in an INVITE, UPDATE or PRACK when ``check_request`` is given no
#: ``accepted_types``: session descriptions (RFC 3264). Anything else is 415 (§8.2.3), an
#: INVITE whose Accept excludes them 406 (§21.4.7, RFC 4475 §3.3.15).
SESSION_TYPES = ("application/sdp",)
_SESSION_METHODS = frozenset(["INVITE", "UPDATE", "PRACK"])

# ParseError and what a view could still let through below it (views convert these, but a
# response is dropped, never answered: nothing may escape check_response).
_UNREADABLE = (
    ParseError,
    ValueError,
    IndexError,
    KeyError,
    TypeError,
    UnicodeError,
    RecursionError,
)


def check_request(
    request: Request,
    *,
    role: Role = "uas",
    supported_methods: Iterable[str] = DEFAULT_METHODS,
    supported_extensions: Iterable[str] = (),
    accepted_types: Iterable[str] | None = None,
    session_types: Iterable[str] | None = SESSION_TYPES,
    limits: Limits = DEFAULT_LIMITS,
) -> Rejection | None:
    """The first reason to refuse ``request`` (a Rejection), or None if it is acceptable.

    ``role`` is the element receiving it. ``accepted_types`` (media types this UAS can take,
    ``None`` = any) also serves as what it can answer with for the Accept check (406). Without
    it, a UAS still takes only ``session_types`` in an INVITE, UPDATE or PRACK (``None``: any).
    ``limits.max_uri_params`` bounds the parameters of the URIs in From, To, Contact, Route
    and Record-Route (400; the Request-URI's bound is the parser's 414).
    """
    try:
        return _check(
            request,
            role,
            frozenset(supported_methods),
            supported_extensions,
            accepted=accepted_types,
            session_types=session_types,
            limits=limits,
        )
    except ParseError as exc:
        return Rejection(str(exc), status_hint=exc.status_hint or 400)


def _duplicated(h: Headers) -> str | None:
    """The first single-valued header (canonical name) that has more than one line."""
    h._index()
    more = h._more
    if more:  # only the names with several lines: usually just Via, Route, Record-Route
        for key in more:
            if key in SINGLE_VALUED:
                return key
    return None


def _check(
    req: Request,
    role: Role,
    methods: frozenset[str],
    extensions: Iterable[str],
    *,
    accepted: Iterable[str] | None,
    session_types: Iterable[str] | None,
    limits: Limits,
) -> Rejection | None:
    h = req.headers
    method = req.method
    # §8.2.1: an unknown method at a UAS is 501, before anything else is looked at.
    if role != "proxy" and method not in methods:
        return Rejection(
            f"method {method} not implemented",
            status_hint=501,
            headers=[("Allow", ", ".join(sorted(methods)))],
        )
    first = h._index()  # canonical names: no spelling lookups
    for name in _SINGLE:
        if name not in first:
            return Rejection(f"missing {long_name(name)} header")
    duplicated = _duplicated(h)
    if duplicated is not None:
        return Rejection(f"duplicated {long_name(duplicated)} header")
    if not req.vias:
        return Rejection("missing Via header")
    _ = (req.call_id, req.from_, req.to, req.max_forwards)
    # §25.1: tag-param = "tag" EQUAL token. A bare ";tag" reads as no tag, and the To tag a
    # UAS adds after it would be read as none either (no dialog could be made from it).
    for name, addr in (("From", req.from_), ("To", req.to)):
        if addr.tag is None and "tag" in addr.params:
            return Rejection(f"{name} tag without a value")
    branch = req.vias[0].branch
    if branch == MAGIC_COOKIE:
        return Rejection("Via branch is only the magic cookie (RFC 4475 §3.2.1)")
    if req.cseq.method != method:
        return Rejection(f"CSeq method {req.cseq.method} does not match {method}")
    date = h._first_value("date")
    if date is not None and not date.rstrip().endswith("GMT"):
        return Rejection(f"Date must be in GMT: {date!r}")
    # Addresses parse their URI lazily: touch them so a malformed one is a 400 here.
    most = limits.max_uri_params
    for addr in (req.from_, req.to, *req.contacts, *req.routes, *req.record_routes):
        if _uri_params(addr) > most:
            return Rejection(f"a URI with more than {most} parameters (max_uri_params)")
    _ = req.content_type
    uri = req.uri
    # §8.2.2.1 / §16.3: a scheme we cannot route is 416.
    if not isinstance(uri, SipUri | TelUri):
        return Rejection(f"unsupported URI scheme {uri.scheme!r}", status_hint=416)
    if isinstance(uri, SipUri) and uri.headers:
        return Rejection("Request-URI must not carry headers (§19.1.5)")
    if role == "registrar" and method == "REGISTER" and not isinstance(req.to.uri, SipUri):
        return Rejection("the To of a REGISTER must be a sip: or sips: URI (§10.3)")
    if role == "proxy":
        if req.max_forwards == 0:
            return Rejection("Max-Forwards reached 0", status_hint=483)
        return _require(req.proxy_require, extensions, "Proxy-Require")
    if method not in ("ACK", "CANCEL"):
        bad = _require(req.require, extensions, "Require")
        if bad is not None:
            return bad
    if role == "uas":
        if accepted is not None:
            return _content(req, list(accepted))
        if session_types is not None and method in _SESSION_METHODS:
            return _content(req, list(session_types))
        return _encoding(req)
    return None


def _uri_params(addr: NameAddress) -> int:
    """How many parameters and headers the URI of ``addr`` has (ParseError if malformed)."""
    uri = addr.uri
    count = len(uri.params)
    if isinstance(uri, SipUri):
        count += len(uri.headers)
    return count


def _require(tags: tuple[str, ...], extensions: Iterable[str], header: str) -> Rejection | None:
    if not tags:
        return None
    known = {e.lower() for e in extensions}
    missing = [t for t in tags if t.lower() not in known]
    if not missing:
        return None
    return Rejection(
        f"{header} lists unsupported extensions {missing}",
        status_hint=420,
        headers=[("Unsupported", ", ".join(missing))],
    )


def _encoding(req: Request, accepted: list[str] | None = None) -> Rejection | None:
    """§8.2.3: a body in an encoding we do not understand (we understand only identity) is
    415 with Accept-Encoding (and Accept, when we know what we take)."""
    if not req.body:
        return None
    for coding in req.headers.get_list("content-encoding"):
        if coding and coding.lower() != "identity":
            headers = [("Accept-Encoding", "identity")]
            if accepted is not None:
                headers.append(("Accept", ", ".join(accepted)))
            return Rejection(
                f"unsupported content encoding {coding[:40]!r}", status_hint=415, headers=headers
            )
    return None


def _content(req: Request, accepted: list[str]) -> Rejection | None:
    bad = _encoding(req, accepted)
    if bad is not None:
        return bad
    ctype = req.content_type
    if req.body and ctype is not None and not any(ctype.matches(a) for a in accepted):
        return Rejection(
            f"unsupported media type {ctype.mime[:60]}",
            status_hint=415,
            headers=[("Accept", ", ".join(accepted)), ("Accept-Encoding", "identity")],
        )
    # §21.4.7: an INVITE whose answer must be one of the Accept types we cannot produce.
    accept = req.headers.get_list("accept")
    if req.method == "INVITE" and accept:
        offered = [parse_media_type(a) for a in accepted]
        if not any(m.matches(a) for a in accept if a for m in offered):
            return Rejection("no acceptable response body type", status_hint=406)
    return None


def check_response(response: Response, *, role: Literal["uac", "proxy"] = "uac") -> bool:
    """False if ``response`` must be dropped silently (responses are never answered).

    Drops a response whose mandatory headers are missing or malformed, whose status code is
    out of range, that a UAC receives with more than one Via (§8.1.3.3), or whose Via names the
    broadcast address (RFC 4475 §3.3.10: never send there).
    """
    # Never raises: whatever a response's headers provoke (a malformed Via further down, an
    # unparsable To), the answer is "drop it", not an exception in the receive path.
    try:
        if not 100 <= response.status_code <= 699:
            return False
        h = response.headers
        first = h._index()
        if any(name not in first for name in _SINGLE) or _duplicated(h) is not None:
            return False
        vias = response.vias
        if not vias or (role == "uac" and len(vias) > 1):
            return False
        _ = (response.call_id, response.cseq, response.from_, response.to, response.max_forwards)
        # RFC 4475 §3.3.10: never send toward the broadcast address (each Via parsed here).
        return all(v.host != "255.255.255.255" for v in vias)
    except _UNREADABLE:
        return False
