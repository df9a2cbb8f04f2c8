# Fault isolation (issue #10; docs/security.md, "Faults").
#
# Theory of operation: whatever one received message, one transaction or one application
# handler raises is caught where it happens (the stack's receive callback, a transaction's
# driver, a handler task, ``trio-sip serve``'s call task) and handed to ``Faults.record`` with
# a *kind* naming where it was caught. ``record`` counts it (``Faults.counts``, also the
# ``faults`` total of ``Stack.statistics()``) and logs it at most once per kind per interval:
# the first fault of a kind in an interval gets one line at once (with its traceback when it is
# not a SipError and the kind never showed one before), every further one of that kind in the
# interval is only counted, and one summary line per kind ("N more in the last 60 s") follows
# at the end of the interval, written by the ``serve`` task. A datagram flood therefore costs a
# counter increment per datagram, not a traceback.
#
# Strict mode (``open_stack(strict=True)``, or ``TRIO_SIP_STRICT=1`` in the environment, which
# tests/conftest.py sets): an exception that is *not* a SipError (other than ConfigError) is a
# bug in trio-sip or in the application, never a peer's doing, and it must not hide behind a
# counter in tests. ``record`` then hands it to ``crash`` (the stack fails its nursery with it)
# or re-raises it. SipErrors -- ProtocolError, TransportError, the timeouts, CallFailed -- are
# what peers can cause; they are counted and logged in both modes, never raised.
"""Faults: per-kind fault counters, logging once per kind per interval, and the strict mode."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping

import trio

from trio_sip.proto.errors import ConfigError, SipError

__all__ = ["STRICT_ENV", "Faults", "is_expected", "strict_default"]

#: The environment variable that turns strict mode on by default (``1``; ``0`` or empty: off).
STRICT_ENV = "TRIO_SIP_STRICT"

#: Seconds between two log lines of one kind of fault (the summary of what was only counted).
LOG_INTERVAL = 60.0


def strict_default() -> bool:
    """Whether ``TRIO_SIP_STRICT`` asks for strict mode."""
    return os.environ.get(STRICT_ENV, "").strip() not in ("", "0")


def is_expected(exc: BaseException | None) -> bool:
    """A fault a peer can cause (a SipError other than ConfigError), not a bug."""
    return exc is None or (isinstance(exc, SipError) and not isinstance(exc, ConfigError))


class _Kind:
    __slots__ = ("level", "suppressed", "traced", "window_end")

    def __init__(self) -> None:
        self.window_end = -1.0  # the end of the interval of the last line logged
        self.suppressed = 0  # counted since that line, not logged yet
        self.traced = False  # a traceback was logged for this kind once
        self.level = logging.INFO


class Faults:
    """Counters of faults by kind, logged at most once per kind per ``interval`` seconds.

    ``crash(exc)`` receives the unexpected exceptions in strict mode (default: re-raise them
    from :meth:`record`). Run :meth:`serve` in a nursery for the summary lines.
    """

    def __init__(
        self,
        logger: logging.Logger,
        *,
        strict: bool | None = None,
        interval: float = LOG_INTERVAL,
        crash: Callable[[BaseException], object] | None = None,
    ) -> None:
        self._logger = logger
        #: Re-raise (or ``crash`` with) unexpected exceptions instead of only counting them.
        self.strict = strict_default() if strict is None else strict
        self.interval = interval
        self._crash = crash
        self._counts: dict[str, int] = {}
        self._kinds: dict[str, _Kind] = {}
        self._total = 0
        self._wake: trio.Event | None = None

    @property
    def counts(self) -> Mapping[str, int]:
        """How many faults of each kind were recorded (a copy)."""
        return dict(self._counts)

    @property
    def total(self) -> int:
        return self._total

    def __getitem__(self, kind: str) -> int:
        return self._counts.get(kind, 0)

    def record(
        self,
        kind: str,
        exc: BaseException | None = None,
        detail: str = "",
        *,
        level: int = logging.INFO,
    ) -> None:
        """Count one fault of ``kind`` (``exc``: what was raised; ``detail``: where, for the
        log line). Logs it if it is the first of its kind in the interval. In strict mode an
        unexpected ``exc`` is then re-raised (or passed to ``crash``)."""
        unexpected = not is_expected(exc)
        info = self._kinds.get(kind)
        if info is None:
            info = self._kinds[kind] = _Kind()
        now = trio.current_time()
        if now >= info.window_end and info.suppressed:
            self._summary(kind, info, now)  # due (the serve task may not have run yet)
        self._total += 1
        self._counts[kind] = self._counts.get(kind, 0) + 1
        if now >= info.window_end:
            info.window_end = now + self.interval
            info.level = logging.ERROR if unexpected else level
            trace = unexpected and not info.traced
            info.traced = info.traced or trace
            what = f": {exc!r}" if exc is not None else ""
            where = f" ({detail})" if detail else ""
            self._logger.log(
                info.level,
                "fault %s%s%s [%d so far]",
                kind,
                what,
                where,
                self._counts[kind],
                exc_info=exc if trace else None,
            )
        else:
            info.suppressed += 1
            if self._wake is not None:
                self._wake.set()
        if unexpected and self.strict:
            assert exc is not None
            if self._crash is None:
                raise exc
            self._crash(exc)

    def flush(self) -> None:
        """Log the summary line of every kind whose interval has ended with faults only
        counted (``serve`` calls it)."""
        now = trio.current_time()
        for kind, info in self._kinds.items():
            if info.suppressed and now >= info.window_end:
                self._summary(kind, info, now)

    def _summary(self, kind: str, info: _Kind, now: float) -> None:
        self._logger.log(
            info.level,
            "fault %s: %d more in the last %g s [%d so far]",
            kind,
            info.suppressed,
            self.interval,
            self._counts[kind],
        )
        info.suppressed = 0
        # A new interval starts now: what comes in it is counted and summarised at its end,
        # so a steady flood logs one line per interval.
        info.window_end = now + self.interval

    def _next_summary(self) -> float | None:
        ends = [i.window_end for i in self._kinds.values() if i.suppressed]
        return min(ends) if ends else None

    async def serve(self) -> None:
        """Write the summary lines at the end of each interval (runs until cancelled; idle
        while no fault is only counted)."""
        while True:
            deadline = self._next_summary()
            if deadline is None:
                self._wake = trio.Event()
                await self._wake.wait()
                self._wake = None
                continue
            await trio.sleep_until(deadline)
            self.flush()

    def __repr__(self) -> str:
        return f"<Faults total={self._total} {self._counts!r}>"
