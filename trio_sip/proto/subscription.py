"""SIP-specific event notification, RFC 6665: the subscriber machine and notifier helpers.

Theory of operation
-------------------
A :class:`Subscription` is the subscriber side of one subscription, in the timed-machine shape
of :mod:`trio_sip.proto.registration` (same inputs and outputs, plus :class:`NotifyReceived`
in and :class:`SendResponse` / :class:`Notified` out). The rules it follows:

* §4.1.2.1: "The SUBSCRIBE request ... MUST contain an 'Event' header field" and "SHOULD
  contain an 'Expires' header field"; "a 200-class response ... indicates that the
  subscription has been accepted"; the Expires of that response is the granted duration
  ("the notifier ... MUST include an 'Expires' header field").
* §4.1.2.4: the dialog is created by the 2xx *or* by a NOTIFY, whichever arrives first: "the
  subscriber MUST be prepared to receive a NOTIFY request before the SUBSCRIBE transaction has
  completed". A NOTIFY-made dialog takes its remote tag, target and route set from the NOTIFY.
* §4.1.2.2 refresh: "the subscriber SHOULD refresh the subscription ... by sending a SUBSCRIBE
  request with the same Event" inside the dialog, before it expires -- at
  :func:`~trio_sip.proto.registration.refresh_delay` of the granted (or NOTIFY ``expires``)
  duration, the same rule as REGISTER. 423 gets Min-Expires, 503 Retry-After is honoured, any
  other failure waits for the next ``reg_interval`` tick (never when it is 0).
* §4.1.3 NOTIFY: "Subscription-State" is active, pending or terminated. On terminated:
  "deactivated" / "timeout": "the subscriber SHOULD retry immediately with a new subscription";
  "probation" / "giveup": retry later, after the "retry-after" parameter when present;
  "rejected" / "noresource" / "invalid" (or no reason): the subscription is over.
* §4.1.2.3 unsubscribing: "a subscriber ... sends a SUBSCRIBE request with an 'Expires' header
  field of 0"; the subscription ends on its final response or the NOTIFY with terminated.

Notifier side: :func:`answer_subscribe` (200/202 with Expires, §4.2.1.1: "the notifier MAY
shorten" the duration) and :func:`build_notify` (NOTIFY with Event and Subscription-State).
"""

from __future__ import annotations

import enum
import random
from collections.abc import Iterable
from typing import Final

import attrs

from .dialog import Dialog, DialogId, DialogState
from .dialog_requests import build_request
from .errors import LocalProtocolError, ParseError
from .fields import parse_int
from .ids import new_branch, new_call_id, new_tag
from .message import Request, Response, make_response
from .outputs import SendResponse as SendResponse
from .registration import (
    DEFAULT_REG_INTERVAL,
    RequestFailed,
    ResponseReceived,
    SendRequest,
    StateChanged,
    move_state,
    refresh_delay,
    retry_after_503,
)
from .timers import TimerConfig
from .uri import parse_name_addr, parse_params

__all__ = [
    "TRANSITIONS",
    "NotifyReceived",
    "Notified",
    "SendResponse",
    "SubState",
    "Subscription",
    "SubscriptionOutput",
    "SubscriptionState",
    "SubscriptionTrigger",
    "answer_subscribe",
    "build_notify",
    "parse_subscription_state",
]


class SubscriptionState(enum.Enum):
    """The states of a SUBSCRIBE/NOTIFY subscription (RFC 6665)."""

    IDLE = "idle"
    SUBSCRIBING = "subscribing"
    PENDING = "pending"
    ACTIVE = "active"
    FAILED = "failed"
    UNSUBSCRIBING = "unsubscribing"
    TERMINATED = "terminated"


class SubscriptionTrigger(enum.Enum):
    """What moves a :class:`Subscription` (the triggers of :data:`TRANSITIONS`)."""

    START = "start"
    CLOSE = "close"
    #: Closed while live but before any dialog exists: nothing to unsubscribe.
    CLOSE_WITHOUT_DIALOG = "close without dialog"
    #: A 2xx to our SUBSCRIBE.
    SUCCESS = "2xx"
    #: A 423 answered at once with a new SUBSCRIBE.
    RESEND = "resend"
    #: A timeout, a transport error or a 3xx-6xx (503 with Retry-After included).
    FAILURE = "failure"
    #: The refresh (live states) or the retry (FAILED) is due.
    TIMER = "timer"
    #: A NOTIFY with Subscription-State active / pending / terminated.
    NOTIFY_ACTIVE = "active"
    NOTIFY_PENDING = "pending"
    NOTIFY_TERMINATED = "terminated"
    #: A terminated NOTIFY asking for an immediate new subscription (deactivated, timeout).
    RESUBSCRIBE = "resubscribe"


