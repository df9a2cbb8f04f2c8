# Timeout events of the transaction layer: JAIN-SIP's TimeoutEvent, delivered, not polled.
#
# Theory of operation: a machine outputs RetransmitTimeout / TransactionTimeout exactly where
# its row of the timeout table (proto/transaction/timeouts.py, seed 004) says the application
# hears that timeout. The handle driving it (ClientTransaction, IncomingRequest) passes the
# record to ``report``, which wraps it as a typed event -- the transaction handle, its role,
# side and method, the timer, the time -- and delivers it at once, synchronously, to the
# ``on_timeout`` callback given to ``open_stack`` and to every ``stack.timeouts()`` stream that
# is still referenced. A stream is a bounded deque read with ``async for``: when its reader
# lags by ``maxlen`` events the oldest goes (``dropped`` counts them), so a forgotten reader
# cannot grow the stack's memory. The user agent and the endpoint re-publish through the same
# ``TimeoutHub`` with their own event types (trio_sip.ua.timeouts, trio_sip.endpoint). Nothing
# is built when nobody listens, and a transaction that gets its answer never comes here.
"""TimeoutEvent, RetransmitTimeoutEvent, TransactionTimeoutEvent, TimeoutStream, TimeoutHub."""

from __future__ import annotations

import logging
import weakref
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar, final

import attrs
import trio

from trio_sip.proto.message import Request
from trio_sip.proto.outputs import RetransmitTimeout, TransactionTimeout
from trio_sip.proto.transaction import Side, Timeout, TimeoutRole

if TYPE_CHECKING:
    from ._client import ClientTransaction
    from ._server import IncomingRequest

__all__ = [
    "RetransmitTimeoutEvent",
    "TimeoutCallback",
    "TimeoutEvent",
    "TimeoutHub",
    "TimeoutStream",
    "TransactionTimeoutEvent",
]

logger = logging.getLogger("trio_sip.stack")
E = TypeVar("E")


@attrs.frozen(slots=True, eq=False, repr=False)
class TimeoutEvent:
    """A timeout the application hears (JAIN-SIP ``TimeoutEvent``); see docs/transactions.md.

    ``transaction`` is the :class:`ClientTransaction` or :class:`IncomingRequest` handle,
    ``role`` its :class:`TimeoutRole`, ``side`` CLIENT or SERVER, ``method`` the request's,
    ``timer`` the RFC 3261 timer that fired ("A", "G" for RETRANSMIT; "B", "F", "H" for
    TRANSACTION) and ``time`` the trio time it fired at. ``timeout`` is the JAIN kind.
    """

    timeout: ClassVar[Timeout]

    transaction: ClientTransaction | IncomingRequest
    role: TimeoutRole
    side: Side
    method: str
    timer: str
    time: float

    @property
    def request(self) -> Request:
        """The transaction's request (as sent by a client, as received by a server)."""
        return self.transaction.request

    @property
    def call_id(self) -> str:
        return self.transaction.request.call_id

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.side.value} {self.method} Timer {self.timer} "
            f"{self.role.name} at {self.time:g}>"
        )


@final
@attrs.frozen(slots=True, eq=False, repr=False)
class RetransmitTimeoutEvent(TimeoutEvent):
    """Timer A (client INVITE) or G (server INVITE) fired where the application retransmits
    (``TimeoutRole.USER_AGENT_APP_RETRANSMIT``): call ``event.transaction.retransmit()``."""

    timeout: ClassVar[Timeout] = Timeout.RETRANSMIT


@final
@attrs.frozen(slots=True, eq=False, repr=False)
class TransactionTimeoutEvent(TimeoutEvent):
    """Timer B, F or H ended the transaction, and its role hears TRANSACTION timeouts."""

    timeout: ClassVar[Timeout] = Timeout.TRANSACTION


TimeoutCallback = Callable[[TimeoutEvent], object]


class TimeoutStream(Generic[E]):
    """``async for event in stream``: the events published since the stream was made; it ends
    when its source closes. Holds at most ``maxlen`` unread events: when full, the oldest is
    dropped (``dropped`` counts them)."""

    def __init__(self, maxlen: int = 1024) -> None:
        self._items: deque[E] = deque()
        self._maxlen = maxlen
        self._closed = False
        self._lot = trio.lowlevel.ParkingLot()
        #: Events dropped because the reader lagged by more than ``maxlen``.
        self.dropped = 0

    def _put(self, item: E) -> None:
        if len(self._items) >= self._maxlen:
            self._items.popleft()
            self.dropped += 1
        self._items.append(item)
        self._lot.unpark_all()

    def _close(self) -> None:
        self._closed = True
        self._lot.unpark_all()

    def __len__(self) -> int:
        """The events waiting to be read."""
        return len(self._items)

    def __aiter__(self) -> TimeoutStream[E]:
        return self

    async def __anext__(self) -> E:
        while not self._items:
            if self._closed:
                raise StopAsyncIteration
            await self._lot.park()
        await trio.lowlevel.checkpoint()
        return self._items.popleft()


class TimeoutHub(Generic[E]):
    """Delivers events to one optional callback and to the live streams (see the module
    comment). What a failing callback raises goes to ``on_error(exc, event)`` (the stack's
    ``faults``: counted, logged once per interval; in strict mode a bug fails the stack), else
    it is logged; it never reaches the transaction layer."""

    def __init__(
        self,
        callback: Callable[[E], object] | None = None,
        on_error: Callable[[Exception, E], object] | None = None,
    ) -> None:
        self._callback = callback
        self._on_error = on_error
        self._streams: weakref.WeakSet[TimeoutStream[E]] = weakref.WeakSet()
        self._closed = False

    @property
    def listening(self) -> bool:
        """Whether an event published now would reach anybody."""
        return self._callback is not None or len(self._streams) > 0

    def stream(self, maxlen: int = 1024) -> TimeoutStream[E]:
        if not maxlen > 0:
            raise ValueError(f"maxlen={maxlen!r}: an event count > 0")
        stream: TimeoutStream[E] = TimeoutStream(maxlen)
        if self._closed:
            stream._close()
        else:
            self._streams.add(stream)
        return stream

    def publish(self, event: E) -> None:
        if self._closed:
            return
        for stream in list(self._streams):
            stream._put(event)
        if self._callback is not None:
            try:
                self._callback(event)
            except Exception as exc:
                if self._on_error is None:
                    logger.exception("the on_timeout callback failed on %r", event)
                else:
                    self._on_error(exc, event)

    def close(self) -> None:
        self._closed = True
        for stream in list(self._streams):
            stream._close()
        self._streams.clear()


def report(
    hub: TimeoutHub[TimeoutEvent],
    tx: ClientTransaction | IncomingRequest,
    output: RetransmitTimeout | TransactionTimeout,
) -> None:
    """A machine of ``tx`` reported ``output``: publish it as a typed event, if anyone
    listens."""
    if not hub.listening:
        return
    machine = tx._machine
    cls = RetransmitTimeoutEvent if type(output) is RetransmitTimeout else TransactionTimeoutEvent
    hub.publish(
        cls(tx, machine.role, machine.side, tx.request.method, output.timer, trio.current_time())
    )
