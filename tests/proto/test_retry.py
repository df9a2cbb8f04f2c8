"""The failover policy: every row of the table, with times."""

from __future__ import annotations

from pathlib import Path

import pytest

from trio_sip.proto.retry import (
    POLICY,
    Failure,
    GiveUp,
    RequestKind,
    RetryLater,
    RetryNext,
    RetryPlan,
    decide,
)
from trio_sip.proto.target import Target

K = RequestKind
ALL_FAILURES = list(Failure)


@pytest.mark.parametrize("kind", [K.INITIAL_INVITE, K.REINVITE, K.OTHER])
@pytest.mark.parametrize("failure", ALL_FAILURES)
def test_once_kinds_retry_the_next_target_once(kind: RequestKind, failure: Failure) -> None:
    first = decide(kind, failure, attempts=1, targets=3, first_attempt=0.0, now=4.0)
    assert first == RetryNext(1)
    second = decide(kind, failure, attempts=2, targets=3, first_attempt=0.0, now=8.0)
    assert isinstance(second, GiveUp) and failure.value in second.reason


def test_other_requests_with_a_single_target_give_up() -> None:
    d = decide(K.OTHER, Failure.TIMEOUT, attempts=1, targets=1, first_attempt=0, now=32)
    assert d == GiveUp("timeout; no other target")


@pytest.mark.parametrize("kind", [K.INITIAL_INVITE, K.REINVITE])
def test_invite_is_retried_once_even_with_a_single_target(kind: RequestKind) -> None:
    # Seed 002: "The SIP Endpoint SDK always retries INVITE once, regardless of the number of
    # proxies configured." With one target the retry goes to that same address.
    first = decide(kind, Failure.TIMEOUT, attempts=1, targets=1, first_attempt=0, now=4)
    assert first == RetryNext(0)
    second = decide(kind, Failure.TIMEOUT, attempts=2, targets=1, first_attempt=0, now=8)
    assert isinstance(second, GiveUp) and "one retry" in second.reason


@pytest.mark.parametrize("kind", [K.INVITE_2XX, K.BYE, K.CANCEL])
def test_cycle_kinds_cycle_until_32_s_with_a_short_timeout(kind: RequestKind) -> None:
    # 4 s transaction timeout, 3 targets: attempts at 0, 4, 8, ... until 32 s have passed.
    decisions = []
    for attempt in range(1, 20):
        now = 4.0 * attempt
        d = decide(
            kind,
            Failure.TIMEOUT,
            attempts=attempt,
            targets=3,
            first_attempt=0.0,
            now=now,
            sip_transaction_timeout=4000,
        )
        decisions.append((now, d))
        if isinstance(d, GiveUp):
            break
    assert [d for _, d in decisions[:-1]] == [RetryNext(i % 3) for i in range(1, 8)]
    assert decisions[-1] == (32.0, GiveUp("timeout; 32 s passed since the first attempt"))


@pytest.mark.parametrize("kind", [K.INVITE_2XX, K.BYE, K.CANCEL])
def test_cycle_kinds_single_attempt_with_the_rfc_timeout(kind: RequestKind) -> None:
    d = decide(kind, Failure.TRANSPORT_ERROR, attempts=1, targets=3, first_attempt=0.0, now=0.1)
    assert d == GiveUp("transport error (sip_transaction_timeout 32000 ms: no retry)")
    fast = decide(
        kind,
        Failure.TRANSPORT_ERROR,
        attempts=1,
        targets=3,
        first_attempt=0.0,
        now=0.1,
        sip_transaction_timeout=31999,
    )
    assert fast == RetryNext(1)


def test_cycle_wraps_around_to_the_first_target() -> None:
    d = decide(
        K.BYE,
        Failure.SERVICE_UNAVAILABLE,
        attempts=2,
        targets=2,
        first_attempt=10.0,
        now=41.9,
        sip_transaction_timeout=4000,
    )
    assert d == RetryNext(0)


@pytest.mark.parametrize("kind", [K.REGISTER, K.SUBSCRIBE])
def test_register_and_subscribe_wait_for_the_next_reg_interval_tick(kind: RequestKind) -> None:
    d = decide(kind, Failure.REQUEST_TIMEOUT, attempts=1, targets=2, first_attempt=0, now=4)
    assert d == RetryLater(3600.0, 1)
    d = decide(
        kind, Failure.TIMEOUT, attempts=5, targets=2, first_attempt=0, now=4, reg_interval=60
    )
    assert d == RetryLater(60, 1)
    never = decide(
        kind, Failure.TIMEOUT, attempts=1, targets=2, first_attempt=0, now=4, reg_interval=0
    )
    assert never == GiveUp("timeout (reg_interval = 0: never resent)")


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        decide(K.BYE, Failure.TIMEOUT, attempts=0, targets=1, first_attempt=0, now=0)


def test_docs_table_matches_policy() -> None:
    text = (Path(__file__).parents[2] / "docs" / "dialogs.md").read_text()
    for kind, row in POLICY.items():
        assert f"| {kind.value} | {row.on_failure} | {row.limit} |" in text


