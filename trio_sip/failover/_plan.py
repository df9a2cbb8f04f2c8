# The retry bookkeeping of one request (pure: times are passed in).
#
# Theory of operation: a Plan holds one request's ordered targets, its attempts and which
# targets were tried, and turns a failure into the next step by asking retry.decide(), with the
# shell's two rules on top (docs/failover.md, "Charging"): in the "once" rows a transport error
# (the request provably reached nobody) is not charged and the next *untried* target is used;
# in the cycling rows a target is not attempted again sooner than sip_transaction_timeout after
# its previous attempt began, and a retry that could not start inside the 32 s window gives up.
"""Attempt, FailoverResult and the per-request retry plan."""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs

from trio_sip.proto.blacklist import FailureReason
from trio_sip.proto.errors import TransactionError, TransportError
from trio_sip.proto.message import Response
from trio_sip.proto.retry import CYCLE_WINDOW, Failure, GiveUp, RequestKind, RetryNext, decide
from trio_sip.proto.target import Target
from trio_sip.proto.uri import SipUri

__all__ = ["Attempt", "Destination", "FailoverResult"]

Destination = SipUri | str | Target | Sequence[Target]
_ONCE = (RequestKind.INITIAL_INVITE, RequestKind.REINVITE, RequestKind.OTHER)


@attrs.frozen
class Attempt:
    """One attempt: where, when it began, and how it ended (``None`` while running).

    ``outcome`` is the final response's status line ("200 OK", "503 Service Unavailable") or
    the failure ("timeout", "transport error: ...").
    """

    target: Target
    started: float
    outcome: str | None = None


@attrs.frozen
class FailoverResult:
    """The final response, the target that gave it, and every attempt in order."""

    response: Response
    target: Target
    attempts: tuple[Attempt, ...]


class Plan:
    """The retry bookkeeping of one request: attempts, tried targets, charged failures."""

    def __init__(
        self, kind: RequestKind, targets: list[Target], first: float, timeout_ms: int
    ) -> None:
        self.kind = kind
        self.targets = targets
        self.first = first
        self.timeout_ms = timeout_ms
        self.attempts: list[Attempt] = []
        self.tried: list[int] = []
        self.last_start: dict[int, float] = {}
        self.charged = 0

    @property
    def index(self) -> int:
        return self.tried[-1]

    def begin(self, index: int, now: float) -> Attempt:
        attempt = Attempt(self.targets[index], now)
        self.attempts.append(attempt)
        self.tried.append(index)
        self.last_start[index] = now
        return attempt

    def end(self, outcome: str) -> None:
        self.attempts[-1] = attrs.evolve(self.attempts[-1], outcome=outcome)

    def after_failure(self, failure: Failure, now: float) -> tuple[int, float] | None:
        """(next target index, not before) or None to give up."""
        n = len(self.targets)
        if self.kind in _ONCE:
            transport = failure is Failure.TRANSPORT_ERROR
            if not transport:
                self.charged += 1
            decision = decide(
                self.kind,
                failure,
                attempts=max(self.charged, 1) if not transport else 1,
                targets=n,
                first_attempt=self.first,
                now=now,
                sip_transaction_timeout=self.timeout_ms,
            )
            if isinstance(decision, GiveUp) or (not transport and self.charged > 1):
                return None
            untried = [i for i in range(n) if i not in self.tried]
            return (untried[0], now) if untried else None
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
            return None  # GiveUp, or RetryLater: the caller's next reg_interval tick
        index = decision.target_index
        not_before = max(now, self.last_start.get(index, -math.inf) + self.timeout_ms / 1000)
        if not_before >= self.first + CYCLE_WINDOW:
            return None
        return index, not_before


def classify(error: TransactionError) -> tuple[Failure, FailureReason, str]:
    if isinstance(error, TransportError):
        text = str(error)
        reason = FailureReason.TRANSPORT_ERROR
        if "refused" in text or "unreachable" in text or "reset" in text:
            reason = FailureReason.UNREACHABLE
        return Failure.TRANSPORT_ERROR, reason, f"transport error: {text}"
    return Failure.TIMEOUT, FailureReason.TIMEOUT, "timeout"


def response_failure(response: Response) -> Failure | None:
    if response.status_code == 503:
        return Failure.SERVICE_UNAVAILABLE
    if response.status_code == 408:
        return Failure.REQUEST_TIMEOUT
    return None


def status_line(response: Response) -> str:
    return f"{response.status_code} {response.reason}"
