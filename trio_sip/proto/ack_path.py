"""The 2xx / ACK path of an INVITE: the UAS resends its 2xx until the ACK, the UAC resends the
ACK for every retransmitted 2xx; and, under a short transaction timeout, both cycle through
the proxies (seed 002).

Theory of operation
-------------------
Two machines of the Contract 2 shape (``start`` / ``handle`` / ``handle_timer`` /
``deadline``), with no transport: an output :class:`~trio_sip.proto.outputs.Transmit` goes to
the machine's current ``destination``, an index the shell maps to a way out. Destination 0 is
the RFC 3261 one (the UAS: the arrival flow, §18.2.2; the UAC: the dialog's next hop); the
others are the configured proxies' addresses, which the shell tells the machine about with
``destinations`` (it may raise it later, when a DNS answer comes in).

* :class:`AckWait` (UAS, §13.3.1.4): "The 2xx response is passed to the transport with an
  interval that starts at T1 seconds and doubles for each retransmission until it reaches T2
  seconds ... If the server retransmits the 2xx response for 64*T1 seconds without receiving
  an ACK, the dialog is confirmed, but the session SHOULD be terminated" (:class:`AckTimeout`:
  the owner sends a BYE).
* :class:`AckResender` (UAC, §13.2.2.4): the ACK is sent again "for each 2xx" retransmission,
  for 64*T1 (RFC 6026 Timer M).

Seed 002 (SIP Endpoint SDK, "SIP Proxy Support"): "Retrying a 200 OK response to an initial
INVITE (answering the call) and call-terminating BYE and CANCEL requests work differently from
other requests. These retry operations work only when the sip_transaction_timeout parameter is
set to a value lower than 32000 milliseconds ... These requests are retried continuously for
32 seconds total (cycling through the list of configured proxies), after which the call is
abandoned." So, only when ``sip_transaction_timeout`` < 32000 (:func:`~.retry.cycles`):

* AckWait: when no ACK came ``sip_transaction_timeout`` after the 2xx began on a destination,
  it moves to the next one (:class:`NextDestination`) and sends the 2xx there at once; the
  RFC's schedule (T1, 2*T1, ... capped at T2 from the first 2xx) goes on, each retransmission
  to the current destination. The cycle wraps around and gives up 32 s
  (:data:`~.retry.CYCLE_WINDOW`) after the first 2xx. So cycling adds one 2xx per move (seven
  with 4 s: 18 in all instead of 11) and no schedule restarts: a spoofed INVITE is reflected
  hardly more than without it (docs/security.md, "Faults"). A destination is kept at least
  T1, so a 1 ms timeout does not make a flood.
* AckResender: every retransmitted 2xx says our ACK did not arrive; once that has gone on for
  ``sip_transaction_timeout`` on one destination, the ACK moves to the next one.

With the default 32000 the machines behave as RFC 3261 says: destination 0 only.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from typing import TypeVar

import attrs

from .fsm import step
from .message import Request, Response
from .outputs import MessageReceived, Terminated, TerminationReason, Transmit
from .retry import CYCLE_WINDOW, cycles
from .timers import TimerConfig

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
]


@attrs.frozen(slots=True)
class AckTimeout:
    """Output: no ACK came for our 2xx within 64*T1 (32 s when cycling); send a BYE
    (§13.3.1.4, RFC 6026 §8.1; seed 002: "after which the call is abandoned")."""

    reason: str


@attrs.frozen(slots=True)
class NextDestination:
    """Output: the 2xx (or the ACK) goes to destination ``index`` from now on (seed 002's
    cycling through the configured proxies); a Transmit follows."""

    index: int
    reason: str


class AckWaitState(enum.Enum):
    WAITING = "waiting for ACK"
    CONFIRMED = "ACK received"
    TIMED_OUT = "timed out"


class AckTrigger(enum.Enum):
    """What moves :class:`AckWait` and :class:`AckResender`."""

    #: Our 2xx is due again (T1, 2*T1, ... capped at T2).
    RETRANSMIT_TIMER = "retransmit timer"
    #: Seed 002: the 2xx goes to the next configured proxy.
    NEXT_PROXY = "next proxy"
    #: The ACK for our 2xx arrived.
    ACK = "ACK"
    #: A retransmitted 2xx arrived (the UAC sends its ACK again).
    RETRANSMITTED_2XX = "2xx retransmission"
    #: 64*T1 passed (32 s when cycling): the 2xx wait, or the ACK's Timer M, is over.
    GIVE_UP_TIMER = "64*T1"


A = AckTrigger
#: state -> {trigger: next state}; an event missing from a row is illegal in that state.
ACK_WAIT_TRANSITIONS: dict[AckWaitState, dict[AckTrigger, AckWaitState]] = {
    AckWaitState.WAITING: {
        A.RETRANSMIT_TIMER: AckWaitState.WAITING,
        A.NEXT_PROXY: AckWaitState.WAITING,
        A.ACK: AckWaitState.CONFIRMED,
        A.GIVE_UP_TIMER: AckWaitState.TIMED_OUT,
    },
    # An ACK retransmission (or a late one) after the end changes nothing.
    AckWaitState.CONFIRMED: {A.ACK: AckWaitState.CONFIRMED},
    AckWaitState.TIMED_OUT: {A.ACK: AckWaitState.TIMED_OUT},
}


E = TypeVar("E", bound=enum.Enum)


def _step(table: Mapping[E, Mapping[AckTrigger, E]], state: E, trigger: AckTrigger) -> E:
    return step("2xx/ACK path", table, state, trigger)


_WaitOutput = Transmit | NextDestination | AckTimeout | Terminated


def _switch_after(config: TimerConfig) -> float:
    """How long one destination is given before the next (only when cycling): the
    transaction timeout, and never less than T1."""
    return max(config.sip_transaction_timeout / 1000, config.t1)


class AckWait:
    """UAS: resend our 2xx to an INVITE until its ACK arrives (§13.3.1.4), cycling through
    ``destinations`` under a short transaction timeout (module comment)."""

    __slots__ = (
        "_give_up",
        "_interval",
        "_next",
        "_switch",
        "config",
        "deadline",
        "destination",
        "destinations",
        "response",
        "state",
    )

    def __init__(
        self, response: Response, config: TimerConfig | None = None, *, destinations: int = 1
    ) -> None:
        self.response = response
        self.config = config if config is not None else TimerConfig()
        self.state = AckWaitState.WAITING
        self.deadline: float | None = None
        #: Where the 2xx goes now (0: the arrival path) and how many ways there are.
        self.destination = 0
        self.destinations = destinations
        self._next = 0.0
        self._interval = self.config.t1
        self._give_up = 0.0
        self._switch = math.inf

    @property
    def cycling(self) -> bool:
        return cycles(self.config.sip_transaction_timeout)

    def start(self, now: float) -> list[Transmit]:
        """Send the 2xx; the first retransmission is due T1 later, the end 64*T1 later (32 s
        when cycling), the first move to another destination after the transaction timeout."""
        self._next = now + self._interval
        if self.cycling:
            self._give_up = now + CYCLE_WINDOW
            self._switch = self._before_end(now + _switch_after(self.config))
        else:
            self._give_up = now + 64 * self.config.t1
        self._rearm()
        return [Transmit(self.response)]

    def _before_end(self, at: float) -> float:
        """``at`` for a move to the next destination, or never when the cycle is over by
        then (a microsecond of slack: sums of floats drift)."""
        return at if at < self._give_up - 1e-6 else math.inf

    def _rearm(self) -> None:
        self.deadline = min(self._next, self._give_up, self._switch)

    def handle(self, event: MessageReceived, now: float) -> list[Terminated]:
        """An ACK with our 2xx's CSeq number stops the retransmissions."""
        msg = event.message
        if (
            not isinstance(msg, Request)
            or msg.method != "ACK"
            or msg.cseq.seq != self.response.cseq.seq
        ):
            return []  # not the ACK of our 2xx: no event of this machine
        waiting = self.state is AckWaitState.WAITING
        self.state = _step(ACK_WAIT_TRANSITIONS, self.state, A.ACK)
        if not waiting:
            return []  # a retransmitted or late ACK: absorbed
        self.deadline = None
        return [Terminated(TerminationReason.COMPLETED)]

    def handle_timer(self, now: float) -> list[_WaitOutput]:
        if self.deadline is None or now < self.deadline:
            return []
        if now >= self._give_up:
            self.state = _step(ACK_WAIT_TRANSITIONS, self.state, A.GIVE_UP_TIMER)
            self.deadline = None
            if self.cycling:
                why = f"no ACK within {CYCLE_WINDOW:g} s"
                if self.destinations > 1:
                    why += f" (the 2xx cycled through {self.destinations} destinations)"
            else:
                why = f"no ACK within 64*T1 = {64 * self.config.t1:g} s"
            return [AckTimeout(why), Terminated(TerminationReason.TIMEOUT)]
        if now >= self._switch:
            after = _switch_after(self.config)
            self._switch = self._before_end(self._switch + after)
            if self.destinations > 1:
                self.state = _step(ACK_WAIT_TRANSITIONS, self.state, A.NEXT_PROXY)
                self.destination = (self.destination + 1) % self.destinations
                if self._next <= now:  # a retransmission due now: this send is it
                    self._advance()
                self._rearm()
                previous = (self.destination - 1) % self.destinations
                why = f"no ACK {after:g} s after the 2xx went to destination {previous}"
                return [NextDestination(self.destination, why), Transmit(self.response)]
        if now < self._next:
            self._rearm()
            return []
        self.state = _step(ACK_WAIT_TRANSITIONS, self.state, A.RETRANSMIT_TIMER)
        self._advance()
        self._rearm()
        return [Transmit(self.response)]

    def _advance(self) -> None:
        # Re-arm from the scheduled time, "doubles ... until it reaches T2".
        self._interval = min(2 * self._interval, self.config.t2)
        self._next += self._interval


