"""Ctrl-C and SIGTERM for the ``trio-sip`` commands (docs/cli.md, "Exit statuses").

The first SIGINT or SIGTERM cancels the command. Cancelling is how every command cleans up:
``open_endpoint`` unregisters and hangs up, ``open_user_agent`` ends its calls, each in a
shielded scope bounded by its timeout (``unregister_timeout``, ``cleanup_timeout``), so the
command ends within those bounds. Then ``main`` prints one line and exits 130 (SIGINT) or
143 (SIGTERM), the shells' 128 + signal number.

After the first signal the handlers are given back: a second Ctrl-C raises
``KeyboardInterrupt`` at once (Trio delivers it even inside the shielded cleanup), and a second
SIGTERM kills the process as SIGTERM does by default.
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Awaitable, Callable
from typing import TextIO

import trio

from .._groups import open_service_nursery
from ..errors import Interrupted as Interrupted

__all__ = ["Interrupted", "run_interruptible"]

Runner = Callable[[argparse.Namespace, TextIO], Awaitable[int]]


async def run_interruptible(runner: Runner, args: argparse.Namespace, out: TextIO) -> int:
    """``await runner(args, out)``, cancelled by the first SIGINT or SIGTERM, which then
    raises :class:`Interrupted`. Outside the main thread (tests calling ``main`` from a
    worker thread) signals cannot be caught and the runner just runs."""
    if threading.current_thread() is not threading.main_thread():
        return await runner(args, out)
    caught: list[int] = []
    status = 0
    async with open_service_nursery() as nursery:
        command = trio.CancelScope()
        await nursery.start(_watch, command, caught)
        try:
            with command:
                status = await runner(args, out)
        except Exception as exc:
            if not caught:
                raise
            # Cancelled half-way (a listener closed as it opened...): still an interruption.
            raise Interrupted(caught[0]) from exc
        nursery.cancel_scope.cancel()
    if caught:
        raise Interrupted(caught[0])
    return status


async def _watch(
    command: trio.CancelScope,
    caught: list[int],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        async for signum in signals:
            caught.append(signum)
            command.cancel()
            break
    # The receiver is closed: the next signal gets the previous handlers (module comment).
