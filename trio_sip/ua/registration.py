# Registration tasks for the user agent: RFC 3261 §10.2 (UAC), RFC 5626 §4.4 (flow keep-alive).
#
# Theory of operation: one supervised task per binding runs the pure REGISTER machine
# (``trio_sip.proto.registration.Registration``, docs/dialogs.md) in the refresh-task loop it
# shares with SUBSCRIBE (``ua.refresh.RefreshTask``: event streams, history, the shielded
# close). The task performs the
# machine's ``SendRequest`` outputs through a *sender* (the UA's ``FailoverClient``, kind
# REGISTER: one attempt, no immediate retry; its blacklist moves the next attempt to the next
# target) and feeds the outcome back: a final response as ``ResponseReceived``, a transaction
# timeout as ``RequestFailed("408 Request Timeout")``, a transport failure as
# ``RequestFailed("transport error: ...")``. In between it sleeps until ``machine.deadline``
# (the refresh, or the retry at the next ``reg_interval`` tick; none when it is 0) under
# ``trio.move_on_at``: the task's cancel scope is the timer. Each ``StateChanged`` becomes a
# :class:`RegistrationEvent` that the handle publishes (``state``, ``wait_registered()``,
# ``events()``).
#
# TCP/TLS: after each 2xx the task watches the flow the REGISTER went over and, with a
# ``KeepAlives``, sends RFC 5626 CRLFCRLF pings on it. A dead flow (no pong, a reset) counts as
# a failure: the state goes REGISTERED -> REGISTERING with "transport error: ..." and the
# binding is refreshed at once over a new connection (at most once per ``flow_retry`` s); if
# that fails too, the machine's failure rule applies.
#
# Closing (``aclose()``, or the owner's nursery being cancelled) stops the task and then sends
# the REGISTER with ``Expires: 0`` in a shielded scope bounded by ``unregister_timeout``.
"""Registration tasks: REGISTER refreshes, failures, events, unregistering."""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Iterable
from typing import Any, final

import attrs
import trio

from trio_sip.errors import RegistrationFailed as RegistrationFailed
from trio_sip.failover import Destination, FailoverClient
from trio_sip.keepalive import KeepAlives
from trio_sip.proto.auth import CredentialStore, DigestClient
from trio_sip.proto.errors import TransportError
from trio_sip.proto.message import Response
from trio_sip.proto.registration import (
    DEFAULT_REG_INTERVAL,
    RegistrationState,
    RequestFailed,
    StateChanged,
)
from trio_sip.proto.registration import Registration as RegisterMachine
from trio_sip.proto.retry import RequestKind
from trio_sip.proto.target import Target
from trio_sip.stack import Stack
from trio_sip.transports.base import Flow, FlowEvent, FlowFailed

from .refresh import EventStream, RefreshTask, RefreshTasks, send_once

__all__ = [
    "EventStream",
    "RegistrationEvent",
    "RegistrationFailed",
    "RegistrationStatistics",
    "Registrations",
    "UaRegistration",
    "send_once",
]

logger = logging.getLogger("trio_sip.ua.registration")
RS = RegistrationState


@attrs.frozen(slots=True)
class RegistrationEvent:
    """A state change: ``old`` -> ``new`` because of ``reason`` ("200 OK", "403 Forbidden",
    "408 Request Timeout", "transport error: ..."), at trio time ``time``."""

    old: RegistrationState
    new: RegistrationState
    reason: str
    time: float


@attrs.frozen(slots=True)
class RegistrationStatistics:
    state: RegistrationState
    #: REGISTER requests sent (resends after 401/407/423 and refreshes included).
    requests: int
    #: 2xx responses, and failures (timeouts, transport errors, 3xx-6xx, dead flows).
    successes: int
    failures: int
    #: Seconds the registrar granted last (None before the first 2xx).
    granted: int | None
    #: When the next refresh or retry is due (trio time), None if nothing is scheduled.
    next_attempt: float | None
    #: Where the last REGISTER went, and the last reason.
    target: Target | None
    reason: str


