"""RateLimiter: token buckets per source, bounded, least recently seen forgotten first."""

from __future__ import annotations

import pytest

from trio_sip import Limits
from trio_sip.errors import ConfigError
from trio_sip.proto.rate import RateLimiter, TrustedSources


def test_burst_then_rate() -> None:
    limiter = RateLimiter(rate=10.0, burst=5)
    assert [limiter.take("a", 0.0) for _ in range(6)] == [True] * 5 + [False]
    # 0.1 s later one token is back, and only one.
    assert limiter.take("a", 0.1) is True
    assert limiter.take("a", 0.1) is False
    # Over a long run a flooding source gets ``rate`` per second, whatever it sends.
    admitted = sum(limiter.take("a", 1.0 + i / 1000) for i in range(10_000))
    assert 95 <= admitted <= 105  # 10 s at 10/s (plus what was refilled at the start)
    stats = limiter.statistics()
    assert (stats.allowed, stats.refused) == (6 + admitted, 10_008 - 6 - admitted)


def test_sources_are_independent() -> None:
    limiter = RateLimiter(rate=1.0, burst=2)
    assert limiter.take("a", 0.0) and limiter.take("a", 0.0)
    assert not limiter.take("a", 0.0)
    assert limiter.take("b", 0.0)
    assert limiter.exhausted("a", 0.0) and not limiter.exhausted("b", 0.0)


def test_refill_is_capped_at_burst() -> None:
    limiter = RateLimiter(rate=100.0, burst=3)
    limiter.take("a", 0.0)
    assert [limiter.take("a", 1000.0) for _ in range(4)] == [True, True, True, False]


def test_retry_after_and_exhausted_do_not_take() -> None:
    limiter = RateLimiter(rate=2.0, burst=1)
    assert limiter.available("a", 0.0) == 1.0 and "a" not in limiter
    assert limiter.retry_after("a", 0.0) == 0.0
    assert limiter.take("a", 0.0)
    assert limiter.retry_after("a", 0.0) == pytest.approx(0.5)
    assert limiter.retry_after("a", 0.25) == pytest.approx(0.25)
    assert limiter.exhausted("a", 0.25) and limiter.available("a", 0.25) == pytest.approx(0.5)
    assert not limiter.exhausted("a", 0.5)
    assert limiter.take("a", 0.5)


def test_hold_refuses_a_source_for_a_time() -> None:
    limiter = RateLimiter(rate=10.0, burst=5)
    assert limiter.take("a", 0.0)
    limiter.hold("a", 0.0, 3.0)
    assert limiter.exhausted("a", 2.9) and not limiter.exhausted("a", 3.0)
    limiter.hold("a", 1.0, 1.0)  # a shorter hold does not shorten the one in force
    assert limiter.exhausted("a", 2.9)
    limiter.hold("a", 2.9, 3.0)  # a longer one extends it
    assert limiter.exhausted("a", 5.8) and limiter.take("a", 5.9)
    limiter.hold("new", 0.0, 1.0)  # a source not seen before can be held too
    assert limiter.exhausted("new", 0.99) and limiter.take("new", 1.0)


def test_clock_going_back_refills_nothing() -> None:
    limiter = RateLimiter(rate=1.0, burst=1)
    assert limiter.take("a", 10.0)
    assert not limiter.take("a", 5.0)
    assert not limiter.take("a", 10.5)
    assert limiter.take("a", 11.0)


def test_table_is_bounded_and_forgets_the_least_recently_seen() -> None:
    limiter = RateLimiter(rate=1.0, burst=1, max_sources=3)
    for source in ("a", "b", "c"):
        assert limiter.take(source, 0.0)
    assert not limiter.take("a", 0.0)  # "a" seen again: "b" is now the least recent
    assert limiter.take("d", 0.0)
    assert len(limiter) == 3
    assert "b" not in limiter and "a" in limiter
    assert not limiter.take("a", 0.0)  # still tracked, still empty
    assert limiter.take("b", 0.0)  # forgotten, so forgiven: a full bucket again
    assert limiter.statistics().evicted == 2


def test_spoofed_flood_stays_bounded() -> None:
    limiter = RateLimiter(rate=1.0, burst=1, max_sources=100)
    for i in range(10_000):
        limiter.take(f"10.0.{i // 256}.{i % 256}", i * 1e-4)
    assert len(limiter) == 100
    assert limiter.statistics().evicted == 9_900


def test_from_limits() -> None:
    limiter = RateLimiter.for_requests(Limits(request_rate=50.0, request_burst=7))
    assert limiter is not None
    assert (limiter.rate, limiter.burst, limiter.max_sources) == (50.0, 7.0, 65_536)
    auth = RateLimiter.for_failed_auth(Limits(max_tracked_sources=16))
    assert auth is not None and (auth.rate, auth.burst, auth.max_sources) == (1.0, 10.0, 16)
    assert RateLimiter.for_requests(Limits(request_rate=None)) is None
    assert RateLimiter.for_requests(Limits(request_rate=0)) is None
    assert RateLimiter.for_failed_auth(Limits(failed_auth_rate=None)) is None


@pytest.mark.parametrize(
    ("kwargs", "setting"),
    [
        ({"rate": 0.0, "burst": 1}, "rate"),
        ({"rate": float("inf"), "burst": 1}, "rate"),
        ({"rate": 1.0, "burst": 0.5}, "burst"),
        ({"rate": 1.0, "burst": 1, "max_sources": 0}, "max_sources"),
    ],
)
def test_bad_settings(kwargs: dict[str, float], setting: str) -> None:
    with pytest.raises(ConfigError) as info:
        RateLimiter(**kwargs)  # type: ignore[arg-type]
    assert info.value.setting == setting


def test_trusted_sources_addresses_networks_and_bad_values() -> None:
    trusted = TrustedSources(["10.0.0.5", "[2001:db8::1]", "192.0.2.0/30"])
    assert "10.0.0.5" in trusted and "10.0.0.6" not in trusted
    assert "2001:db8::1" in trusted and "2001:db8::2" not in trusted
    assert "192.0.2.3" in trusted and "192.0.2.4" not in trusted
    assert "::ffff:10.0.0.5" in trusted  # an IPv4 peer on a dual-stack socket
    assert "not-an-address" not in trusted and None not in trusted
    with pytest.raises(ConfigError) as info:
        trusted.add(["10.0.0.9", "proxy.example.com"], setting="proxies")
    assert info.value.setting == "proxies" and "10.0.0.9" not in trusted  # all or nothing
    assert not TrustedSources() and trusted


def test_trusted_sources_cache_is_bounded() -> None:
    trusted = TrustedSources(["10.0.0.0/8"], max_cached=16)
    for n in range(100):  # a spoofed-source flood asks about many addresses
        assert (f"10.1.0.{n}" in trusted) and (f"11.1.0.{n}" not in trusted)
    assert len(trusted._cache) <= 16
