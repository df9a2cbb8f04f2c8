# Proxy decisions, sans-I/O: RFC 3261 §16.3 (request validation), §16.4 (route information
# preprocessing), §16.5 (request targets), §16.6 (request forwarding), §16.7 (response
# processing, best response), §16.10 (CANCEL) and §16.11 (stateless proxies).
#
# Theory of operation: every function takes the message and a ProxyIdentity (the domains we
# are responsible for, the (host, port) pairs we listen on, the Proxy-Require extensions we
# support) and returns a value; the shell does the sending.
#
# * validate_request (§16.3), in the RFC's order: "reasonable syntax", URI scheme (416),
#   Max-Forwards ("If the Max-Forwards value is zero, the element MUST NOT forward the request.
#   If the request was for OPTIONS, the element MAY act as the final recipient and respond per
#   Section 11. Otherwise, the element MUST return a 483"), loop detection (482), Proxy-Require
#   (420 with Unsupported).
# * Loops (§16.3 step 4, §16.6 step 8): our branches are ``z9hG4bK<unique>.<loop>``, where
#   <loop> hashes "all information affecting processing of a request": the Request-URI as
#   received, To tag, From tag, Call-ID, CSeq number, the topmost Via (sent-by and branch) and
#   the Route values. "The request method MUST NOT be included", so a CANCEL and the ACK for a
#   non-2xx get the INVITE's branch; Proxy-Require and Proxy-Authorization are left out for the
#   same reason (§9.1 does not make a CANCEL carry them). A request that comes back with one of
#   our Vias is a loop when the hash of the request, with the Via that was topmost when we first
#   saw it (the one below ours), equals that Via's <loop> part; otherwise it spirals.
# * preprocess_routes (§16.4): a Request-URI we put in a Record-Route (a strict router sent it)
#   is replaced by the last Route value; a maddr naming us is stripped with the port and
#   transport; "If the first value in the Route header field indicates this proxy, the proxy
#   MUST remove that value from the request."
# * determine_targets (§16.5): an maddr, or a domain we are not responsible for, makes the
#   Request-URI the only target; otherwise the location service's contacts are the targets;
#   none: 404 for an unknown address-of-record, 480 for a known one with no current binding.
# * forward_request (§16.6 steps 1-7): copy, Request-URI = target, Max-Forwards decremented
#   (70 when absent), Record-Route ``<sip:us;lr>`` for dialog-creating requests, the strict-route
#   fix-up (first Route without ``lr``: "place the Request-URI into the Route header field as
#   the last value ... place the first Route header field value into the Request-URI"), and the
#   next-hop URI (step 7: the first Route, else the Request-URI). The shell adds the Via (step 8)
#   with ``proxy_branch`` (stateful: random unique part) or ``stateless_branch`` (§16.11: "the
#   branch ... must be the same for retransmissions": derived from the received top Via).
# * ResponseContext (§16.7): strips our Via, forwards provisionals other than 100 and every 2xx
#   to an INVITE at once; when every branch has a final response it picks the best: "MUST
#   choose from the 6xx class responses if any exist ... SHOULD choose from the lowest response
#   class ... give preference to ... 401, 407, 415, 420, and 484"; a chosen 401/407 collects
#   every WWW-Authenticate / Proxy-Authenticate of the other 401/407s; "If the only response
#   that was received is a 503, the proxy SHOULD generate a 500". A timed-out branch counts as a
#   408, a transport error as a 503 (§16.8, §16.9). A forwarded final response, a 6xx, and a
#   received CANCEL (§16.10) cancel the pending branches: at once when a provisional arrived,
#   else when one does (§9.1: "MUST wait for the arrival of a provisional response").
"""Proxy decisions: validation, routing, targets, forwarding, best response, branches."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

import attrs

from .errors import ParseError
from .fields import MAGIC_COOKIE, Via
from .location import canonical_aor
from .message import Request, Response, make_response
from .uri import NameAddress, SipUri, TelUri, Uri, parse_name_addr
from .validate import DEFAULT_METHODS, check_request

__all__ = [
    "DIALOG_CREATING",
    "Cancel",
    "Forward",
    "Forwarded",
    "ProxyIdentity",
    "Respond",
    "ResponseContext",
    "determine_targets",
    "find_loop",
    "forward_request",
    "is_own_uri",
    "is_own_via",
    "loop_hash",
    "preprocess_routes",
    "proxy_branch",
    "record_route_value",
    "stateless_branch",
    "strip_own_via",
    "validate_request",
]

#: Requests that may create a dialog, so a Record-Route matters (§12.1, RFC 6665, RFC 3515).
DIALOG_CREATING = frozenset({"INVITE", "SUBSCRIBE", "REFER", "NOTIFY"})
#: §16.7 step 6: responses that let the client resubmit, preferred within the 4xx class.
_PREFERRED = (401, 407, 415, 420, 484)


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


@attrs.frozen(slots=True)
class Forwarded:
    """A request ready for §16.6 step 8 (the Via), and where it goes (step 7)."""

    request: Request
    next_hop: Uri


@attrs.frozen(slots=True)
class Forward:
    """ResponseContext action: send ``response`` upstream (our Via already removed)."""

    response: Response


@attrs.frozen(slots=True)
class Cancel:
    """ResponseContext action: send a CANCEL on branch ``branch`` (§16.10)."""

    branch: str


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
    """16 hex digits over what affects the request's processing (not the method)."""
    parts = [
        request.uri_text,
        request.to.tag or "",
        request.from_.tag or "",
        request.call_id,
        str(request.cseq.seq),
        _sent_by(top_via) if top_via is not None else "",
        (top_via.branch or "") if top_via is not None else "",
        *request.headers.get_list("Route"),
    ]
    return hashlib.md5("\n".join(parts).encode(), usedforsecurity=False).hexdigest()[:16]


