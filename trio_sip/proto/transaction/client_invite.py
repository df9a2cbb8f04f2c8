"""The INVITE client transaction: RFC 3261 §17.1.1 as amended by RFC 6026.

Theory of operation
-------------------
States: CALLING -> PROCEEDING -> COMPLETED / ACCEPTED -> TERMINATED (RFC 6026 Figure 5).

* §17.1.1.2: "the client transaction MUST start timer A with a value of T1" (unreliable
  transports only) and "MUST start timer B with a value of 64*T1 seconds" (bounded here by
  ``sip_transaction_timeout``). "When timer A fires, the client transaction MUST retransmit the
  request ... and reset the timer with a value of 2*T1" (doubling, no cap: 0, 0.5, 1.5, 3.5,
  7.5, 15.5, 31.5 s). "If timer B fires while in the Calling state, the client transaction
  SHOULD inform the TU that a timeout has occurred" -> TransactionTimeout.
* "If the client transaction receives a provisional response while in the Calling state, it
  transitions to the Proceeding state. In the Proceeding state, the client transaction SHOULD
  NOT retransmit the request any longer." Timer B belongs to Calling only: once a provisional
  has arrived the TU bounds the wait (a ringing call can last minutes).
* "When in either the Calling or Proceeding states, reception of a response with status code
  from 300-699 MUST cause the client transaction to transition to Completed ... and MUST
  generate an ACK request" (§17.1.1.3, built by :func:`ack_for_failure`) and start Timer D
  (32 s, 0 over reliable transports). "Any retransmissions of the final response that are
  received while in the Completed state MUST cause the ACK to be re-passed to the transport."
* RFC 6026 §8.4: "If a 2xx response is received while the client INVITE state machine is in
  the Calling or Proceeding states, it MUST transition to the Accepted state ... and start
  timer M with a value of 64*T1". "Any 2xx responses that match this client transaction and
  that are received while in the Accepted state MUST be passed up to the TU. The client
  transaction MUST NOT generate an ACK to the 2xx response": the TU (the dialog) does.
* Timeout roles (``self.rule``, timeouts.py): in USER_AGENT and STATEFUL_PROXY the stack
  resends on Timer A; in USER_AGENT_APP_RETRANSMIT a Timer A tick reports
  ``RetransmitTimeout("A")`` *instead* of resending, and ApplicationRetransmit resends (in
  Calling only). Timer B reports ``TransactionTimeout("B")`` in USER_AGENT only: the seed's
  "User Agent" hears TRANSACTION on non-INVITE transactions only, and a stateful proxy's
  INVITE is end to end; everywhere Timer B ends the machine with ``Terminated(TIMEOUT)``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

from ..errors import LocalProtocolError
from ..message import Request, Response
from ..outputs import (
    ApplicationRetransmit,
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

__all__ = ["TRANSITIONS", "ClientInviteState", "ClientInviteTransaction", "ack_for_failure"]


class ClientInviteState(enum.Enum):
    """The states of the INVITE client transaction (RFC 3261 §17.1.1, RFC 6026)."""

    CALLING = "Calling"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


S = ClientInviteState
T = Trigger

#: This machine's rows of the timeout table (USER_AGENT, USER_AGENT_APP_RETRANSMIT,
#: STATEFUL_PROXY) and the timers a per-transaction retransmit interval scales.
_RULES: Final = stateful_rules(Side.CLIENT, True)
_SCALED: Final[tuple[Trigger, ...]] = (T.TIMER_A, T.TIMER_B)

TRANSITIONS: dict[ClientInviteState, dict[Trigger, ClientInviteState]] = {
    S.CALLING: {
        T.RECV_1XX: S.PROCEEDING,
        T.RECV_2XX: S.ACCEPTED,
        T.RECV_FAILURE: S.COMPLETED,
        T.TIMER_A: S.CALLING,
        T.APP_RETRANSMIT: S.CALLING,
        T.TIMER_B: S.TERMINATED,
        T.TRANSPORT_ERROR: S.TERMINATED,
    },
    S.PROCEEDING: {
        T.RECV_1XX: S.PROCEEDING,
        T.RECV_2XX: S.ACCEPTED,
        T.RECV_FAILURE: S.COMPLETED,
        T.TRANSPORT_ERROR: S.TERMINATED,
    },
    S.COMPLETED: {
        T.RECV_1XX: S.COMPLETED,  # late provisional: absorbed
        T.RECV_2XX: S.COMPLETED,  # absorbed
        T.RECV_FAILURE: S.COMPLETED,  # retransmitted final: ACK again
        T.TIMER_D: S.TERMINATED,
        T.TRANSPORT_ERROR: S.TERMINATED,
    },
    S.ACCEPTED: {
        T.RECV_1XX: S.ACCEPTED,  # absorbed
        T.RECV_2XX: S.ACCEPTED,  # passed up: the TU ACKs each 2xx
        T.RECV_FAILURE: S.ACCEPTED,  # absorbed
        T.TIMER_M: S.TERMINATED,
        T.TRANSPORT_ERROR: S.TERMINATED,
    },
    S.TERMINATED: {},
}


def ack_for_failure(request: Request, response: Response) -> Request:
    """The ACK a client transaction sends for a 300-699 response (§17.1.1.3).

    "The ACK request constructed by the client transaction MUST contain values for the
    Call-ID, From, and Request-URI that are equal to the values of those header fields in the
    request passed to the transport by the client transaction ... The To header field in the
    ACK MUST equal the To header field in the response being acknowledged ... The ACK MUST
    contain a single Via header field, and this MUST be equal to the top Via header field of
    the original request. The CSeq header field in the ACK MUST contain the same value for the
    sequence number as was present in the original request, but the method parameter MUST be
    equal to 'ACK'. If the INVITE request whose response is being acknowledged had Route
    header fields, those header fields MUST appear in the ACK."
    """
    req, resp = request.headers, response.headers
    headers: list[tuple[str, str]] = [("Via", req.get_list("Via")[0])]  # as written
    headers += [("Route", value) for value in req.get_all("Route")]
    for name, source in (("Max-Forwards", req), ("From", req), ("To", resp), ("Call-ID", req)):
        value = source.get(name)
        if value is not None:
            headers.append((name, value))
    headers += [("CSeq", f"{request.cseq.seq} ACK"), ("Content-Length", "0")]
    return Request("ACK", request.uri_text, headers)


class ClientInviteTransaction(Machine[ClientInviteState]):
    """Sends an INVITE and retransmits it until a response; ACKs 300-699 itself."""

    # Annotated as in Machine: mypyc needs a subclass's attribute types to match the base's.
    TRANSITIONS: Mapping[ClientInviteState, Mapping[Trigger, ClientInviteState]] = TRANSITIONS
    INITIAL: enum.Enum = S.CALLING
    TERMINATED: enum.Enum = S.TERMINATED
    TIMER_ORDER: tuple[Trigger, ...] = (T.TIMER_B, T.TIMER_D, T.TIMER_M, T.TIMER_A)

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
            raise LocalProtocolError(f"an INVITE client transaction cannot send {request.method}")
        super().__init__(
            config, reliable=reliable, retransmit_interval=retransmit_interval, role=role
        )
        self.request = request
        self._ack: Request | None = None

    def _rules(self) -> tuple[TimeoutRule, ...]:
        return _RULES

    def _scaled(self) -> tuple[Trigger, ...]:
        return _SCALED

    def _start(self, now: float) -> list[Output]:
        if not self.reliable:
            self._arm(T.TIMER_A, now + self._interval)
        self._arm(T.TIMER_B, now + self.timers.b)
        return [Transmit(self.request)]

    def _on_input(self, event: Input, now: float) -> list[Output]:
        if not isinstance(event, MessageReceived) or not isinstance(event.message, Response):
            if isinstance(event, ApplicationRetransmit):
                self._check_app_retransmit()
                self._transition(T.APP_RETRANSMIT)
                return [Transmit(self.request)]
            raise LocalProtocolError(f"an INVITE client transaction cannot handle {event!r}")
        response = event.message
        before = self.state
        after = self._transition(response_trigger(response.status_code, sending=False))
        if before in (S.CALLING, S.PROCEEDING):
            self._disarm(T.TIMER_A, T.TIMER_B)
            if after is S.COMPLETED:
                self._ack = ack_for_failure(self.request, response)
                self._arm(T.TIMER_D, now + self.timers.d)
                return [Transmit(self._ack), Deliver(response)]
            if after is S.ACCEPTED:
                self._arm(T.TIMER_M, now + self.timers.m)
            return [Deliver(response)]
        if before is S.COMPLETED and response.status_code >= 300 and self._ack is not None:
            return [Transmit(self._ack)]
        if before is S.ACCEPTED and 200 <= response.status_code < 300:
            return [Deliver(response)]
        return []

    def _on_timer(self, timer: Trigger, when: float) -> list[Output]:
        self._transition(timer)
        if timer is T.TIMER_A:
            self._interval *= 2  # §17.1.1.2: doubling, no cap for INVITE
            self._arm(T.TIMER_A, when + self._interval)
            return self._retransmission(self.request, "A")
        if timer is T.TIMER_B:
            return self._timed_out("B")
        return self._finish(TerminationReason.COMPLETED)  # Timer D or M
