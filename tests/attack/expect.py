"""What answer a fuzzed request deserves: the sampled 4xx check of the wire fuzzer.

:func:`deserved_status` judges one datagram with our own parser and validator, independently of
the target: a request that they refuse deserves an error response (RFC 3261 §8.2, §16.3; a
request the stack cannot parse gets a 400, §18.3 and §21.4.1) -- when one can reach the sender.
It does not claim an answer when

* the start line is not a request line (``METHOD URI SIP/x.y``): it may not be SIP at all;
* the request is an ACK (never answered, §17.2.3);
* a response cannot be built from it (a Via, From, To, Call-ID or CSeq missing or not copyable,
  folded lines unfolded: ``make_response``, or ``error_response_untrusted`` -- the transport
  layer's stateless 400 -- for octets the parser refuses);
* it is an OPTIONS or REGISTER with Max-Forwards 0 to a proxy/registrar (it may answer it
  itself, §16.3 item 3);
* its branch was sent before (by the caller's account): it may be a retransmission, which
  its transaction answers with whatever it answered first (§17.2.3);
* the response would go elsewhere than the sender (§18.2.2): a top Via that is not UDP, a
  sent-by port that is not the sender's without ``rport``, or a ``maddr``.

Everything else our parser or validator refuses must get a 4xx (or the status the parser names,
505 or 513): :class:`UdpFuzzer` (tests/attack/fuzzwire.py) sends every ``sample_every``-th
mutated datagram from a socket of its own and waits for that answer.
"""

from __future__ import annotations

import re

from trio_sip.proto.errors import ProtocolError
from trio_sip.proto.message import Request, Response, make_response
from trio_sip.proto.parse import parse_message
from trio_sip.proto.validate import Role, check_request
from trio_sip.transports.stream import error_response_untrusted

__all__ = ["answer_is_right", "deserved_status"]

_REQUEST_LINE = re.compile(rb"^[A-Za-z0-9.!%*_+`'~-]+ \S+ SIP/\d+\.\d+$")


def deserved_status(data: bytes, role: Role, port: int) -> tuple[int, str, str] | None:
    """The status ``data`` (sent over UDP from ``port``) deserves, its Call-ID and its top
    Via's branch, or None when no answer can be claimed (see the module docstring)."""
    first = data.lstrip(b"\r\n").split(b"\r\n", 1)[0]
    if not _REQUEST_LINE.match(first) or first.startswith(b"ACK "):
        return None
    try:
        message = parse_message(data)
    except ProtocolError as exc:  # the transport layer's stateless answer, from the octets
        status = exc.status_hint or 400
        raw = error_response_untrusted(data, status)
    else:
        if not isinstance(message, Request):
            return None
        try:
            rejection = check_request(message, role=role)
            if rejection is None:
                return None
            status = rejection.status_code
        except ProtocolError as exc:  # a header read on demand
            status = exc.status_hint or 400
        if status == 483 and role == "proxy" and message.method in ("OPTIONS", "REGISTER"):
            return None  # §16.3 item 3: the proxy (or its registrar) may answer it itself
        try:  # from the parsed request, folded lines unfolded, as the stack builds it
            raw = bytes(make_response(message, status, to_tag="judge"))
        except ProtocolError:
            return None
    if raw is None:
        return None
    try:
        answer = parse_message(raw)
        assert isinstance(answer, Response)
        via = answer.vias[0]
        params = {k.lower() for k in via.params}
        # Another sent-by host is fine: the answer goes to the source address (``received``).
        if via.transport.upper() != "UDP" or "maddr" in params:
            return None
        if "rport" not in params and (via.port or 5060) != port:
            return None
        return status, answer.call_id, str(via.params.get("branch") or "")
    except (ProtocolError, IndexError, ValueError):
        return None


def answer_is_right(deserved: int, status: int) -> bool:
    """A 4xx, or the very status the parser names (505 Version Not Supported, 513 Message Too
    Large: §21.5.6, §21.5.10)."""
    return 400 <= status < 500 or status == deserved
