"""TimerConfig: RFC 3261 defaults, derived Timers A-M, the transaction timeout, validation."""

from __future__ import annotations

import pytest

from trio_sip.proto.errors import ConfigError
from trio_sip.proto.timers import TimerConfig


def test_defaults_are_the_rfc_values() -> None:
    config = TimerConfig()
    assert (config.t1, config.t2, config.t4) == (0.5, 4.0, 5.0)
    assert config.sip_transaction_timeout == 32000
    udp = config.timers(reliable=False)
    assert (udp.a, udp.b, udp.d, udp.e, udp.f, udp.g) == (0.5, 32.0, 32.0, 0.5, 32.0, 0.5)
    assert (udp.h, udp.i, udp.j, udp.k, udp.l, udp.m) == (32.0, 5.0, 32.0, 5.0, 32.0, 32.0)


def test_reliable_transports_zero_the_linger_timers() -> None:
    tcp = TimerConfig().timers(reliable=True)
    assert (tcp.d, tcp.i, tcp.j, tcp.k) == (0.0, 0.0, 0.0, 0.0)
    # The retransmission bases and the timeouts do not depend on the transport.
    assert (tcp.a, tcp.b, tcp.f, tcp.h, tcp.l, tcp.m) == (0.5, 32.0, 32.0, 32.0, 32.0, 32.0)


def test_properties_give_the_unreliable_values() -> None:
    config = TimerConfig(t1=0.25, t2=2.0, t4=3.0)
    udp = config.timers(reliable=False)
    for name in "abdefghijklm":
        assert getattr(config, f"timer_{name}") == getattr(udp, name), name
    assert config.timer_b == 16.0  # 64 * T1
    assert config.timer_h == 16.0


def test_transaction_timeout_caps_timers_b_and_f_only() -> None:
    config = TimerConfig(sip_transaction_timeout=4000)
    assert config.timer_b == 4.0
    assert config.timer_f == 4.0
    assert config.timer_h == 32.0  # waiting for an ACK is not "waiting for a response"
    assert TimerConfig(t1=0.01, sip_transaction_timeout=4000).timer_b == 0.64  # 64*T1 smaller


@pytest.mark.parametrize(
    ("kwargs", "setting", "allowed"),
    [
        ({"t1": 0}, "t1", "> 0"),
        ({"t1": -1.0}, "t1", "> 0"),
        ({"t2": float("inf")}, "t2", "finite"),
        ({"t4": 0.0}, "t4", "> 0"),
        ({"t1": 5.0, "t2": 4.0}, "t2", ">= t1"),
        ({"sip_transaction_timeout": 0}, "sip_transaction_timeout", "1..32000"),
        ({"sip_transaction_timeout": 32001}, "sip_transaction_timeout", "1..32000"),
        ({"sip_transaction_timeout": 4.5}, "sip_transaction_timeout", "1..32000"),
    ],
)
def test_bad_values_name_the_setting_and_the_range(
    kwargs: dict[str, float], setting: str, allowed: str
) -> None:
    with pytest.raises(ConfigError) as info:
        TimerConfig(**kwargs)  # type: ignore[arg-type]
    assert info.value.setting == setting
    assert setting in str(info.value)
    assert allowed in str(info.value)
    assert isinstance(info.value, ValueError)


def test_bounds_are_inclusive() -> None:
    assert TimerConfig(sip_transaction_timeout=1).timer_f == 0.001
    assert TimerConfig(sip_transaction_timeout=32000).timer_f == 32.0
    assert TimerConfig(t1=4.0, t2=4.0).t2 == 4.0
