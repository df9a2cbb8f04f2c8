"""Keep-alive machines: the "NULL" SIP keep-alive and RFC 5626 CRLF ping/pong on streams.

Theory of operation
-------------------
Both machines follow the core's timed-machine contract (see ``docs/architecture.md``):
``start(now)``, ``handle(event, now)``, ``handle_timer(now)``, ``deadline`` and ``state``. They
never touch a socket; the shell sends the bytes in :class:`SendKeepAlive` and reports pongs.

*NULL keep-alive.* Many SIP phones keep a NAT binding open by sending a bare CRLF to a host and
port every N seconds. A receiver ignores it (RFC 3261 §7.5 lets CRLFs precede a message; RFC 5626
§3.5.1 calls a lone CRLF a pong). :class:`NullKeepAlive` ticks on a fixed grid: tick *k* is due
at ``start + k * period``; a late wake-up sends once and re-aligns to the grid rather than
bursting to catch up, so a stalled host never floods the network. The period can be changed or
the loop disabled and enabled again at run time.

*RFC 5626 §4.4.1 (CRLF keep-alive on connection-oriented transports).* "the client sends a
double-CRLF (the "ping") then waits to receive a single CRLF (the KT.PONG). If the client does
not receive a pong within an appropriate amount of time, it considers the flow failed."
§4.4.1 also says the pong should arrive within 10 seconds, and that the interval between pings
is chosen at random between 80% and 100% of the keep-alive period (so that many clients do not
synchronise). :class:`StreamKeepAlive` implements that; the jitter comes from an injected
``random.Random`` so tests are deterministic. A missing pong yields :class:`FlowDead`, which the
shell treats like a transport failure (failover and re-registration start from it).
"""

from __future__ import annotations

import enum
import random
from typing import Final

import attrs

from .errors import ConfigError
from .fsm import step

__all__ = [
    "CRLF",
    "CRLFCRLF",
    "DEFAULT_PONG_TIMEOUT",
    "NULL_TRANSITIONS",
    "STREAM_TRANSITIONS",
    "FlowDead",
    "KeepAliveOutput",
    "KeepAliveState",
    "KeepAliveTrigger",
    "NullKeepAlive",
    "PongReceived",
    "SendKeepAlive",
    "StreamKeepAlive",
    "validate_period",
]

CRLF: Final = b"\r\n"
CRLFCRLF: Final = b"\r\n\r\n"
#: RFC 5626 §4.4.1: a pong is expected within 10 seconds.
DEFAULT_PONG_TIMEOUT: Final = 10.0


class KeepAliveState(enum.Enum):
    """The states of a keep-alive machine (NULL CRLF or RFC 5626 ping/pong)."""

    DISABLED = "disabled"
    WAITING = "waiting"  # until the next ping is due
    AWAITING_PONG = "awaiting-pong"
    DEAD = "dead"


@attrs.frozen(slots=True)
class SendKeepAlive:
    """Output: write these bytes to the keep-alive's destination or flow."""

    data: bytes


@attrs.frozen(slots=True)
class FlowDead:
    """Output: no pong came back in time; the flow has failed (RFC 5626 §4.4.1)."""

    reason: str


@attrs.frozen(slots=True)
class PongReceived:
    """A lone CRLF (a pong, RFC 5626 §4.4.1) arrived on a stream flow: the input of
    :class:`StreamKeepAlive`, and the event a flow gives its watchers
    (``trio_sip.transports.PongReceived`` is this class). ``time`` is when (trio's clock in the
    shell; 0.0 when nobody says)."""

    time: float = 0.0


KeepAliveOutput = SendKeepAlive | FlowDead


class KeepAliveTrigger(enum.Enum):
    """What moves a keep-alive machine (the triggers of its transition table)."""

    ENABLE = "enable"
    DISABLE = "disable"
    #: The next ping (or CRLF) is due, or the pong's time is up.
    TIMER = "timer"
    PONG = "pong"


K = KeepAliveState
KT = KeepAliveTrigger
#: state -> {trigger: next state} of :class:`NullKeepAlive`; an event missing from a row is
#: illegal in that state (LocalProtocolError). Self-loops leave the state as it is.
NULL_TRANSITIONS: Final[dict[KeepAliveState, dict[KeepAliveTrigger, KeepAliveState]]] = {
    K.DISABLED: {KT.ENABLE: K.WAITING, KT.DISABLE: K.DISABLED},
    K.WAITING: {KT.TIMER: K.WAITING, KT.DISABLE: K.DISABLED, KT.ENABLE: K.WAITING},
}

#: The same for :class:`StreamKeepAlive` (RFC 5626 §4.4.1). A pong nobody waits for
#: (WAITING, DISABLED, DEAD) is absorbed: it changes nothing.
STREAM_TRANSITIONS: Final[dict[KeepAliveState, dict[KeepAliveTrigger, KeepAliveState]]] = {
    K.DISABLED: {KT.ENABLE: K.WAITING, KT.DISABLE: K.DISABLED, KT.PONG: K.DISABLED},
    K.WAITING: {KT.TIMER: K.AWAITING_PONG, KT.PONG: K.WAITING, KT.DISABLE: K.DISABLED},
    K.AWAITING_PONG: {KT.PONG: K.WAITING, KT.TIMER: K.DEAD, KT.DISABLE: K.DISABLED},
    K.DEAD: {KT.DISABLE: K.DEAD, KT.PONG: K.DEAD},
}