def proxy_branch(received: Request, unique: str) -> str:
    """``z9hG4bK<unique>.<loop>`` for a request forwarded from ``received`` (§16.6 step 8)."""
    top = received.vias[0] if received.vias else None
    return f"{MAGIC_COOKIE}{unique}.{loop_hash(received, top)}"


def stateless_branch(received: Request) -> str:
    """§16.11: the same for every retransmission of ``received`` (and for its CANCEL and its
    non-2xx ACK): the unique part hashes the received top Via's sent-by and branch."""
    top = received.vias[0] if received.vias else None
    seed = f"{_sent_by(top)};{top.branch}" if top is not None else received.call_id
    if top is None or not top.is_rfc3261:  # RFC 2543 peer: no usable branch
        seed += f";{received.call_id};{received.from_.tag};{received.cseq.seq}"
    unique = hashlib.md5(seed.encode(), usedforsecurity=False).hexdigest()[:16]
    return proxy_branch(received, unique)


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


def preprocess_routes(request: Request, me: ProxyIdentity) -> Request:
    """§16.4: strict-router fix-up, our maddr stripped, our own top Route removed."""
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
    if routes and is_own_uri(parse_name_addr(routes[0]).uri, me):
        request = _set_routes(request, routes[1:])
    return request


# -- §16.5 -----------------------------------------------------------------------------------

Lookup = Callable[[str], Sequence[str] | None]


def determine_targets(request: Request, me: ProxyIdentity, lookup: Lookup) -> list[Uri] | Respond:
    """The target set (§16.5). ``lookup(aor)`` returns the contact URIs of an AOR, ``[]`` for
    a known AOR without bindings, None for an unknown one."""
    uri = request.uri
    if _routes(request):
        return [uri]  # loose routing: the next hop is the Route; the Request-URI is kept
    if not isinstance(uri, SipUri):
        return [uri] if isinstance(uri, TelUri) else Respond(416)
    if "maddr" in uri.params or not me.responsible_for_uri(uri):
        return [uri]
    contacts = lookup(me.aor(uri))
    if contacts is None:
        return Respond(404)
    if not contacts:
        return Respond(480)
    targets: list[Uri] = []
    for text in contacts:
        try:
            targets.append(parse_name_addr(f"<{text}>").uri)
        except ParseError:
            continue
    return targets or Respond(480)


# -- §16.6 -----------------------------------------------------------------------------------


def record_route_value(
    host: str, port: int, transport: str = "UDP", *, secure: bool = False
) -> str:
    """Our Record-Route value: ``<sip:host:port;lr>`` (``transport=`` for TCP/TLS)."""
    scheme = "sips" if secure else "sip"
    h = f"[{host}]" if ":" in host else host
    t = "" if transport.upper() == "UDP" else f";transport={transport.lower()}"
    return f"<{scheme}:{h}:{port}{t};lr>"


def forward_request(request: Request, target: Uri, *, record_route: str | None = None) -> Forwarded:
    """§16.6 steps 1-7 for one target (the Via is the caller's, step 8).

    ``record_route`` is our Record-Route value; it is added for dialog-creating requests
    outside a dialog (no To tag).
    """
    if isinstance(target, SipUri) and (target.headers or "method" in target.params):
        target = target.evolve(headers=(), params=target.params.without("method"))
    headers = request.headers
    mf = request.max_forwards
    headers = headers.replace("Max-Forwards", str(mf - 1 if mf is not None else 70))
    if record_route and request.method in DIALOG_CREATING and request.to.tag is None:
        headers = headers.prepend("Record-Route", record_route)
    out = request.evolve(uri=target, headers=headers)
    routes = _routes(out)
    if routes:
        first = parse_name_addr(routes[0])
        if isinstance(first.uri, SipUri) and "lr" not in first.uri.params:
            # Step 6: the next hop is a strict router.
            rest = [*routes[1:], str(NameAddress(out.uri_text))]
            out = _set_routes(out.evolve(uri=first.uri), rest)
            return Forwarded(out, out.uri)
        return Forwarded(out, first.uri)
    return Forwarded(out, out.uri)


# -- §16.7 -----------------------------------------------------------------------------------


def strip_own_via(response: Response) -> Response | None:
    """``response`` without its top Via, or None if no Via would remain (it was for us)."""
    if len(response.vias) < 2:
        return None
    return response.evolve(headers=response.headers.remove_first("Via"))


