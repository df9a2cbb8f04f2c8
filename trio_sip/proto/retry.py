"""The per-request failover policy as pure decisions (docs/dialogs.md, "Retry policy").

Theory of operation
-------------------
When a client transaction fails -- a timeout (Timer B/F, bounded by ``sip_transaction_timeout``),
a transport error (ICMP unreachable, refused or reset connection, dead RFC 5626 flow), a 503 or
a 408 -- the shell asks :func:`decide` what to do. The answer is :class:`RetryNext` (a new client
transaction with a new branch, to target ``target_index`` of the ordered, blacklist-sorted
list), :class:`RetryLater` (REGISTER / SUBSCRIBE: at the next ``reg_interval`` tick) or
:class:`GiveUp` with the reason. The rules, one row per :class:`RequestKind` (``POLICY``):

* initial INVITE: the next target, once; a second failure fails the call. Seed 002: "The SIP
  Endpoint SDK always retries INVITE once, regardless of the number of proxies configured":
  with a single target the retry goes to that same address;
* mid-call re-INVITE (hold / retrieve): the next target, once, transparently (the same
  address too when it is the only one: it is an INVITE);
* the 2xx to an INVITE (its retransmission / ACK path), BYE and CANCEL: cycle through the
  targets until 32 s have passed since the first attempt -- only when
  ``sip_transaction_timeout`` < 32000 ms; with the RFC's 32 s timeout one attempt already took
  64*T1 and there is no retry;
* REGISTER and SUBSCRIBE (refreshes too): no immediate retry; the next target at the next
  ``reg_interval`` tick, never when ``reg_interval`` is 0;
* anything else: the next target, once.

:class:`RetryPlan` keeps one request's attempts and applies two charging rules on top of
:func:`decide` (docs/failover.md, "Charging"):

* refusals are free in the "once" rows: a transport error (refused, reset, ICMP unreachable)
  provably reached nobody, so it does not use up the single retry; the next *untried* target
  is attempted, and each target at most once per request. Timeouts, 503 and 408 are charged
  (the request may have been processed, or it cost the caller time). An INVITE whose targets
  are all tried while its retry is unused goes once more to the target tried longest ago (the
  same one when there is only one): at most ``targets + 1`` attempts, two of them charged;
* in the cycling rows a target is not attempted again sooner than ``sip_transaction_timeout``
  after its previous attempt began (targets that refuse at once are cycled at the pace of
  timeouts, not in a busy loop), and a retry that could not start inside the 32 s window
  gives up.

RFC 3261 §9.1 says a CANCEL goes where its INVITE went; cycling it to another proxy is a
deliberate deviation for proxy clusters that share state, and only happens under the short
timeout setting. Retries after a 503 honour nothing more here: Retry-After is the registration
machine's business (it reschedules the REGISTER).
"""

from __future__ import annotations

import enum
import math
from typing import Final

import attrs

from .target import Target
from .timers import MAX_TRANSACTION_TIMEOUT_MS

__all__ = [
    "CYCLE_WINDOW",
    "Attempt",
    "POLICY",
    "Failure",
    "GiveUp",
    "PolicyRow",
    "RequestKind",
    "RetryDecision",
    "RetryLater",
    "RetryNext",
    "RetryPlan",
    "cycles",
    "decide",
]

#: How long the 2xx / BYE / CANCEL cycle may run, from the first attempt (seconds).
CYCLE_WINDOW: Final = 32.0


class RequestKind(enum.Enum):
    """Which retry rule of the failover policy a request follows (seed 002: INVITE once,
    BYE/CANCEL/2xx cycled, REGISTER not at once)."""

    INITIAL_INVITE = "initial INVITE"
    REINVITE = "mid-call re-INVITE"
    INVITE_2XX = "2xx to an INVITE (retransmission / ACK path)"
    BYE = "BYE"
    CANCEL = "CANCEL"
    REGISTER = "REGISTER"
    SUBSCRIBE = "SUBSCRIBE"
    OTHER = "anything else"


