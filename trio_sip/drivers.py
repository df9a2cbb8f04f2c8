# The drivers of timed machines (docs/architecture.md, Contract 2; design rule 4).
#
# Theory of operation: a machine never does I/O and never reads a clock; a driver does both for
# it. There are two kinds here.
#
# * :class:`TimerQueue`: the machines of the transaction layer are driven *synchronously*, with
#   no task per machine. Their owner feeds each input (a received message, a TU response, a
#   transport failure) to ``machine.handle`` in the callback where it arrives, performs the
#   outputs at once (a UDP datagram is sent without a task when the socket accepts it) and
#   keeps the machine's next ``deadline`` in one TimerQueue: a heap served by one task, which
#   calls the owner back at each deadline (``handle_timer(trio.current_time())``). Entries are
#   never removed: the owner remembers the deadline it pushed and ignores an entry that no
#   longer matches. With ``autojump_clock`` the timers fire at exactly their RFC instants.
# * :func:`run_machine`: one task per machine, for owners that want one (the user agent's 2xx/ACK
#   machines). It calls ``machine.start(now)``, performs the outputs in order, then waits on the
#   machine's :class:`Inbox` under ``trio.move_on_at(machine.deadline)``. An inbox item is an
#   input for ``machine.handle`` or a list of outputs the owner already obtained from the
#   machine synchronously (a TU action, which must raise ``LocalProtocolError`` in the caller
#   when illegal). When the deadline passes, ``handle_timer(trio.current_time())`` runs.
#   ``Transmit`` is serialised and sent with the ``send`` callable; a ``TransportError`` from it
#   is fed back as ``TransportFailed`` (§17.1.4 / §17.2.4). Every other output goes to the
#   owner's synchronous ``on_output``. With ``watch=flow`` a failure seen by the flow's reader
#   (a TCP reset, an ICMP port-unreachable on a connected UDP socket, RFC 1122 §4.1.3.3) reaches
#   the machine as ``TransportFailed`` at once. The loop returns when the machine is
#   Terminated; cancelling its scope ends it at any time, and ``finally`` unsubscribes.
"""``TimerQueue`` (one timer task for many machines) and ``run_machine`` (a task per machine)."""

from __future__ import annotations

import heapq
import itertools
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Generic, Protocol, TypeVar

import trio

from trio_sip.proto.errors import TransportError
from trio_sip.proto.message import Request, Response
from trio_sip.proto.outputs import (
    Input,
    Output,
    Terminated,
    TerminationReason,
    Transmit,
    TransportErrorOccurred,
    TransportFailed,
)
from trio_sip.proto.transaction import Machine
from trio_sip.transports.base import Flow, FlowEvent, FlowFailed

__all__ = ["LINGER_MIN", "Inbox", "InboxItem", "Owner", "Send", "TimerQueue", "run_machine"]

logger = logging.getLogger("trio_sip.drivers")
T = TypeVar("T")

#: A machine whose next deadline is at least this far (seconds) only *lingers* (RFC 6026
#: Accepted, Completed, Confirmed): ``run_machine(linger=...)`` may hand it to its owner's shared
#: timer instead of keeping a driver task, and the stack drops the parsed views of the messages
#: such a transaction keeps. Below it (Timer A/E/G retransmissions, the 200 ms 100 Trying) the
#: machine is still at work.
LINGER_MIN = 2.0
#: What the inbox carries: an input to handle, or outputs already returned by the machine.
InboxItem = Input | list[Output]
#: Sends one message; raises ``TransportError``.
Send = Callable[[Request | Response], Awaitable[Any]]


class Owner(Protocol):
    """Who receives a machine's non-Transmit outputs (a transaction handle)."""

    def on_output(self, output: Output) -> None: ...


class Inbox(Generic[T]):
    """A small unbounded FIFO with one waiter: a deque and a lazily made ParkingLot.

    Much lighter than a memory channel pair, which matters with 10,000 live transactions.
    ``put`` never blocks (it is called from synchronous transport callbacks).
    """

    __slots__ = ("_items", "_lot")

    def __init__(self) -> None:
        self._items: deque[T] = deque()
        self._lot: trio.lowlevel.ParkingLot | None = None

    def put(self, item: T) -> None:
        self._items.append(item)
        if self._lot is not None:
            self._lot.unpark_all()

    def __len__(self) -> int:
        return len(self._items)

    async def get(self) -> T:
        """The oldest item; waits (cancellably) while empty. Always a checkpoint."""
        if self._items:
            await trio.lowlevel.checkpoint()
        while not self._items:
            if self._lot is None:
                self._lot = trio.lowlevel.ParkingLot()
            await self._lot.park()
        return self._items.popleft()


