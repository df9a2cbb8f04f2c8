# What a site does with a request, shared by the stateful and the stateless role: RFC 3261
# §10.3 (REGISTER for our domain goes to the registrar), §16.3 (validation, loops, 483/482),
# §16.4 (Route preprocessing: every leading Route naming us consumed in one pass), §22.3 and
# proto/proxy_access.py (who may go where: 403, or 407 until Proxy-Authorization proves a
# user of ours), §16.5 (targets: at most ``Limits.max_forks`` of them, highest q first, and
# never ourselves).
#
# Theory of operation: ``decide`` is synchronous and returns a ``Respond`` (answer with it;
# an ACK is never answered), None (the registrar's) or the preprocessed request with its
# targets. The source address comes from the flow the request arrived on; it selects trusted
# peers and is charged for failed authentications. A request whose next hop is this site
# itself (an address we listen on, our domain on one of our ports, a peer entry pointing at
# us) is answered 482 at once: sent, it would come back here to be processed again, once per
# hop until Max-Forwards runs out (§16.3 step 4 names the loop; §16.6 would forward it).
"""decide(): registrar, validation, Route preprocessing, access, targets, loops."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs
import trio

from trio_sip.location import StoreUnavailable
from trio_sip.proto.auth import parse_credentials
from trio_sip.proto.errors import ParseError
from trio_sip.proto.message import Request
from trio_sip.proto.proxy import (
    ProxyIdentity,
    Respond,
    determine_targets,
    own_route,
    preprocess_routes,
    route_token_ok,
    validate_request,
)
from trio_sip.proto.proxy_access import Access
from trio_sip.proto.target import default_port
from trio_sip.proto.uri import SipUri, Uri, parse_name_addr
from trio_sip.proto.validate import DEFAULT_METHODS

if TYPE_CHECKING:
    from ._site import Decision, ProxySite

__all__ = ["decide", "decide_async", "is_self"]

logger = logging.getLogger("trio_sip.proxy")


def decide(site: ProxySite, request: Request, source: str | None) -> Decision:
    """Respond, None (a REGISTER for the registrar) or (request, targets); see above. The
    targets come from the site's LocationService (this process)."""
    prepared = _prepare(site, request, source)
    if not isinstance(prepared, _Prepared):
        return prepared
    return _targets(site, prepared, site._lookup)


async def decide_async(site: ProxySite, request: Request, source: str | None) -> Decision:
    """:func:`decide` with the targets from the site's location store; while the store is
    unreachable a request that needs it gets 503 with Retry-After (§21.5.4)."""
    prepared = _prepare(site, request, source)
    if not isinstance(prepared, _Prepared):
        return prepared
    aor = _local_aor(prepared.request, site.identity)
    contacts: list[str] = []
    if aor is not None:
        try:
            contacts = await site.contacts(aor)
        except StoreUnavailable as exc:
            logger.info("%s for %s: location store unavailable: %s", request.method, aor, exc)
            retry = str(site.limits.retry_after)
            return Respond(503, (("Retry-After", retry),), "Service Unavailable (location store)")
    return _targets(site, prepared, lambda _aor: contacts)


@attrs.frozen(slots=True)
class _Prepared:
    """A request that passed validation, Route preprocessing and the access policy."""

    request: Request
    routes: list[str]


def _prepare(site: ProxySite, request: Request, source: str | None) -> Decision | _Prepared:
    me = site.identity
    try:
        uri = request.uri
        if (
            request.method == "REGISTER"
            and site.registrar is not None
            and isinstance(uri, SipUri)
            and me.responsible_for_uri(uri)
            and not request.headers.get_list("Route")[1:]
        ):
            return None
        verdict = validate_request(request, me)
        if verdict is not None:
            return verdict
        ours = own_route(request, me)
        pre = preprocess_routes(request, me)
        uri = pre.uri
        routes = pre.headers.get_list("Route")
        if (
            isinstance(uri, SipUri)
            and uri.user is None
            and me.responsible_for_uri(uri)
            and not routes
        ):
            if request.method == "OPTIONS":
                return Respond(200, (("Allow", ", ".join(sorted(DEFAULT_METHODS))),))
            return Respond(404)
        next_hop = parse_name_addr(routes[0]).uri if routes else uri
        if routes and is_self(site, next_hop):
            return Respond(482)
        checked = _access(
            site, request, pre, ours=ours, next_hop=next_hop, routed=bool(routes), source=source
        )
    except ParseError as exc:
        return Respond(400, reason=f"Bad Request ({exc})")
    if isinstance(checked, Respond):
        return checked
    return _Prepared(checked, routes)


