# Acceptance checks above the parser: RFC 3261 §8.2.1 (method inspection, 405/501), §8.2.2.1
# (To and Request-URI, 416), §8.2.2.3 (Require, 420), §8.2.3 (content processing, 415),
# §8.1.1 / §20 (mandatory, single-valued headers, 400), §16.3 (proxy request validation:
# Max-Forwards 483, Proxy-Require 420), §10.3 (a registrar's To must be a SIP/SIPS AOR),
# §21.4.7 (406), §8.1.3.3 (responses with more than one Via), RFC 3261 §20.17 (Date in GMT),
# and RFC 4475 §3 (what the torture tests ask of each element).
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

from .errors import ParseError, RemoteProtocolError
from .fields import MAGIC_COOKIE, parse_media_type
from .headers import long_name
from .message import Request, Response
from .uri import SipUri, TelUri

__all__ = ["DEFAULT_METHODS", "Rejection", "check_request", "check_response"]

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

# Headers that must appear exactly once in every request (§8.1.1); Max-Forwards at most once.
_SINGLE = ("call-id", "from", "to", "cseq")


class Rejection(RemoteProtocolError):
    """Why a request is refused: answer ``status_hint`` with ``headers`` added."""

    def __init__(
        self, msg: str, *, status_hint: int = 400, headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        super().__init__(msg, status_hint=status_hint)
        self.headers: tuple[tuple[str, str], ...] = tuple(headers)

    @property
    def status_code(self) -> int:
        """The status to answer with (same as ``status_hint``)."""
        return self.status_hint


def check_request(
    request: Request,
    *,
    role: Role = "uas",
    supported_methods: Iterable[str] = DEFAULT_METHODS,
    supported_extensions: Iterable[str] = (),
    accepted_types: Iterable[str] | None = None,
) -> Rejection | None:
    """The first reason to refuse ``request`` (a Rejection), or None if it is acceptable.

    ``role`` is the element receiving it. ``accepted_types`` (media types this UAS can take,
    ``None`` = any) also serves as what it can answer with for the Accept check (406).
    """
    try:
        return _check(
            request, role, frozenset(supported_methods), supported_extensions, accepted_types
        )
    except ParseError as exc:
        return Rejection(str(exc), status_hint=exc.status_hint or 400)


def _check(
    req: Request,
    role: Role,
    methods: frozenset[str],
    extensions: Iterable[str],
    accepted: Iterable[str] | None,
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
    values = h._values  # canonical names: no spelling lookups
    for name in _SINGLE:
        n = len(values(name))
        if n != 1:
            what = "missing" if n == 0 else "duplicated"
            return Rejection(f"{what} {long_name(name)} header")
    if len(values("max-forwards")) > 1:
        return Rejection("duplicated Max-Forwards header")
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
    for addr in (req.from_, req.to, *req.contacts, *req.routes, *req.record_routes):
        _ = addr.uri
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
    if role == "uas" and accepted is not None:
        return _content(req, list(accepted))
    return None


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


def _content(req: Request, accepted: list[str]) -> Rejection | None:
    ctype = req.content_type
    if req.body and ctype is not None and not any(ctype.matches(a) for a in accepted):
        return Rejection(
            f"unsupported media type {ctype.mime}",
            status_hint=415,
            headers=[("Accept", ", ".join(accepted))],
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
    try:
        if not 100 <= response.status_code <= 699:
            return False
        h = response.headers
        if any(h.count(n) != 1 for n in _SINGLE):
            return False
        vias = response.vias
        _ = (response.call_id, response.cseq, response.from_, response.to)
    except ParseError:
        return False
    if not vias or (role == "uac" and len(vias) > 1):
        return False
    return all(v.host != "255.255.255.255" for v in vias)
