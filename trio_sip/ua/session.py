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
    "CallTrigger",
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


class CallTrigger(enum.Enum):
    """What moves a Call's :class:`CallState` (the triggers of ``TRANSITIONS``)."""

    PROVISIONAL = "1xx"
    #: The INVITE failed on one target and goes to the next (then RETRY).
    FAILOVER = "failover"
    RETRY = "retry"
    SUCCESS = "2xx"
    CANCEL = "cancel"
    BYE = "bye"
    END = "end"


S = CallState
CT = CallTrigger
#: state -> {trigger: next state}; also what docs/calls.md shows. An event missing from a
#: row is illegal in that state (``Call`` raises LocalProtocolError); self-loops are events
#: that leave the state as it is: a failover attempt that began after our CANCEL went out,
#: the 2xx that crossed our CANCEL, failover events of an INVITE still running at the end.
TRANSITIONS: dict[CallState, dict[CallTrigger, CallState]] = {
    S.CALLING: {
        CT.PROVISIONAL: S.RINGING,
        CT.FAILOVER: S.DISCONNECTED,
        CT.SUCCESS: S.ANSWERED,
        CT.CANCEL: S.ENDING,
        CT.END: S.ENDED,
    },
    S.RINGING: {
        CT.PROVISIONAL: S.RINGING,
        CT.FAILOVER: S.DISCONNECTED,
        CT.SUCCESS: S.ANSWERED,
        CT.CANCEL: S.ENDING,
        CT.END: S.ENDED,
    },
    S.DISCONNECTED: {CT.RETRY: S.CALLING, CT.END: S.ENDED},
    S.ANSWERED: {CT.BYE: S.ENDING, CT.END: S.ENDED},
    S.ENDING: {
        CT.END: S.ENDED,
        CT.SUCCESS: S.ENDING,
        CT.FAILOVER: S.ENDING,
        CT.RETRY: S.ENDING,
    },
    S.ENDED: {CT.FAILOVER: S.ENDED, CT.RETRY: S.ENDED},
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