S = SubscriptionState
ST = SubscriptionTrigger
_LIVE = (S.SUBSCRIBING, S.PENDING, S.ACTIVE)
#: NOTIFY's Subscription-State value -> its trigger.
_NOTIFY_TRIGGER: Final = {
    "active": ST.NOTIFY_ACTIVE,
    "pending": ST.NOTIFY_PENDING,
    "terminated": ST.NOTIFY_TERMINATED,
}


def _live_row(state: SubscriptionState) -> dict[SubscriptionTrigger, SubscriptionState]:
    """The row of SUBSCRIBING, PENDING and ACTIVE: a NOTIFY says where the subscription is."""
    return {
        ST.SUCCESS: state,
        ST.TIMER: state,
        ST.RESEND: state,
        ST.NOTIFY_ACTIVE: S.ACTIVE,
        ST.NOTIFY_PENDING: S.PENDING,
        ST.NOTIFY_TERMINATED: S.TERMINATED,
        ST.RESUBSCRIBE: S.SUBSCRIBING,
        ST.FAILURE: S.FAILED,
        ST.CLOSE: S.UNSUBSCRIBING,
        ST.CLOSE_WITHOUT_DIALOG: S.TERMINATED,
    }


#: state -> {trigger: next state}; an event missing from a state's row is illegal there
#: (:func:`~trio_sip.proto.fsm.step` raises LocalProtocolError). Self-loops are events that
#: leave the state as it is.
TRANSITIONS: Final[dict[SubscriptionState, dict[SubscriptionTrigger, SubscriptionState]]] = {
    S.IDLE: {ST.START: S.SUBSCRIBING, ST.CLOSE: S.TERMINATED},
    S.SUBSCRIBING: _live_row(S.SUBSCRIBING),
    S.PENDING: _live_row(S.PENDING),
    S.ACTIVE: _live_row(S.ACTIVE),
    S.FAILED: {ST.TIMER: S.SUBSCRIBING, ST.CLOSE: S.TERMINATED},
    S.UNSUBSCRIBING: {
        ST.SUCCESS: S.TERMINATED,
        ST.FAILURE: S.TERMINATED,
        ST.RESEND: S.UNSUBSCRIBING,
        ST.NOTIFY_ACTIVE: S.UNSUBSCRIBING,
        ST.NOTIFY_PENDING: S.UNSUBSCRIBING,
        ST.NOTIFY_TERMINATED: S.TERMINATED,
        ST.CLOSE: S.UNSUBSCRIBING,
    },
    S.TERMINATED: {ST.CLOSE: S.TERMINATED},
}


@attrs.frozen(slots=True)
class SubState:
    """A Subscription-State value (RFC 6665 §8.2.3)."""

    value: str  # active / pending / terminated (lower-case)
    reason: str | None = None
    expires: int | None = None
    retry_after: int | None = None

    def __str__(self) -> str:
        out = self.value
        for name, v in (("reason", self.reason), ("expires", self.expires)):
            if v is not None:
                out += f";{name}={v}"
        if self.retry_after is not None:
            out += f";retry-after={self.retry_after}"
        return out


def parse_subscription_state(text: str) -> SubState:
    value, _, rest = text.partition(";")
    params = parse_params(rest) if rest else None

    def num(name: str) -> int | None:
        v = params.get(name) if params else None
        return None if v is None else parse_int(v, f"Subscription-State {name}")

    reason = params.get("reason") if params else None
    return SubState(
        value.strip().lower(),
        reason.lower() if reason else None,
        num("expires"),
        num("retry-after"),
    )


@attrs.frozen(slots=True)
class NotifyReceived:
    """Input: a NOTIFY for this subscription arrived (the shell matched Call-ID / tags)."""

    request: Request


@attrs.frozen(slots=True)
class Notified:
    """Output: a NOTIFY was accepted; pass its state and body to the application."""

    request: Request
    state: SubState


SubscriptionOutput = SendRequest | StateChanged | SendResponse | Notified


