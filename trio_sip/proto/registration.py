"""The REGISTER machine for one binding: RFC 3261 §10.2 (UAC side), sans-I/O.

Theory of operation
-------------------
A :class:`Registration` keeps one Contact bound to one address-of-record. It follows the
timed-machine contract (docs/architecture.md, Contract 2): ``start(now)``, ``handle(event,
now)``, ``handle_timer(now)``, ``close(now)``, ``deadline``, ``state`` and ``TRANSITIONS``. It
builds the REGISTER requests and hands them out as :class:`SendRequest`; the shell runs each in a
non-INVITE client transaction and feeds back :class:`ResponseReceived` or :class:`RequestFailed`
(timeout, transport error). Every state change is a :class:`StateChanged` with its reason.

RFC 3261 §10.2 rules it implements:

* "Request-URI: ... names the domain of the location service ... The 'userinfo' and '@'
  components of the SIP URI MUST NOT be present" (``registrar``, default ``sip:<AOR host>``);
  "To: ... contains the address of record"; "From: ... the address-of-record ... unless the
  request is a third-party registration"; "Call-ID: All registrations from a UAC SHOULD use the
  same Call-ID header field value for registrations sent to a particular registrar"; "CSeq: ...
  A UA MUST increment the CSeq value by one for each REGISTER request with the same Call-ID"
  (a resend after a 401/407/423 is a new request, so it gets the next number too).
* §10.2.1.1: the requested lifetime goes in an ``Expires`` header. §10.2.4: "The 200 (OK)
  response from the registrar contains a list of Contact fields enumerating all current
  bindings"; the granted lifetime is the ``expires`` parameter of the Contact that matches ours,
  else the response's Expires, else what we asked for.
* §10.3 step 7 / §21.4.17: "423 (Interval Too Brief) ... The response MUST contain a
  Min-Expires header field": resend at once asking for Min-Expires.
* 401/407 (§22.2): the injected :class:`~trio_sip.proto.auth.DigestClient` answers the
  challenge and the REGISTER goes again with credentials; a second challenge for a realm we
  already answered, without ``stale=true``, fails (RFC 7616 §3.3). Refreshes are authorised up
  front with the cached challenge.
* 503 with Retry-After (§21.5.4): retry after that many seconds (even with ``reg_interval`` 0:
  the server asked for it).
* §10.2.2: unregistering sends the binding with ``Expires: 0`` (:meth:`Registration.close`).

Refresh rule: with a granted lifetime of E seconds the refresh is due after
``max(E - 64*T1, E / 2)`` (:func:`refresh_delay`): 32 s before expiry with the default T1, which
leaves a whole transaction timeout (Timer F) for the refresh to complete, and half-way for short
lifetimes (E < 64 s) so it never goes out at the last second.

Failure policy (docs/dialogs.md): a timeout, a transport error or a 3xx-6xx final response puts
the machine in FAILED with the reason; it tries again ``reg_interval`` seconds later (the next
tick; the shell sends it to the next target), never when ``reg_interval`` is 0.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Iterable, Mapping
from typing import Final, TypeVar

import attrs

from .auth import AuthenticationFailed, DigestClient
from .errors import LocalProtocolError
from .fsm import step
from .ids import new_branch, new_call_id, new_tag
from .message import Request, Response
from .timers import TimerConfig
from .uri import NameAddress, SipUri, Uri, parse_name_addr, parse_uri

__all__ = [
    "DEFAULT_REG_INTERVAL",
    "MAX_CHALLENGES",
    "TRANSITIONS",
    "Registration",
    "RegistrationOutput",
    "RegistrationState",
    "RegistrationTrigger",
    "RequestFailed",
    "ResponseReceived",
    "SendRequest",
    "StateChanged",
    "move_state",
    "refresh_delay",
    "retry_after_503",
    "same_binding",
]

#: Seconds between attempts after a failure, unless configured (0: never resent).
DEFAULT_REG_INTERVAL: Final = 3600.0
#: Consecutive 401/407 answers accepted before giving up (stale nonces included).
MAX_CHALLENGES: Final = 3


class RegistrationState(enum.Enum):
    """The states of a REGISTER refresh machine (RFC 3261 §10)."""

    UNREGISTERED = "unregistered"
    REGISTERING = "registering"
    REGISTERED = "registered"
    FAILED = "failed"
    UNREGISTERING = "unregistering"


class RegistrationTrigger(enum.Enum):
    """What moves a :class:`Registration` (the triggers of :data:`TRANSITIONS`)."""

    START = "start"
    CLOSE = "close"
    #: A 2xx to our REGISTER.
    SUCCESS = "2xx"
    #: A 401/407/423 answered at once with a new REGISTER.
    RESEND = "resend"
    #: A timeout, a transport error or a 3xx-6xx (503 with Retry-After included).
    FAILURE = "failure"
    #: The refresh (REGISTERED) or the retry (FAILED) is due.
    TIMER = "timer"


R = RegistrationState
RT = RegistrationTrigger
#: state -> {trigger: next state}; an event missing from a state's row is illegal there
#: (:func:`~trio_sip.proto.fsm.step` raises LocalProtocolError). Self-loops are events that
#: leave the state as it is.
TRANSITIONS: Final[dict[RegistrationState, dict[RegistrationTrigger, RegistrationState]]] = {
    R.UNREGISTERED: {
        RT.START: R.REGISTERING,
        RT.CLOSE: R.UNREGISTERED,
    },
    R.REGISTERING: {
        RT.SUCCESS: R.REGISTERED,
        RT.RESEND: R.REGISTERING,
        RT.FAILURE: R.FAILED,
        RT.CLOSE: R.UNREGISTERING,
    },
    R.REGISTERED: {
        RT.TIMER: R.REGISTERED,
        RT.SUCCESS: R.REGISTERED,
        RT.RESEND: R.REGISTERED,
        RT.FAILURE: R.FAILED,
        RT.CLOSE: R.UNREGISTERING,
    },
    R.FAILED: {
        RT.TIMER: R.REGISTERING,
        RT.CLOSE: R.UNREGISTERED,
    },
    R.UNREGISTERING: {
        RT.SUCCESS: R.UNREGISTERED,
        RT.RESEND: R.UNREGISTERING,
        RT.FAILURE: R.UNREGISTERED,
        RT.CLOSE: R.UNREGISTERING,
    },
}


# ------------------------------------------------------------------------ inputs and outputs


@attrs.frozen(slots=True)
class ResponseReceived:
    """Input: the final (or provisional) response to the request we sent last."""

    response: Response


@attrs.frozen(slots=True)
class RequestFailed:
    """Input: the request's transaction failed without a response (timeout, transport)."""

    reason: str


