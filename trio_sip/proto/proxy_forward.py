# Proxy request forwarding, sans-I/O: RFC 3261 §16.6 steps 1-7 (copy, Request-URI,
# Max-Forwards, Record-Route, the strict-route fix-up, the next hop) and the branch of step 8
# (stateful) and §16.11 (stateless). Part of the proxy core whose theory of operation is in
# ``proxy.py`` (the public face).
#
# Signed values (a site passes its ``secret``; without one the values are as before):
# * branch: ``z9hG4bK<unique><mac>.<loop>``, ``mac`` = 16 hex digits of HMAC(secret, unique and
#   the received top Via's sent-by and branch). A response arriving with our Via on top is
#   forwarded only when ``branch_belongs``: the Via below ours is the one we forwarded for, so
#   nobody can make us reflect a forged response to a third party (§18.2.2 would send it there).
#   The stateless branch is ``proxy_branch(received, "")``: deterministic, so retransmissions,
#   the CANCEL and the non-2xx ACK get the same branch (§16.11).
# * Record-Route: ``<sip:host:port;lr;dlg=<token>>``, token = 16 hex digits of HMAC(secret,
#   Call-ID and the From tag of the dialog-creating request). A later request that comes back
#   through that Route carries the same Call-ID and that tag as its From tag (the caller's
#   requests) or its To tag (the callee's): ``route_token_ok`` tells an in-dialog request of a
#   dialog we record-routed from a forged one.
"""Proxy forwarding: forward_request, our Record-Route value, branch parameters."""

from __future__ import annotations

import hashlib
import hmac

import attrs

from .fields import MAGIC_COOKIE, Via
from .message import Request, Response
from .proxy_request import _routes, _sent_by, _set_routes, loop_hash
from .uri import NameAddress, SipUri, Uri, parse_name_addr

__all__ = [
    "DIALOG_CREATING",
    "Forwarded",
    "branch_belongs",
    "forward_request",
    "proxy_branch",
    "record_route_value",
    "route_token",
    "route_token_ok",
    "stateless_branch",
]

#: The Record-Route URI parameter carrying our dialog token.
TOKEN_PARAM = "dlg"
_MAC_LEN = 16

#: Requests that may create a dialog, so a Record-Route matters (§12.1, RFC 6665, RFC 3515).
DIALOG_CREATING = frozenset({"INVITE", "SUBSCRIBE", "REFER", "NOTIFY"})


@attrs.frozen(slots=True)
class Forwarded:
    """A request ready for §16.6 step 8 (the Via), and where it goes (step 7)."""

    request: Request
    next_hop: Uri


def _seed(top: Via | None, call_id: str, from_tag: str | None, cseq: int) -> str:
    """What identifies the upstream hop of a request: its top Via's sent-by and branch (and,
    for an RFC 2543 peer without a usable branch, Call-ID, From tag and CSeq number)."""
    seed = f"{_sent_by(top)};{top.branch}" if top is not None else call_id
    if top is None or not top.is_rfc3261:  # RFC 2543 peer: no usable branch
        seed += f";{call_id};{from_tag};{cseq}"
    return seed


def _mac(secret: bytes, text: str) -> str:
    # surrogateescape: a Call-ID or tag with octets that are not UTF-8 (kept so by the
    # parser) is MACed as received (tests/attack: an ACK with one raised UnicodeEncodeError).
    mac = hmac.new(secret, text.encode("utf-8", "surrogateescape"), "sha256")
    return mac.hexdigest()[:_MAC_LEN]


def _same(given: str, ours: str) -> bool:
    """``hmac.compare_digest`` of a value from the wire with ours: as octets, since it refuses
    str with non-ASCII characters (TypeError; found by the wire fuzzer)."""
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), ours.encode())


def _received_seed(received: Request) -> str:
    top = received.vias[0] if received.vias else None
    return _seed(top, received.call_id, received.from_.tag, received.cseq.seq)


def proxy_branch(received: Request, unique: str, *, secret: bytes | None = None) -> str:
    """``z9hG4bK<unique>.<loop>`` for a request forwarded from ``received`` (§16.6 step 8);
    with ``secret``, ``z9hG4bK<unique><mac>.<loop>`` (see the module comment)."""
    top = received.vias[0] if received.vias else None
    if secret is not None:
        unique += _mac(secret, f"{unique}\n{_received_seed(received)}")
    return f"{MAGIC_COOKIE}{unique}.{loop_hash(received, top)}"


def stateless_branch(received: Request, *, secret: bytes | None = None) -> str:
    """§16.11: the same for every retransmission of ``received`` (and for its CANCEL and its
    non-2xx ACK): the unique part hashes the received top Via's sent-by and branch (keyed with
    ``secret`` when given, so a response can be checked with :func:`branch_belongs`)."""
    if secret is not None:
        return proxy_branch(received, "", secret=secret)
    seed = _received_seed(received)
    digest = hashlib.md5(seed.encode("utf-8", "surrogateescape"), usedforsecurity=False)
    unique = digest.hexdigest()[:16]
    return proxy_branch(received, unique)


def branch_belongs(response: Response, secret: bytes) -> bool:
    """True if ``response``'s top Via carries a branch we made with ``secret`` for the hop
    named by the Via below it (the response goes back where its request came from)."""
    vias = response.vias
    if len(vias) < 2:
        return False
    branch = vias[0].branch or ""
    if not branch.startswith(MAGIC_COOKIE) or "." not in branch:
        return False
    head = branch[len(MAGIC_COOKIE) :].rsplit(".", 1)[0]
    if len(head) < _MAC_LEN:
        return False
    unique, mac = head[:-_MAC_LEN], head[-_MAC_LEN:]
    seed = _seed(vias[1], response.call_id, response.from_.tag, response.cseq.seq)
    return _same(mac, _mac(secret, f"{unique}\n{seed}"))


def route_token(secret: bytes, call_id: str, tag: str | None) -> str:
    """Our Record-Route token for the dialog of ``call_id`` created by the party with ``tag``."""
    return _mac(secret, f"rr\n{call_id}\n{tag or ''}")


def route_token_ok(uri: Uri, request: Request, secret: bytes) -> bool:
    """True if ``uri`` (our Route value, or our Record-Route URI in a strict router's
    Request-URI) carries the token of ``request``'s dialog (its From or To tag)."""
    if not isinstance(uri, SipUri):
        return False
    token = uri.params.get(TOKEN_PARAM)
    if not token:
        return False
    call_id = request.call_id
    for tag in (request.from_.tag, request.to.tag):
        if _same(token, route_token(secret, call_id, tag)):
            return True
    return False


def record_route_value(
    host: str, port: int, transport: str = "UDP", *, secure: bool = False, token: str | None = None
) -> str:
    """Our Record-Route value: ``<sip:host:port;lr>`` (``transport=`` for TCP/TLS, ``dlg=``
    with a dialog ``token``, :func:`route_token`)."""
    scheme = "sips" if secure else "sip"
    h = f"[{host}]" if ":" in host else host
    t = "" if transport.upper() == "UDP" else f";transport={transport.lower()}"
    d = f";{TOKEN_PARAM}={token}" if token else ""
    return f"<{scheme}:{h}:{port}{t};lr{d}>"


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
