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

All records are immutable and slotted, equal and hashable by value; dispatch on
``type(output)``. Don't subclass them. They are plain classes rather than attrs classes, so
that the compiled build (mypyc) makes them native classes.
"""

from __future__ import annotations

import enum
from typing import Any, Final

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


class MessageReceived:
    """A request or response that the table routed to this machine."""

    __slots__ = ("_message",)
    __match_args__: Final = ("message",)

    def __init__(self, message: Request | Response) -> None:
        self._message: Final = message

    @property
    def message(self) -> Request | Response:
        return self._message

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, MessageReceived)
        return self._message == other._message

    def __hash__(self) -> int:
        return hash((self._message,))

    def __reduce__(self) -> tuple[Any, ...]:
        return MessageReceived, (self._message,)

    def __repr__(self) -> str:
        return f"MessageReceived(message={self._message!r})"


class SendResponse:
    """The TU's response for a server transaction (provisional or final)."""

    __slots__ = ("_response",)
    __match_args__: Final = ("response",)

    def __init__(self, response: Response) -> None:
        self._response: Final = response

    @property
    def response(self) -> Response:
        return self._response

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, SendResponse)
        return self._response == other._response

    def __hash__(self) -> int:
        return hash((self._response,))

    def __reduce__(self) -> tuple[Any, ...]:
        return SendResponse, (self._response,)

    def __repr__(self) -> str:
        return f"SendResponse(response={self._response!r})"


class TransportFailed:
    """The transport could not deliver a message of this transaction."""

    __slots__ = ("_reason",)
    __match_args__: Final = ("reason",)

    def __init__(self, reason: str) -> None:
        self._reason: Final = reason

    @property
    def reason(self) -> str:
        return self._reason

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, TransportFailed)
        return self._reason == other._reason

    def __hash__(self) -> int:
        return hash((self._reason,))

    def __reduce__(self) -> tuple[Any, ...]:
        return TransportFailed, (self._reason,)

    def __repr__(self) -> str:
        return f"TransportFailed(reason={self._reason!r})"


class ApplicationRetransmit:
    """Resend the request now (only in ``TimeoutRole.USER_AGENT_APP_RETRANSMIT``)."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return True

    def __hash__(self) -> int:
        return hash("ApplicationRetransmit")

    def __reduce__(self) -> tuple[Any, ...]:
        return ApplicationRetransmit, ()

    def __repr__(self) -> str:
        return "ApplicationRetransmit()"


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


class Transmit:
    """Send ``message`` on the transaction's flow."""

    __slots__ = ("_message",)
    __match_args__: Final = ("message",)

    def __init__(self, message: Request | Response) -> None:
        self._message: Final = message

    @property
    def message(self) -> Request | Response:
        return self._message

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Transmit)
        return self._message == other._message

    def __hash__(self) -> int:
        return hash((self._message,))

    def __reduce__(self) -> tuple[Any, ...]:
        return Transmit, (self._message,)

    def __repr__(self) -> str:
        return f"Transmit(message={self._message!r})"


class Deliver:
    """Pass ``message`` up to the transaction user."""

    __slots__ = ("_message",)
    __match_args__: Final = ("message",)

    def __init__(self, message: Request | Response) -> None:
        self._message: Final = message

    @property
    def message(self) -> Request | Response:
        return self._message

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Deliver)
        return self._message == other._message

    def __hash__(self) -> int:
        return hash((self._message,))

    def __reduce__(self) -> tuple[Any, ...]:
        return Deliver, (self._message,)

    def __repr__(self) -> str:
        return f"Deliver(message={self._message!r})"


class RetransmitTimeout:
    """A retransmission timer (Timer A) fired."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return True

    def __hash__(self) -> int:
        return hash("RetransmitTimeout")

    def __reduce__(self) -> tuple[Any, ...]:
        return RetransmitTimeout, ()

    def __repr__(self) -> str:
        return "RetransmitTimeout()"


class TransactionTimeout:
    """The transaction timed out (Timer B, F or H)."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return True

    def __hash__(self) -> int:
        return hash("TransactionTimeout")

    def __reduce__(self) -> tuple[Any, ...]:
        return TransactionTimeout, ()

    def __repr__(self) -> str:
        return "TransactionTimeout()"


class TransportErrorOccurred:
    """The transport failed; ``reason`` is the shell's description."""

    __slots__ = ("_reason",)
    __match_args__: Final = ("reason",)

    def __init__(self, reason: str) -> None:
        self._reason: Final = reason

    @property
    def reason(self) -> str:
        return self._reason

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, TransportErrorOccurred)
        return self._reason == other._reason

    def __hash__(self) -> int:
        return hash((self._reason,))

    def __reduce__(self) -> tuple[Any, ...]:
        return TransportErrorOccurred, (self._reason,)

    def __repr__(self) -> str:
        return f"TransportErrorOccurred(reason={self._reason!r})"


class Terminated:
    """The machine is finished; the table should drop it."""

    __slots__ = ("_reason",)
    __match_args__: Final = ("reason",)

    def __init__(self, reason: TerminationReason) -> None:
        self._reason: Final = reason

    @property
    def reason(self) -> TerminationReason:
        return self._reason

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Terminated)
        return self._reason == other._reason

    def __hash__(self) -> int:
        return hash((self._reason,))

    def __reduce__(self) -> tuple[Any, ...]:
        return Terminated, (self._reason,)

    def __repr__(self) -> str:
        return f"Terminated(reason={self._reason!r})"


Output = (
    Transmit
    | Deliver
    | RetransmitTimeout
    | TransactionTimeout
    | TransportErrorOccurred
    | Terminated
)
