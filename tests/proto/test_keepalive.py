"""Keep-alive machines, stepped through virtual time by hand."""

from __future__ import annotations

import random

import pytest

from trio_sip.proto.errors import ConfigError, LocalProtocolError
from trio_sip.proto.keepalive import (
    CRLF,
    CRLFCRLF,
    NULL_TRANSITIONS,
    STREAM_TRANSITIONS,
    FlowDead,
    KeepAliveState,
    KeepAliveTrigger,
    NullKeepAlive,
    PongReceived,
    SendKeepAlive,
    StreamKeepAlive,
)


def run_until(machine: NullKeepAlive | StreamKeepAlive, end: float) -> list[tuple[float, object]]:
    """Fire the machine's timer at each deadline up to ``end``; return (time, output) pairs."""
    seen: list[tuple[float, object]] = []
    for _ in range(10_000):
        if machine.deadline is None or machine.deadline > end:
            break
        now = machine.deadline
        seen.extend((now, out) for out in machine.handle_timer(now))
    return seen


def test_null_keepalive_sends_crlf_every_period() -> None:
    ka = NullKeepAlive(15)
    assert ka.start(100.0) == [SendKeepAlive(CRLF)]
    times = [t for t, out in run_until(ka, 160.0) if out == SendKeepAlive(CRLF)]
    assert times == [115.0, 130.0, 145.0, 160.0]
    assert ka.state is KeepAliveState.WAITING


def test_null_keepalive_late_wakeup_does_not_burst() -> None:
    ka = NullKeepAlive(10)
    ka.start(0.0)
    # The host stalled for 35 s: one CRLF, then back on the 10 s grid.
    assert ka.handle_timer(35.0) == [SendKeepAlive(CRLF)]
    assert ka.deadline == 40.0
    assert ka.handle_timer(39.0) == []


def test_null_keepalive_period_change_and_disable() -> None:
    ka = NullKeepAlive(30)
    ka.start(0.0)
    run_until(ka, 30.0)  # sent at 30
    ka.set_period(5, now=31.0)
    assert ka.deadline == 35.0
    assert [t for t, _ in run_until(ka, 46.0)] == [35.0, 40.0, 45.0]
    ka.stop()
    assert ka.deadline is None and ka.state is KeepAliveState.DISABLED
    assert ka.handle_timer(1000.0) == []
    assert ka.start(1000.0) == [SendKeepAlive(CRLF)]
    assert ka.deadline == 1005.0


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "x", None])
def test_bad_period_names_the_setting(bad: object) -> None:
    with pytest.raises(ConfigError) as info:
        NullKeepAlive(bad)  # type: ignore[arg-type]
    assert info.value.setting == "period"
    assert "greater than 0" in str(info.value)


def test_stream_ping_pong_cycle_with_jitter_in_range() -> None:
    ka = StreamKeepAlive(100, rng=random.Random(7))
    assert ka.start(0.0) == []
    assert ka.deadline is not None and 80.0 <= ka.deadline <= 100.0
    first = ka.deadline
    assert ka.handle_timer(first) == [SendKeepAlive(CRLFCRLF)]
    assert ka.state is KeepAliveState.AWAITING_PONG
    assert ka.deadline == first + 10.0
    ka.handle(PongReceived(), first + 0.2)
    assert ka.state is KeepAliveState.WAITING
    assert ka.deadline is not None and first + 0.2 + 80 <= ka.deadline <= first + 0.2 + 100


def test_stream_missing_pong_marks_flow_dead_at_ten_seconds() -> None:
    ka = StreamKeepAlive(30, rng=random.Random(1))
    ka.start(0.0)
    ping_at = ka.deadline
    assert ping_at is not None
    out = run_until(ka, 1000.0)
    assert out[0] == (ping_at, SendKeepAlive(CRLFCRLF))
    when, dead = out[1]
    assert when == ping_at + 10.0
    assert isinstance(dead, FlowDead) and "10 s" in dead.reason
    assert ka.state is KeepAliveState.DEAD and ka.deadline is None
    assert len(out) == 2  # nothing more once dead


def test_unsolicited_pong_is_ignored() -> None:
    ka = StreamKeepAlive(30, rng=random.Random(1))
    ka.start(0.0)
    before = ka.deadline
    assert ka.handle(PongReceived(), 5.0) == []
    assert ka.deadline == before


def test_dead_flow_cannot_be_restarted() -> None:
    ka = StreamKeepAlive(1, rng=random.Random(0))
    ka.start(0.0)
    run_until(ka, 100.0)
    assert ka.state is KeepAliveState.DEAD
    # A dead flow needs a new flow and a new machine; the table has no way out of DEAD.
    assert KeepAliveTrigger.ENABLE not in STREAM_TRANSITIONS[KeepAliveState.DEAD]
    with pytest.raises(LocalProtocolError, match="not allowed in state dead"):
        ka.start(200.0)
    assert ka.state is KeepAliveState.DEAD


def test_enabling_twice_is_harmless_for_null_keepalive() -> None:
    assert KeepAliveTrigger.ENABLE in NULL_TRANSITIONS[KeepAliveState.WAITING]
    ka = NullKeepAlive(5)
    ka.start(0.0)
    assert ka.start(2.0) == [SendKeepAlive(CRLF)]
    assert ka.deadline == 7.0
