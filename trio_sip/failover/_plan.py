# The failover client's result types and failure classification. The per-request retry
# bookkeeping and its charging rules (refusals are free in the "once" rows) are pure and live
# in trio_sip.proto.retry (RetryPlan, Attempt).
"""FailoverResult, and how a transaction error or a response counts as a failure."""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from trio_sip.proto.blacklist import FailureReason
from trio_sip.proto.errors import TransactionError, TransportError
from trio_sip.proto.message import Response
from trio_sip.proto.retry import Attempt, Failure
from trio_sip.proto.target import Target
from trio_sip.proto.uri import SipUri

__all__ = ["Attempt", "Destination", "FailoverResult"]

Destination = SipUri | str | Target | Sequence[Target]


@attrs.frozen
class FailoverResult:
    """The final response, the target that gave it, and every attempt in order."""

    response: Response
    target: Target
    attempts: tuple[Attempt, ...]


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


def with_attempts(error: TransactionError, attempts: Sequence[Attempt]) -> TransactionError:
    """``error`` again (same class), its message followed by every attempt when there was
    more than one: "...; 2 attempts: UDP 10.0.1.1:5060 timeout, then UDP 10.0.1.1:5060
    timeout"."""
    if len(attempts) < 2:
        return error
    steps = ", then ".join(_step(a) for a in attempts)
    again = type(error)(f"{error}; {len(attempts)} attempts: {steps}")
    again.__cause__ = error
    return again


def _step(attempt: Attempt) -> str:
    t = attempt.target
    where = f"{t.transport} {t.host}:{t.port}"
    outcome = (attempt.outcome or "abandoned").replace(f"{t.transport} to {t.host}:{t.port}: ", "")
    return f"{where} {outcome}"
