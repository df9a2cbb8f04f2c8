"""The one step function of the core's small machines (registration, subscription, dialog,
keep-alive, the 2xx/ACK machines, the Call's session states).

Theory of operation
-------------------
The style of the transaction machines (:mod:`.transaction.machine`) and of h11's
``_state.py``: a machine's ``TRANSITIONS`` is data, ``state -> {trigger: next state}``, with
an :class:`enum.Enum` of triggers; an event the machine ignores in a state is written in the
table as a self-loop, so the table lists every legal event. :func:`step` reads the table: an
event with no entry for the current state is illegal and raises :class:`LocalProtocolError`
(the state does not change), never a silent no-op.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import TypeVar

from .errors import LocalProtocolError

__all__ = ["step"]

S = TypeVar("S", bound=enum.Enum)
T = TypeVar("T", bound=enum.Enum)


def step(what: str, table: Mapping[S, Mapping[T, S]], state: S, trigger: T) -> S:
    """The state ``trigger`` moves ``state`` to in ``table``; LocalProtocolError naming
    ``what`` when the table has no such entry."""
    try:
        return table[state][trigger]
    except KeyError:
        raise LocalProtocolError(
            f"{what}: {trigger.value!r} is not allowed in state {state.value}"
        ) from None
