"""Per-source rate limits: a bounded table of token buckets (issue #10).

Theory of operation
-------------------
Each source (an IP address, or any hashable key the caller picks) has a token bucket: it holds
at most ``burst`` tokens, refills at ``rate`` tokens per second, and each event the caller
counts takes one. :meth:`RateLimiter.take` answers whether the source may go on (a token was
there) or is over its rate. A source that was refused takes nothing: a flooding source is
admitted again as soon as its bucket refills, at ``rate`` per second, whatever it sends.

The table is pure (no clock: every call takes ``now``, any monotonic clock in seconds; no I/O)
and bounded: at most ``max_sources`` buckets are kept, and when a new source arrives in a full
table the least recently seen one is forgotten. Forgetting a source only forgives it (it comes
back with a full bucket), so memory stays bounded under a spoofed-source flood while the sources
that keep sending stay tracked. A bucket that has refilled is the same as no bucket at all, so
forgetting an idle source changes nothing.

:meth:`RateLimiter.hold` empties a bucket below zero so that the source gets nothing for a
given time (a source that was told to retry later and keeps sending).

Users: the stack's admission check (``Limits.request_rate`` / ``request_burst``: new requests
per source, 503 with Retry-After above it, then held) and the proxy's failed-authentication limit
(``Limits.failed_auth_rate`` / ``failed_auth_burst``: take a token per failure, and refuse the
source's requests while :meth:`RateLimiter.exhausted` says so). Both are made from
:class:`~trio_sip.proto.limits.Limits` with :meth:`RateLimiter.for_requests` and
:meth:`RateLimiter.for_failed_auth`, which return ``None`` when the limit is off (``None`` or 0).

:class:`TrustedSources` is the set of addresses and networks a stack was configured to trust
(a proxy's ``trusted`` networks, a user agent's proxies): the stack's request rate does not
apply to them, because everything a front or an outbound proxy relays arrives from its one
address. Membership is a set look-up for single addresses; a source tested against networks is
remembered (a bounded cache), so asking costs a dictionary look-up after the first time.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Hashable, Iterable

import attrs

from .errors import ConfigError
from .limits import Limits

__all__ = ["RateLimiter", "RateStatistics", "TrustedSources"]


@attrs.frozen(slots=True)
class RateStatistics:
    """What a :class:`RateLimiter` has seen (``RateLimiter.statistics()``)."""

    #: Sources tracked now (at most ``max_sources``).
    sources: int
    #: Events admitted (a token was taken) and refused (the bucket was empty).
    allowed: int
    refused: int
    #: Sources forgotten to make room for a new one (the least recently seen).
    evicted: int


class RateLimiter:
    """Token buckets per source, at most ``max_sources`` of them (see the module comment).

    ``rate`` tokens per second, ``burst`` tokens at most (a new source starts full).
    """

    __slots__ = ("_allowed", "_buckets", "_evicted", "_refused", "burst", "max_sources", "rate")

    def __init__(self, rate: float, burst: float, max_sources: int = 65_536) -> None:
        if not (isinstance(rate, int | float) and math.isfinite(rate) and rate > 0):
            raise ConfigError("rate", rate, "a rate per second > 0")
        if not (isinstance(burst, int | float) and math.isfinite(burst) and burst >= 1):
            raise ConfigError("burst", burst, "a number of tokens >= 1")
        if isinstance(max_sources, bool) or not isinstance(max_sources, int) or max_sources < 1:
            raise ConfigError("max_sources", max_sources, "an integer >= 1")
        self.rate = float(rate)
        self.burst = float(burst)
        self.max_sources = max_sources
        # source -> (tokens, time of that count); dict order is the recency order (a source
        # seen is moved to the end), so the first key is the least recently seen.
        self._buckets: dict[Hashable, tuple[float, float]] = {}
        self._allowed = 0
        self._refused = 0
        self._evicted = 0

    @classmethod
    def for_requests(cls, limits: Limits) -> RateLimiter | None:
        """New requests per source (``request_rate``, ``request_burst``); None when off."""
        if not limits.request_rate:  # None or 0: off
            return None
        return cls(limits.request_rate, limits.request_burst, limits.max_tracked_sources)

    @classmethod
    def for_failed_auth(cls, limits: Limits) -> RateLimiter | None:
        """Failed authentications per source (``failed_auth_rate``, ``failed_auth_burst``);
        None when off."""
        if not limits.failed_auth_rate:  # None or 0: off
            return None
        return cls(limits.failed_auth_rate, limits.failed_auth_burst, limits.max_tracked_sources)

    def _tokens(self, entry: tuple[float, float] | None, now: float) -> float:
        if entry is None:
            return self.burst
        tokens, then = entry
        if now > then:
            tokens = min(self.burst, tokens + (now - then) * self.rate)
        return tokens

    def take(self, source: Hashable, now: float, cost: float = 1.0) -> bool:
        """Count one event of ``source`` at ``now``: True (admitted, ``cost`` tokens taken)
        or False (over the rate; nothing taken)."""
        buckets = self._buckets
        entry = buckets.pop(source, None)
        tokens = self._tokens(entry, now)
        ok = tokens >= cost
        if ok:
            tokens -= cost
            self._allowed += 1
        else:
            self._refused += 1
        if entry is None and len(buckets) >= self.max_sources:
            del buckets[next(iter(buckets))]
            self._evicted += 1
        # A clock that went back (another source of ``now``) refills nothing later either.
        buckets[source] = (tokens, now if entry is None or now > entry[1] else entry[1])
        return ok

    def hold(self, source: Hashable, now: float, seconds: float) -> None:
        """Refuse ``source`` for ``seconds`` from ``now``: its bucket is emptied below zero so
        that its next token comes ``seconds`` later (a longer hold already in force is kept).
        For a source told to retry later (a 503 with Retry-After) that keeps sending."""
        buckets = self._buckets
        entry = buckets.pop(source, None)
        tokens = min(self._tokens(entry, now), 1.0 - seconds * self.rate)
        if entry is None and len(buckets) >= self.max_sources:
            del buckets[next(iter(buckets))]
            self._evicted += 1
        buckets[source] = (tokens, now if entry is None or now > entry[1] else entry[1])

    def available(self, source: Hashable, now: float) -> float:
        """The tokens ``source`` has at ``now`` (``burst`` for a source not tracked)."""
        return self._tokens(self._buckets.get(source), now)

    def exhausted(self, source: Hashable, now: float, cost: float = 1.0) -> bool:
        """Whether ``take(source, now, cost)`` would refuse now (nothing is taken or moved)."""
        return self._tokens(self._buckets.get(source), now) < cost

    def retry_after(self, source: Hashable, now: float, cost: float = 1.0) -> float:
        """Seconds from ``now`` until ``source`` has ``cost`` tokens again (0: it has now)."""
        missing = cost - self._tokens(self._buckets.get(source), now)
        return max(0.0, missing / self.rate)

    def forget(self, source: Hashable) -> None:
        """Drop the bucket of ``source`` (it starts full next time)."""
        self._buckets.pop(source, None)

    def clear(self) -> None:
        self._buckets.clear()

    def statistics(self) -> RateStatistics:
        return RateStatistics(len(self._buckets), self._allowed, self._refused, self._evicted)

    def __len__(self) -> int:
        return len(self._buckets)

    def __contains__(self, source: Hashable) -> bool:
        return source in self._buckets

    def __repr__(self) -> str:
        return (
            f"<RateLimiter {self.rate:g}/s burst {self.burst:g}: "
            f"{len(self._buckets)}/{self.max_sources} sources>"
        )


_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedSources:
    """IP addresses and networks trusted not to flood (see the module comment).

    ``source in trusted`` takes an address as the transport reports it (IPv6 without brackets).
    """

    __slots__ = ("_cache", "_hosts", "_networks", "max_cached")

    def __init__(self, sources: Iterable[str | _Network] = (), *, max_cached: int = 4096) -> None:
        self._hosts: set[str] = set()
        self._networks: list[_Network] = []
        self._cache: dict[str, bool] = {}
        self.max_cached = max_cached
        self.add(sources)

    def add(self, sources: Iterable[str | _Network], *, setting: str = "trusted") -> None:
        """Trust more sources: addresses (``"10.0.0.5"``, ``"[::1]"``) or networks
        (``"10.1.0.0/16"``). A bad value raises ConfigError naming ``setting``; nothing of
        ``sources`` is added then."""
        if isinstance(sources, str | ipaddress.IPv4Network | ipaddress.IPv6Network):
            sources = [sources]
        parsed: list[_Network] = []
        for value in sources:
            if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
                parsed.append(value)
                continue
            try:
                parsed.append(ipaddress.ip_network(str(value).strip().strip("[]"), strict=False))
            except ValueError:
                raise ConfigError(
                    setting, value, "IP addresses or networks (e.g. '10.0.0.5', '10.1.0.0/16')"
                ) from None
        for network in parsed:
            if network.num_addresses == 1:
                self._hosts.add(str(network.network_address))
            elif network not in self._networks:
                self._networks.append(network)
        self._cache.clear()  # a source refused before may be trusted now

    def __contains__(self, source: object) -> bool:
        if not isinstance(source, str):
            return False
        if source in self._hosts:
            return True
        if not self._networks and not source.startswith("::ffff:"):
            return False
        known = self._cache.get(source)
        if known is not None:
            return known
        try:
            address = ipaddress.ip_address(source.strip("[]"))
        except ValueError:
            found = False
        else:
            mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:a.b.c.d on a dual socket
            found = any(address in network for network in self._networks) or (
                mapped is not None and str(mapped) in self
            )
        if len(self._cache) >= self.max_cached:
            self._cache.clear()  # bounded: a spoofed-source flood cannot grow it
        self._cache[source] = found
        return found

    def __bool__(self) -> bool:
        return bool(self._hosts or self._networks)

    def networks(self) -> list[_Network]:
        """Every trusted address (as a /32 or /128) and network, sorted."""
        hosts = [ipaddress.ip_network(h) for h in self._hosts]
        return sorted([*hosts, *self._networks], key=lambda n: (n.version, n))

    def __repr__(self) -> str:
        return f"<TrustedSources {', '.join(str(n) for n in self.networks()) or 'none'}>"