@attrs.define(slots=True)
class _Branch:
    provisional: bool = False
    final: Response | None = None
    cancel_wanted: bool = False
    cancel_sent: bool = False


class ResponseContext:
    """One request's response context (§16.7): branches, their responses, the best one.

    ``request`` is the request as received (its Vias are the upstream path) and ``to_tag``
    the tag of responses we make ourselves (408, 500, ...).
    """

    def __init__(self, request: Request, to_tag: str) -> None:
        self.request = request
        self.to_tag = to_tag
        self.invite = request.method == "INVITE"
        self._branches: dict[str, _Branch] = {}
        #: The final response sent upstream (the first one), if any.
        self.final: Response | None = None
        self._cancelled = False

    @property
    def branches(self) -> list[str]:
        return list(self._branches)

    @property
    def complete(self) -> bool:
        """True once every branch has its final response."""
        return all(b.final is not None for b in self._branches.values())

    def pending(self) -> list[str]:
        return [k for k, b in self._branches.items() if b.final is None]

    def add_branch(self, branch: str) -> None:
        """Register a new client transaction. After a 6xx or a final response went upstream
        no new branch may be created (§16.7 step 5), which raises ValueError."""
        if self.final is not None or self._cancelled:
            raise ValueError("no new branches after a final response or a CANCEL")
        self._branches[branch] = _Branch()

    def make_response(self, status: int) -> Response:
        return make_response(self.request, status, to_tag=self.to_tag)

    def on_response(self, branch: str, response: Response) -> list[Forward | Cancel]:
        """A response arrived on ``branch`` (still carrying our Via)."""
        state = self._branches[branch]
        stripped = strip_own_via(response)
        if stripped is None:
            return []
        code = stripped.status_code
        out: list[Forward | Cancel] = []
        if code < 200:
            state.provisional = True
            if state.cancel_wanted and not state.cancel_sent and state.final is None:
                state.cancel_sent = True
                out.append(Cancel(branch))
            if code != 100 and self.final is None:
                out.append(Forward(stripped))
            return out
        if state.final is not None:
            # A further final on a completed branch: only a 2xx to an INVITE goes on.
            return [Forward(stripped)] if self.invite and code < 300 else []
        state.final = stripped
        if code < 300:
            if self.final is None or self.invite:
                if self.final is None:
                    self.final = stripped
                out.append(Forward(stripped))
                out += self._cancel_pending()
            return out
        if code >= 600:
            out += self._cancel_pending()
        return out + self._maybe_best()

    def on_timeout(self, branch: str) -> list[Forward | Cancel]:
        """The branch's client transaction (or Timer C before a provisional) timed out: 408."""
        return self._synthetic(branch, 408)

    def on_transport_error(self, branch: str) -> list[Forward | Cancel]:
        """The transport failed for the branch (or its target did not resolve): 503 (§16.9)."""
        return self._synthetic(branch, 503)

    def cancel(self) -> list[Forward | Cancel]:
        """A CANCEL matched this context (§16.10): cancel every pending branch."""
        self._cancelled = True
        return list(self._cancel_pending())

    def _synthetic(self, branch: str, status: int) -> list[Forward | Cancel]:
        state = self._branches[branch]
        if state.final is not None:
            return []
        state.final = self.make_response(status)
        return self._maybe_best()

    def _cancel_pending(self) -> list[Cancel]:
        out: list[Cancel] = []
        if not self.invite:
            return out
        for key, state in self._branches.items():
            if state.final is not None or state.cancel_wanted:
                continue
            state.cancel_wanted = True
            if state.provisional:
                state.cancel_sent = True
                out.append(Cancel(key))
        return out

    def _maybe_best(self) -> list[Forward | Cancel]:
        if self.final is not None or not self.complete or not self._branches:
            return []
        self.final = self.best()
        return [Forward(self.final)]

    def best(self) -> Response:
        """The best final response among the branches (§16.7 step 6 and 7)."""
        finals = [b.final for b in self._branches.values() if b.final is not None]
        if not finals:
            return self.make_response(408)
        six = [r for r in finals if r.status_code >= 600]
        if six:
            chosen = six[0]
        else:
            low = min(r.status_code // 100 for r in finals)
            group = [r for r in finals if r.status_code // 100 == low]
            preferred = [r for r in group if r.status_code in _PREFERRED]
            chosen = (preferred or group)[0]
        if chosen.status_code in (401, 407):
            chosen = _aggregate(chosen, finals)
        if chosen.status_code == 503:
            return self.make_response(500)
        return chosen


def _aggregate(chosen: Response, finals: Iterable[Response]) -> Response:
    # §16.7 step 7: "collect any WWW-Authenticate and Proxy-Authenticate header field values
    # from all other 401 and 407 responses ... and add them to this response without
    # modification".
    headers = chosen.headers
    for other in finals:
        if other is chosen or other.status_code not in (401, 407):
            continue
        for name in ("WWW-Authenticate", "Proxy-Authenticate"):
            for value in other.headers.get_all(name):
                headers = headers.append(name, value)
    return chosen.evolve(headers=headers)
