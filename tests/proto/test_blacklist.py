"""The fading blacklist with exact times: penalty curve, ordering rules, Retry-After, memory."""

from __future__ import annotations

import pytest

from trio_sip.proto.blacklist import Blacklist, FailureReason
from trio_sip.proto.target import Target

A = Target("UDP", "192.0.2.1", 5060, "proxy.example.com")
B = Target("UDP", "192.0.2.2", 5060, "proxy.example.com")
C = Target("UDP", "192.0.2.3", 5060, "proxy.example.com")
T0 = 1000.0


def test_clean_blacklist_keeps_the_order() -> None:
    assert Blacklist().order([A, B, C], T0) == [A, B, C]


def test_fresh_failure_has_full_penalty_and_moves_the_target_last() -> None:
    bl = Blacklist()
    bl.failed(A, T0, FailureReason.TIMEOUT)
    assert bl.penalty(A, T0) == 1.0
    assert bl.penalty(B, T0) == 0.0
    assert bl.order([A, B, C], T0) == [B, C, A]


def test_penalty_fades_linearly_and_is_gone_after_600_s() -> None:
    bl = Blacklist()
    bl.failed(A, T0, FailureReason.UNREACHABLE)
    assert bl.penalty(A, T0 + 150) == pytest.approx(0.75)
    assert bl.penalty(A, T0 + 300) == pytest.approx(0.5)
    assert bl.penalty(A, T0 + 599) == pytest.approx(1 / 600)
    assert bl.order([A, B], T0 + 599) == [B, A]
    assert bl.penalty(A, T0 + 600) == 0.0
    assert bl.order([A, B], T0 + 600) == [A, B]
    assert bl.statistics(T0 + 600).entries == ()
    assert len(bl) == 0  # pruned


def test_the_same_address_on_another_transport_or_port_is_another_key() -> None:
    bl = Blacklist()
    bl.failed(A, T0)
    assert bl.penalty(Target("TCP", A.host, A.port), T0) == 0.0
    assert bl.penalty(Target("UDP", A.host, 5062), T0) == 0.0
    assert bl.penalty(Target("UDP", A.host, A.port, None), T0) == 1.0  # hostname is not key


def test_lowest_penalty_wins_and_equal_penalties_are_stable() -> None:
    bl = Blacklist()
    bl.failed(A, T0)
    bl.failed(B, T0 + 300)  # B is fresher: higher penalty than A
    # C is clean, so it leads; then A (0.5) before B (1.0).
    assert bl.order([A, B, C], T0 + 300) == [C, A, B]
    bl2 = Blacklist()
    bl2.failed(A, T0)
    bl2.failed(B, T0)
    assert bl2.order([B, C, A], T0 + 10) == [C, B, A]
    assert bl2.order([A, C, B], T0 + 10) == [C, A, B]


def test_repeated_failures_stack_but_stay_bounded() -> None:
    bl = Blacklist()
    bl.failed(A, T0)
    bl.failed(A, T0 + 300)  # 0.5 left + 1
    assert bl.penalty(A, T0 + 300) == pytest.approx(1.5)
    for i in range(20):
        bl.failed(A, T0 + 301 + i)
    assert bl.penalty(A, T0 + 320) == 3.0
    # Forgiven 10 minutes after the last failure, however many there were.
    assert bl.penalty(A, T0 + 320 + 599) > 0
    assert bl.penalty(A, T0 + 320 + 600) == 0.0
    stats = bl.statistics(T0 + 321)
    assert stats.entries[0].failures == 22
    assert stats.entries[0].level == 3.0


def test_a_repeatedly_failing_address_ranks_behind_a_single_fresh_failure() -> None:
    bl = Blacklist()
    for t in (0, 1, 2):
        bl.failed(A, T0 + t)
    bl.failed(B, T0 + 100)
    assert bl.penalty(A, T0 + 100) > bl.penalty(B, T0 + 100)
    assert bl.order([A, B, C], T0 + 100) == [C, B, A]


def test_every_target_penalised_least_recently_blacklisted_first() -> None:
    bl = Blacklist()
    for t in (0, 1, 2):
        bl.failed(A, T0 + t)  # stacked: penalty about 3
    bl.failed(B, T0 + 200)  # single, but newer
    bl.failed(C, T0 + 100)
    now = T0 + 250
    assert bl.penalty(A, now) > bl.penalty(B, now)
    # No clean target left: the oldest failure is the best bet, whatever the penalty.
    assert bl.order([B, C, A], now) == [A, C, B]


def test_retry_after_keeps_the_address_out_at_least_that_long() -> None:
    bl = Blacklist()
    bl.failed(A, T0, FailureReason.SERVICE_UNAVAILABLE, retry_after=120)
    bl.failed(B, T0 + 50)  # fresher failure, no Retry-After
    assert bl.is_held(A, T0 + 119)
    assert bl.order([A, B], T0 + 119) == [B, A]  # held ranks behind any penalty
    assert not bl.is_held(A, T0 + 120)
    # Released: back to least recently blacklisted (A failed first).
    assert bl.order([A, B], T0 + 120) == [A, B]


def test_long_retry_after_outlives_the_fade() -> None:
    bl = Blacklist()
    bl.failed(A, T0, FailureReason.SERVICE_UNAVAILABLE, retry_after=900)
    assert bl.penalty(A, T0 + 700) == 0.0
    assert bl.order([A, B], T0 + 700) == [B, A]
    assert bl.statistics(T0 + 700).entries[0].held_until == T0 + 900
    assert bl.order([A, B], T0 + 900) == [A, B]
    assert len(bl.statistics(T0 + 900).entries) == 0


def test_retry_after_is_capped_at_an_hour() -> None:
    bl = Blacklist()
    bl.failed(A, T0, FailureReason.SERVICE_UNAVAILABLE, retry_after=86400)
    assert bl.is_held(A, T0 + 3599)
    assert not bl.is_held(A, T0 + 3600)


def test_all_held_the_soonest_released_first() -> None:
    bl = Blacklist()
    bl.failed(A, T0, FailureReason.SERVICE_UNAVAILABLE, retry_after=300)
    bl.failed(B, T0, FailureReason.SERVICE_UNAVAILABLE, retry_after=60)
    assert bl.order([A, B], T0 + 1) == [B, A]


def test_statistics_report_reason_and_penalty() -> None:
    bl = Blacklist()
    bl.failed(A, T0, FailureReason.TRANSPORT_ERROR)
    bl.failed(B, T0 + 60, FailureReason.SERVICE_UNAVAILABLE, retry_after=30)
    stats = bl.statistics(T0 + 60)
    assert [e.key for e in stats.entries] == [B.key, A.key]  # held first
    assert stats.penalty(A) == pytest.approx(0.9)
    assert stats.penalty(C) == 0.0
    entry_a = stats.entries[1]
    assert entry_a.reason is FailureReason.TRANSPORT_ERROR
    assert entry_a.expires == T0 + 600
    assert bl.deadline == T0 + 600


def test_memory_is_bounded() -> None:
    bl = Blacklist(max_entries=10)
    for i in range(50):
        bl.failed(Target("UDP", f"10.0.0.{i}", 5060), T0 + i)
    assert len(bl) == 10
    kept = {e.key[1] for e in bl.statistics(T0 + 50).entries}
    assert kept == {f"10.0.0.{i}" for i in range(40, 50)}  # the most stale went first
