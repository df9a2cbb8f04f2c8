# Session events and call states: what a Call reports to the application (docs/calls.md).
#
# Theory of operation: a Call is one session (``session_id``, stable for its whole life) that
# may use more than one SIP dialog: when the initial INVITE fails over to the next target the
# failover client starts a new attempt and the session moves CALLING/RINGING -> DISCONNECTED ->
# CALLING again, with a new Call-ID (design doc, "Failover policy"). Every change the
# application may care about is one frozen record put on ``call.events`` (a memory channel with
# an unbounded buffer, so that synchronous code paths -- a transport callback delivering a BYE --
# never block on a slow reader). The records are nouns, as the core's machine outputs are.
"""CallState and the session event records (Progress, Answered, Held, ..., Ended)."""

from __future__ import annotations

import enum

import attrs

from trio_sip.proto.message import Request, Response

__all__ = [
    "Answered",
    "CallState",
    "Ended",
    "EndReason",
    "Failover",
    "Held",
    "InfoReceived",
    "MessageReceived",
    "Progress",
    "Retrieved",
    "SessionEvent",
]


class CallState(enum.Enum):
    """Where a call is. ``TRANSITIONS`` lists the legal moves."""

    CALLING = "calling"  # our INVITE is out, no provisional yet
    RINGING = "ringing"  # a 1xx arrived (UAC), or we are ringing (UAS)
    DISCONNECTED = "disconnected"  # between two attempts of a failover
    ANSWERED = "answered"  # the 2xx was sent / received: the dialog is confirmed
    ENDING = "ending"  # BYE or CANCEL on its way
    ENDED = "ended"


S = CallState
#: (state, trigger) -> next state; also what docs/calls.md shows.
TRANSITIONS: dict[tuple[CallState, str], CallState] = {
    (S.CALLING, "1xx"): S.RINGING,
    (S.RINGING, "1xx"): S.RINGING,
    (S.CALLING, "failover"): S.DISCONNECTED,
    (S.RINGING, "failover"): S.DISCONNECTED,
    (S.DISCONNECTED, "retry"): S.CALLING,
    (S.CALLING, "2xx"): S.ANSWERED,
    (S.RINGING, "2xx"): S.ANSWERED,
    (S.CALLING, "cancel"): S.ENDING,
    (S.RINGING, "cancel"): S.ENDING,
    (S.ANSWERED, "bye"): S.ENDING,
    (S.CALLING, "end"): S.ENDED,
    (S.RINGING, "end"): S.ENDED,
    (S.DISCONNECTED, "end"): S.ENDED,
    (S.ANSWERED, "end"): S.ENDED,
    (S.ENDING, "end"): S.ENDED,
    (S.ENDING, "2xx"): S.ENDING,
}


class EndReason(enum.Enum):
    """Why a call ended (``Ended.reason``)."""

    LOCAL_HANGUP = "local hangup"  # we sent BYE
    REMOTE_HANGUP = "remote hangup"  # they sent BYE
    CANCELLED = "cancelled"  # we cancelled before the answer (CANCEL / 487)
    REMOTE_CANCELLED = "remote cancelled"  # they cancelled our ringing incoming call
    REJECTED = "rejected"  # a 3xx-6xx final response, sent or received
    FAILED = "failed"  # no answer at all: timeout / transport error on every target
    NO_ACK = "no ACK"  # our 2xx was never acknowledged (64*T1): BYE sent
    DIALOG_GONE = "dialog gone"  # a 481 / 408 to an in-dialog request (§12.2.1.2)
    SHUTDOWN = "user agent closed"


@attrs.frozen(slots=True)
class Progress:
    """A provisional response (180 Ringing, 183 Session Progress...) to our INVITE."""

    response: Response


@attrs.frozen(slots=True)
class Answered:
    """The call is answered: the 2xx (ours for an incoming call, theirs for an outgoing one)."""

    response: Response


@attrs.frozen(slots=True)
class Held:
    """The session was put on hold; ``by_remote`` when the other side sent the re-INVITE."""

    direction: str  # our media direction now (sendonly, inactive, recvonly)
    by_remote: bool = False


@attrs.frozen(slots=True)
class Retrieved:
    """The session is off hold again (a=sendrecv)."""

    direction: str
    by_remote: bool = False


@attrs.frozen(slots=True)
class Failover:
    """The initial INVITE failed on one target and goes to the next: the session was
    disconnected and is in progress again, with a new Call-ID (same ``session_id``)."""

    reason: str
    old_call_id: str
    new_call_id: str


@attrs.frozen(slots=True)
class InfoReceived:
    """An INFO arrived in the call's dialog (answered 200)."""

    request: Request


@attrs.frozen(slots=True)
class MessageReceived:
    """A MESSAGE arrived in the call's dialog (answered 200)."""

    request: Request


@attrs.frozen(slots=True)
class Ended:
    """The call is over; ``response`` is the final response or BYE answer involved, if any."""

    reason: EndReason
    response: Response | None = None
    detail: str = ""


SessionEvent = (
    Progress | Answered | Held | Retrieved | Failover | InfoReceived | MessageReceived | Ended
)
