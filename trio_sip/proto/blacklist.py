"""The fading blacklist: which target to try first after failures.

Theory of operation. RFC 3263 §4.3 leaves the choice among resolved targets to the client
after a failure: "If a failure occurs, the client SHOULD create a new request ... and send it to
the next element" and RFC 3261 §8.1.3.4 / §21.5.4: a 503 "MAY include a Retry-After header
field" and the client "SHOULD NOT" use that element again before then. This module remembers
failures per address, keyed by :attr:`Target.key <trio_sip.proto.target.Target.key>`
``(transport, address, port)``, and reorders target lists. It is pure: every method takes
``now`` (any monotonic clock, in seconds), nothing reads a clock.

Penalty curve. A failure (transaction timeout, transport error, ICMP unreachable, 503) at time
``t`` gives the address a penalty *level*; the penalty then fades linearly with the time since
that failure and is gone ``FADE`` = 600 s (10 minutes) later::

    penalty(now) = level * (1 - (now - t) / 600)      for 0 <= now - t < 600, else 0

The first failure sets level 1. A further failure stacks on what is left:
``level = min(penalty(now) + 1, MAX_LEVEL)`` (``MAX_LEVEL`` = 3) and restarts the 10 minutes,
so an address that keeps failing ranks behind one that failed once, stays bounded, and is
forgiven 10 minutes after its *last* failure.

Retry-After. A 503 with ``Retry-After: N`` also holds the address until ``t + N`` (capped at
``MAX_HOLD`` = 3600 s): until then it ranks behind every address that is not held, whatever
the penalties, and its entry is kept at least that long.

Selection (:meth:`Blacklist.order`). Addresses without penalty keep their order, first; then
lowest penalty first, stable for equal penalties. When *every* target is penalised, the least
recently blacklisted comes first (its failure is the oldest news). Held addresses always come
last, the one released soonest first. ``order`` never drops a target: what to skip is the
caller's policy.

Memory is bounded: expired entries are pruned on every update, and at most ``max_entries``
addresses are kept (the most stale ones go first).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

import attrs

from .target import Target

__all__ = ["Blacklist", "BlacklistEntry", "BlacklistStatistics", "FailureReason"]

#: Seconds after the last failure when an address is clean again.
FADE = 600.0
#: The bound on stacked failures.
MAX_LEVEL = 3.0
#: The longest Retry-After honoured, in seconds.
MAX_HOLD = 3600.0

Key = tuple[str, str, int]


class FailureReason(enum.Enum):
    """Why an address was blacklisted."""

    TIMEOUT = "transaction timeout"
    TRANSPORT_ERROR = "transport error"
    UNREACHABLE = "ICMP unreachable / connection refused"
    SERVICE_UNAVAILABLE = "503 Service Unavailable"


@attrs.frozen(slots=True)
class BlacklistEntry:
    """One blacklisted address as :meth:`Blacklist.statistics` reports it."""

    key: Key
    penalty: float
    level: float
    failures: int
    last_failure: float
    reason: FailureReason
    held_until: float | None
    expires: float


@attrs.frozen(slots=True)
class BlacklistStatistics:
    """A snapshot: ``entries`` ordered most penalised first."""

    entries: tuple[BlacklistEntry, ...]

    def penalty(self, target: Target) -> float:
        """The penalty of ``target`` in this snapshot (0 when absent)."""
        for entry in self.entries:
            if entry.key == target.key:
                return entry.penalty
        return 0.0


@attrs.define(slots=True)
class _Entry:
    level: float
    last_failure: float
    failures: int
    reason: FailureReason
    held_until: float | None

    def penalty(self, now: float) -> float:
        age = now - self.last_failure
        if age >= FADE:
            return 0.0
        return self.level * (1.0 - max(age, 0.0) / FADE)

    def held(self, now: float) -> bool:
        return self.held_until is not None and now < self.held_until

    def expires(self) -> float:
        end = self.last_failure + FADE
        return max(end, self.held_until) if self.held_until is not None else end


class Blacklist:
    """Fading per-address penalties and the target order they imply (see the module doc)."""

    def __init__(self, *, max_entries: int = 1024) -> None:
        self._entries: dict[Key, _Entry] = {}
        self._max_entries = max_entries

    def failed(
        self,
        target: Target,
        now: float,
        reason: FailureReason = FailureReason.TIMEOUT,
        *,
        retry_after: float | None = None,
    ) -> None:
        """Record a failure of ``target`` at ``now`` (``retry_after`` from a 503, seconds)."""
        self._prune(now)
        entry = self._entries.get(target.key)
        held_until = None
        if retry_after is not None and retry_after > 0:
            held_until = now + min(float(retry_after), MAX_HOLD)
        if entry is None:
            self._entries[target.key] = _Entry(1.0, now, 1, reason, held_until)
            if len(self._entries) > self._max_entries:
                stalest = min(self._entries, key=lambda k: self._entries[k].expires())
                del self._entries[stalest]
            return
        entry.level = min(entry.penalty(now) + 1.0, MAX_LEVEL)
        entry.last_failure = now
        entry.failures += 1
        entry.reason = reason
        if held_until is not None:
            entry.held_until = max(held_until, entry.held_until or held_until)

    def penalty(self, target: Target, now: float) -> float:
        """The current penalty of ``target`` (0.0 when clean)."""
        entry = self._entries.get(target.key)
        return entry.penalty(now) if entry is not None else 0.0

    def is_held(self, target: Target, now: float) -> bool:
        """True while a Retry-After keeps ``target`` out."""
        entry = self._entries.get(target.key)
        return entry is not None and entry.held(now)

    def order(self, targets: Iterable[Target], now: float) -> list[Target]:
        """``targets`` reordered: clean first, lowest penalty next, held last (module doc)."""
        ranked = [(t, self._live(t.key, now)) for t in targets]
        free = [(t, e) for t, e in ranked if e is None or not e.held(now)]
        held = [(t, e) for t, e in ranked if e is not None and e.held(now)]
        every_one_penalised = all(e is not None for _, e in free)

        def free_rank(item: tuple[Target, _Entry | None]) -> float:
            entry = item[1]
            if entry is None:
                return 0.0
            # Every target penalised: least recently blacklisted first.
            return entry.last_failure if every_one_penalised else entry.penalty(now)

        def held_rank(item: tuple[Target, _Entry | None]) -> float:
            entry = item[1]
            if entry is None or entry.held_until is None:
                return 0.0
            return entry.held_until

        free.sort(key=free_rank)
        held.sort(key=held_rank)
        return [t for t, _ in free + held]

    @property
    def deadline(self) -> float | None:
        """When the next entry expires (for a shell that wants to report it), or None."""
        return min((e.expires() for e in self._entries.values()), default=None)

    def statistics(self, now: float) -> BlacklistStatistics:
        """The live entries at ``now`` (expired ones are pruned first)."""
        self._prune(now)
        entries = [
            BlacklistEntry(
                key=key,
                penalty=entry.penalty(now),
                level=entry.level,
                failures=entry.failures,
                last_failure=entry.last_failure,
                reason=entry.reason,
                held_until=entry.held_until if entry.held(now) else None,
                expires=entry.expires(),
            )
            for key, entry in self._entries.items()
        ]
        entries.sort(key=lambda e: (e.held_until is None, -e.penalty))
        return BlacklistStatistics(tuple(entries))

    def __len__(self) -> int:
        return len(self._entries)

    def _live(self, key: Key, now: float) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is None or now >= entry.expires():
            return None
        return entry

    def _prune(self, now: float) -> None:
        for key in [k for k, e in self._entries.items() if now >= e.expires()]:
            del self._entries[key]
