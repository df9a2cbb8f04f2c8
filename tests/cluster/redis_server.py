"""A redis-server of our own on a loopback port, for the store and cluster tests.

Debian's ``redis-server`` package (installed by ``ensure_debian_packages`` when missing and
root), run in the foreground, started and stopped by its PID (``PeerProcess``).
``restart()`` stops it and starts it again on the same port: what a node sees when Redis is
restarted (empty without ``persistent``; with it, every binding is read back from the
append-only file).
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

from tests.interop.peers import PeerProcess, assert_loopback, ensure_debian_packages, free_port


def redis_binary() -> str:
    return ensure_debian_packages("redis-server")["redis-server"]


def redis_ping(host: str, port: int, timeout: float = 0.5) -> bool:
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64).startswith(b"+PONG")


class RedisServer:
    """One redis-server process (see the module doc)."""

    def __init__(
        self,
        workdir: Path,
        host: str = "127.0.0.1",
        port: int | None = None,
        *,
        persistent: bool = False,
    ) -> None:
        self.binary = redis_binary()
        #: An append-only file (fsync every second, and at shutdown): a server restarted with
        #: SIGTERM has every binding back.
        self.persistent = persistent
        self.host = assert_loopback(host)
        self.port = port or free_port(host, udp=False)
        self.workdir = workdir
        self.process: PeerProcess | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self) -> None:
        self.starts += 1
        argv = [self.binary, "--bind", self.host, "--port", str(self.port), "--save", ""]
        aof = ["yes", "--appendfsync", "everysec"] if self.persistent else ["no"]
        argv += ["--appendonly", *aof, "--protected-mode", "no", "--dir", str(self.workdir)]
        self.process = PeerProcess(f"redis-{self.starts}", argv, workdir=self.workdir).start()
        self.process.wait_ready(lambda: redis_ping(self.host, self.port), timeout=10)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


@contextlib.contextmanager
def running_redis(
    workdir: Path, host: str = "127.0.0.1", port: int | None = None, *, persistent: bool = False
) -> Iterator[RedisServer]:
    server = RedisServer(workdir, host, port, persistent=persistent)
    server.start()
    try:
        yield server
    finally:
        server.stop()