def validate_period(period: float, setting: str = "period") -> float:
    """A keep-alive period must be a finite number of seconds greater than zero."""
    try:
        value = float(period)
    except (TypeError, ValueError):
        raise ConfigError(setting, period, "a number of seconds greater than 0") from None
    if not (value > 0) or value == float("inf"):
        raise ConfigError(setting, period, "a number of seconds greater than 0")
    return value


def _step(
    table: dict[KeepAliveState, dict[KeepAliveTrigger, KeepAliveState]],
    state: KeepAliveState,
    trigger: KeepAliveTrigger,
) -> KeepAliveState:
    return step("keep-alive", table, state, trigger)


class NullKeepAlive:
    """Send a bare CRLF every ``period`` seconds (the "NULL" SIP keep-alive)."""

    __slots__ = ("_anchor", "deadline", "period", "state")

    def __init__(self, period: float) -> None:
        self.period = validate_period(period)
        self.state = KeepAliveState.DISABLED
        self.deadline: float | None = None
        self._anchor = 0.0

    def start(self, now: float) -> list[KeepAliveOutput]:
        """Enable the loop: one CRLF now, the next ``period`` seconds later."""
        self.state = _step(NULL_TRANSITIONS, self.state, KT.ENABLE)
        self._anchor = now
        self.deadline = now + self.period
        return [SendKeepAlive(CRLF)]

    def handle_timer(self, now: float) -> list[KeepAliveOutput]:
        if self.deadline is None or now < self.deadline:
            return []
        self.state = _step(NULL_TRANSITIONS, self.state, KT.TIMER)
        # Stay on the grid anchor + k*period; skip ticks that a late wake-up missed.
        missed = int((now - self._anchor) // self.period)
        self.deadline = self._anchor + (missed + 1) * self.period
        return [SendKeepAlive(CRLF)]

    def set_period(self, period: float, now: float) -> None:
        """Change the period; the next CRLF is due ``period`` seconds after the last one."""
        period = validate_period(period)
        if self.deadline is not None:
            last = self.deadline - self.period
            self._anchor = last
            self.deadline = max(last + period, now)
        self.period = period

    def stop(self) -> None:
        """Disable the loop (``start`` enables it again)."""
        self.state = _step(NULL_TRANSITIONS, self.state, KT.DISABLE)
        self.deadline = None


class StreamKeepAlive:
    """RFC 5626 §4.4.1 CRLFCRLF ping / CRLF pong on a TCP or TLS flow."""

    __slots__ = ("_rng", "deadline", "period", "pong_timeout", "state")

    def __init__(
        self,
        period: float,
        *,
        pong_timeout: float = DEFAULT_PONG_TIMEOUT,
        rng: random.Random | None = None,
    ) -> None:
        self.period = validate_period(period)
        self.pong_timeout = validate_period(pong_timeout, "pong_timeout")
        self._rng = rng if rng is not None else random.Random()
        self.state = KeepAliveState.DISABLED
        self.deadline: float | None = None

    def _next_interval(self) -> float:
        # §4.4.1: "a random number between 80% and 100% of the keep-alive period".
        return self.period * self._rng.uniform(0.8, 1.0)

    def start(self, now: float) -> list[KeepAliveOutput]:
        self.state = _step(STREAM_TRANSITIONS, self.state, KT.ENABLE)
        self.deadline = now + self._next_interval()
        return []

    def handle(self, event: PongReceived, now: float) -> list[KeepAliveOutput]:
        awaited = self.state is KeepAliveState.AWAITING_PONG
        # An unsolicited pong (WAITING, DISABLED, DEAD) is a self-loop: it changes nothing.
        self.state = _step(STREAM_TRANSITIONS, self.state, KT.PONG)
        if awaited:
            self.deadline = now + self._next_interval()
        return []

    def handle_timer(self, now: float) -> list[KeepAliveOutput]:
        if self.deadline is None or now < self.deadline:
            return []
        if self.state is KeepAliveState.WAITING:
            self.state = _step(STREAM_TRANSITIONS, self.state, KT.TIMER)
            self.deadline = now + self.pong_timeout
            return [SendKeepAlive(CRLFCRLF)]
        self.state = _step(STREAM_TRANSITIONS, self.state, KT.TIMER)
        self.deadline = None
        return [FlowDead(f"no CRLF pong within {self.pong_timeout:g} s (RFC 5626 §4.4.1)")]

    def stop(self) -> None:
        self.state = _step(STREAM_TRANSITIONS, self.state, KT.DISABLE)
        if self.state is KeepAliveState.DISABLED:
            self.deadline = None
