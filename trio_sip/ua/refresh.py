# The scaffolding shared by the user agent's refresh tasks: ``ua.registration`` (REGISTER,
# RFC 3261 §10.2) and ``ua.subscription`` (SUBSCRIBE, RFC 6665).
#
# Theory of operation: each binding or subscription is one supervised task that runs a pure
# refresh machine (``proto.registration.Registration``, ``proto.subscription.Subscription``:
# ``start`` / ``handle`` / ``handle_timer`` / ``close`` / ``deadline``). :class:`RefreshTask`
# is that task's loop: perform the machine's outputs (``SendRequest`` through
# :func:`send_once`, whose outcome goes back in as ``ResponseReceived`` or ``RequestFailed``;
# everything else to the subclass's ``_output``), sleep until ``machine.deadline`` or a wake-up
# under ``trio.move_on_at`` (the cancel scope is the timer), repeat. On the way out (``aclose``
# or the owner's nursery cancelled) it runs the subclass's ``_close`` in a shielded, bounded
# scope (the unregister / unsubscribe), then ends every :class:`EventStream` it handed out.
# State changes are announced once, to ``history``, to every event stream and to the waiters
# of ``_changed``. :class:`RefreshTasks` is the per-UA set of such tasks in one nursery.
#
# The subclasses keep what differs: the events they publish, the destination of in-dialog
# requests (SUBSCRIBE), flow watching and dead-flow refreshes (REGISTER), and statistics.
"""Refresh tasks: the loop, event streams and task set shared by REGISTER and SUBSCRIBE."""

from __future__ import annotations

import math
import random
import weakref
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Generic, Protocol, TypeVar

import trio

from trio_sip.dns import DnsError
from trio_sip.failover import Destination, FailoverClient
from trio_sip.proto.errors import TransactionTimeoutError, TransportError
from trio_sip.proto.message import Request, Response
from trio_sip.proto.registration import RequestFailed, ResponseReceived, SendRequest
from trio_sip.proto.retry import RequestKind
from trio_sip.proto.target import Target
from trio_sip.stack import Stack

__all__ = ["EventStream", "RefreshMachine", "RefreshTask", "RefreshTasks", "send_once"]


async def send_once(
    sender: FailoverClient, request: Request, destination: Destination, kind: RequestKind
) -> tuple[Response | None, Target | None, str]:
    """Run ``request`` (its placeholder Via removed; the stack adds the real one) and map the
    outcome to (response, target, failure reason)."""
    request = request.evolve(headers=request.headers.remove("Via"))
    # Timer F ends the transaction; this bound also covers a TCP connect into a black hole.
    bound = sender.stack.timer_config.sip_transaction_timeout / 1000 + 2.0
    try:
        with trio.fail_after(bound):
            result = await sender.request(request, destination, kind=kind)
    except (TransactionTimeoutError, trio.TooSlowError):
        return None, None, "408 Request Timeout"
    except TransportError as exc:
        return None, None, f"transport error: {exc}"
    except DnsError as exc:
        return None, None, f"DNS error: {exc}"
    return result.response, result.target, ""


E = TypeVar("E")


class EventStream(Generic[E]):
    """An async iterator of :class:`RegistrationEvent` (or subscription events): the current
    state first (the last change, when there was one), then every change from the moment it
    was made; it ends when the registration is closed. Nothing is missed by a stream made
    late or read from a task that starts later."""

    def __init__(self, maxlen: int = 256) -> None:
        self._items: deque[E] = deque(maxlen=maxlen)
        self._closed = False
        self._wakeup = trio.Event()

    def _put(self, item: E) -> None:
        self._items.append(item)
        self._wakeup.set()

    def _close(self) -> None:
        self._closed = True
        self._wakeup.set()

    def __aiter__(self) -> EventStream[E]:
        return self

    async def __anext__(self) -> E:
        while not self._items:
            if self._closed:
                raise StopAsyncIteration
            self._wakeup = trio.Event()
            await self._wakeup.wait()
        await trio.lowlevel.checkpoint()
        return self._items.popleft()


class RefreshMachine(Protocol):
    """What :class:`RefreshTask` needs of a pure refresh machine."""

    deadline: float | None

    def start(self, now: float) -> Sequence[object]: ...

    def close(self, now: float) -> Sequence[object]: ...

    def handle_timer(self, now: float) -> Sequence[object]: ...

    def handle(self, event: ResponseReceived | RequestFailed, now: float) -> Sequence[object]: ...


M = TypeVar("M", bound=RefreshMachine)
T_item = TypeVar("T_item")