class AckResenderState(enum.Enum):
    ACKED = "acked"
    TERMINATED = "terminated"


ACK_RESENDER_TRANSITIONS: dict[AckResenderState, dict[AckTrigger, AckResenderState]] = {
    AckResenderState.ACKED: {
        A.RETRANSMITTED_2XX: AckResenderState.ACKED,
        A.GIVE_UP_TIMER: AckResenderState.TERMINATED,
    },
    # A 2xx retransmission after Timer M is not answered any more.
    AckResenderState.TERMINATED: {A.RETRANSMITTED_2XX: AckResenderState.TERMINATED},
}


class AckResender:
    """UAC: send the ACK, then send it again for each 2xx retransmission for 64*T1; under a
    short transaction timeout, to the next of ``destinations`` once the current one has had
    that long (module comment)."""

    __slots__ = ("_since", "ack", "config", "deadline", "destination", "destinations", "state")

    def __init__(
        self, ack: Request, config: TimerConfig | None = None, *, destinations: int = 1
    ) -> None:
        self.ack = ack
        self.config = config if config is not None else TimerConfig()
        self.state = AckResenderState.ACKED
        self.deadline: float | None = None
        #: Where the ACK goes now (0: the dialog's next hop) and how many ways there are.
        self.destination = 0
        self.destinations = destinations
        self._since = 0.0

    def start(self, now: float) -> list[Transmit]:
        self.deadline = now + 64 * self.config.t1
        self._since = now
        return [Transmit(self.ack)]

    def handle(self, event: MessageReceived, now: float) -> list[Transmit | NextDestination]:
        msg = event.message
        if not (
            isinstance(msg, Response)
            and 200 <= msg.status_code < 300
            and msg.cseq.method == "INVITE"
            and msg.cseq.seq == self.ack.cseq.seq
        ):
            return []  # not a 2xx to our INVITE: no event of this machine
        self.state = _step(ACK_RESENDER_TRANSITIONS, self.state, A.RETRANSMITTED_2XX)
        if self.state is AckResenderState.TERMINATED:
            return []  # after Timer M: absorbed
        after = _switch_after(self.config)
        if (
            cycles(self.config.sip_transaction_timeout)
            and self.destinations > 1
            and now - self._since >= after
        ):
            self.destination = (self.destination + 1) % self.destinations
            self._since = now
            why = f"the 2xx still comes {after:g} s after our ACK: the ACK goes elsewhere"
            return [NextDestination(self.destination, why), Transmit(self.ack)]
        return [Transmit(self.ack)]

    def handle_timer(self, now: float) -> list[Terminated]:
        if self.deadline is None or now < self.deadline:
            return []
        self.state = _step(ACK_RESENDER_TRANSITIONS, self.state, A.GIVE_UP_TIMER)
        self.deadline = None
        return [Terminated(TerminationReason.COMPLETED)]
