# Proxy request decisions, sans-I/O: RFC 3261 §16.3 (request validation, loops), §16.4
# (route information preprocessing) and §16.5 (request targets). Part of the proxy core
# whose theory of operation is in ``proxy.py`` (the public face); forwarding (§16.6) is in
# ``proxy_forward.py``, the response context (§16.7) in ``proxy_response.py``.
"""Proxy request decisions: who we are, validation and loops, Route preprocessing, targets."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import attrs

from .errors import ParseError
from .fields import MAGIC_COOKIE, Via
from .location import canonical_aor
from .message import Request
from .uri import SipUri, TelUri, Uri, parse_name_addr
from .validate import DEFAULT_METHODS, check_request

__all__ = [
    "Lookup",
    "ProxyIdentity",
    "Respond",
    "determine_targets",
    "find_loop",
    "is_own_uri",
    "is_own_via",
    "loop_hash",
    "own_route",
    "preprocess_routes",
    "validate_request",
]


@attrs.frozen(slots=True)
class ProxyIdentity:
    """Who we are: ``domain`` (primary), other ``aliases`` (our IPs, other names), the
    ``addresses`` we listen on, and the Proxy-Require ``extensions`` we support."""

    domain: str
    addresses: frozenset[tuple[str, int]] = frozenset()
    aliases: frozenset[str] = frozenset()
    extensions: tuple[str, ...] = ()

    def responsible_for(self, host: str) -> bool:
        h = host.lower().strip("[]")
        return (
            h == self.domain.lower() or h in self.aliases or any(h == a for a, _ in self.addresses)
        )

    def responsible_for_uri(self, uri: SipUri) -> bool:
        """True if ``uri``'s host part names us. A name (``domain``, an alias) is ours on any
        port; one of our IP addresses with an explicit port that we do not listen on names
        another element on the same host (a UA beside us on 127.0.0.1), as Kamailio's
        ``myself`` check has it."""
        h = uri.host.lower().strip("[]")
        if h == self.domain.lower() or h in self.aliases:
            return True
        ports = [p for a, p in self.addresses if a == h]
        return bool(ports) and (uri.port is None or uri.port in ports)

    def aor(self, uri: Uri) -> str:
        """The canonical AOR of ``uri``, our aliases mapped to ``domain``."""
        if isinstance(uri, SipUri) and self.responsible_for_uri(uri):
            return canonical_aor(uri, self.domain)
        return canonical_aor(uri)


@attrs.frozen(slots=True)
class Respond:
    """Answer the request ourselves with ``status`` (and ``headers``)."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    reason: str | None = None


# -- §16.3 -----------------------------------------------------------------------------------


def validate_request(request: Request, me: ProxyIdentity) -> Respond | None:
    """The §16.3 checks; a Respond to answer with, or None to go on (see the module comment)."""
    rejection = check_request(request, role="proxy", supported_extensions=me.extensions)
    if rejection is not None and rejection.status_code == 483:
        if request.method == "OPTIONS":
            allow = ", ".join(sorted(DEFAULT_METHODS))
            return Respond(200, (("Allow", allow), ("Accept", "application/sdp")))
        return Respond(483)
    if rejection is not None and rejection.status_code != 420:
        return Respond(rejection.status_code, rejection.headers)
    if find_loop(request, me):
        return Respond(482)
    if rejection is not None:
        return Respond(rejection.status_code, rejection.headers)
    return None


def _sent_by(via: Via) -> str:
    host, port = via.sent_by
    return f"{via.transport} {host.lower()}:{port or ''}"


def loop_hash(request: Request, top_via: Via | None) -> str:
    """16 hex digits over what affects the request's processing (not the method).

    An ACK's To tag is left out: the ACK for a non-2xx carries the tag the UAS put in its
    response, which the INVITE did not have, yet it "MUST have the same branch value as the
    corresponding request" (§16.6 step 8) so a stateless proxy's ACK matches the downstream
    INVITE transaction (a 2xx's ACK is a transaction of its own: nothing to match)."""
    parts = [
        request.uri_text,
        (request.to.tag or "") if request.method != "ACK" else "",
        request.from_.tag or "",
        request.call_id,
        str(request.cseq.seq),
        _sent_by(top_via) if top_via is not None else "",
        (top_via.branch or "") if top_via is not None else "",
        *request.headers.get_list("Route"),
    ]
    text = "\n".join(parts).encode("utf-8", "surrogateescape")  # octets as received
    return hashlib.md5(text, usedforsecurity=False).hexdigest()[:16]


def is_own_via(via: Via, me: ProxyIdentity) -> bool:
    host, port = via.sent_by
    default = 5061 if via.transport.upper() == "TLS" else 5060
    return (host.lower().strip("[]"), port or default) in me.addresses


