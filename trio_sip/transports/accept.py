"""Accepting TCP/TLS connections without letting peers take every socket (issue #10).

Theory of operation
-------------------
An accepted connection costs a file descriptor, a reader task and up to one message of
buffered bytes, so what peers can open is bounded (``trio_sip.Limits``, docs/security.md):

* :class:`ConnectionGate` counts the accepted connections (in the TLS handshake or carrying
  messages) in total and per source IP address. A new one above ``max_connections`` or
  ``max_connections_per_source`` is closed at once and counted; nothing is read from it.
  The total is also kept below the process's file descriptor limit (``RLIMIT_NOFILE``, minus a
  reserve for the UDP sockets, client connections and files the process needs): a cap above
  that limit would never be reached, the kernel would refuse first (``EMFILE``).
* :func:`accept_loop` replaces ``trio.serve_listeners``, which logs a traceback every 0.1 s
  while ``accept`` fails with ``EMFILE``/``ENFILE``/``ENOBUFS``/``ENOMEM`` (the process or the
  system is out of descriptors or memory). Here the loop backs off (from ``BACKOFF_MIN``,
  doubling to ``BACKOFF_MAX`` seconds) and says so once per ``LOG_INTERVAL`` with the count of
  failures, never with a traceback; the connections wait in the kernel's backlog meanwhile and
  are accepted as soon as descriptors are free again.
* :class:`LogThrottle` is that "once per interval per kind" logger, shared with the stack's
  admission control.

The TLS handshake timeout and the stream timeouts (slowloris, first message) are applied by
the transport layer and :class:`~trio_sip.transports.stream.StreamFlow`.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable
from typing import NoReturn

import trio

__all__ = [
    "BACKOFF_MAX",
    "BACKOFF_MIN",
    "CAPACITY_ERRNOS",
    "LOG_INTERVAL",
    "ConnectionGate",
    "LogThrottle",
    "accept_loop",
    "descriptor_limit",
]

#: ``accept`` errors that mean "out of descriptors or kernel memory": wait and retry.
CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: First and longest pause of the accept loop after such an error, seconds.
BACKOFF_MIN = 0.05
BACKOFF_MAX = 1.0
#: A throttled message is logged at most once per this many seconds (per kind).
LOG_INTERVAL = 10.0


def descriptor_limit() -> int | None:
    """The soft ``RLIMIT_NOFILE`` of this process, or None where there is none (Windows)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Linux
        return None
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def connection_cap(max_connections: int, fd_limit: int | None) -> int:
    """``max_connections``, lowered to leave a reserve of descriptors below ``fd_limit``:
    an eighth of them, at least 32 (the UDP sockets, client connections, files...)."""
    if fd_limit is None:
        return max_connections
    reserve = max(32, fd_limit // 8)
    return max(1, min(max_connections, fd_limit - reserve))


class LogThrottle:
    """Log a message of each ``kind`` at most once per ``interval`` seconds (trio's clock),
    with the number of times it was left out since: a flood costs one line per interval."""

    __slots__ = ("_interval", "_logger", "_seen")

    def __init__(self, logger: logging.Logger, interval: float = LOG_INTERVAL) -> None:
        self._logger = logger
        self._interval = interval
        self._seen: dict[str, tuple[float, int]] = {}  # kind -> (last logged, left out since)

    def log(self, level: int, kind: str, message: str, *args: object) -> bool:
        """Log ``message % args`` unless ``kind`` was logged less than ``interval`` ago.
        Returns True when it was logged. ``kind`` must come from a small fixed set."""
        now = trio.current_time()
        last = self._seen.get(kind)
        if last is not None and now - last[0] < self._interval:
            self._seen[kind] = (last[0], last[1] + 1)
            return False
        if last is not None and last[1]:
            message += " (and %d more like it in the last %.0f s)"
            args = (*args, last[1], now - last[0])
        self._seen[kind] = (now, 0)
        self._logger.log(level, message, *args)
        return True


class ConnectionGate:
    """Accepted connections by source IP address, and whether one more may come in."""

    __slots__ = ("_by_source", "max_connections", "max_per_source", "open")

    def __init__(self, max_connections: int, max_per_source: int) -> None:
        #: The caps in force (``max_connections`` already lowered by :func:`connection_cap`).
        self.max_connections = max_connections
        self.max_per_source = max_per_source
        #: Connections admitted and not released.
        self.open = 0
        self._by_source: dict[str, int] = {}

    def admit(self, host: str) -> str | None:
        """Count a new connection from ``host``; None when admitted (call :meth:`release`
        when it ends), else the name of the cap it is over (nothing is counted)."""
        if self.open >= self.max_connections:
            return "max_connections"
        count = self._by_source.get(host, 0)
        if count >= self.max_per_source:
            return "max_connections_per_source"
        self._by_source[host] = count + 1
        self.open += 1
        return None

    def release(self, host: str) -> None:
        count = self._by_source.get(host, 0)
        if count <= 1:
            self._by_source.pop(host, None)
        else:
            self._by_source[host] = count - 1
        self.open = max(0, self.open - 1)

    def from_source(self, host: str) -> int:
        return self._by_source.get(host, 0)

    def __repr__(self) -> str:
        return (
            f"<ConnectionGate {self.open}/{self.max_connections} open, "
            f"{len(self._by_source)} sources (max {self.max_per_source} each)>"
        )


async def accept_loop(
    listener: trio.abc.Listener[trio.abc.Stream],
    on_stream: Callable[[trio.abc.Stream], object],
    throttle: LogThrottle,
    name: str,
) -> NoReturn:
    """Accept connections forever, handing each to ``on_stream`` (synchronous: it starts the
    connection's task). Out of descriptors or memory: back off and log once per interval
    (see the module comment). Other errors propagate, as with ``trio.serve_listeners``."""
    backoff = 0.0
    while True:
        try:
            stream = await listener.accept()
        except OSError as exc:
            if exc.errno not in CAPACITY_ERRNOS:
                raise
            backoff = min(BACKOFF_MAX, max(BACKOFF_MIN, 2 * backoff))
            code = errno.errorcode.get(exc.errno or 0, str(exc.errno))
            throttle.log(
                logging.WARNING,
                f"accept-{code}",
                "%s: accept failed with %s (%s): retrying, pausing up to %g s",
                name,
                code,
                os.strerror(exc.errno or 0),
                BACKOFF_MAX,
            )
            await trio.sleep(backoff)
            continue
        backoff = 0.0
        on_stream(stream)
