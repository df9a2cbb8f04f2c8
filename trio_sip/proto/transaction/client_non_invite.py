"""The non-INVITE client transaction: RFC 3261 §17.1.2.

Theory of operation
-------------------
States: TRYING -> PROCEEDING -> COMPLETED -> TERMINATED (Figure 6).

* §17.1.2.2: "the client transaction MUST set timer F to fire in 64*T1 seconds" (bounded here
  by ``sip_transaction_timeout``) and, over unreliable transports, "MUST set timer E to fire in
  T1 seconds. If timer E fires while still in this state, the timer is reset, but this time
  with a value of MIN(2*T1, T2)" -- so an unanswered request goes out at 0, 0.5, 1.5, 3.5, 7.5,
  11.5, 15.5, ... s with the defaults.
* "If a provisional response is received while in the Trying state, the response MUST be
  passed to the TU, and then the client transaction SHOULD move to the Proceeding state. ...
  If Timer E fires while in the Proceeding state, the request MUST be passed to the transport
  layer for retransmission, and Timer E MUST be reset with a value of T2 seconds."
* "If Timer F fires while the client transaction is still in the Trying state, the client
  transaction SHOULD inform the TU about the timeout, and then it SHOULD enter the Terminated
  state" (likewise in Proceeding) -> TransactionTimeout.
* "If a final response (status codes 200-699) is received while the client transaction is in
  the Trying state, the response MUST be passed to the TU, and the client transaction MUST
  transition to the Completed state" and start Timer K (T4, 0 over reliable transports), which
  absorbs retransmitted responses.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

from ..errors import LocalProtocolError
from ..message import Request, Response
from ..outputs import (
    Deliver,
    Input,
    MessageReceived,
    Output,
    TerminationReason,
    Transmit,
)
from ..timers import TimerConfig
from .machine import Machine, TimeoutRole, Trigger, response_trigger
from .timeouts import Side, TimeoutRule, stateful_rules

__all__ = ["TRANSITIONS", "ClientNonInviteState", "ClientNonInviteTransaction"]


class ClientNonInviteState(enum.Enum):
    """The states of the non-INVITE client transaction (RFC 3261 §17.1.2)."""

    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    TERMINATED = "Terminated"


S = ClientNonInviteState
T = Trigger

#: This machine's rows of the timeout table (USER_AGENT, USER_AGENT_APP_RETRANSMIT,
#: STATEFUL_PROXY) and the timers a per-transaction retransmit interval scales.
_RULES: Final = stateful_rules(Side.CLIENT, False)
_SCALED: Final[tuple[Trigger, ...]] = (T.TIMER_E, T.TIMER_F)

TRANSITIONS: dict[ClientNonInviteState, dict[Trigger, ClientNonInviteState]] = {
    S.TRYING: {
        T.RECV_1XX: S.PROCEEDING,
        T.RECV_2XX: S.COMPLETED,
        T.RECV_FAILURE: S.COMPLETED,
        T.TIMER_E: S.TRYING,
        T.TIMER_F: S.TERMINATED,
        T.TRANSPORT_ERROR: S.TERMINATED,
    },
    S.PROCEEDING: {
        T.RECV_1XX: S.PROCEEDING,
        T.RECV_2XX: S.COMPLETED,
        T.RECV_FAILURE: S.COMPLETED,
        T.TIMER_E: S.PROCEEDING,
        T.TIMER_F: S.TERMINATED,
        T.TRANSPORT_ERROR: S.TERMINATED,
    },
    S.COMPLETED: {
        # Retransmitted responses are absorbed until Timer K.
        T.RECV_1XX: S.COMPLETED,
        T.RECV_2XX: S.COMPLETED,
        T.RECV_FAILURE: S.COMPLETED,
        T.TIMER_K: S.TERMINATED,
        T.TRANSPORT_ERROR: S.TERMINATED,
    },
    S.TERMINATED: {},
}


class ClientNonInviteTransaction(Machine[ClientNonInviteState]):
    """Sends a non-INVITE request and retransmits it (capped at T2) until a final response."""

    # Annotated as in Machine: mypyc needs a subclass's attribute types to match the base's.
    TRANSITIONS: Mapping[ClientNonInviteState, Mapping[Trigger, ClientNonInviteState]] = TRANSITIONS
    INITIAL: enum.Enum = S.TRYING
    TERMINATED: enum.Enum = S.TERMINATED
    TIMER_ORDER: tuple[Trigger, ...] = (T.TIMER_F, T.TIMER_K, T.TIMER_E)

    def __init__(
        self,
        request: Request,
        config: TimerConfig | None = None,
        *,
        reliable: bool,
        retransmit_interval: float | None = None,
        role: TimeoutRole = TimeoutRole.USER_AGENT,
    ) -> None:
        if request.method in ("INVITE", "ACK"):
            raise LocalProtocolError(
                f"a non-INVITE client transaction cannot send {request.method}"
            )
        super().__init__(
            config, reliable=reliable, retransmit_interval=retransmit_interval, role=role
        )
        self.request = request

    def _rules(self) -> tuple[TimeoutRule, ...]:
        return _RULES

    def _scaled(self) -> tuple[Trigger, ...]:
        return _SCALED

    def _start(self, now: float) -> list[Output]:
        if not self.reliable:
            self._arm(T.TIMER_E, now + self._interval)
        self._arm(T.TIMER_F, now + self.timers.f)
        return [Transmit(self.request)]

    def _on_input(self, event: Input, now: float) -> list[Output]:
        if not isinstance(event, MessageReceived) or not isinstance(event.message, Response):
            raise LocalProtocolError(f"a non-INVITE client transaction cannot handle {event!r}")
        response = event.message
        before = self.state
        after = self._transition(response_trigger(response.status_code, sending=False))
        if before is S.COMPLETED:
            return []
        if after is S.COMPLETED:
            self._disarm(T.TIMER_E, T.TIMER_F)
            self._arm(T.TIMER_K, now + self.timers.k)
        return [Deliver(response)]

    def _on_timer(self, timer: Trigger, when: float) -> list[Output]:
        before = self.state
        self._transition(timer)
        if timer is T.TIMER_E:
            cap = self._cap()
            # Trying: MIN(2*interval, T2); Proceeding: T2 (§17.1.2.2).
            self._interval = min(2 * self._interval, cap) if before is S.TRYING else cap
            self._arm(T.TIMER_E, when + self._interval)
            return self._retransmission(self.request, "E")
        if timer is T.TIMER_F:
            return self._timed_out("F")
        return self._finish(TerminationReason.COMPLETED)  # Timer K