class TimerQueue(Generic[T]):
    """Deadlines of many machines in one heap, served by one task (:meth:`serve`).

    ``push(deadline, item)`` schedules ``fire(item, deadline, now)``; :meth:`serve` calls it
    once ``trio.current_time() >= deadline``, earliest first (pushes with equal deadlines fire
    in push order). Entries are not cancelled one by one: ``live(item, deadline)`` says whether
    an entry still counts, ``fire`` is only called for live ones, and :meth:`prune` (call it
    when an owner's deadline changed) drops the dead entries at the top of the heap, so that
    the task does not wake for them (most 100 Trying timers die within milliseconds).
    """

    __slots__ = ("_fire", "_heap", "_live", "_scope", "_seq")

    def __init__(
        self,
        fire: Callable[[T, float, float], object],
        live: Callable[[T, float], bool] = lambda item, deadline: True,
    ) -> None:
        self._fire = fire
        self._live = live
        self._heap: list[tuple[float, int, T]] = []
        self._seq = itertools.count()
        self._scope: trio.CancelScope | None = None

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, deadline: float, item: T) -> None:
        heapq.heappush(self._heap, (deadline, next(self._seq), item))
        scope = self._scope
        if scope is not None and deadline < scope.deadline:
            scope.deadline = deadline

    def prune(self) -> None:
        """Drop the dead entries at the top; the serving task then sleeps until the first live
        deadline."""
        heap = self._heap
        if not heap or self._live(heap[0][2], heap[0][0]):
            return
        live = self._live
        pop = heapq.heappop
        while heap and not live(heap[0][2], heap[0][0]):
            pop(heap)
        scope = self._scope
        if scope is not None:
            scope.deadline = heap[0][0] if heap else math.inf

    def clear(self) -> None:
        self._heap.clear()

    async def serve(self) -> None:
        """Fire the entries as they fall due, until cancelled. An exception from ``fire`` is
        logged (the owner's bug must not stop every other machine's timers)."""
        heap = self._heap
        pop = heapq.heappop
        live = self._live
        while True:
            while heap and not live(heap[0][2], heap[0][0]):
                pop(heap)
            with trio.CancelScope(deadline=heap[0][0] if heap else math.inf) as scope:
                self._scope = scope
                await trio.sleep_forever()
            self._scope = None
            now = trio.current_time()
            while heap and heap[0][0] <= now:
                deadline, _, item = pop(heap)
                if not live(item, deadline):
                    continue
                try:
                    self._fire(item, deadline, now)
                except Exception:
                    logger.exception("timer callback failed for %r", item)


async def run_machine(
    machine: Machine[Any],
    inbox: Inbox[InboxItem],
    send: Send,
    owner: Owner,
    *,
    started: bool = False,
    watch: Flow | None = None,
    scope: trio.CancelScope | None = None,
    linger: Callable[[], bool] | None = None,
    task_status: trio.TaskStatus[trio.CancelScope] = trio.TASK_STATUS_IGNORED,
) -> TerminationReason | None:
    """Drive ``machine`` until it is Terminated; return why (None if cancelled first).

    Start it with ``await nursery.start(run_machine, ...)``: the start outputs (the first
    transmission, or the delivery of a server's request) are performed before ``start``
    returns the driver's cancel scope. Cancel that scope to abandon the transaction.

    ``started=True``: the owner already called ``machine.start`` (a server transaction made
    inside a synchronous transport callback, so that the TU can act on it at once) and put
    the outputs it returned into the inbox.

    ``scope``: the cancel scope to run in (made by the owner, who may cancel it before the
    task even ran: then the driver ends at its first checkpoint); default a new one.

    ``linger``: asked before each wait on an empty inbox whose deadline is at least
    :data:`LINGER_MIN` seconds away. When it returns True the owner has taken over the machine
    (a shared timer keeps its deadline, and a new driver is started for its next input or
    timer) and this driver returns None at once: a transaction lingering 32 s in RFC 6026's
    Accepted state, or §17.2.2's Completed state, costs no task.
    """
    reason: TerminationReason | None = None
    unsubscribe: Callable[[], None] | None = None
    if scope is None:
        scope = trio.CancelScope()
    with scope:
        if watch is not None:

            def on_flow_event(event: FlowEvent) -> None:
                if isinstance(event, FlowFailed) and not machine.terminated:
                    inbox.put(TransportFailed(str(event.error)))

            unsubscribe = watch.subscribe(on_flow_event)
        try:
            if not started:
                reason = await _perform(machine, machine.start(trio.current_time()), send, owner)
            task_status.started(scope)
            while reason is None:
                deadline = machine.deadline
                if (
                    linger is not None
                    and deadline is not None
                    and not inbox
                    and deadline - trio.current_time() >= LINGER_MIN
                    and linger()
                ):
                    return None
                item: InboxItem | None = None
                with trio.move_on_at(math.inf if deadline is None else deadline):
                    item = await inbox.get()
                now = trio.current_time()
                if item is None:
                    outputs = machine.handle_timer(now)
                elif isinstance(item, list):
                    outputs = item
                elif machine.terminated:
                    continue  # a failure reported after the end: nothing to do
                else:
                    outputs = machine.handle(item, now)
                reason = await _perform(machine, outputs, send, owner)
        finally:
            if unsubscribe is not None:
                unsubscribe()
    return reason


async def _perform(
    machine: Machine[Any], outputs: list[Output], send: Send, owner: Owner
) -> TerminationReason | None:
    """Perform ``outputs`` in order; return the termination reason if one was among them."""
    reason: TerminationReason | None = None
    pending = deque(outputs)
    while pending:
        output = pending.popleft()
        if isinstance(output, Transmit):
            try:
                await send(output.message)
            except TransportError as exc:
                if machine.terminated:
                    # The machine already ended (e.g. a final response over TCP, Timer J = 0):
                    # tell the owner anyway so that the failure is not silent.
                    owner.on_output(TransportErrorOccurred(str(exc)))
                else:
                    # §17.1.4 / §17.2.4: the remaining Transmits are moot; deliveries are not.
                    kept = [o for o in pending if not isinstance(o, Transmit)]
                    pending = deque(kept)
                    pending.extend(machine.handle(TransportFailed(str(exc)), trio.current_time()))
            continue
        if isinstance(output, Terminated):
            reason = output.reason
        try:
            owner.on_output(output)
        except Exception:
            logger.exception("transaction owner %r failed on %r", owner, output)
    return reason
