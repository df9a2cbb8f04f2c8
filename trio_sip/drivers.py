# The driver of timed machines (docs/architecture.md, Contract 2; design rule 4).
#
# Theory of operation: a machine never does I/O and never reads a clock; a driver does both for
# it. The machines are driven *synchronously*, with no task per machine: their owner (the
# stack's transaction layer, the user agent's 2xx/ACK machines in ua/dialogs.py) feeds each
# input (a received message, a TU response, a transport failure) to ``machine.handle`` in the
# callback where it arrives, performs the outputs at once (a UDP datagram is sent without a
# task when the socket accepts it) and keeps the machine's next ``deadline`` in one
# :class:`TimerQueue`: a heap served by one task, which calls the owner back at each deadline
# (``handle_timer(trio.current_time())``). Entries are never removed: the owner remembers the
# deadline it pushed and ignores an entry that no longer matches. With ``autojump_clock`` the
# timers fire at exactly their RFC instants. :class:`Inbox` is the small FIFO the stack hands
# new server transactions and client events through.
"""``TimerQueue`` (one timer task for many machines) and ``Inbox`` (a light FIFO)."""

from __future__ import annotations

import heapq
import itertools
import logging
import math
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

import trio

__all__ = ["LINGER_MIN", "Inbox", "TimerQueue"]

logger = logging.getLogger("trio_sip.drivers")
T = TypeVar("T")

#: A machine whose next deadline is at least this far (seconds) only *lingers* (RFC 6026
#: Accepted, Completed, Confirmed): the stack drops the parsed views of the messages such a
#: transaction keeps. Below it (Timer A/E/G retransmissions, the 200 ms 100 Trying) the
#: machine is still at work.
LINGER_MIN = 2.0


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
