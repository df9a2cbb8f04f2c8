# Timeout events at the endpoint level: the user agent's AgentTimeout plus the connection.
#
# Theory of operation: ``open_endpoint`` opens its UserAgent with an ``on_timeout`` hook; each
# AgentTimeout (a transaction timeout the stack's role hears, with its Call) is given the id of
# the connection it belongs to and published to ``open_endpoint(on_timeout=...)`` and the
# ``endpoint.timeouts()`` streams. The connection is, in order: the one of the endpoint call
# whose SIP call it is; the one whose registration uses the request's Call-ID (a REGISTER);
# for a received request, the one ``ConnectionSet.match`` finds (the Request-URI's ``line``,
# else the user and the site it came from); for a sent one, the connection whose user sent it
# (From) to its own site (the transaction's target host); else None.
"""EndpointTimeout: a transaction timeout of the endpoint, with its connection."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from trio_sip.proto.message import Request
from trio_sip.proto.transaction import Side, Timeout
from trio_sip.proto.uri import SipUri
from trio_sip.stack import ClientTransaction, TimeoutEvent
from trio_sip.ua import AgentTimeout

if TYPE_CHECKING:
    from .calls import EndpointCall
    from .endpoint import Endpoint

__all__ = ["EndpointTimeout", "locate"]


@attrs.frozen(slots=True, eq=False)
class EndpointTimeout:
    """A transaction timeout of the endpoint: ``connection_id`` (None when no connection can
    be told), the endpoint ``call`` (an :class:`EndpointCall`, or None), and the user agent's
    record ``timeout`` (an :class:`~trio_sip.ua.AgentTimeout`: the stack's ``event``)."""

    connection_id: str | None
    timeout: AgentTimeout
    call: EndpointCall | None = None

    @property
    def event(self) -> TimeoutEvent:
        return self.timeout.event

    @property
    def kind(self) -> Timeout:
        """RETRANSMIT or TRANSACTION."""
        return self.timeout.event.timeout

    @property
    def timer(self) -> str:
        return self.timeout.event.timer

    @property
    def method(self) -> str:
        return self.timeout.event.method

    @property
    def session_id(self) -> str | None:
        return self.call.session_id if self.call is not None else None


def locate(endpoint: Endpoint, timeout: AgentTimeout) -> EndpointTimeout:
    """``timeout`` with its connection and endpoint call (see the module comment)."""
    if timeout.call is not None:
        for ecall in endpoint._live:
            if ecall.call is timeout.call:
                return EndpointTimeout(ecall.connection_id, timeout, ecall)
    event = timeout.event
    request: Request = event.request
    connections = list(endpoint._set)
    for conn in connections:
        registration = conn.registration
        if registration is not None and registration.machine.call_id == request.call_id:
            return EndpointTimeout(conn.id, timeout)
    if event.side is Side.SERVER:
        found = endpoint._set.match(request)
        return EndpointTimeout(found.id if found is not None else None, timeout)
    sender = request.from_.uri
    user = sender.user if isinstance(sender, SipUri) else None
    tx = event.transaction
    host = tx.target.host.lower() if isinstance(tx, ClientTransaction) else ""
    for conn in connections:
        if conn.user == user and host in conn.site_hosts():
            return EndpointTimeout(conn.id, timeout)
    return EndpointTimeout(None, timeout)
