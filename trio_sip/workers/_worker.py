"""The worker's side: what the supervisor handed this process (``current_worker``)."""

from __future__ import annotations

import json
import os
import signal
import sys

import attrs

from ._sockets import SharedListener, WorkerBackend

__all__ = ["ENVIRONMENT", "Worker", "current_worker", "worker_environment"]

#: The variable that tells a worker its index and its sockets (JSON; removed once read, so
#: that the worker's own children do not take themselves for workers).
ENVIRONMENT = "TRIO_SIP_WORKER"
_PR_SET_PDEATHSIG = 1


@attrs.frozen
class Worker:
    """This process as one of a supervisor's workers.

    ``index`` is 0 to ``count - 1`` and stays the same when the supervisor restarts the
    worker; ``listen`` the shared listeners as ``(transport, host, port)``; ``backend`` the
    network backend to give ``open_stack`` / ``open_user_agent`` / ``open_endpoint``
    (``backend=``), so that their listeners on those addresses are the shared sockets.
    """

    index: int
    count: int
    supervisor: int
    listen: tuple[tuple[str, str, int], ...]
    backend: WorkerBackend = attrs.field(eq=False, repr=False)


def worker_environment(
    index: int, count: int, listeners: list[SharedListener], supervisor: int
) -> str:
    """The value of :data:`ENVIRONMENT` for worker ``index``."""
    return json.dumps(
        {
            "index": index,
            "count": count,
            "supervisor": supervisor,
            "sockets": [[s.transport, s.host, s.port, s.fds[index]] for s in listeners],
        }
    )


_current: list[Worker | None] = []


def current_worker() -> Worker | None:
    """This process's :class:`Worker` when a supervisor started it (:func:`serve_workers`),
    else None. The first call also arranges for this process to get SIGTERM when the
    supervisor dies (Linux ``PR_SET_PDEATHSIG``), so no worker outlives it."""
    if _current:
        return _current[0]
    text = os.environ.pop(ENVIRONMENT, None)
    if text is None:
        _current.append(None)
        return None
    spec = json.loads(text)
    sockets = [(str(t).upper(), str(h), int(p), int(fd)) for t, h, p, fd in spec["sockets"]]
    backend = WorkerBackend([("udp" if t == "UDP" else "tcp", h, p, fd) for t, h, p, fd in sockets])
    worker = Worker(
        index=int(spec["index"]),
        count=int(spec["count"]),
        supervisor=int(spec["supervisor"]),
        listen=tuple((t, h, p) for t, h, p, _ in sockets),
        backend=backend,
    )
    _die_with(worker.supervisor)
    _current.append(worker)
    return worker


def _die_with(supervisor: int) -> None:
    """SIGTERM to this process when its parent (the supervisor) ends."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        return
    if os.getppid() != supervisor:  # it died before the prctl
        os.kill(os.getpid(), signal.SIGTERM)
