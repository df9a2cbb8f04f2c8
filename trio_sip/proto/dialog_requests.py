"""In-dialog requests (RFC 3261 §12.2.1.1, §9.1, §13.2.2.4, §14, §15) and the 2xx/ACK machines.

Theory of operation
-------------------
Builders take a :class:`~trio_sip.proto.dialog.Dialog` and the top ``via`` (the shell knows
the transport and sent-by; it passes ``"SIP/2.0/UDP host:port;branch=z9hG4bK..."``) and return a
:class:`~trio_sip.proto.message.Request` built with the message layer.

* §12.2.1.1: "The URI in the To field of the request MUST be set to the remote URI from the
  dialog state. The tag in the To header field ... to the remote tag ... The From URI ... to
  the local URI ... the local tag"; "The Call-ID of the request MUST be set to the Call-ID of
  the dialog"; "the CSeq header field value MUST be strictly greater than the previous one
  (local sequence number is) incremented by one" (ACK and CANCEL reuse a number).
* Routing, same section: "If the route set is empty, the UAC MUST place the remote target URI
  into the Request-URI." "If the route set is not empty, and the first URI in the route set
  contains the lr parameter ..., the UAC MUST place the remote target URI into the Request-URI
  and MUST include a Route header field containing the route set values in order". Otherwise
  (strict routing) "the UAC MUST place the first URI from the route set into the Request-URI,
  stripping any parameters that are not allowed in a Request-URI. The UAC MUST add a Route
  header field containing the remainder of the route set values in order ... then place the
  remote target URI into the Route header field as the last value."
* Target refresh requests carry our Contact (§12.2.1.1 "A UAC SHOULD include a Contact").
* §13.2.2.4 ACK for a 2xx: built "in the same way as for any request sent within a dialog ...
  with the exception of the CSeq and the header fields related to authentication. The sequence
  number of the CSeq header field MUST be the same as the INVITE being acknowledged, but the
  CSeq method MUST be ACK. The ACK MUST contain the same credentials as the INVITE."
* §9.1 CANCEL: "The Request-URI, Call-ID, To, the numeric part of CSeq, and From header fields
  in the CANCEL request MUST be identical to those in the request being cancelled, including
  tags. A CANCEL constructed by a client MUST have only a single Via header field value
  matching the top Via value in the request being cancelled." "If the request being cancelled
  contains a Route header field, the CANCEL request MUST include that Route header field's
  values." The method of the CSeq is CANCEL. Credentials are copied too (§22.1).
* §14.1: "a UAC MUST NOT initiate a new INVITE transaction within a dialog while another INVITE
  transaction is in progress in either direction."

Machines (Contract 2 shape, in :mod:`.ack_path`, re-exported here): :class:`AckWait`
retransmits our 2xx at T1, 2*T1, ... capped at T2 until the ACK arrives, and gives up after 64*T1
with :class:`AckTimeout` (the caller then sends a BYE, §13.3.1.4). :class:`AckResender` keeps
the ACK for 64*T1 (RFC 6026 Timer M) and sends it again for each retransmitted 2xx. Under a
short ``sip_transaction_timeout`` both cycle through the configured proxies (seed 002).
"""

from __future__ import annotations

from collections.abc import Iterable

from .ack_path import ACK_RESENDER_TRANSITIONS as ACK_RESENDER_TRANSITIONS
from .ack_path import ACK_WAIT_TRANSITIONS as ACK_WAIT_TRANSITIONS
from .ack_path import AckResender as AckResender
from .ack_path import AckResenderState as AckResenderState
from .ack_path import AckTimeout as AckTimeout
from .ack_path import AckTrigger as AckTrigger
from .ack_path import AckWait as AckWait
from .ack_path import AckWaitState as AckWaitState
from .ack_path import NextDestination as NextDestination
from .dialog import TARGET_REFRESH_METHODS, Dialog, DialogState
from .errors import LocalProtocolError
from .message import Request
from .sdp import SessionDescription
from .uri import NameAddress, SipUri, Uri, parse_uri

__all__ = [
    "ACK_RESENDER_TRANSITIONS",
    "ACK_WAIT_TRANSITIONS",
    "AckResender",
    "AckResenderState",
    "AckTimeout",
    "AckTrigger",
    "AckWait",
    "AckWaitState",
    "NextDestination",
    "build_ack",
    "build_bye",
    "build_cancel",
    "build_info",
    "build_message",
    "build_reinvite",
    "build_request",
    "request_uri_and_routes",
]

MAX_FORWARDS = "70"  # §8.1.1.6: "SHOULD be 70"
_AUTH = ("Authorization", "Proxy-Authorization")
Headers = Iterable[tuple[str, str]]


def request_uri_and_routes(dialog: Dialog) -> tuple[Uri, tuple[NameAddress, ...]]:
    """The Request-URI and the Route values of the dialog's next request (§12.2.1.1)."""
    uri, routes = _uri_and_routes(dialog)
    return (parse_uri(uri) if isinstance(uri, str) else uri), routes