class Subscription:
    """The subscriber side of one subscription to ``event`` at ``target``."""

    def __init__(
        self,
        target: str,
        event: str,
        *,
        local: str,
        contact: str,
        rng: random.Random,
        expires: int = 3600,
        reg_interval: float = DEFAULT_REG_INTERVAL,
        via: str = "SIP/2.0/UDP invalid",
        accept: str | None = None,
        config: TimerConfig | None = None,
    ) -> None:
        self.target = parse_name_addr(target)
        self.local = parse_name_addr(local)
        self.contact = parse_name_addr(contact)
        self.event = event
        self.expires = expires
        self.reg_interval = reg_interval
        self.via = via
        self.accept = accept
        self.rng = rng
        self.config = config or TimerConfig()
        self.state = S.IDLE
        self.deadline: float | None = None
        self.dialog: Dialog | None = None
        self.reason = ""
        self.last_request: Request | None = None
        self._in_flight = False
        self._new_ids()

    def _new_ids(self) -> None:
        self.call_id = new_call_id(self.rng)
        self.from_tag = new_tag(self.rng)
        self.cseq = 0
        self.dialog = None

    # ------------------------------------------------------------------ requests

    def _headers(self, expires: int) -> list[tuple[str, str]]:
        out = [("Event", self.event), ("Expires", str(expires))]
        return out if self.accept is None else [*out, ("Accept", self.accept)]

    def _send(self, expires: int) -> SendRequest:
        via = f"{self.via};branch={new_branch(self.rng)}"
        if self.dialog is not None:
            request = build_request(
                self.dialog, "SUBSCRIBE", via=via, headers=self._headers(expires)
            )
        else:
            self.cseq += 1
            request = Request(
                "SUBSCRIBE",
                self.target.uri,
                [
                    ("Via", via),
                    ("Max-Forwards", "70"),
                    ("To", str(self.target)),
                    ("From", str(self.local.with_tag(self.from_tag))),
                    ("Call-ID", self.call_id),
                    ("CSeq", f"{self.cseq} SUBSCRIBE"),
                    ("Contact", str(self.contact)),
                    *self._headers(expires),
                ],
            )
        self.last_request = request
        self._in_flight = True
        return SendRequest(request)

    def _move(self, trigger: SubscriptionTrigger, reason: str) -> list[SubscriptionOutput]:
        self.state, changed = move_state("subscription", TRANSITIONS, self.state, trigger, reason)
        self.reason = reason
        return [*changed]

    # ------------------------------------------------------------------ contract 2

    def start(self, now: float) -> list[SubscriptionOutput]:
        return [*self._move(ST.START, "start"), self._send(self.expires)]

    def close(self, now: float) -> list[SubscriptionOutput]:
        """Unsubscribe (Expires: 0) inside the dialog, or just stop if there is none."""
        self.deadline = None
        if self.state in _LIVE and self.dialog is not None:
            return [*self._move(ST.CLOSE, "closing"), self._send(0)]
        if self.state in _LIVE:  # no dialog yet: nothing to unsubscribe
            return self._move(ST.CLOSE_WITHOUT_DIALOG, "closed")
        return self._move(ST.CLOSE, "closed")

    def handle_timer(self, now: float) -> list[SubscriptionOutput]:
        if self.deadline is None or now < self.deadline:
            return []
        self.deadline = None
        if self.state is S.FAILED:
            self._new_ids()
            return [*self._move(ST.TIMER, "retry"), self._send(self.expires)]
        return [*self._move(ST.TIMER, "refresh"), self._send(self.expires)]

    def handle(
        self, event: ResponseReceived | RequestFailed | NotifyReceived, now: float
    ) -> list[SubscriptionOutput]:
        if isinstance(event, NotifyReceived):
            return self._notify(event.request, now)
        if not self._in_flight:
            return []
        if isinstance(event, RequestFailed):
            self._in_flight = False
            return self._fail(event.reason, now)
        response = event.response
        request = self.last_request
        assert request is not None
        if response.cseq.seq != request.cseq.seq or response.status_code < 200:
            return []
        self._in_flight = False
        status = response.status_code
        why = f"{status} {response.reason}"
        if status < 300:
            if self.dialog is None and response.to.tag is not None:
                self.dialog = Dialog.from_uac(request, response, rng=self.rng)
            elif self.dialog is not None:
                self.dialog.receive_response(request, response)
            if self.state is not S.UNSUBSCRIBING:
                granted = response.expires if response.expires is not None else self.expires
                self.deadline = now + refresh_delay(granted, self.config)
            return self._move(ST.SUCCESS, why)
        if status == 423 and response.min_expires and response.min_expires > self.expires:
            self.expires = response.min_expires
            return [*self._move(ST.RESEND, why), self._send(self.expires)]
        return self._fail(why, now, retry_after_503(response, now))

    # ------------------------------------------------------------------ helpers

    def _fail(
        self, reason: str, now: float, retry_at: float | None = None
    ) -> list[SubscriptionOutput]:
        if retry_at is None and self.reg_interval > 0:
            retry_at = now + self.reg_interval
        self.deadline = None if self.state is S.UNSUBSCRIBING else retry_at
        return self._move(ST.FAILURE, reason)

    def _notify(self, notify: Request, now: float) -> list[SubscriptionOutput]:
        try:
            sub = parse_subscription_state(notify.headers.get("Subscription-State") or "")
        except ParseError:
            sub = SubState("")
        ours = notify.call_id == self.call_id and notify.to.tag == self.from_tag
        if not ours or sub.value not in ("active", "pending", "terminated"):
            status = 481 if not ours else 400
            return [SendResponse(make_response(notify, status))]
        if self.state in (S.TERMINATED, S.FAILED, S.IDLE):
            # RFC 6665 §4.1.3: a NOTIFY that matches no outstanding subscription gets 481
            # (an ended one included), which tells the notifier to stop.
            return [SendResponse(make_response(notify, 481))]
        if self.dialog is None:
            self.dialog = _dialog_from_notify(self, notify)
        elif notify.from_.tag != self.dialog.id.remote_tag:
            return [SendResponse(make_response(notify, 481))]  # a second fork: not kept
        rejection = self.dialog.receive_request(notify)
        if rejection is not None:
            return [SendResponse(rejection)]
        out: list[SubscriptionOutput] = [
            SendResponse(make_response(notify, 200)),
            Notified(notify, sub),
        ]
        why = f"NOTIFY {sub}"
        if sub.value != "terminated":
            if sub.expires is not None and self.state is not S.UNSUBSCRIBING:
                self.deadline = now + refresh_delay(sub.expires, self.config)
            return [*out, *self._move(_NOTIFY_TRIGGER[sub.value], why)]
        self._in_flight = False
        if self.state is S.UNSUBSCRIBING:
            return [*out, *self._move(ST.NOTIFY_TERMINATED, why)]
        if sub.reason in ("deactivated", "timeout"):
            out += self._move(ST.RESUBSCRIBE, why)
            self._new_ids()
            return [*out, self._send(self.expires)]
        if sub.reason in ("probation", "giveup"):
            retry = sub.retry_after
            return [*out, *self._fail(why, now, None if retry is None else now + retry)]
        self.deadline = None
        return [*out, *self._move(ST.NOTIFY_TERMINATED, why)]