class Failure(enum.Enum):
    """How an attempt failed, as the policy sees it (a timeout, a transport error, a 503, a
    408)."""

    TIMEOUT = "timeout"
    TRANSPORT_ERROR = "transport error"
    SERVICE_UNAVAILABLE = "503 Service Unavailable"
    REQUEST_TIMEOUT = "408 Request Timeout"


@attrs.frozen
class RetryNext:
    """Send again now, in a new client transaction (new branch), to ``targets[target_index]``."""

    target_index: int


@attrs.frozen
class RetryLater:
    """Send again (to the next target) ``delay`` seconds from now: the next reg_interval tick."""

    delay: float
    target_index: int


@attrs.frozen
class GiveUp:
    """The policy's answer when no further attempt is made; ``reason`` says why."""

    reason: str


RetryDecision = RetryNext | RetryLater | GiveUp


@attrs.frozen
class PolicyRow:
    """One row of the policy table: what happens on failure and the limit."""

    on_failure: str
    limit: str


POLICY: Final[dict[RequestKind, PolicyRow]] = {
    RequestKind.INITIAL_INVITE: PolicyRow(
        "next target (the same one if it is the only one)", "once"
    ),
    RequestKind.REINVITE: PolicyRow("next target (the same one if it is the only one)", "once"),
    RequestKind.INVITE_2XX: PolicyRow(
        "cycle through the targets", "32 s in all, only if sip_transaction_timeout < 32000"
    ),
    RequestKind.BYE: PolicyRow(
        "cycle through the targets", "32 s in all, only if sip_transaction_timeout < 32000"
    ),
    RequestKind.CANCEL: PolicyRow(
        "cycle through the targets", "32 s in all, only if sip_transaction_timeout < 32000"
    ),
    RequestKind.REGISTER: PolicyRow(
        "next target at the next reg_interval tick", "reg_interval=0: never"
    ),
    RequestKind.SUBSCRIBE: PolicyRow(
        "next target at the next reg_interval tick", "reg_interval=0: never"
    ),
    RequestKind.OTHER: PolicyRow("next target", "once"),
}

_ONCE = {RequestKind.INITIAL_INVITE, RequestKind.REINVITE, RequestKind.OTHER}
#: The "once" rows that retry even with a single target (seed 002: "always retries INVITE
#: once, regardless of the number of proxies configured").
_INVITES = {RequestKind.INITIAL_INVITE, RequestKind.REINVITE}
_CYCLE = {RequestKind.INVITE_2XX, RequestKind.BYE, RequestKind.CANCEL}


def cycles(sip_transaction_timeout: int) -> bool:
    """Whether the 2xx / BYE / CANCEL rows cycle through the proxies: seed 002, "These retry
    operations work only when the sip_transaction_timeout parameter is set to a value lower
    than 32000 milliseconds"."""
    return sip_transaction_timeout < MAX_TRANSACTION_TIMEOUT_MS


def decide(
    kind: RequestKind,
    failure: Failure,
    *,
    attempts: int,
    targets: int,
    first_attempt: float,
    now: float,
    sip_transaction_timeout: int = MAX_TRANSACTION_TIMEOUT_MS,
    reg_interval: float = 3600.0,
) -> RetryDecision:
    """What to do after attempt number ``attempts`` (1 for the first) failed with ``failure``.

    ``targets`` is the length of the ordered target list (attempt *n* used target
    ``(n - 1) % targets``); ``first_attempt`` is when attempt 1 was sent.
    """
    if attempts < 1 or targets < 1:
        raise ValueError("attempts and targets must be at least 1")
    why = failure.value
    next_index = attempts % targets
    if kind in _ONCE:
        if attempts >= 2:
            return GiveUp(f"{why} on the retry too ({kind.value}: one retry)")
        if targets < 2 and kind not in _INVITES:
            return GiveUp(f"{why}; no other target")
        return RetryNext(next_index)
    if kind in _CYCLE:
        if not cycles(sip_transaction_timeout):
            return GiveUp(f"{why} (sip_transaction_timeout {sip_transaction_timeout} ms: no retry)")
        if now - first_attempt >= CYCLE_WINDOW:
            return GiveUp(f"{why}; {CYCLE_WINDOW:g} s passed since the first attempt")
        return RetryNext(next_index)
    if reg_interval <= 0:
        return GiveUp(f"{why} (reg_interval = 0: never resent)")
    return RetryLater(reg_interval, next_index)