def _uri_and_routes(dialog: Dialog) -> tuple[Uri | str, tuple[NameAddress, ...]]:
    # The remote target as the dialog keeps it: a URI's text is not parsed to be written again.
    routes = dialog.route_set
    target = dialog._target
    if not routes or "lr" in routes[0].uri.params:
        return target, routes
    first = routes[0].uri
    if isinstance(first, SipUri):  # strip what a Request-URI may not carry (§19.1.1 table)
        first = first.evolve(params=first.params.without("method"), headers=())
    return first, (*routes[1:], NameAddress(target))


def build_request(
    dialog: Dialog,
    method: str,
    *,
    via: str,
    headers: Headers = (),
    body: bytes = b"",
    content_type: str | None = None,
    cseq: int | None = None,
) -> Request:
    """A request within ``dialog`` (§12.2.1.1). ``cseq`` None takes the next local number."""
    seq = dialog.next_local_seq() if cseq is None else cseq
    uri, routes = _uri_and_routes(dialog)
    pairs = [
        ("Via", via),
        ("Max-Forwards", MAX_FORWARDS),
        ("To", str(dialog.remote_uri)),
        ("From", str(dialog.local_uri)),
        ("Call-ID", dialog.id.call_id),
        ("CSeq", f"{seq} {method}"),
        *(("Route", str(r)) for r in routes),
    ]
    if method in TARGET_REFRESH_METHODS and dialog.local_contact is not None:
        pairs.append(("Contact", str(dialog.local_contact)))
    if content_type is not None:
        pairs.append(("Content-Type", content_type))
    pairs.extend(headers)
    return Request(method, uri, pairs, body)


def build_ack(
    dialog: Dialog,
    invite: Request,
    *,
    via: str,
    body: bytes = b"",
    content_type: str | None = None,
) -> Request:
    """The ACK for a 2xx to ``invite`` (§13.2.2.4): the INVITE's CSeq number, its credentials,
    a new branch in ``via``; the local sequence number does not move."""
    auth = [(n, v) for n in _AUTH for v in invite.headers.get_all(n)]
    return build_request(
        dialog,
        "ACK",
        via=via,
        headers=auth,
        body=body,
        content_type=content_type,
        cseq=invite.cseq.seq,
    )


def build_bye(dialog: Dialog, *, via: str, headers: Headers = ()) -> Request:
    """A BYE (§15.1.1) with the next CSeq; the dialog ends when it is answered or sent again."""
    return build_request(dialog, "BYE", via=via, headers=headers)


def build_reinvite(
    dialog: Dialog,
    *,
    via: str,
    sdp: SessionDescription | bytes | None,
    headers: Headers = (),
) -> Request:
    """A re-INVITE (§14.1), e.g. hold / retrieve with ``offer.hold()`` / ``offer.retrieve()``.

    Raises LocalProtocolError while another INVITE is in progress in either direction; marks
    the dialog's re-INVITE as pending until :meth:`Dialog.receive_response` sees the final
    response.
    """
    if dialog.reinvite_pending or dialog.incoming_invite_pending:
        raise LocalProtocolError("an INVITE transaction is already in progress in this dialog")
    if dialog.state is DialogState.TERMINATED:
        raise LocalProtocolError("the dialog is terminated")
    body = b"" if sdp is None else bytes(sdp)
    request = build_request(
        dialog,
        "INVITE",
        via=via,
        headers=headers,
        body=body,
        content_type="application/sdp" if body else None,
    )
    dialog.reinvite_pending = True
    return request


def build_info(
    dialog: Dialog,
    *,
    via: str,
    body: bytes = b"",
    content_type: str | None = None,
    headers: Headers = (),
) -> Request:
    """An INFO (RFC 6086); pass ``Info-Package`` in ``headers`` when one is used."""
    return build_request(
        dialog, "INFO", via=via, headers=headers, body=body, content_type=content_type
    )


def build_message(
    dialog: Dialog,
    *,
    via: str,
    body: bytes,
    content_type: str = "text/plain;charset=UTF-8",
    headers: Headers = (),
) -> Request:
    """An in-dialog MESSAGE (RFC 3428)."""
    return build_request(
        dialog, "MESSAGE", via=via, headers=headers, body=body, content_type=content_type
    )


def build_cancel(invite: Request) -> Request:
    """The CANCEL for our ``invite`` (§9.1): same Request-URI, Call-ID, From, To, CSeq number,
    only the top Via, the same Route values and credentials. Works for any pending request."""
    src = invite.headers
    pairs = [
        ("Via", src.get_list("Via")[0]),
        ("Max-Forwards", MAX_FORWARDS),
        ("To", src["To"]),
        ("From", src["From"]),
        ("Call-ID", invite.call_id),
        ("CSeq", f"{invite.cseq.seq} CANCEL"),
        *(("Route", v) for v in src.get_all("Route")),
        *((n, v) for n in _AUTH for v in src.get_all(n)),
    ]
    return Request("CANCEL", invite.uri_text, pairs)
