# Connection statuses, status events and call events of the geo-redundant endpoint
# (docs/endpoint.md, "Geo-redundancy" in docs/architecture.md).
#
# Theory of operation: a connection's status is derived from its registration task's state
# (trio_sip.ua.registration) plus what the endpoint itself decides (disabled, removed, and a
# site marked unavailable because an INVITE through it failed). Every *change* of status is one
# frozen ConnectionEvent, published synchronously to every StatusStream (each an unbounded
# deque read by ``async for``) and to the optional callback. Retries while a site stays down do
# not flip the status back to "registering": the connection stays UNAVAILABLE until a REGISTER
# succeeds, so an application sees one event when the site dies and one when it is back.
#
# Retry timing after a failure (``retry_delay``): min(reg_interval, retry_max, retry_initial *
# 2**(n-1)) seconds after the n-th failure in a row, counted from the failure; 503 Retry-After
# wins when the registrar sends it; reg_interval = 0 means no retry at all (the configuration's
# documented meaning).
"""ConnectionStatus, ConnectionEvent, CallEvent, StatusStream and retry_delay."""

from __future__ import annotations

import enum
from collections.abc import Callable

import attrs

from trio_sip.proto.errors import SipError
from trio_sip.ua.session import SessionEvent

from ..ua.registration import EventStream

__all__ = [
    "CallEvent",
    "ConnectionEvent",
    "ConnectionStatus",
    "StatusCallback",
    "StatusStream",
    "retry_delay",
]


class ConnectionStatus(enum.Enum):
    """Where a connection is (``Connection.status``)."""

    REGISTERING = "registering"  # the first REGISTER (or a refresh after a dead flow) is out
    REGISTERED = "registered"  # the site accepted the binding (or expires = 0: no REGISTER)
    UNAVAILABLE = "unavailable"  # the site failed; the connection keeps retrying
    DISABLED = "disabled"  # not registering (``enabled = false`` or ``disable(id)``)
    REMOVED = "removed"  # ``remove(id)``: gone from ``endpoint.connections``


@attrs.frozen(slots=True)
class ConnectionEvent:
    """``connection_id`` went from ``old`` (None: just added) to ``new`` because of
    ``reason`` ("200 OK", "408 Request Timeout", "403 Forbidden", "transport error: ...",
    "disabled", ...), at trio time ``time``."""

    connection_id: str
    old: ConnectionStatus | None
    new: ConnectionStatus
    reason: str
    time: float

    def __str__(self) -> str:
        old = self.old.value if self.old is not None else "new"
        return f"{self.connection_id}: {old} -> {self.new.value} ({self.reason})"


@attrs.frozen(slots=True)
class CallEvent:
    """A session event of an endpoint call, with the connection it happened on.

    ``event`` is the user agent's record (Progress, Answered, Held, Retrieved, Failover,
    Ended, ...); ``error`` is set when the call ended because its site died (a SipError
    whose message starts with "408 Request Timeout")."""

    connection_id: str
    session_id: str
    event: SessionEvent
    time: float
    error: SipError | None = None


StatusCallback = Callable[[ConnectionEvent], object]


class StatusStream(EventStream[ConnectionEvent]):
    """``async for event in endpoint.status_events()``: each connection's current status first,
    then every ConnectionEvent from the moment the stream was made; it ends when the endpoint
    closes."""

    def __init__(self, maxlen: int = 1024) -> None:
        super().__init__(maxlen)

    def __aiter__(self) -> StatusStream:
        return self


def retry_delay(failures: int, reg_interval: float, initial: float, maximum: float) -> float:
    """Seconds from the ``failures``-th failure in a row to the next REGISTER attempt."""
    return float(min(reg_interval, maximum, initial * 2.0 ** max(failures - 1, 0)))