# -- RetryPlan: the charging rules -------------------------------------------------------------

TARGETS = [Target("UDP", f"10.0.0.{i}", 5060) for i in (1, 2, 3)]


def test_plan_refusals_do_not_use_up_the_single_invite_retry() -> None:
    plan = RetryPlan(K.INITIAL_INVITE, list(TARGETS), first=0.0, timeout_ms=4000)
    plan.begin(0, 0.0)
    plan.end("transport error: refused")
    assert plan.after_failure(Failure.TRANSPORT_ERROR, 0.01) == (1, 0.01)  # free
    plan.begin(1, 0.01)
    assert plan.after_failure(Failure.TIMEOUT, 4.01) == (2, 4.01)  # the one charged retry
    plan.begin(2, 4.01)
    assert plan.after_failure(Failure.TIMEOUT, 8.01) is None  # second charged failure
    assert [a.target for a in plan.attempts] == TARGETS
    assert plan.attempts[0].outcome == "transport error: refused"


def test_plan_tries_each_target_once_in_the_once_rows() -> None:
    plan = RetryPlan(K.OTHER, list(TARGETS[:2]), first=0.0, timeout_ms=4000)
    plan.begin(0, 0.0)
    assert plan.after_failure(Failure.TRANSPORT_ERROR, 0.0) == (1, 0.0)
    plan.begin(1, 0.0)
    assert plan.after_failure(Failure.TRANSPORT_ERROR, 0.0) is None  # no untried target


@pytest.mark.parametrize("kind", [K.INITIAL_INVITE, K.REINVITE])
def test_plan_retries_an_invite_to_its_only_target(kind: RequestKind) -> None:
    plan = RetryPlan(kind, list(TARGETS[:1]), first=0.0, timeout_ms=4000)
    plan.begin(0, 0.0)
    assert plan.after_failure(Failure.TIMEOUT, 4.0) == (0, 4.0)  # the same address, once
    plan.begin(0, 4.0)
    assert plan.after_failure(Failure.TIMEOUT, 8.0) is None  # a double failure
    assert [a.started for a in plan.attempts] == [0.0, 4.0]


def test_plan_invite_refused_everywhere_goes_once_more_to_the_oldest() -> None:
    # Refusals are free, so the retry is still unused when every target has refused: one
    # more attempt, to the target tried longest ago; then it gives up (targets + 1 attempts).
    plan = RetryPlan(K.INITIAL_INVITE, list(TARGETS[:2]), first=0.0, timeout_ms=4000)
    plan.begin(0, 0.0)
    assert plan.after_failure(Failure.TRANSPORT_ERROR, 0.01) == (1, 0.01)
    plan.begin(1, 0.01)
    assert plan.after_failure(Failure.TRANSPORT_ERROR, 0.02) == (0, 0.02)
    plan.begin(0, 0.02)
    assert plan.after_failure(Failure.TRANSPORT_ERROR, 0.03) is None
    single = RetryPlan(K.INITIAL_INVITE, list(TARGETS[:1]), first=0.0, timeout_ms=4000)
    single.begin(0, 0.0)
    assert single.after_failure(Failure.TRANSPORT_ERROR, 0.01) == (0, 0.01)
    single.begin(0, 0.01)
    assert single.after_failure(Failure.TRANSPORT_ERROR, 0.02) is None


def test_plan_timeout_then_refusal_then_timeout_gives_up() -> None:
    plan = RetryPlan(K.INITIAL_INVITE, list(TARGETS), first=0.0, timeout_ms=4000)
    plan.begin(0, 0.0)
    assert plan.after_failure(Failure.TIMEOUT, 4.0) == (1, 4.0)
    plan.begin(1, 4.0)
    assert plan.after_failure(Failure.TRANSPORT_ERROR, 4.0) == (2, 4.0)
    plan.begin(2, 4.0)
    assert plan.after_failure(Failure.SERVICE_UNAVAILABLE, 4.1) is None


def test_plan_cycles_refusing_targets_at_the_pace_of_the_timeout() -> None:
    plan = RetryPlan(K.BYE, list(TARGETS[:2]), first=0.0, timeout_ms=4000)
    steps = []
    now = 0.0
    index = 0
    for _ in range(40):  # bounded: the 32 s window ends it
        plan.begin(index, now)
        step = plan.after_failure(Failure.TRANSPORT_ERROR, now + 0.001)  # refused at once
        if step is None:
            break
        index, now = step
        steps.append(step)
    # Each target again only 4 s after its previous attempt: 0, 0.001, 4, 4.001, 8, ...
    assert steps[:4] == [(1, 0.001), (0, 4.0), (1, 4.001), (0, 8.0)]
    assert all(when < 32.0 for _, when in steps)
    assert len(steps) == 15  # 16 attempts, 8 per target, inside 32 s


def test_plan_needs_a_target() -> None:
    with pytest.raises(ValueError, match="at least one target"):
        RetryPlan(K.OTHER, [], first=0.0)
