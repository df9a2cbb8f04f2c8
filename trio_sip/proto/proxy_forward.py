# Proxy request forwarding, sans-I/O: RFC 3261 §16.6 steps 1-7 (copy, Request-URI,
# Max-Forwards, Record-Route, the strict-route fix-up, the next hop) and the branch of step 8
# (stateful) and §16.11 (stateless). Part of the proxy core whose theory of operation is in
# ``proxy.py`` (the public face).
"""Proxy forwarding: forward_request, our Record-Route value, branch parameters."""

from __future__ import annotations

import hashlib

import attrs

from .fields import MAGIC_COOKIE
from .message import Request
from .proxy_request import _routes, _sent_by, _set_routes, loop_hash
from .uri import NameAddress, SipUri, Uri, parse_name_addr

__all__ = [
    "DIALOG_CREATING",
    "Forwarded",
    "forward_request",
    "proxy_branch",
    "record_route_value",
    "stateless_branch",
]

#: Requests that may create a dialog, so a Record-Route matters (§12.1, RFC 6665, RFC 3515).
DIALOG_CREATING = frozenset({"INVITE", "SUBSCRIBE", "REFER", "NOTIFY"})


@attrs.frozen(slots=True)
class Forwarded:
    """A request ready for §16.6 step 8 (the Via), and where it goes (step 7)."""

    request: Request
    next_hop: Uri


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
