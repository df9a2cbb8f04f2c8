"""``trio-sip serve`` as the server of a benchmark: start it, find its workers, read its CPU."""

from __future__ import annotations

import os
import re
import selectors
import subprocess
import sys
import time
from typing import Any

from benchmarks import uas_bench

_WORKER = re.compile(r"worker \d+ \(pid (\d+)\) started")


class Serve:
    """``python -m trio_sip serve --quiet --listen UDP:HOST:PORT [--workers N]`` from the
    repository root (the source tree: the pure build), stopped by PID."""

    def __init__(self, host: str, port: int, workers: int | None, core: int | None = None) -> None:
        self.argv = [sys.executable, "-m", "trio_sip", "serve", "--quiet", "--report-every",
                     "3600", "--listen", f"UDP:{host}:{port}"]  # fmt: skip
        if workers is not None:
            self.argv += ["--workers", str(workers)]
        self.proc = subprocess.Popen(self.argv, cwd=uas_bench.ROOT, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True)  # fmt: skip
        uas_bench.pin(self.proc.pid, core)
        self.pids = [self.proc.pid]
        self.lines: list[str] = []
        ready = workers or 1
        shared = 0
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        pending = b""
        deadline = time.monotonic() + 30
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if not sel.select(timeout=1):
                    continue
                chunk = os.read(fd, 65536)  # not readline: lines left in a buffer wait forever
                if not chunk:
                    break
                *lines, pending = (pending + chunk).split(b"\n")
                for raw in lines:
                    line = raw.decode(errors="replace")
                    self.lines.append(line)
                    found = _WORKER.search(line)
                    if found:
                        pid = int(found.group(1))
                        self.pids.append(pid)
                        uas_bench.pin(pid, core)
                    if (
                        workers is None and line.startswith("serving on udp")
                    ) or "(shared)" in line:
                        shared += 1
                if shared >= ready:
                    return
        self.stop()
        raise RuntimeError("trio-sip serve did not start:\n" + "\n".join(self.lines[-20:]))

    @property
    def command(self) -> str:
        return " ".join(["python", *self.argv[1:]])

    def cpu_seconds(self) -> float:
        total = 0.0
        for pid in self.pids:
            try:
                total += uas_bench.cpu_seconds(pid)
            except (OSError, IndexError):
                continue
        return total

    def rss(self) -> int:
        return sum(uas_bench.rss_bytes(pid) for pid in self.pids)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        uas_bench.stop(self.proc, grace=8)

    def __enter__(self) -> Serve:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
