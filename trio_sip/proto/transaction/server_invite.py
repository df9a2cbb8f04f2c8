"""The INVITE server transaction: RFC 3261 §17.2.1 as amended by RFC 6026.

Theory of operation
-------------------
States: PROCEEDING -> COMPLETED -> CONFIRMED -> TERMINATED, or PROCEEDING -> ACCEPTED ->
TERMINATED for a 2xx (RFC 6026 Figure 7). ``start(now)`` delivers the INVITE to the TU.

* §17.2.1: "the server transaction MUST generate a 100 (Trying) response unless it knows that
  the TU will generate a provisional or final response within 200 ms": the machine arms a
  200 ms timer and sends 100 Trying when it fires unless the TU has answered by then.
* "If a request retransmission is received while in the Proceeding state, the most recent
  provisional response that was received from the TU MUST be passed to the transport layer".
* "If, while in the Proceeding state, the TU passes a response with status code from 300 to
  699 ... the state machine MUST enter the Completed state" with Timer G (T1, unreliable only)
  and Timer H (64*T1). "If timer G fires, the response is passed to the transport layer once
  more for retransmission, and timer G is set to fire in MIN(2*T1, T2) seconds." "If timer H
  fires while in the Completed state, it implies that the ACK was never received ... the
  server transaction MUST transition to the Terminated state, and MUST indicate to the TU
  that a transaction failure has occurred" -> TransactionTimeout. INVITE retransmissions in
  Completed re-send the final response.
* "If an ACK is received while the server transaction is in the Completed state, the server
  transaction MUST transition to the Confirmed state" and start Timer I (T4, 0 on TCP), which
  absorbs further ACKs.
* RFC 6026 §8.7: "If, while in the Proceeding state, the TU passes a 2xx response ... the
  server transaction MUST enter the Accepted state" and start Timer L (64*T1). "Any
  retransmission of the 2xx response passed from the TU to the transaction while in the
  Accepted state MUST be passed to the transport layer"; retransmitted INVITEs are absorbed
  ("not passed up to the TU since any downstream UAS cores that accepted the request have
  taken responsibility for reliability"). A matching ACK (the ACK for the 2xx) goes to the TU.
* Timeout roles (``self.rule``, timeouts.py): in USER_AGENT_APP_RETRANSMIT (JAIN's "User
  Agent", where INVITE retransmissions are the application's) Timer G reports
  ``RetransmitTimeout("G")`` instead of resending, ApplicationRetransmit resends the final
  response (Completed only), and Timer H ends the machine without a ``TransactionTimeout``;
  in the other roles the stack resends and Timer H reports ``TransactionTimeout("H")``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

from ..errors import LocalProtocolError
from ..message import Request, Response, make_response
from ..outputs import (
    ApplicationRetransmit,
    Deliver,
    Input,
    MessageReceived,
    Output,
    SendResponse,
    TerminationReason,
    Transmit,
)
from ..timers import TimerConfig
from .machine import Machine, TimeoutRole, Trigger, response_trigger
from .timeouts import Side, TimeoutRule, stateful_rules

__all__ = ["TRANSITIONS", "TRYING_DELAY", "ServerInviteState", "ServerInviteTransaction"]

#: §17.2.1: send 100 Trying unless the TU answers within 200 ms.
TRYING_DELAY = 0.2


class ServerInviteState(enum.Enum):
    """The states of the INVITE server transaction (RFC 3261 §17.2.1, RFC 6026)."""

    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


S = ServerInviteState
T = Trigger

#: This machine's rows of the timeout table (USER_AGENT, USER_AGENT_APP_RETRANSMIT,
#: STATEFUL_PROXY) and the timers a per-transaction retransmit interval scales.
_RULES: Final = stateful_rules(Side.SERVER, True)
_SCALED: Final[tuple[Trigger, ...]] = (T.TIMER_G, T.TIMER_H)

TRANSITIONS: dict[ServerInviteState, dict[Trigger, ServerInviteState]] = {
    S.PROCEEDING: {
        T.RECV_REQUEST: S.PROCEEDING,  # re-send the last provisional
        T.RECV_ACK: S.PROCEEDING,  # an ACK before any final response: absorbed
        T.TIMER_TRYING: S.PROCEEDING,  # 100 Trying
        T.SEND_1XX: S.PROCEEDING,
        T.SEND_2XX: S.ACCEPTED,
        T.SEND_FAILURE: S.COMPLETED,
        T.TRANSPORT_ERROR: S.TERMINATED,
    },
    S.COMPLETED: {
        T.RECV_REQUEST: S.COMPLETED,  # re-send the final response
        T.RECV_ACK: S.CONFIRMED,
        T.TIMER_G: S.COMPLETED,
        T.APP_RETRANSMIT: S.COMPLETED,
        T.TIMER_H: S.TERMINATED,
        T.TRANSPORT_ERROR: S.TERMINATED,
    },
    S.CONFIRMED: {
        T.RECV_REQUEST: S.CONFIRMED,  # absorbed
        T.RECV_ACK: S.CONFIRMED,  # absorbed
        T.TIMER_I: S.TERMINATED,
        T.TRANSPORT_ERROR: S.TERMINATED,
    },
    S.ACCEPTED: {
        T.RECV_REQUEST: S.ACCEPTED,  # absorbed (RFC 6026)
        T.RECV_ACK: S.ACCEPTED,  # passed to the TU
        T.SEND_2XX: S.ACCEPTED,  # the TU's 2xx retransmissions
        T.TIMER_L: S.TERMINATED,
        T.TRANSPORT_ERROR: S.TERMINATED,
    },
    S.TERMINATED: {},
}


class ServerInviteTransaction(Machine[ServerInviteState]):
    """Answers an INVITE: 100 Trying at 200 ms, final-response retransmission, RFC 6026."""

    # Annotated as in Machine: mypyc needs a subclass's attribute types to match the base's.
    TRANSITIONS: Mapping[ServerInviteState, Mapping[Trigger, ServerInviteState]] = TRANSITIONS
    INITIAL: enum.Enum = S.PROCEEDING
    TERMINATED: enum.Enum = S.TERMINATED
    TIMER_ORDER: tuple[Trigger, ...] = (T.TIMER_H, T.TIMER_I, T.TIMER_L, T.TIMER_G, T.TIMER_TRYING)

    def __init__(
        self,
        request: Request,
        config: TimerConfig | None = None,
        *,
        reliable: bool,
        retransmit_interval: float | None = None,
        role: TimeoutRole = TimeoutRole.USER_AGENT,
    ) -> None:
        if request.method != "INVITE":
            raise LocalProtocolError(f"an INVITE server transaction cannot serve {request.method}")
        super().__init__(
            config, reliable=reliable, retransmit_interval=retransmit_interval, role=role
        )
        self.request = request
        self._last_response: Response | None = None

    @property
    def last_response(self) -> Response | None:
        """The most recent response sent (what a request retransmission gets again)."""
        return self._last_response

    def _rules(self) -> tuple[TimeoutRule, ...]:
        return _RULES

    def _scaled(self) -> tuple[Trigger, ...]:
        return _SCALED

    def _start(self, now: float) -> list[Output]:
        self._arm(T.TIMER_TRYING, now + TRYING_DELAY)
        return [Deliver(self.request)]

    def _on_input(self, event: Input, now: float) -> list[Output]:
        if isinstance(event, SendResponse):
            return self._send(event.response, now)
        if not isinstance(event, MessageReceived) or not isinstance(event.message, Request):
            if isinstance(event, ApplicationRetransmit):
                self._check_app_retransmit()
                self._transition(T.APP_RETRANSMIT)  # Completed only: a 300-699 awaits its ACK
                assert self._last_response is not None
                return [Transmit(self._last_response)]
            raise LocalProtocolError(f"an INVITE server transaction cannot handle {event!r}")
        request = event.message
        is_ack = request.method == "ACK"
        before = self.state
        after = self._transition(T.RECV_ACK if is_ack else T.RECV_REQUEST)
        if is_ack:
            if before is S.COMPLETED:
                self._disarm(T.TIMER_G, T.TIMER_H)
                self._arm(T.TIMER_I, now + self.timers.i)
            elif after is S.ACCEPTED:
                return [Deliver(request)]
            return []
        if before in (S.PROCEEDING, S.COMPLETED) and self._last_response is not None:
            return [Transmit(self._last_response)]
        return []

    def _send(self, response: Response, now: float) -> list[Output]:
        after = self._transition(response_trigger(response.status_code, sending=True))
        self._last_response = response
        self._disarm(T.TIMER_TRYING)
        if after is S.COMPLETED:
            if not self.reliable:
                self._arm(T.TIMER_G, now + self._interval)
            self._arm(T.TIMER_H, now + self.timers.h)
        elif after is S.ACCEPTED and T.TIMER_L not in self._armed:
            self._arm(T.TIMER_L, now + self.timers.l)
        return [Transmit(response)]

    def _on_timer(self, timer: Trigger, when: float) -> list[Output]:
        self._transition(timer)
        if timer is T.TIMER_TRYING:
            self._last_response = make_response(self.request, 100, "Trying")
            return [Transmit(self._last_response)]
        if timer is T.TIMER_G:
            self._interval = min(2 * self._interval, self._cap())
            self._arm(T.TIMER_G, when + self._interval)
            assert self._last_response is not None
            return self._retransmission(self._last_response, "G")
        if timer is T.TIMER_H:
            return self._timed_out("H")
        return self._finish(TerminationReason.COMPLETED)  # Timer I or L
