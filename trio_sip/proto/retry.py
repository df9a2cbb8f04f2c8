"""The per-request failover policy as pure decisions (docs/dialogs.md, "Retry policy").

Theory of operation
-------------------
When a client transaction fails -- a timeout (Timer B/F, bounded by ``sip_transaction_timeout``),
a transport error (ICMP unreachable, refused or reset connection, dead RFC 5626 flow), a 503 or
a 408 -- the shell asks :func:`decide` what to do. The answer is :class:`RetryNext` (a new client
transaction with a new branch, to target ``target_index`` of the ordered, blacklist-sorted
list), :class:`RetryLater` (REGISTER / SUBSCRIBE: at the next ``reg_interval`` tick) or
:class:`GiveUp` with the reason. The rules, one row per :class:`RequestKind` (``POLICY``):

* initial INVITE: the next target, once; a second failure fails the call;
* mid-call re-INVITE (hold / retrieve): the next target, once, transparently;
* the 2xx to an INVITE (its retransmission / ACK path), BYE and CANCEL: cycle through the
  targets until 32 s have passed since the first attempt -- only when
  ``sip_transaction_timeout`` < 32000 ms; with the RFC's 32 s timeout one attempt already took
  64*T1 and there is no retry;
* REGISTER and SUBSCRIBE (refreshes too): no immediate retry; the next target at the next
  ``reg_interval`` tick, never when ``reg_interval`` is 0;
* anything else: the next target, once.

RFC 3261 §9.1 says a CANCEL goes where its INVITE went; cycling it to another proxy is a
deliberate deviation for proxy clusters that share state, and only happens under the short
timeout setting. Retries after a 503 honour nothing more here: Retry-After is the registration
machine's business (it reschedules the REGISTER).
"""

from __future__ import annotations

import enum
from typing import Final

import attrs

from .timers import MAX_TRANSACTION_TIMEOUT_MS

__all__ = [
    "CYCLE_WINDOW",
    "POLICY",
    "Failure",
    "GiveUp",
    "PolicyRow",
    "RequestKind",
    "RetryDecision",
    "RetryLater",
    "RetryNext",
    "decide",
]

#: How long the 2xx / BYE / CANCEL cycle may run, from the first attempt (seconds).
CYCLE_WINDOW: Final = 32.0


class RequestKind(enum.Enum):
    INITIAL_INVITE = "initial INVITE"
    REINVITE = "mid-call re-INVITE"
    INVITE_2XX = "2xx to an INVITE (retransmission / ACK path)"
    BYE = "BYE"
    CANCEL = "CANCEL"
    REGISTER = "REGISTER"
    SUBSCRIBE = "SUBSCRIBE"
    OTHER = "anything else"


class Failure(enum.Enum):
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
    reason: str


RetryDecision = RetryNext | RetryLater | GiveUp


@attrs.frozen
class PolicyRow:
    """One row of the policy table: what happens on failure and the limit."""

    on_failure: str
    limit: str


POLICY: Final[dict[RequestKind, PolicyRow]] = {
    RequestKind.INITIAL_INVITE: PolicyRow("next target", "once"),
    RequestKind.REINVITE: PolicyRow("next target", "once"),
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
_CYCLE = {RequestKind.INVITE_2XX, RequestKind.BYE, RequestKind.CANCEL}


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
        if targets < 2:
            return GiveUp(f"{why}; no other target")
        return RetryNext(next_index)
    if kind in _CYCLE:
        if sip_transaction_timeout >= MAX_TRANSACTION_TIMEOUT_MS:
            return GiveUp(f"{why} (sip_transaction_timeout {sip_transaction_timeout} ms: no retry)")
        if now - first_attempt >= CYCLE_WINDOW:
            return GiveUp(f"{why}; {CYCLE_WINDOW:g} s passed since the first attempt")
        return RetryNext(next_index)
    if reg_interval <= 0:
        return GiveUp(f"{why} (reg_interval = 0: never resent)")
    return RetryLater(reg_interval, next_index)