@final
class UaRegistration(RefreshTask[RegisterMachine, RegistrationEvent]):
    """One binding kept alive by a task (made by :meth:`Registrations.register`)."""

    history_limit = 100

    def __init__(
        self,
        machine: RegisterMachine,
        sender: FailoverClient,
        destination: Destination,
        *,
        stack: Stack | None,
        keepalives: KeepAlives | None,
        keepalive_period: float,
        flow_retry: float,
        unregister_timeout: float,
    ) -> None:
        super().__init__(
            machine, sender, destination, RequestKind.REGISTER, close_timeout=unregister_timeout
        )
        self._stack = stack
        self._keepalives = keepalives
        self._keepalive_period = keepalive_period
        self._flow_retry = flow_retry
        self._override: RegistrationState | None = None
        self._state = machine.state
        self._flow: Flow | None = None
        self._unwatch: Any = None
        self._flow_dead: str | None = None
        self._last_flow_retry = -math.inf
        self._last_response: Response | None = None
        self._successes = 0
        self._failures = 0
        self.target: Target | None = None

    # -- application side -------------------------------------------------------------------

    @property
    def state(self) -> RegistrationState:
        return self._state

    @property
    def aor(self) -> str:
        return str(self.machine.aor.uri)

    async def wait_registered(self) -> None:
        """Return once REGISTERED (at once if it is); raise :class:`RegistrationFailed` if the
        attempt under way fails or the registration is closed first."""
        while self._state is not RS.REGISTERED:
            if self._done.is_set():
                raise RegistrationFailed(f"registration closed ({self.reason})")
            await self._changed.wait()
            if self._state is RS.FAILED:
                raise RegistrationFailed(self.reason, self._last_response)
        await trio.lowlevel.checkpoint()

    def statistics(self) -> RegistrationStatistics:
        return RegistrationStatistics(
            state=self._state,
            requests=self.requests,
            successes=self._successes,
            failures=self._failures,
            granted=self.machine.granted,
            next_attempt=self.machine.deadline,
            target=self.target,
            reason=self.reason,
        )

    async def aclose(self) -> None:
        """Stop refreshing and unregister (``Expires: 0``, bounded); waits for the task."""
        await super().aclose()

    def __repr__(self) -> str:
        return f"<UaRegistration {self.aor} {self._state.value}: {self.reason!r}>"

    # -- the task (the loop is RefreshTask.run) ---------------------------------------------

    def _sleep_until(self) -> float | None:
        if self._flow_dead is not None:
            return -math.inf  # wake at once: refresh over a new connection
        return super()._sleep_until()

    async def _step(self) -> None:
        if self._flow_dead is not None:
            await self._flow_failed(self._flow_dead, trio.current_time())
        else:
            await super()._step()

    async def _close(self) -> None:
        self._stop_watching()
        if self.machine.state is not RS.UNREGISTERING:
            await self._perform(self.machine.close(trio.current_time()))

    def _closed(self) -> None:
        now = trio.current_time()
        if self.machine.state is RS.UNREGISTERING:  # the unregister did not finish in time
            self._publish(self.machine.handle(RequestFailed("unregister timed out"), now))
        elif self.machine.state is not RS.UNREGISTERED:
            self._publish(self.machine.close(now))
        self._stop_watching()

    async def _answered(
        self, response: Response | None, target: Target | None, outputs: list[object]
    ) -> None:
        if target is not None:
            self.target = target
        self._last_response = response
        if (
            response is not None
            and 200 <= response.status_code < 300
            and self.machine.state is RS.REGISTERED
        ):
            self._successes += 1
            await self._watch(target)
        self._override = None
        if not any(isinstance(o, StateChanged) for o in outputs):
            # e.g. a refresh after a dead flow (REGISTERING -> REGISTERED), or a new reason.
            self._set_state(self.machine.state, self.machine.reason)

    def _publish(self, outputs: Iterable[object]) -> None:
        for output in outputs:
            self._output(output)

    def _output(self, output: object) -> None:
        if isinstance(output, StateChanged):
            assert isinstance(output.new, RegistrationState)
            if output.new is RS.FAILED:
                self._failures += 1
            self._set_state(output.new, output.reason)

    def _set_state(self, new: RegistrationState, reason: str) -> None:
        self.reason = reason
        old = self._state
        if new is old:
            return
        self._state = new
        event = RegistrationEvent(old, new, reason, trio.current_time())
        logger.info("%s: %s -> %s (%s)", self.aor, old.value, new.value, reason)
        self._announce(event)

    # -- flows ------------------------------------------------------------------------------

    async def _watch(self, target: Target | None) -> None:
        if target is None or not target.reliable or self._stack is None:
            return
        try:
            flow = await self._stack.transport_layer.connect(target)
        except TransportError:
            return
        if flow is self._flow:
            return
        self._stop_watching()
        self._flow = flow

        def on_event(event: FlowEvent) -> None:
            if isinstance(event, FlowFailed) and self._flow is flow:
                self._flow_dead = f"transport error: {event.error}"
                self._wakeup.set()

        self._unwatch = flow.subscribe(on_event)
        if self._keepalives is not None and self._keepalive_period > 0:
            await self._keepalives.watch_flow(flow, self._keepalive_period)

    def _stop_watching(self) -> None:
        if self._unwatch is not None:
            self._unwatch()
        self._unwatch = self._flow = None

    async def _flow_failed(self, reason: str, now: float) -> None:
        self._flow_dead = None
        self._stop_watching()
        if self.machine.state is not RS.REGISTERED:
            return
        self._failures += 1
        self._override = RS.REGISTERING
        self._set_state(RS.REGISTERING, reason)
        wait = self._last_flow_retry + self._flow_retry - now
        if wait > 0:
            await trio.sleep(wait)
        self._last_flow_retry = trio.current_time()
        self.machine.deadline = trio.current_time()  # refresh now, over a new connection
        await self._perform(self.machine.handle_timer(trio.current_time()))


