"""The shape every transaction machine shares, and the transition-table helper.

Theory of operation
-------------------
Two rules, as in h11's ``_state.py``: everything that moves a machine between states lives in
that machine's module-level ``TRANSITIONS`` table, and the table is *data* (state -> trigger ->
next state), read by the code, by the tests and by the docs (docs/transactions.md is checked
against it). An event with no entry for the current state is illegal: :meth:`_transition`
raises :class:`LocalProtocolError` and the state does not change.

A machine (Contract 2 in docs/architecture.md) is built from the request, a
:class:`TimerConfig`, ``reliable``, a :class:`TimeoutRole` and an optional per-transaction
``retransmit_interval`` (JAIN-SIP's ``Transaction.setRetransmitTimer``: "The default
retransmission value can be changed per transaction"). That interval is this transaction's T1:
Timers A, E and G start from it (doubling, capped at max(T2, it)) and the timeouts B and F are
min(64 * it, ``sip_transaction_timeout``), H 64 * it; the timers that wait for the *peer's*
retransmissions (D, I, J, K, L, M) keep the config's values. ``set_retransmit_interval`` sets it
later, until the timers it scales are running (a server INVITE: until its final response).
Then:

* ``start(now)`` -> outputs (the client sends its request; the server delivers its request);
* ``handle(input, now)`` -> outputs;
* ``handle_timer(now)`` -> outputs, called when ``now >= deadline``;
* ``deadline``: the earliest armed timer (absolute, same clock as ``now``) or None.

Timers are kept by name. A timer fires at its *scheduled* time, and a retransmission timer is
re-armed from that scheduled time, not from ``now``: a late wake-up does not shift the RFC's
schedule. Timers due at the same instant fire in the order of the machine's ``TIMER_ORDER``
(timeouts before retransmissions: there is no point resending a request that has just timed
out). A zero-length timer (Timer D/I/J/K over TCP) fires inside the same call.

``TimeoutRole`` carries JAIN-SIP's timeout semantics: each machine reads its row of
``timeouts.TIMEOUT_TABLE`` (``self.rule``) when it is built, and :meth:`_retransmission` /
:meth:`_timed_out` turn a retransmission or timeout timer into what the row says (see
``timeouts.py`` and docs/transactions.md).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from typing import Generic, TypeVar, cast

from ..errors import ConfigError, LocalProtocolError
from ..message import Request, Response
from ..outputs import (
    Input,
    Output,
    RetransmitTimeout,
    Terminated,
    TerminationReason,
    TransactionTimeout,
    Transmit,
    TransportErrorOccurred,
    TransportFailed,
)
from ..timers import TimerConfig, Timers
from .timeouts import Retransmitter, Side, TimeoutRole, TimeoutRule

_USER_AGENT = TimeoutRole.USER_AGENT
_APP_RETRANSMIT = TimeoutRole.USER_AGENT_APP_RETRANSMIT
_STATEFUL_PROXY = TimeoutRole.STATEFUL_PROXY

__all__ = [
    "Machine",
    "TimeoutRole",
    "Transitions",
    "Trigger",
    "render_markdown",
    "render_mermaid",
    "response_trigger",
]


class Trigger(enum.Enum):
    """What can move a machine: received messages, TU actions, timers, failures."""

    RECV_1XX = "1xx received"
    RECV_2XX = "2xx received"
    RECV_FAILURE = "300-699 received"
    RECV_REQUEST = "request retransmission"
    RECV_ACK = "ACK received"
    SEND_1XX = "TU sends 1xx"
    SEND_2XX = "TU sends 2xx"
    SEND_FAILURE = "TU sends 300-699"
    APP_RETRANSMIT = "application retransmit"
    TRANSPORT_ERROR = "transport error"
    TIMER_TRYING = "Timer 100 (200 ms)"
    TIMER_A = "Timer A"
    TIMER_B = "Timer B"
    TIMER_D = "Timer D"
    TIMER_E = "Timer E"
    TIMER_F = "Timer F"
    TIMER_G = "Timer G"
    TIMER_H = "Timer H"
    TIMER_I = "Timer I"
    TIMER_J = "Timer J"
    TIMER_K = "Timer K"
    TIMER_L = "Timer L"
    TIMER_M = "Timer M"


Transitions = Mapping[enum.Enum, Mapping[Trigger, enum.Enum]]

# Timers derived from a config (a frozen value), shared by every machine built from it.
_TIMERS: dict[tuple[TimerConfig, bool], Timers] = {}


class _LastConfig:
    """The config the last machine was built from and its timers: the machines of a stack
    share one config object, and an identity test is much cheaper than hashing the config
    (attrs hashes in Python code, ~1 us, once per transaction)."""

    __slots__ = ("config", "reliable", "unreliable")

    def __init__(self) -> None:
        self.config: TimerConfig | None = None
        self.reliable: Timers | None = None
        self.unreliable: Timers | None = None


_LAST = _LastConfig()


def _timers_for(config: TimerConfig, reliable: bool) -> Timers:
    last = _LAST
    if config is not last.config:
        last.config = None  # consistent if a lookup below raises
        last.reliable = _cached_timers(config, True)
        last.unreliable = _cached_timers(config, False)
        last.config = config
    timers = last.reliable if reliable else last.unreliable
    assert timers is not None
    return timers


def _cached_timers(config: TimerConfig, reliable: bool) -> Timers:
    key = (config, reliable)
    timers = _TIMERS.get(key)
    if timers is None:
        if len(_TIMERS) > 64:
            _TIMERS.clear()
        timers = _TIMERS[key] = config.timers(reliable=reliable)
    return timers


StateT = TypeVar("StateT", bound=enum.Enum)


def response_trigger(status_code: int, *, sending: bool) -> Trigger:
    """Classify a response status as the table's trigger."""
    if status_code < 200:
        return Trigger.SEND_1XX if sending else Trigger.RECV_1XX
    if status_code < 300:
        return Trigger.SEND_2XX if sending else Trigger.RECV_2XX
    return Trigger.SEND_FAILURE if sending else Trigger.RECV_FAILURE