class RefreshTask(Generic[M, E]):
    """One refresh machine driven by one task (see the module comment); subclasses fill in
    ``_output``, ``_close`` and, where they differ, the other ``_``-hooks."""

    #: How many state changes ``history`` keeps (None: all of them).
    history_limit: int | None = None

    def __init__(
        self,
        machine: M,
        sender: FailoverClient,
        destination: Destination,
        kind: RequestKind,
        *,
        close_timeout: float,
    ) -> None:
        self.machine = machine
        self.destination = destination
        self._sender = sender
        self._kind = kind
        self._close_timeout = close_timeout
        self._streams: weakref.WeakSet[EventStream[E]] = weakref.WeakSet()
        self._changed = trio.Event()
        self._wakeup = trio.Event()
        self._scope = trio.CancelScope()
        self._done = trio.Event()
        self.history: list[E] = []
        self.requests = 0
        self.reason = ""

    # -- application side -------------------------------------------------------------------

    def events(self) -> EventStream[E]:
        """The last state change (the current state), then every change from now on
        (``async for event in task.events()``)."""
        return self._new_stream(self._streams, self.history[-1:])

    def _new_stream(
        self, into: weakref.WeakSet[EventStream[T_item]], current: Iterable[T_item] = ()
    ) -> EventStream[T_item]:
        stream = EventStream[T_item]()
        for item in current:
            stream._put(item)
        if self._done.is_set():
            stream._close()
        into.add(stream)
        return stream

    async def aclose(self) -> None:
        """Stop refreshing, end it (bounded) and wait for the task."""
        self._scope.cancel()
        await self._done.wait()

    # -- the task ---------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The task (``nursery.start(task.run)``)."""
        try:
            with self._scope:
                task_status.started()
                await self._perform(self.machine.start(trio.current_time()))
                while not self._finished():
                    await self._sleep()
                    await self._step()
        finally:
            with trio.CancelScope(shield=True):
                with trio.move_on_after(self._close_timeout):
                    await self._close()
                self._closed()
            self._done.set()
            self._changed.set()
            for stream in list(self._streams):
                stream._close()

    def _finished(self) -> bool:
        """True when the machine has ended for good and the task should return."""
        return False

    def _sleep_until(self) -> float | None:
        """When the task next wakes by itself (None: do not sleep, there is work)."""
        deadline = self.machine.deadline
        return math.inf if deadline is None else deadline

    async def _sleep(self) -> None:
        deadline = self._sleep_until()
        if deadline is None:
            return
        self._wakeup = trio.Event()
        with trio.move_on_at(deadline):
            await self._wakeup.wait()

    async def _step(self) -> None:
        """After a sleep: the machine's timer (subclasses add their wake-up reasons)."""
        await self._perform(self.machine.handle_timer(trio.current_time()))

    async def _perform(self, outputs: Iterable[object]) -> None:
        pending = deque(outputs)
        while pending:
            output = pending.popleft()
            if isinstance(output, SendRequest):
                pending.extend(await self._send(output.request))
            else:
                self._output(output)

    async def _send(self, request: Request) -> list[object]:
        self.requests += 1
        response, target, failure = await send_once(
            self._sender, request, self._destination_for(request), self._kind
        )
        now = trio.current_time()
        if response is None:
            outputs = list(self.machine.handle(RequestFailed(failure), now))
        else:
            outputs = list(self.machine.handle(ResponseReceived(response), now))
        await self._answered(response, target, outputs)
        return outputs

    def _destination_for(self, request: Request) -> Destination:
        return self.destination

    async def _answered(
        self, response: Response | None, target: Target | None, outputs: list[object]
    ) -> None:
        """Called after the machine took the outcome of a request (``outputs`` not yet
        performed)."""

    def _output(self, output: object) -> None:
        """Publish one machine output other than ``SendRequest``."""
        raise NotImplementedError

    async def _close(self) -> None:
        """Leave: unregister / unsubscribe (shielded, bounded by ``close_timeout``)."""
        raise NotImplementedError

    def _closed(self) -> None:
        """After ``_close`` (also when it timed out), before the event streams end."""

    def _announce(self, event: E) -> None:
        """A state change: into ``history``, to every event stream, and to the waiters."""
        self.history.append(event)
        if self.history_limit is not None:
            del self.history[: -self.history_limit]
        for stream in list(self._streams):
            stream._put(event)
        self._changed.set()
        self._changed = trio.Event()


T = TypeVar("T", bound=RefreshTask[Any, Any])


class RefreshTasks(Generic[T]):
    """The refresh tasks of one user agent, supervised in ``nursery``; ``failover`` is the
    UA's ``FailoverClient`` (default: a new one on ``stack``)."""

    def __init__(
        self,
        stack: Stack,
        nursery: trio.Nursery,
        *,
        failover: FailoverClient | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.stack = stack
        self._nursery = nursery
        self.failover = failover if failover is not None else FailoverClient(stack)
        self._rng = rng if rng is not None else random.SystemRandom()
        self._all: list[T] = []

    def __iter__(self) -> Iterator[T]:
        return iter(list(self._all))

    async def _start(self, task: T) -> T:
        self._all.append(task)
        await self._nursery.start(self._run, task)
        return task

    async def _run(self, task: T, *, task_status: trio.TaskStatus[None]) -> None:
        try:
            await task.run(task_status=task_status)
        finally:
            if task in self._all:
                self._all.remove(task)