@final
class Registrations(RefreshTasks[UaRegistration]):
    """The registration tasks of one user agent, supervised in ``nursery``.

    ``failover`` is the UA's ``FailoverClient`` (default: a new one on ``stack``).
    ``keepalives`` enables RFC 5626 pings on TCP/TLS flows.
    """

    def __init__(
        self,
        stack: Stack,
        nursery: trio.Nursery,
        *,
        failover: FailoverClient | None = None,
        keepalives: KeepAlives | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(stack, nursery, failover=failover, rng=rng)
        self._keepalives = keepalives

    async def register(
        self,
        aor: str,
        destination: Destination,
        *,
        contact: str,
        registrar: str | None = None,
        expires: int = 3600,
        reg_interval: float = DEFAULT_REG_INTERVAL,
        credentials: CredentialStore | tuple[str, str] | None = None,
        headers: Iterable[tuple[str, str]] = (),
        keepalive_period: float = 120.0,
        flow_retry: float = 30.0,
        unregister_timeout: float = 4.0,
    ) -> UaRegistration:
        """Start a registration task for ``contact`` at ``aor``; return its handle at once
        (the first REGISTER is under way: ``await registration.wait_registered()``)."""
        if isinstance(credentials, tuple):
            credentials = CredentialStore(default=credentials)
        digest = None if credentials is None else DigestClient(credentials, self._rng)
        machine = RegisterMachine(
            aor,
            contact,
            rng=self._rng,
            registrar=registrar,
            expires=expires,
            reg_interval=reg_interval,
            digest=digest,
            config=self.stack.timer_config,
            headers=headers,
        )
        registration = UaRegistration(
            machine,
            self.failover,
            destination,
            stack=self.stack,
            keepalives=self._keepalives,
            keepalive_period=keepalive_period,
            flow_retry=flow_retry,
            unregister_timeout=unregister_timeout,
        )
        return await self._start(registration)

    async def aclose(self) -> None:
        """Unregister every binding (in parallel, each bounded)."""
        async with trio.open_nursery() as nursery:
            for registration in list(self._all):
                nursery.start_soon(registration.aclose)