@attrs.frozen(slots=True)
class SendRequest:
    """Output: run ``request`` in a new client transaction."""

    request: Request


@attrs.frozen(slots=True)
class StateChanged:
    """Output: the machine moved from ``old`` to ``new`` because of ``reason``."""

    old: enum.Enum
    new: enum.Enum
    reason: str


RegistrationOutput = SendRequest | StateChanged

_S = TypeVar("_S", bound=enum.Enum)
_T = TypeVar("_T", bound=enum.Enum)


def move_state(
    what: str, table: Mapping[_S, Mapping[_T, _S]], old: _S, trigger: _T, reason: str
) -> tuple[_S, list[StateChanged]]:
    """One table-driven step of a refresh machine (REGISTER, SUBSCRIBE): the next state and
    the ``StateChanged`` to report (none when the state stays). An event with no entry in
    ``table`` for ``old`` raises LocalProtocolError naming ``what`` (:func:`.fsm.step`)."""
    new = step(what, table, old, trigger)
    return new, ([] if new is old else [StateChanged(old, new, reason)])


def retry_after_503(response: Response, now: float) -> float | None:
    """When a 503 with Retry-After lets the next attempt go (§21.5.4); None for anything else."""
    if response.status_code == 503 and response.retry_after is not None:
        return now + response.retry_after.seconds
    return None