@attrs.frozen
class Attempt:
    """One attempt: where, when it began, and how it ended (``None`` while running).

    ``outcome`` is the final response's status line ("200 OK", "503 Service Unavailable") or
    the failure ("timeout", "transport error: ...").
    """

    target: Target
    started: float
    outcome: str | None = None


class RetryPlan:
    """One request's retry bookkeeping: its ordered targets, attempts, tried targets and
    charged failures; :meth:`after_failure` says where to go next (see the module comment)."""

    __slots__ = (
        "attempts",
        "charged",
        "first",
        "kind",
        "last_start",
        "repeated",
        "targets",
        "timeout_ms",
        "tried",
    )

    def __init__(
        self,
        kind: RequestKind,
        targets: list[Target],
        first: float,
        timeout_ms: int = MAX_TRANSACTION_TIMEOUT_MS,
    ) -> None:
        if not targets:
            raise ValueError("a retry plan needs at least one target")
        self.kind = kind
        self.targets = targets
        self.first = first
        self.timeout_ms = timeout_ms
        self.attempts: list[Attempt] = []
        self.tried: list[int] = []
        self.last_start: dict[int, float] = {}
        self.charged = 0
        self.repeated = False

    @property
    def index(self) -> int:
        """The target index of the current (last) attempt."""
        return self.tried[-1]

    def begin(self, index: int, now: float) -> Attempt:
        """Record an attempt to ``targets[index]`` starting at ``now``."""
        attempt = Attempt(self.targets[index], now)
        self.attempts.append(attempt)
        self.tried.append(index)
        self.last_start[index] = now
        return attempt

    def end(self, outcome: str) -> None:
        """Record how the current attempt ended."""
        self.attempts[-1] = attrs.evolve(self.attempts[-1], outcome=outcome)

    def after_failure(self, failure: Failure, now: float) -> tuple[int, float] | None:
        """(next target index, not before) after the current attempt failed, or None to give
        up (RetryLater rows give None too: the caller's next reg_interval tick resends)."""
        n = len(self.targets)
        if self.kind in _ONCE:
            free = failure is Failure.TRANSPORT_ERROR
            if not free:
                self.charged += 1
            decision = decide(
                self.kind,
                failure,
                attempts=1 if free else self.charged,
                targets=n,
                first_attempt=self.first,
                now=now,
                sip_transaction_timeout=self.timeout_ms,
            )
            if isinstance(decision, GiveUp):
                return None
            untried = [i for i in range(n) if i not in self.tried]
            if untried:
                return untried[0], now
            if self.kind in _INVITES and not self.repeated:
                # Every target was tried and the retry is unused (one target, or refusals):
                # the INVITE goes once more, to the target tried longest ago.
                self.repeated = True
                return min(range(n), key=lambda i: self.last_start[i]), now
            return None
        decision = decide(
            self.kind,
            failure,
            attempts=len(self.attempts),
            targets=n,
            first_attempt=self.first,
            now=now,
            sip_transaction_timeout=self.timeout_ms,
        )
        if not isinstance(decision, RetryNext):
            return None
        index = decision.target_index
        not_before = max(now, self.last_start.get(index, -math.inf) + self.timeout_ms / 1000)
        if not_before >= self.first + CYCLE_WINDOW:
            return None
        return index, not_before
