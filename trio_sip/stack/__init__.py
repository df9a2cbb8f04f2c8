"""The transaction layer shell and the low-level public API (docs/stack.md).

``open_stack(...)`` gives a :class:`Stack`: client transactions (``request``,
``send_request``), server transactions handed to a handler or to ``requests()`` as
:class:`IncomingRequest` handles, ``send_stateless`` and ``statistics()``. Transactions (RFC 3261
§17, RFC 6026) have no task of their own: their machines are driven where their inputs arrive,
and one ``trio_sip.drivers.TimerQueue`` task keeps every deadline. Timeouts are delivered as
typed events (``open_stack(on_timeout=...)``, ``stack.timeouts()``).
"""

from __future__ import annotations

from ._client import ClientEvent as ClientEvent
from ._client import ClientTransaction as ClientTransaction
from ._core import Handler as Handler
from ._core import Stack as Stack
from ._core import StackStatistics as StackStatistics
from ._core import StrayHook as StrayHook
from ._core import open_stack as open_stack
from ._server import IncomingRequest as IncomingRequest
from ._timeouts import RetransmitTimeoutEvent as RetransmitTimeoutEvent
from ._timeouts import TimeoutCallback as TimeoutCallback
from ._timeouts import TimeoutEvent as TimeoutEvent
from ._timeouts import TimeoutStream as TimeoutStream
from ._timeouts import TransactionTimeoutEvent as TransactionTimeoutEvent

__all__ = [
    "ClientEvent",
    "ClientTransaction",
    "Handler",
    "IncomingRequest",
    "RetransmitTimeoutEvent",
    "Stack",
    "StackStatistics",
    "StrayHook",
    "TimeoutCallback",
    "TimeoutEvent",
    "TimeoutStream",
    "TransactionTimeoutEvent",
    "open_stack",
]