def _local_aor(request: Request, me: ProxyIdentity) -> str | None:
    """The AOR whose bindings ``determine_targets`` will ask for (§16.5: a Request-URI in our
    domain, no Route left, no maddr), else None."""
    uri = request.uri
    if request.headers.get_list("Route") or not isinstance(uri, SipUri):
        return None
    if "maddr" in uri.params or not me.responsible_for_uri(uri):
        return None
    return me.aor(uri)


def _targets(site: ProxySite, prepared: _Prepared, lookup: Callable[[str], list[str]]) -> Decision:
    pre, routes = prepared.request, prepared.routes
    try:
        targets = determine_targets(pre, site.identity, lookup)
    except ParseError as exc:
        return Respond(400, reason=f"Bad Request ({exc})")
    if isinstance(targets, Respond):
        return targets
    if not routes:
        targets = [t for t in targets if not is_self(site, t)]
        if not targets:
            return Respond(482)
    return pre, targets[: site.limits.max_forks]


def _access(
    site: ProxySite,
    request: Request,
    pre: Request,
    *,
    ours: Uri | None,
    next_hop: Uri,
    routed: bool,
    source: str | None,
) -> Request | Respond:
    """The access policy (proto/proxy_access.py): ``pre`` (our credentials consumed) or the
    answer (403, 407; 481 to a CANCEL that would need credentials it does not carry)."""
    me, uri = site.identity, pre.uri
    in_dialog = (
        request.to.tag is not None
        and ours is not None
        and route_token_ok(ours, request, site.route_secret)
    )
    local = (
        not routed
        and isinstance(uri, SipUri)
        and "maddr" not in uri.params
        and me.responsible_for_uri(uri)
    )
    peer = isinstance(next_hop, SipUri) and next_hop.host.lower() in site.peers
    caller = request.from_.uri
    local_from = isinstance(caller, SipUri) and me.responsible_for(caller.host)
    access = site.policy.decide(
        source=source,
        in_dialog=in_dialog,
        local_destination=local,
        peer_destination=peer,
        local_from=local_from,
        authenticating=site.auth is not None,
    )
    if access is Access.FORBID:
        site.counters["refused"] += 1
        return Respond(403, reason="Forbidden (relaying denied)")
    if access is Access.ALLOW or site.auth is None:
        return pre
    charged = site.auth_source(request, source) if source is not None else None
    now = trio.current_time() + site.auth_offset
    result = site.auth.check(request, now, proxy=True, source=charged)
    if not result.ok:
        site.counters["challenged"] += 1
        if request.method == "CANCEL":  # §22.1: it cannot be challenged
            return Respond(481)
        return Respond(result.status, result.headers)
    if local_from and isinstance(caller, SipUri) and caller.user != result.username:
        site.counters["refused"] += 1
        return Respond(403, reason="Forbidden (From is another user)")
    return _consume(pre, site.auth.realm)


def _consume(request: Request, realm: str) -> Request:
    """``request`` without the Proxy-Authorization values for ``realm``: they were for us
    (a value "MUST NOT be consumed by any proxy whose realm does not match", §22.3)."""
    values = request.headers.get_all("Proxy-Authorization")
    if not values:
        return request
    headers = request.headers.remove("Proxy-Authorization")
    for value in values:
        if parse_credentials(value).realm != realm:
            headers = headers.append("Proxy-Authorization", value)
    return request.evolve(headers=headers)


def is_self(site: ProxySite, uri: Uri) -> bool:
    """True if sending to ``uri`` would send to this site (see the module comment)."""
    if not isinstance(uri, SipUri):
        return False
    transport = (uri.transport or ("TLS" if uri.secure else "UDP")).upper()
    host = (uri.params.get("maddr") or uri.host).strip("[]").lower()
    port = uri.port or default_port(transport)
    addresses = site.identity.addresses
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return (host, port) in addresses
    peer = site.peers.get(host)
    if peer is not None:
        return (peer.host.lower(), peer.port) in addresses
    if site.identity.responsible_for(host):
        return uri.port is None or any(port == p for _, p in addresses)
    return False
