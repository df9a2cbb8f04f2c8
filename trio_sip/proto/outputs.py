"""Inputs and outputs of the timed machines (transactions first of all).

Theory of operation
-------------------
A machine never performs I/O. The shell feeds it *inputs* with ``handle(input, now)`` and
performs the *outputs* it returns, in order (see docs/architecture.md, Contract 2):

Inputs
    :class:`MessageReceived` a matching request or response arrived from the network;
    :class:`SendResponse` the TU (transaction user) answers a server transaction;
    :class:`TransportFailed` the transport could not send (RFC 3261 §17.1.4, §17.2.4);
    :class:`ApplicationRetransmit` the application resends an INVITE (client) or its 300-699
    response (server) itself (``TimeoutRole.USER_AGENT_APP_RETRANSMIT``, JAIN-SIP's
    RETRANSMIT timeouts).

Outputs
    :class:`Transmit` send this message on the transaction's flow;
    :class:`Deliver` pass this message up to the TU;
    :class:`RetransmitTimeout` a retransmission timer fired (JAIN-SIP ``Timeout.RETRANSMIT``),
    where the role's row of the timeout table says the application hears it;
    :class:`TransactionTimeout` the transaction gave up waiting (``Timeout.TRANSACTION``),
    likewise (otherwise the machine ends with ``Terminated(TIMEOUT)`` alone);
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


class _Record:
    """Value semantics for the records below: equal and hashable by type and fields, picklable,
    and a ``Name(field=value)`` repr; a subclass lists its fields in ``__match_args__`` and
    returns their values from ``_values``."""

    __slots__ = ()

    def _values(self) -> tuple[Any, ...]:
        return ()

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, _Record)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self).__name__, *self._values()))

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), self._values()

    def __repr__(self) -> str:
        names: tuple[str, ...] = getattr(type(self), "__match_args__", ())
        fields = ", ".join(f"{n}={v!r}" for n, v in zip(names, self._values(), strict=True))
        return f"{type(self).__name__}({fields})"


# --------------------------------------------------------------------------- inputs


class MessageReceived(_Record):
    """A request or response that the table routed to this machine."""

    __slots__ = ("_message",)
    __match_args__: Final = ("message",)

    def __init__(self, message: Request | Response) -> None:
        self._message: Final = message

    @property
    def message(self) -> Request | Response:
        return self._message

    def _values(self) -> tuple[Any, ...]:
        return (self._message,)


class SendResponse(_Record):
    """The TU's response for a server transaction (provisional or final)."""

    __slots__ = ("_response",)
    __match_args__: Final = ("response",)

    def __init__(self, response: Response) -> None:
        self._response: Final = response

    @property
    def response(self) -> Response:
        return self._response

    def _values(self) -> tuple[Any, ...]:
        return (self._response,)


class TransportFailed(_Record):
    """The transport could not deliver a message of this transaction."""

    __slots__ = ("_reason",)
    __match_args__: Final = ("reason",)

    def __init__(self, reason: str) -> None:
        self._reason: Final = reason

    @property
    def reason(self) -> str:
        return self._reason

    def _values(self) -> tuple[Any, ...]:
        return (self._reason,)


class ApplicationRetransmit(_Record):
    """Resend now (only where the application retransmits: INVITE transactions in
    ``TimeoutRole.USER_AGENT_APP_RETRANSMIT``): the INVITE, or a server's 300-699."""

    __slots__ = ()


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


class Transmit(_Record):
    """Send ``message`` on the transaction's flow."""

    __slots__ = ("_message",)
    __match_args__: Final = ("message",)

    def __init__(self, message: Request | Response) -> None:
        self._message: Final = message

    @property
    def message(self) -> Request | Response:
        return self._message

    def _values(self) -> tuple[Any, ...]:
        return (self._message,)


class Deliver(_Record):
    """Pass ``message`` up to the transaction user."""

    __slots__ = ("_message",)
    __match_args__: Final = ("message",)

    def __init__(self, message: Request | Response) -> None:
        self._message: Final = message

    @property
    def message(self) -> Request | Response:
        return self._message

    def _values(self) -> tuple[Any, ...]:
        return (self._message,)


class RetransmitTimeout(_Record):
    """A retransmission timer fired and the application retransmits (JAIN-SIP
    ``Timeout.RETRANSMIT``): ``timer`` is "A" (client INVITE) or "G" (server INVITE). The
    machines always name the timer; ``""`` is only the default of a record built by hand."""

    __slots__ = ("_timer",)
    __match_args__: Final = ("timer",)

    def __init__(self, timer: str = "") -> None:
        self._timer: Final = timer

    @property
    def timer(self) -> str:
        return self._timer

    def _values(self) -> tuple[Any, ...]:
        return (self._timer,)


class TransactionTimeout(_Record):
    """The transaction timed out and the application hears it (JAIN-SIP
    ``Timeout.TRANSACTION``): ``timer`` is "B", "F" or "H" (``""``: built by hand)."""

    __slots__ = ("_timer",)
    __match_args__: Final = ("timer",)

    def __init__(self, timer: str = "") -> None:
        self._timer: Final = timer

    @property
    def timer(self) -> str:
        return self._timer

    def _values(self) -> tuple[Any, ...]:
        return (self._timer,)


class TransportErrorOccurred(_Record):
    """The transport failed; ``reason`` is the shell's description."""

    __slots__ = ("_reason",)
    __match_args__: Final = ("reason",)

    def __init__(self, reason: str) -> None:
        self._reason: Final = reason

    @property
    def reason(self) -> str:
        return self._reason

    def _values(self) -> tuple[Any, ...]:
        return (self._reason,)


class Terminated(_Record):
    """The machine is finished; the table should drop it."""

    __slots__ = ("_reason",)
    __match_args__: Final = ("reason",)

    def __init__(self, reason: TerminationReason) -> None:
        self._reason: Final = reason

    @property
    def reason(self) -> TerminationReason:
        return self._reason

    def _values(self) -> tuple[Any, ...]:
        return (self._reason,)


Output = (
    Transmit
    | Deliver
    | RetransmitTimeout
    | TransactionTimeout
    | TransportErrorOccurred
    | Terminated
)