def refresh_delay(granted: float, config: TimerConfig | None = None) -> float:
    """Seconds after a 2xx at which a binding granted for ``granted`` s is refreshed."""
    margin = 64 * (config or TimerConfig()).t1
    return max(granted - margin, granted / 2)


def same_binding(a: Uri, b: Uri) -> bool:
    """Contact URIs name the same binding (§10.3 step 6 compares them per §19.1.4; here:
    scheme, user, case-insensitive host and port)."""
    if isinstance(a, SipUri) and isinstance(b, SipUri):
        return (a.scheme, a.user, a.host.lower(), a.port) == (
            b.scheme,
            b.user,
            b.host.lower(),
            b.port,
        )
    return str(a) == str(b)


class Registration:
    """One binding of ``contact`` to ``aor`` at a registrar."""

    def __init__(
        self,
        aor: str,
        contact: str,
        *,
        rng: random.Random,
        registrar: str | None = None,
        expires: int = 3600,
        reg_interval: float = DEFAULT_REG_INTERVAL,
        via: str = "SIP/2.0/UDP invalid",
        digest: DigestClient | None = None,
        config: TimerConfig | None = None,
        call_id: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        self.aor = parse_name_addr(aor)
        self.contact = parse_name_addr(contact)
        aor_uri = self.aor.uri
        if registrar is None:
            if not isinstance(aor_uri, SipUri):
                raise LocalProtocolError(f"cannot derive a registrar from {aor!r}")
            registrar = f"{aor_uri.scheme}:{aor_uri.host}"
        self.registrar: Uri = parse_uri(registrar)
        if expires < 1 or reg_interval < 0:
            raise LocalProtocolError("expires must be >= 1 and reg_interval >= 0")
        self.expires = expires
        self.reg_interval = reg_interval
        self.via = via
        self.digest = digest
        self.config = config or TimerConfig()
        self.call_id = call_id or new_call_id(rng)
        self.from_tag = new_tag(rng)
        self.extra_headers = tuple(headers)
        self.rng = rng
        self.state = R.UNREGISTERED
        self.deadline: float | None = None
        self.cseq = 0
        #: Seconds the registrar granted in its last 2xx (None before the first).
        self.granted: int | None = None
        #: Why the machine is in its current state.
        self.reason = ""
        self.last_request: Request | None = None
        self._in_flight = False
        self._challenges = 0

    # ------------------------------------------------------------------ building

    def build_register(self, expires: int) -> Request:
        """The next REGISTER (CSeq + 1, same Call-ID and From tag, fresh branch)."""
        self.cseq += 1
        uri = str(self.registrar)
        pairs = [
            ("Via", f"{self.via};branch={new_branch(self.rng)}"),
            ("Max-Forwards", "70"),
            (
                "To",
                str(
                    NameAddress(self.aor.uri, self.aor.display_name, self.aor.params.without("tag"))
                ),
            ),
            ("From", str(self.aor.with_tag(self.from_tag))),
            ("Call-ID", self.call_id),
            ("CSeq", f"{self.cseq} REGISTER"),
            ("Contact", str(self.contact)),
            ("Expires", str(expires)),
        ]
        if self.digest is not None:
            pairs += self.digest.authorization_headers("REGISTER", uri)
        pairs += self.extra_headers
        return Request("REGISTER", uri, pairs)

    def _send(self, expires: int) -> SendRequest:
        self.last_request = self.build_register(expires)
        self._in_flight = True
        return SendRequest(self.last_request)

    def _move(self, trigger: RegistrationTrigger, reason: str) -> list[RegistrationOutput]:
        self.state, changed = move_state("registration", TRANSITIONS, self.state, trigger, reason)
        self.reason = reason
        return [*changed]

    # ------------------------------------------------------------------ contract 2

    def start(self, now: float) -> list[RegistrationOutput]:
        """Send the first REGISTER."""
        out = self._move(RT.START, "start")
        return [*out, self._send(self.expires)]

    def close(self, now: float) -> list[RegistrationOutput]:
        """Unregister (Expires: 0) if a binding may exist; no more refreshes or retries."""
        self.deadline = None
        if self.state in (R.REGISTERED, R.REGISTERING):
            out = self._move(RT.CLOSE, "closing")
            return [*out, self._send(0)]
        return self._move(RT.CLOSE, "closed")

    def handle_timer(self, now: float) -> list[RegistrationOutput]:
        """The refresh (REGISTERED) or the retry after a failure (FAILED) is due."""
        if self.deadline is None or now < self.deadline:
            return []
        self.deadline = None
        reason = "refresh" if self.state is R.REGISTERED else "retry"
        out = self._move(RT.TIMER, reason)
        return [*out, self._send(self.expires)]

    def handle(
        self, event: ResponseReceived | RequestFailed, now: float
    ) -> list[RegistrationOutput]:
        if not self._in_flight:
            return []
        if isinstance(event, RequestFailed):
            self._in_flight = False
            return self._fail(event.reason, now)
        response = event.response
        if (
            response.cseq.method != "REGISTER"
            or response.cseq.seq != self.cseq
            or response.status_code < 200
        ):
            return []  # a provisional response or a stray one for an earlier REGISTER
        self._in_flight = False
        status = response.status_code
        why = f"{status} {response.reason}"
        if status < 300:
            self._challenges = 0
            if self.state is R.UNREGISTERING:
                return self._move(RT.SUCCESS, why)
            self.granted = self._granted(response)
            self.deadline = now + refresh_delay(self.granted, self.config)
            return self._move(RT.SUCCESS, why)
        expires = 0 if self.state is R.UNREGISTERING else self.expires
        if status in (401, 407):
            return self._challenged(response, why, expires, now)
        if status == 423 and expires:
            minimum = response.min_expires
            if minimum is None or minimum <= self.expires:
                return self._fail(f"{why} without a usable Min-Expires", now)
            self.expires = minimum
            return [*self._move(RT.RESEND, why), self._send(minimum)]
        return self._fail(why, now, retry_after_503(response, now))

    # ------------------------------------------------------------------ helpers

    def _challenged(
        self, response: Response, why: str, expires: int, now: float
    ) -> list[RegistrationOutput]:
        if self.digest is None:
            return self._fail(f"{why}: no credentials configured", now)
        self._challenges += 1
        if self._challenges > MAX_CHALLENGES:
            return self._fail(f"{why}: challenged {MAX_CHALLENGES} times in a row", now)
        request = self.last_request
        assert request is not None
        challenges = response.www_authenticate + response.proxy_authenticate
        sent = request.authorization + request.proxy_authorization
        try:
            self.digest.handle_challenge(response.status_code, challenges, sent=sent)
        except AuthenticationFailed as exc:
            return self._fail(f"{why}: {exc}", now)
        return [*self._move(RT.RESEND, why), self._send(expires)]

    def _fail(
        self, reason: str, now: float, retry_at: float | None = None
    ) -> list[RegistrationOutput]:
        self._challenges = 0
        if retry_at is None and self.reg_interval > 0 and self.state is not R.UNREGISTERING:
            retry_at = now + self.reg_interval
        self.deadline = None if self.state is R.UNREGISTERING else retry_at
        return self._move(RT.FAILURE, reason)

    def _granted(self, response: Response) -> int:
        for c in response.contacts:
            if (
                not c.is_wildcard
                and same_binding(c.uri, self.contact.uri)
                and c.expires is not None
            ):
                return c.expires
        return response.expires if response.expires is not None else self.expires
