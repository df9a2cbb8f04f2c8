"""The non-INVITE server transaction: RFC 3261 §17.2.2.

Theory of operation
-------------------
States: TRYING -> PROCEEDING -> COMPLETED -> TERMINATED (Figure 8). ``start(now)`` delivers
the request to the TU.

* "Once in the Trying state, any further request retransmissions are discarded."
* "While in the Trying state, if the TU passes a provisional response to the server
  transaction, the server transaction MUST enter the Proceeding state. ... If a retransmission
  of the request is received while in the Proceeding state, the most recently sent
  provisional response MUST be passed to the transport layer for retransmission."
* "If the TU passes a final response (status codes 200-699) to the server while in the
  Proceeding state, the transaction MUST enter the Completed state" (likewise from Trying),
  "and the response MUST be passed to the transport layer for transmission. When the server
  transaction enters the Completed state, it MUST set Timer J to fire in 64*T1 seconds for
  unreliable transports, and zero seconds for reliable transports. While in the Completed
  state, the server transaction MUST pass the final response to the transport layer for
  retransmission whenever a retransmission of the request is received."
* "Any other final responses passed by the TU to the server transaction MUST be discarded
  while in the Completed state": here they raise LocalProtocolError, which tells the TU of
  its bug and leaves the state unchanged.

There is no timeout: the TU answers, or the transaction simply lingers in Trying until the TU
does (the shell bounds the TU's work).
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
    SendResponse,
    TerminationReason,
    Transmit,
)
from ..timers import TimerConfig
from .machine import Machine, TimeoutRole, Trigger, response_trigger
from .timeouts import Side, TimeoutRule, stateful_rules

__all__ = ["TRANSITIONS", "ServerNonInviteState", "ServerNonInviteTransaction"]


class ServerNonInviteState(enum.Enum):
    """The states of the non-INVITE server transaction (RFC 3261 §17.2.2)."""

    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    TERMINATED = "Terminated"


S = ServerNonInviteState
T = Trigger

#: This machine's rows of the timeout table (USER_AGENT, USER_AGENT_APP_RETRANSMIT,
#: STATEFUL_PROXY) and the timers a per-transaction retransmit interval scales.
_RULES: Final = stateful_rules(Side.SERVER, False)
_SCALED: Final[tuple[Trigger, ...]] = ()

TRANSITIONS: dict[ServerNonInviteState, dict[Trigger, ServerNonInviteState]] = {
    S.TRYING: {
        T.RECV_REQUEST: S.TRYING,  # discarded
        T.SEND_1XX: S.PROCEEDING,
        T.SEND_2XX: S.COMPLETED,
        T.SEND_FAILURE: S.COMPLETED,
        T.TRANSPORT_ERROR: S.TERMINATED,
    },
    S.PROCEEDING: {
        T.RECV_REQUEST: S.PROCEEDING,  # re-send the last provisional
        T.SEND_1XX: S.PROCEEDING,
        T.SEND_2XX: S.COMPLETED,
        T.SEND_FAILURE: S.COMPLETED,
        T.TRANSPORT_ERROR: S.TERMINATED,
    },
    S.COMPLETED: {
        T.RECV_REQUEST: S.COMPLETED,  # re-send the final response
        T.TIMER_J: S.TERMINATED,
        T.TRANSPORT_ERROR: S.TERMINATED,
    },
    S.TERMINATED: {},
}


class ServerNonInviteTransaction(Machine[ServerNonInviteState]):
    """Answers a non-INVITE request and absorbs its retransmissions until Timer J."""

    # Annotated as in Machine: mypyc needs a subclass's attribute types to match the base's.
    TRANSITIONS: Mapping[ServerNonInviteState, Mapping[Trigger, ServerNonInviteState]] = TRANSITIONS
    INITIAL: enum.Enum = S.TRYING
    TERMINATED: enum.Enum = S.TERMINATED
    TIMER_ORDER: tuple[Trigger, ...] = (T.TIMER_J,)

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
                f"a non-INVITE server transaction cannot serve {request.method}"
            )
        super().__init__(
            config, reliable=reliable, retransmit_interval=retransmit_interval, role=role
        )
        self.request = request
        self._last_response: Response | None = None

    @property
    def last_response(self) -> Response | None:
        return self._last_response

    def _rules(self) -> tuple[TimeoutRule, ...]:
        return _RULES

    def _scaled(self) -> tuple[Trigger, ...]:
        return _SCALED

    def _start(self, now: float) -> list[Output]:
        return [Deliver(self.request)]

    def _on_input(self, event: Input, now: float) -> list[Output]:
        if isinstance(event, SendResponse):
            after = self._transition(response_trigger(event.response.status_code, sending=True))
            self._last_response = event.response
            if after is S.COMPLETED:
                self._arm(T.TIMER_J, now + self.timers.j)
            return [Transmit(event.response)]
        if not isinstance(event, MessageReceived) or not isinstance(event.message, Request):
            raise LocalProtocolError(f"a non-INVITE server transaction cannot handle {event!r}")
        self._transition(T.RECV_REQUEST)
        if self._last_response is not None:
            return [Transmit(self._last_response)]
        return []

    def _on_timer(self, timer: Trigger, when: float) -> list[Output]:
        self._transition(timer)
        return self._finish(TerminationReason.COMPLETED)  # Timer J
