"""The supervisor: N worker processes on shared sockets, each restarted when it dies.

``serve_workers`` binds the shared sockets (``_sockets.bind_shared``), starts ``command`` once
per worker with that worker's sockets inherited and :data:`~._worker.ENVIRONMENT` set, and
waits. A worker that exits with status 0 is done; one that dies (a signal, another status) is
started again with the same index and the same sockets, after ``restart_delay`` (doubled, up to
``MAX_RESTART_DELAY``, while it keeps dying within ``QUICK_DEATH`` seconds of its start).
Cancelling ``serve_workers`` stops every worker: SIGTERM, then SIGKILL after
``stop_timeout``. Workers run in a process group of their own, so a Ctrl-C typed at a terminal
reaches the supervisor only, which then stops them; a worker also gets SIGTERM when the
supervisor dies (``current_worker`` sets ``PR_SET_PDEATHSIG``), so none outlives it.

The processes are started from the calling (main) thread with ``subprocess.Popen`` rather than
``trio.run_process``, which starts them from a worker thread: the parent-death signal is tied to
the thread that forked, and trio ends idle worker threads.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

import attrs
import trio

from trio_sip.proto.errors import ConfigError

from ._sockets import SharedListener, bind_shared
from ._worker import ENVIRONMENT, worker_environment

__all__ = ["WorkerEvent", "run_workers", "serve_workers"]

#: A worker that dies sooner than this after its start is restarted after a doubled delay.
QUICK_DEATH = 2.0
MAX_RESTART_DELAY = 10.0
#: How often a worker's exit is polled where ``os.pidfd_open`` is missing.
POLL_INTERVAL = 0.1


@attrs.frozen
class WorkerEvent:
    """What happened to a worker: ``kind`` is ``"started"``, ``"exited"`` (status 0: done),
    ``"died"`` (it will be restarted) or ``"stopped"`` (by the supervisor, at its end);
    ``returncode`` as ``subprocess`` gives it (``-N``: killed by signal N)."""

    kind: str
    index: int
    pid: int
    returncode: int | None = None

    @property
    def text(self) -> str:
        """One line for a log, e.g. ``worker 1 (pid 4242) died: SIGKILL; restarting``."""
        if self.kind == "started":
            return f"worker {self.index} (pid {self.pid}) started"
        code = self.returncode
        how = "" if code is None else f": {_describe(code)}"
        tail = "; restarting" if self.kind == "died" else ""
        return f"worker {self.index} (pid {self.pid}) {self.kind}{how}{tail}"


def _describe(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return signal.Signals(-code).name
        return f"signal {-code}"
    return f"status {code}"


async def _wait(proc: subprocess.Popen[bytes]) -> int:
    """The exit status of ``proc``, waited for without blocking trio."""
    pidfd = -1
    with contextlib.suppress(AttributeError, OSError):
        pidfd = os.pidfd_open(proc.pid)
    try:
        while True:
            code = proc.poll()
            if code is not None:
                return code
            if pidfd >= 0:
                await trio.lowlevel.wait_readable(pidfd)
            else:
                await trio.sleep(POLL_INTERVAL)
    finally:
        if pidfd >= 0:
            os.close(pidfd)


def _start(
    command: Sequence[str],
    env: Mapping[str, str],
    index: int,
    count: int,
    listeners: list[SharedListener],
) -> subprocess.Popen[bytes]:
    spec = worker_environment(index, count, listeners, os.getpid())
    return subprocess.Popen(
        list(command),
        env={**env, ENVIRONMENT: spec},
        pass_fds=[s.fds[index] for s in listeners],
        stdin=subprocess.DEVNULL,
        process_group=0,
    )


async def _stop_all(
    procs: dict[int, subprocess.Popen[bytes]],
    grace: float,
    report: Callable[[WorkerEvent], object],
) -> None:
    """SIGTERM every worker, SIGKILL those still running after ``grace``; reap them all."""
    for proc in procs.values():
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
    with trio.move_on_after(grace):
        for proc in list(procs.values()):
            await _wait(proc)
    for index, proc in sorted(procs.items()):
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await _wait(proc)
        report(WorkerEvent("stopped", index, proc.pid, proc.returncode))
    procs.clear()


#: A worker's command line, or a function of the bound listeners that returns it.
Command = Sequence[str] | Callable[[list[SharedListener]], Sequence[str]]


async def serve_workers(
    command: Command,
    listen: Iterable[tuple[str, str, int]],
    workers: int,
    *,
    env: Mapping[str, str] | None = None,
    on_event: Callable[[WorkerEvent], object] | None = None,
    restart_delay: float = 0.5,
    stop_timeout: float = 5.0,
    task_status: trio.TaskStatus[list[SharedListener]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run ``command`` as ``workers`` processes sharing the listeners ``listen``
    (``(transport, host, port)``; port 0: a free port) through ``SO_REUSEPORT`` sockets (a
    callable ``command`` gets the bound listeners and returns the command line); keep
    each running until it exits with status 0 (module docstring). ``nursery.start`` returns the
    bound listeners. Each worker finds its sockets with
    :func:`~trio_sip.workers.current_worker` and passes its ``backend`` to the stack.

    Returns when every worker has exited with status 0; cancel it to stop them all (SIGTERM,
    then SIGKILL after ``stop_timeout`` s). Raises ``ConfigError`` for a bad count or delay and
    ``TransportError`` when an address cannot be bound."""
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ConfigError("workers", workers, "an integer of at least 1")
    for name, value in (("restart_delay", restart_delay), ("stop_timeout", stop_timeout)):
        if not (value >= 0 and math.isfinite(value)):
            raise ConfigError(name, value, "finite seconds >= 0")
    report = on_event or (lambda event: None)
    environment = dict(os.environ if env is None else env)
    listeners, sockets = bind_shared(listen, workers)
    try:
        argv = list(command(listeners) if callable(command) else command)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    if not argv:
        for sock in sockets:
            sock.close()
        raise ConfigError("command", argv, "a program and its arguments")
    procs: dict[int, subprocess.Popen[bytes]] = {}

    async def keep_running(index: int) -> None:
        delay = restart_delay
        while True:
            started = time.monotonic()
            proc = procs[index] = _start(argv, environment, index, workers, listeners)
            report(WorkerEvent("started", index, proc.pid))
            code = await _wait(proc)
            del procs[index]
            if code == 0:
                report(WorkerEvent("exited", index, proc.pid, code))
                return
            report(WorkerEvent("died", index, proc.pid, code))
            quick = time.monotonic() - started < QUICK_DEATH
            delay = min(max(delay, 0.05) * 2, MAX_RESTART_DELAY) if quick else restart_delay
            await trio.sleep(delay)

    try:
        async with trio.open_nursery() as nursery:
            for index in range(workers):
                nursery.start_soon(keep_running, index)
            task_status.started(listeners)
    finally:
        with trio.CancelScope(shield=True):
            await _stop_all(procs, stop_timeout, report)
        for sock in sockets:
            sock.close()


def run_workers(
    command: Command,
    listen: Iterable[tuple[str, str, int]],
    workers: int,
    **kwargs: object,
) -> int:
    """:func:`serve_workers` as a program: runs until the workers are done (0) or a SIGINT or
    SIGTERM stops them (128 + the signal number). Each worker's start and end is printed on
    stderr unless ``on_event`` is given. Call it from the main thread."""
    kwargs.setdefault("on_event", lambda event: print(event.text, file=sys.stderr, flush=True))
    status = [0]

    async def main() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:

                async def on_signal() -> None:
                    async for signum in signals:
                        status[0] = 128 + signum
                        nursery.cancel_scope.cancel()
                        return

                nursery.start_soon(on_signal)
                await serve_workers(command, listen, workers, **kwargs)  # type: ignore[arg-type]
                nursery.cancel_scope.cancel()

    trio.run(main)
    return status[0]