def _dialog_from_notify(sub: Subscription, notify: Request) -> Dialog:
    """RFC 6665 §4.1.2.4: the NOTIFY (a request to us) makes the dialog: its From tag is the
    remote tag, its Contact the remote target, its Record-Route (as-is) the route set."""
    remote_tag = notify.from_.tag
    if remote_tag is None:
        raise ParseError("NOTIFY without a From tag")
    contacts = notify.contacts
    return Dialog(
        id=DialogId(sub.call_id, sub.from_tag, remote_tag),
        state=DialogState.CONFIRMED,
        is_uac=True,
        local_uri=sub.local.with_tag(sub.from_tag),
        remote_uri=sub.target.with_tag(remote_tag),
        remote_target=contacts[0].uri if contacts else sub.target.uri,
        route_set=notify.record_routes,
        local_seq=sub.cseq,
        remote_seq=None,
        local_contact=sub.contact,
        rng=sub.rng,
        initial_seq=sub.cseq,
    )


# ---------------------------------------------------------------------- notifier side


def answer_subscribe(
    request: Request,
    *,
    to_tag: str,
    contact: str,
    max_expires: int = 3600,
    status: int = 200,
    headers: Iterable[tuple[str, str]] = (),
) -> tuple[Response, int]:
    """Accept a SUBSCRIBE with 200 or 202; returns the response and the granted seconds
    (the requested Expires, default ``max_expires``, shortened to ``max_expires``)."""
    if status not in (200, 202):
        raise LocalProtocolError("a SUBSCRIBE is accepted with 200 or 202")
    requested = request.expires if request.expires is not None else max_expires
    granted = min(requested, max_expires)
    extra = [("Expires", str(granted)), ("Contact", contact), *headers]
    return make_response(request, status, to_tag=to_tag, headers=extra), granted


def build_notify(
    dialog: Dialog,
    *,
    via: str,
    event: str,
    state: SubState,
    body: bytes = b"",
    content_type: str | None = None,
) -> Request:
    """A NOTIFY in the subscription's dialog with Event and Subscription-State (§4.2.2)."""
    headers = [("Event", event), ("Subscription-State", str(state))]
    return build_request(
        dialog, "NOTIFY", via=via, headers=headers, body=body, content_type=content_type
    )
