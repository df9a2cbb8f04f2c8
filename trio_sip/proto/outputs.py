"""Inputs and outputs of the timed machines (transactions first of all).

Theory of operation
-------------------
A machine never performs I/O. The shell feeds it *inputs* with ``handle(input, now)`` and
performs the *outputs* it returns, in order (see docs/architecture.md, Contract 2):

Inputs
    :class:`MessageReceived` a matching request or response arrived from the network;
    :class:`SendResponse` the TU (transaction user) answers a server transaction;
    :class:`TransportFailed` the transport could not send (RFC 3261 §17.1.4, §17.2.4);
    :class:`ApplicationRetransmit` the application resends an INVITE itself (opt-in
    ``TimeoutRole.USER_AGENT_APP_RETRANSMIT``, JAIN-SIP's RETRANSMIT timeouts).

Outputs
    :class:`Transmit` send this message on the transaction's flow;
    :class:`Deliver` pass this message up to the TU;
    :class:`RetransmitTimeout` a retransmission timer fired (JAIN-SIP ``Timeout.RETRANSMIT``);
    :class:`TransactionTimeout` the transaction gave up waiting (``Timeout.TRANSACTION``);
    :class:`TransportErrorOccurred` the transport failed; the transaction is over;
    :class:`Terminated` always the last output of a machine, with a :class:`TerminationReason`
    that tells a normal end from a timeout and from a transport error.

All records are frozen and slotted; dispatch on ``type(output)``. Don't subclass them.
"""

from __future__ import annotations

import enum

import attrs

from .message import Request, Response

__all__ = [
    "ApplicationRetransmit",
    "Deliver",
    "Input",
    "MessageReceived",
    "Output",
    "RetransmitTimeout",
    "SendResponse",
    "Terminated",
    "TerminationReason",
    "TransactionTimeout",
    "Transmit",
    "TransportErrorOccurred",
    "TransportFailed",
]

# --------------------------------------------------------------------------- inputs


@attrs.frozen(slots=True)
class MessageReceived:
    """A request or response that the table routed to this machine."""

    message: Request | Response


@attrs.frozen(slots=True)
class SendResponse:
    """The TU's response for a server transaction (provisional or final)."""

    response: Response


@attrs.frozen(slots=True)
class TransportFailed:
    """The transport could not deliver a message of this transaction."""

    reason: str


@attrs.frozen(slots=True)
class ApplicationRetransmit:
    """Resend the request now (only in ``TimeoutRole.USER_AGENT_APP_RETRANSMIT``)."""


Input = MessageReceived | SendResponse | TransportFailed | ApplicationRetransmit

# --------------------------------------------------------------------------- outputs


class TerminationReason(enum.Enum):
    """Why a machine reached its Terminated state."""

    #: The exchange finished (final response handled, linger timer D/I/J/K/L/M ran out).
    COMPLETED = "completed"
    #: No final response (Timer B/F) or no ACK (Timer H).
    TIMEOUT = "timeout"
    #: The transport failed (§17.1.4, §17.2.4).
    TRANSPORT_ERROR = "transport-error"


@attrs.frozen(slots=True)
class Transmit:
    """Send ``message`` on the transaction's flow."""

    message: Request | Response


@attrs.frozen(slots=True)
class Deliver:
    """Pass ``message`` up to the transaction user."""

    message: Request | Response


@attrs.frozen(slots=True)
class RetransmitTimeout:
    """A retransmission timer (Timer A) fired."""


@attrs.frozen(slots=True)
class TransactionTimeout:
    """The transaction timed out (Timer B, F or H)."""


@attrs.frozen(slots=True)
class TransportErrorOccurred:
    """The transport failed; ``reason`` is the shell's description."""

    reason: str


@attrs.frozen(slots=True)
class Terminated:
    """The machine is finished; the table should drop it."""

    reason: TerminationReason


Output = (
    Transmit
    | Deliver
    | RetransmitTimeout
    | TransactionTimeout
    | TransportErrorOccurred
    | Terminated
)