def find_loop(request: Request, me: ProxyIdentity) -> bool:
    """True if ``request`` looped back to us (§16.3 step 4); a spiral is not a loop."""
    vias = request.vias
    for i in range(len(vias) - 1):
        via = vias[i]
        branch = via.branch or ""
        if not branch.startswith(MAGIC_COOKIE) or "." not in branch or not is_own_via(via, me):
            continue
        if loop_hash(request, vias[i + 1]) == branch.rsplit(".", 1)[1]:
            return True
    return False


# -- §16.4 -----------------------------------------------------------------------------------


def is_own_uri(uri: Uri, me: ProxyIdentity) -> bool:
    """True if ``uri`` names this proxy (a Route or Record-Route value of ours): no user part,
    and our address (or one of our domains on one of our ports)."""
    if not isinstance(uri, SipUri) or uri.user is not None:
        return False
    host = uri.host.lower().strip("[]")
    port = uri.port or (5061 if uri.secure or (uri.transport or "").lower() == "tls" else 5060)
    if (host, port) in me.addresses:
        return True
    ports = {p for _, p in me.addresses}
    return me.responsible_for(host) and (uri.port is None or uri.port in ports)


def _routes(request: Request) -> list[str]:
    return request.headers.get_list("Route")


def _set_routes(request: Request, values: Sequence[str]) -> Request:
    headers = request.headers
    headers = headers.replace("Route", ", ".join(values)) if values else headers.remove("Route")
    return request.evolve(headers=headers)


def own_route(request: Request, me: ProxyIdentity) -> Uri | None:
    """The URI that routed ``request`` to us, if any: our Record-Route URI that a strict
    router put in the Request-URI, else the first Route value when it names us. Its ``dlg``
    parameter tells an in-dialog request of a dialog we record-routed
    (``proxy_forward.route_token_ok``)."""
    uri = request.uri
    routes = _routes(request)
    if isinstance(uri, SipUri) and "lr" in uri.params and is_own_uri(uri, me) and routes:
        return uri
    if routes:
        first = parse_name_addr(routes[0]).uri
        if is_own_uri(first, me):
            return first
    return None


def preprocess_routes(request: Request, me: ProxyIdentity) -> Request:
    """§16.4: strict-router fix-up, our maddr stripped, our own top Route values removed.

    "If the first value in the Route header field indicates this proxy, the proxy MUST remove
    that value from the request." Every leading value naming us goes in this one pass: sent
    on, the request would come back to us to lose the next one, so a Route set pointing at us
    250 times would cost 250 hops (each a parse, a transaction, a copy). Here it costs one
    pass over the values, O(message)."""
    uri = request.uri
    routes = _routes(request)
    if isinstance(uri, SipUri) and "lr" in uri.params and is_own_uri(uri, me) and routes:
        # A strict router put our Record-Route URI in the Request-URI: restore the original.
        last = parse_name_addr(routes[-1])
        request = _set_routes(request.evolve(uri=last.uri), routes[:-1])
        uri, routes = request.uri, routes[:-1]
    if isinstance(uri, SipUri):
        maddr = uri.params.get("maddr")
        if maddr is not None and me.responsible_for(maddr):
            params = uri.params.without("maddr").without("transport")
            request = request.evolve(uri=uri.evolve(params=params, port=None))
    ours = 0
    while ours < len(routes) and is_own_uri(parse_name_addr(routes[ours]).uri, me):
        ours += 1
    if ours:
        request = _set_routes(request, routes[ours:])
    return request


# -- §16.5 -----------------------------------------------------------------------------------

Lookup = Callable[[str], Sequence[str] | None]


def determine_targets(request: Request, me: ProxyIdentity, lookup: Lookup) -> list[Uri] | Respond:
    """The target set (§16.5). ``lookup(aor)`` returns the contact URIs of an AOR (``[]`` or
    None: none, answered 480 either way)."""
    uri = request.uri
    if _routes(request):
        return [uri]  # loose routing: the next hop is the Route; the Request-URI is kept
    if not isinstance(uri, SipUri):
        return [uri] if isinstance(uri, TelUri) else Respond(416)
    if "maddr" in uri.params or not me.responsible_for_uri(uri):
        return [uri]
    contacts = lookup(me.aor(uri))
    if not contacts:
        # "If the target set remains empty ... the proxy MUST return an error response, which
        # SHOULD be the 480 (Temporarily Unavailable) response" (§16.5): for an address that
        # never registered too, so that nobody can tell registered users from others.
        return Respond(480)
    targets: list[Uri] = []
    for text in contacts:
        try:
            targets.append(parse_name_addr(f"<{text}>").uri)
        except ParseError:
            continue
    return targets or Respond(480)
