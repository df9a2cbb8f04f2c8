"""The live view of the ``trio-sip`` commands: one timestamped line per status or call event."""

from __future__ import annotations

from typing import TextIO

import trio

from ..endpoint import CallEvent, ConnectionEvent
from ..ua import Answered, Ended, Failover, Held, Progress, Retrieved


class View:
    """Prints ``  +SECONDS  WHO  TEXT`` lines, seconds since the view was made."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.zero = trio.current_time()

    def elapsed(self) -> float:
        return trio.current_time() - self.zero

    def say(self, text: str, who: str = "") -> None:
        label = f"{who:<6} " if who else ""
        print(f"  {self.elapsed():7.3f} s  {label}{text}", file=self.out, flush=True)

    def heading(self, text: str) -> None:
        print(f"\n{text}", file=self.out, flush=True)

    def status(self, who: str, event: ConnectionEvent) -> None:
        old = event.old.value if event.old is not None else "new"
        arrow = f"{old} -> {event.new.value.upper()}"
        self.say(f"[{event.connection_id}] {arrow}  ({event.reason})", who)

    def call(self, who: str, record: CallEvent) -> None:
        self.say(f"call {record.session_id[:6]} on {record.connection_id}: "
                 f"{describe(record)}", who)  # fmt: skip


def describe(record: CallEvent) -> str:
    """One line for a session event."""
    event = record.event
    if isinstance(event, Progress | Answered):
        name = "ringing" if isinstance(event, Progress) else "ANSWERED"
        return f"{name} ({event.response.status_code} {event.response.reason})"
    if isinstance(event, Failover):
        return f"FAILOVER: {event.reason}"
    if isinstance(event, Held | Retrieved):
        by = " by the other side" if event.by_remote else ""
        return f"{'held' if isinstance(event, Held) else 'retrieved'}{by} ({event.direction})"
    if isinstance(event, Ended):
        response = event.response
        code = f", {response.status_code} {response.reason}" if response is not None else ""
        detail = f": {event.detail}" if event.detail else ""
        return f"ended ({event.reason.value}{code}){detail}"
    return type(event).__name__