class Machine(Generic[StateT]):
    """Shared plumbing: state, the table, named timers, start/handle/handle_timer.

    Subclasses set ``TRANSITIONS``, ``INITIAL``, ``TERMINATED``, ``TIMER_ORDER`` and implement
    ``_rules`` (their rows of the timeout table, ``stateful_rules(side, invite)``), ``_scaled``
    (the timers a per-transaction retransmit interval scales), ``_start``, ``_on_input`` and
    ``_on_timer``. (Methods returning module constants, not class attributes: in the compiled
    build a class-level default is evaluated again for every instance.)
    """

    # INITIAL and TERMINATED are typed as the base Enum, not StateT: mypyc compiles the
    # subclasses only if their class attributes have the very types declared here.
    TRANSITIONS: Mapping[StateT, Mapping[Trigger, StateT]]
    INITIAL: enum.Enum
    TERMINATED: enum.Enum
    TIMER_ORDER: tuple[Trigger, ...]

    def __init__(
        self,
        config: TimerConfig | None = None,
        *,
        reliable: bool,
        retransmit_interval: float | None = None,
        role: TimeoutRole = TimeoutRole.USER_AGENT,
    ) -> None:
        # The row by identity tests, not a dict lookup: an Enum hashes in Python code, and
        # this runs once per transaction.
        rules = self._rules()
        if role is _USER_AGENT:
            rule = rules[0]
        elif role is _APP_RETRANSMIT:
            rule = rules[1]
        elif role is _STATEFUL_PROXY:
            rule = rules[2]
        else:
            raise ConfigError(
                "role", role, "a stateful role: a stateless proxy forwards without transactions"
            )
        self.config = config if config is not None else TimerConfig()
        self.reliable = reliable
        self.role = role
        #: This transaction's row of the JAIN timeout table (timeouts.TIMEOUT_TABLE).
        self.rule: TimeoutRule = rule
        self.timers: Timers = _timers_for(self.config, reliable)
        #: First retransmission interval (Timers A, E, G): T1 unless overridden.
        self.first_interval = self.config.t1
        if retransmit_interval is not None:
            self._scale(retransmit_interval)
        #: The current retransmission interval (doubles as Timer A / E / G fires).
        self._interval = self.first_interval
        self._state: StateT = cast(StateT, self.INITIAL)
        self._started = False
        self._armed: dict[Trigger, float] = {}

    def set_retransmit_interval(self, interval: float) -> None:
        """Make ``interval`` (seconds) this transaction's T1 (JAIN-SIP's
        ``Transaction.setRetransmitTimer``): see the module comment for the timers it scales.

        Raises ``ConfigError`` unless it is finite and > 0, and ``LocalProtocolError`` when
        the timers it scales are already running, or the machine has none (a non-INVITE server
        transaction retransmits nothing on a timer).
        """
        scaled = self._scaled()
        if not scaled:
            raise LocalProtocolError(f"{type(self).__name__} has no retransmission timer to set")
        if any(timer in self._armed for timer in scaled) or self.terminated:
            raise LocalProtocolError(
                "set the retransmit interval before its timers start "
                "(a client: at send_request; a server INVITE: before the final response)"
            )
        self._scale(interval)
        self._interval = self.first_interval

    def _scale(self, interval: float) -> None:
        if not interval > 0 or not math.isfinite(interval):
            raise ConfigError("retransmit_interval", interval, "finite seconds > 0, or None")
        self.timers = self.config.timers(reliable=self.reliable, retransmit_interval=interval)
        self.first_interval = interval

    @property
    def side(self) -> Side:
        """CLIENT or SERVER."""
        return self.rule.side

    # ------------------------------------------------------------------ public surface

    @property
    def state(self) -> StateT:
        return self._state

    @property
    def deadline(self) -> float | None:
        """When :meth:`handle_timer` must be called next (absolute), or None."""
        return min(self._armed.values(), default=None)

    @property
    def terminated(self) -> bool:
        return self._state is self.TERMINATED

    def start(self, now: float) -> list[Output]:
        if self._started:
            raise LocalProtocolError("the transaction was already started")
        self._started = True
        out = self._start(now)
        return out + self._run_due(now)

    def handle(self, event: Input, now: float) -> list[Output]:
        if not self._started:
            raise LocalProtocolError("start() the transaction before feeding it events")
        if isinstance(event, TransportFailed):
            # §17.1.4 / §17.2.4: inform the TU and go straight to Terminated.
            self._transition(Trigger.TRANSPORT_ERROR)
            self._armed.clear()
            return [
                TransportErrorOccurred(event.reason),
                Terminated(TerminationReason.TRANSPORT_ERROR),
            ]
        out = self._on_input(event, now)
        return out + self._run_due(now)

    def handle_timer(self, now: float) -> list[Output]:
        """Fire every timer due at ``now``, earliest first."""
        if not self._started:
            raise LocalProtocolError("start() the transaction before its timers")
        return self._run_due(now)

    # ------------------------------------------------------------------ for subclasses

    def _rules(self) -> tuple[TimeoutRule, ...]:
        """This machine's rows for USER_AGENT, USER_AGENT_APP_RETRANSMIT, STATEFUL_PROXY."""
        raise NotImplementedError

    def _scaled(self) -> tuple[Trigger, ...]:
        """The timers a per-transaction retransmit interval scales (retransmission, timeout)."""
        raise NotImplementedError

    def _start(self, now: float) -> list[Output]:
        raise NotImplementedError

    def _on_input(self, event: Input, now: float) -> list[Output]:
        raise NotImplementedError

    def _on_timer(self, timer: Trigger, when: float) -> list[Output]:
        raise NotImplementedError

    def _check(self, trigger: Trigger) -> StateT:
        """The next state for ``trigger``, or LocalProtocolError if the table has no entry."""
        try:
            return self.TRANSITIONS[self._state][trigger]
        except KeyError:
            raise LocalProtocolError(
                f"{type(self).__name__}: {trigger.value!r} is not allowed in state "
                f"{self._state.name}"
            ) from None

    def _transition(self, trigger: Trigger) -> StateT:
        self._state = self._check(trigger)
        if self._state is self.TERMINATED:
            self._armed.clear()
        return self._state

    def _arm(self, timer: Trigger, when: float) -> None:
        self._armed[timer] = when

    def _disarm(self, *timers: Trigger) -> None:
        for timer in timers:
            self._armed.pop(timer, None)

    def _finish(self, reason: TerminationReason) -> list[Output]:
        return [Terminated(reason)]

    def _cap(self) -> float:
        """The cap of Timers E and G: T2, or this transaction's own T1 if that is larger."""
        return max(self.config.t2, self.first_interval)

    def _retransmission(self, message: Request | Response, timer: str) -> list[Output]:
        """A retransmission timer fired: resend if the stack retransmits in this role, tell
        the application if it hears RETRANSMIT (``self.rule``)."""
        rule = self.rule
        out: list[Output] = []
        if rule.retransmits is Retransmitter.STACK:
            out.append(Transmit(message))
        if rule.hears_retransmit:
            out.append(RetransmitTimeout(timer))
        return out

    def _timed_out(self, timer: str) -> list[Output]:
        """A timeout timer fired: the machine ends; the application hears TRANSACTION only
        if its row says so."""
        if self.rule.hears_transaction:
            return [TransactionTimeout(timer), Terminated(TerminationReason.TIMEOUT)]
        return [Terminated(TerminationReason.TIMEOUT)]

    def _check_app_retransmit(self) -> None:
        """ApplicationRetransmit is for the roles where the application retransmits."""
        if self.rule.retransmits is not Retransmitter.APPLICATION:
            raise LocalProtocolError(
                f"ApplicationRetransmit: in {self.role.name} the stack retransmits "
                f"{self.rule.side.value} {self.rule.method} transactions (the application does "
                "only for INVITE in TimeoutRole.USER_AGENT_APP_RETRANSMIT)"
            )

    def _run_due(self, now: float) -> list[Output]:
        out: list[Output] = []
        armed = self._armed
        if not armed or min(armed.values()) > now:
            return out  # the common case: nothing due
        while not self.terminated:
            due = [(when, self.TIMER_ORDER.index(t), t) for t, when in self._armed.items()]
            due = [d for d in due if d[0] <= now]
            if not due:
                break
            when, _, timer = min(due)
            del self._armed[timer]
            out += self._on_timer(timer, when)
        return out


def render_markdown(transitions: Mapping[StateT, Mapping[Trigger, StateT]]) -> str:
    """The table as a Markdown table (docs/transactions.md embeds this output)."""
    lines = ["| State | Event | Next state |", "| --- | --- | --- |"]
    for state, row in transitions.items():
        for trigger, target in row.items():
            lines.append(f"| {state.value} | {trigger.value} | {target.value} |")
    return "\n".join(lines)


def render_mermaid(transitions: Mapping[StateT, Mapping[Trigger, StateT]]) -> str:
    """The table as a Mermaid state diagram (self-loops omitted: the Markdown table has them)."""
    states = list(transitions)
    lines = ["stateDiagram-v2", f"    [*] --> {states[0].value}"]
    for state, row in transitions.items():
        for trigger, target in row.items():
            if target is not state:
                lines.append(f"    {state.value} --> {target.value}: {trigger.value}")
    lines.append(f"    {states[-1].value} --> [*]")
    return "\n".join(lines)
