"""Target processes of the wire fuzzer, and the private network namespace it runs in.

:func:`reexec_in_netns` runs the fuzzer again in a network namespace of its own (``unshare
--net``, with ``--map-root-user`` when not root) whose only interface is a loopback brought up
here: whatever address a mutated message names (a Via, a Contact, a Request-URI the proxy
forwards to), nothing can leave the machine or reach another test's server, and the kernel's UDP
counters (/proc/net/snmp) are the namespace's own.

:class:`TargetProcess` is one server process (tests/attack/targets.py): its stderr is read by a
thread (tracebacks and fault lines counted, the last lines kept), its statistics are asked for
with SIGUSR1, and :meth:`TargetProcess.stop` ends it with SIGTERM (bounded; then SIGKILL).
Starting one does not wait: :meth:`TargetProcess.wait_listening` does (several start at once).
"""

from __future__ import annotations

import collections
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent.parent
NETNS_ENV = "TRIO_SIP_FUZZ_NETNS"
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP, _IFF_RUNNING = 0x8913, 0x8914, 0x1, 0x40
FAULT_LINE = re.compile(r"^(?:INFO|WARNING|ERROR) trio_sip\.\S+ fault ([\w-]+)")


def netns_available() -> str | None:
    """None if a private network namespace can be made here, else why not."""
    if shutil.which("unshare") is None:
        return "no unshare(1) (util-linux)"
    argv = ["unshare", "--net", *([] if os.geteuid() == 0 else ["--map-root-user"]), "true"]
    try:
        result = subprocess.run(argv, capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare failed: {exc}"
    if result.returncode != 0:
        return f"unshare --net failed: {result.stderr.decode(errors='replace').strip()}"
    return None


def in_netns() -> bool:
    return os.environ.get(NETNS_ENV) == "1"


def netns_command(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """The command and environment that run ``python -m tests.attack.run ARGV`` in a new
    network namespace."""
    unshare = ["unshare", "--net", *([] if os.geteuid() == 0 else ["--map-root-user"])]
    env = {**os.environ, NETNS_ENV: "1", "PYTHONPATH": str(REPO)}
    return [*unshare, sys.executable, "-m", "tests.attack.run", *argv], env


def reexec_in_netns(argv: list[str]) -> int:
    """Run ``python -m tests.attack.run ARGV`` in a new network namespace; its exit status."""
    command, env = netns_command(argv)
    return subprocess.run(command, env=env, cwd=REPO, check=False).returncode


def loopback_up() -> None:
    """Bring ``lo`` up (a new namespace starts with it down)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(
            sock, _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP | _IFF_RUNNING)
        )


def udp_counters() -> dict[str, int]:
    """The kernel's UDP counters (RcvbufErrors: datagrams dropped on a full receive buffer)."""
    lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()]
    names, values = (row for row in lines if row[0] == "Udp:")
    return {n: int(v) for n, v in zip(names[1:], values[1:], strict=True)}


def free_port(host: str) -> int:
    """A port free for both UDP and TCP on ``host`` (outside a private namespace)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((host, port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


class TargetProcess:
    """One target server process (see the module docstring)."""

    def __init__(self, name: str, argv: list[str], stats_dir: Path) -> None:
        self.name = name
        self.stats_path = stats_dir / f"{name}-stats.json"
        env = {
            **os.environ,
            "TRIO_SIP_STRICT": "0",
            "PYTHONPATH": str(REPO),
            "TRIO_SIP_FUZZ_STATS": str(self.stats_path),
        }
        self.argv = [sys.executable, "-m", "tests.attack.targets", *argv]
        self.popen = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO
        )
        self.listening: dict[str, tuple[str, int]] = {}
        self.tracebacks = 0
        self.fault_lines: collections.Counter[str] = collections.Counter()
        #: The first line logged of each kind of fault.
        self.fault_examples: dict[str, str] = {}
        self.log_lines: collections.Counter[str] = collections.Counter()
        self.tail: collections.deque[str] = collections.deque(maxlen=80)
        self.traceback_text: list[str] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def wait_listening(self) -> TargetProcess:
        """Wait for its "serving on" lines (bounded); itself."""
        if self.listening:
            return self
        assert self.popen.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(self.listening) < 2:
            line = self.popen.stdout.readline()
            if not line:
                raise RuntimeError(f"{self.name} ended before listening: {list(self.tail)}")
            found = re.match(r"serving on (\w+):(.+):(\d+)$", line.strip())
            if found:
                self.listening[found.group(1)] = (found.group(2), int(found.group(3)))
        threading.Thread(target=self._drain_stdout, daemon=True).start()
        return self

    def _drain_stdout(self) -> None:
        assert self.popen.stdout is not None
        for _ in self.popen.stdout:
            pass

    def _read_stderr(self) -> None:
        assert self.popen.stderr is not None
        in_traceback = 0
        for line in self.popen.stderr:
            line = line.rstrip("\n")
            with self._lock:
                self.tail.append(line)
                if line.startswith("Traceback (most recent call last)"):
                    self.tracebacks += 1
                    in_traceback = 60
                if in_traceback and len(self.traceback_text) < 400:
                    self.traceback_text.append(line)
                    in_traceback -= 1
                level, _, rest = line.partition(" ")
                if level in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
                    self.log_lines[f"{level} {rest.partition(' ')[0]}"] += 1
                    if fault := FAULT_LINE.match(line):
                        self.fault_lines[fault.group(1)] += 1
                        self.fault_examples.setdefault(fault.group(1), line[:300])

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def rss_kb(self) -> int:
        with open(f"/proc/{self.pid}/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))

    def stats(self, timeout: float = 15.0) -> dict[str, Any]:
        """The process's statistics (module docstring of targets.py), settled memory included."""
        self.stats_path.unlink(missing_ok=True)
        os.kill(self.pid, signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.stats_path.exists():
                data: dict[str, Any] = json.loads(self.stats_path.read_text())
                return data
            if not self.alive():
                break
            time.sleep(0.02)
        raise RuntimeError(f"{self.name}: no statistics within {timeout} s")

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, then SIGKILL after ``timeout``; the exit status."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        time.sleep(0.1)  # the stderr reader's last lines
        return int(self.popen.returncode)


def start_serve(
    stats_dir: Path, host: str, port: int, name: str = "serve", t1_ms: int | None = None
) -> TargetProcess:
    """``trio-sip serve`` on UDP and TCP at host:port (media ports for 5,000 calls); with
    ``t1_ms``, a configuration file setting T1 (T2 and T4 at 8 and 10 times it), so that its
    transactions end sooner."""
    config = []
    if t1_ms is not None:
        path = stats_dir / f"{name}-timers.toml"
        path.write_text(f"[endpoint]\nt1 = {t1_ms}\nt2 = {8 * t1_ms}\nt4 = {10 * t1_ms}\n")
        config = ["--config", str(path)]
    argv = [
        "serve",
        *config,
        "--listen",
        f"{host}:{port}",
        "--quiet",
        "--report-every",
        "3600",
        "--media-ports",
        "20000-29999",
    ]
    return TargetProcess(name, argv, stats_dir)


def start_proxy(
    stats_dir: Path,
    host: str,
    port: int,
    *,
    domain: str,
    users: dict[str, str],
    trusted: list[str],
    t1_ms: int | None = None,
) -> TargetProcess:
    argv = ["proxy", "--listen", f"{host}:{port}", "--domain", domain]
    argv += [] if t1_ms is None else [f"--t1-ms={t1_ms}"]
    argv += [f"--user={u}:{p}" for u, p in users.items()]
    argv += [f"--trusted={net}" for net in trusted]
    return TargetProcess("proxy", argv, stats_dir)
