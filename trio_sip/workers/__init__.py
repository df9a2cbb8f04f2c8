"""Every core: N worker processes sharing the SIP port (SO_REUSEPORT), under a supervisor.

``trio-sip serve --workers N`` is built on it; an application uses it the same way::

    # supervisor (a program of its own, or the same one started without the variable)
    run_workers([sys.executable, "-m", "myapp"], [("UDP", "0.0.0.0", 5060)], workers=4)

    # in myapp, each worker
    worker = current_worker()
    async with open_user_agent(worker.listen, aor=..., backend=worker.backend) as ua: ...

See docs/workers.md for what the kernel's hash promises and what it does not: a dialog's
messages must reach the worker that holds it.
"""

from __future__ import annotations

from ._sockets import SharedListener as SharedListener
from ._sockets import WorkerBackend as WorkerBackend
from ._sockets import bind_shared as bind_shared
from ._supervisor import WorkerEvent as WorkerEvent
from ._supervisor import run_workers as run_workers
from ._supervisor import serve_workers as serve_workers
from ._worker import ENVIRONMENT as ENVIRONMENT
from ._worker import Worker as Worker
from ._worker import current_worker as current_worker

__all__ = [
    "ENVIRONMENT",
    "SharedListener",
    "Worker",
    "WorkerBackend",
    "WorkerEvent",
    "bind_shared",
    "current_worker",
    "run_workers",
    "serve_workers",
]
