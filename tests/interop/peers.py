"""Shared helpers for interop tests: install Debian packages, run peer processes on loopback.

* :func:`ensure_debian_packages` makes sure a peer's binary exists. When one is missing and we
  are root with apt-get (a clean CI machine), it runs ``apt-get update`` once per session and
  then ``DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ...``; a
  failed install as root is a test *failure* (CI must be able to install). Without root or
  apt-get the test is skipped with the reason.
* :class:`PeerProcess` starts one peer with its own config in its own process group, keeps the
  PID, waits for a readiness check, and at the end stops that process group only (SIGTERM, then
  SIGKILL), never anything found by name. Its output goes to a log file whose tail is shown
  when the peer dies or never gets ready.
* :func:`free_port` and :func:`assert_loopback` keep peers on 127.0.0.0/8 (binding 127.0.0.2,
  127.0.0.3, ... works here, so several peers can share a port on their own addresses).
"""

from __future__ import annotations

import contextlib
import glob
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

import pytest

#: Debian package -> a binary it installs (what "is it installed?" checks).
PACKAGE_BINARIES = {
    "dnsmasq": "dnsmasq",
    "dnsutils": "dig",
    "sip-tester": "sipp",
    "kamailio": "kamailio",
    "baresip": "baresip",
    "nftables": "nft",
    "sipvicious": "svcrack",
    "linphone-cli": "linphonec",
    "twinkle-console": "twinkle-console",
    # not a binary: a path (glob) to check instead
    "kamailio-tls-modules": "/usr/lib/*/kamailio/modules/tls.so",
}

_SEARCH_PATH = os.pathsep.join(
    [os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"]
)
_apt_updated = False


def find_binary(name: str) -> str | None:
    """The full path of ``name``, looking in the sbin directories too (dnsmasq, nft live there);
    a ``name`` with a ``/`` is a path, maybe a glob (a module file such as Kamailio's tls.so)."""
    if "/" in name:
        return next(iter(sorted(glob.glob(name))), None)
    return shutil.which(name, path=_SEARCH_PATH)


def _run_apt(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    return subprocess.run(
        ["apt-get", *args], env=env, capture_output=True, text=True, timeout=900, check=False
    )


def ensure_debian_packages(
    *packages: str, binaries: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Make sure each package's binary exists; return {package: binary path}.

    ``binaries`` maps a package to the binary to look for (default: :data:`PACKAGE_BINARIES`,
    else the package name).
    """
    global _apt_updated  # noqa: PLW0603 - once per test session
    names = {**PACKAGE_BINARIES, **(binaries or {})}
    missing = [p for p in packages if find_binary(names.get(p, p)) is None]
    if missing:
        if not hasattr(os, "geteuid") or os.geteuid() != 0:
            pytest.skip(f"Debian packages {missing} are not installed and we are not root")
        if shutil.which("apt-get") is None:
            pytest.skip(f"packages {missing} are not installed and there is no apt-get")
        if not _apt_updated:
            update = _run_apt(["update"])
            if update.returncode != 0:
                pytest.fail(f"apt-get update failed:\n{update.stdout[-2000:]}{update.stderr}")
            _apt_updated = True
        install = _run_apt(["install", "-y", "--no-install-recommends", *missing])
        if install.returncode != 0:
            pytest.fail(
                f"apt-get install {' '.join(missing)} failed:\n"
                f"{install.stdout[-2000:]}{install.stderr[-2000:]}"
            )
    found = {p: find_binary(names.get(p, p)) for p in packages}
    still = [p for p, path in found.items() if path is None]
    if still:
        pytest.fail(f"packages {still} installed but their binaries are not on the path")
    return {p: path for p, path in found.items() if path is not None}


def assert_loopback(address: str) -> str:
    """``address`` itself, after checking it is a loopback address (tests stay on loopback)."""
    if not ipaddress.ip_address(address).is_loopback:
        raise ValueError(f"{address} is not a loopback address: interop peers stay on loopback")
    return address


def free_port(host: str = "127.0.0.1", *, udp: bool = True, tcp: bool = True) -> int:
    """A port free on ``host`` for UDP and/or TCP right now (bind to 0, then check the other)."""
    assert_loopback(host)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    kinds = [k for k, wanted in ((socket.SOCK_DGRAM, udp), (socket.SOCK_STREAM, tcp)) if wanted]
    for _ in range(50):
        with socket.socket(family, kinds[0]) as first:
            first.bind((host, 0))
            port: int = first.getsockname()[1]
            ok = True
            for kind in kinds[1:]:
                with socket.socket(family, kind) as other:
                    try:
                        other.bind((host, port))
                    except OSError:
                        ok = False
            if ok:
                return port
    raise RuntimeError(f"no free port on {host}")


class PeerProcess:
    """One peer process we started (see the module doc). Use as a context manager."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        workdir: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.workdir = workdir
        self.env = dict(os.environ, **(env or {}))
        self.log_path = workdir / f"{name}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError(f"{self.name} is not started")
        return self._proc.pid

    def start(self) -> PeerProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        self._log = log
        self._proc = subprocess.Popen(
            self.argv,
            cwd=self.workdir,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: we stop it and its children only
        )
        return self

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(
        self, check: Callable[[], bool], *, timeout: float = 10.0, interval: float = 0.05
    ) -> None:
        """Poll ``check()`` until true (raising counts as not ready); fail with the log tail
        if the peer dies or lags."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.running():
                code = self._proc.returncode if self._proc is not None else None
                pytest.fail(f"{self.name} exited (status {code}):\n{self.log_tail()}")
            try:
                if check():
                    return
            except Exception:  # not answering yet (refused, timed out, ...)
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"{self.name} not ready after {timeout} s:\n{self.log_tail()}")
            time.sleep(interval)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop our process group: SIGTERM, then SIGKILL after ``timeout`` seconds."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                self._signal_group(proc, signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self._signal_group(proc, signal.SIGKILL)
                    proc.wait(timeout)
            # Children the peer forked into its group (workers) go too.
            self._signal_group(proc, signal.SIGKILL)
        log, self._log = self._log, None
        if log is not None:
            log.close()

    @staticmethod
    def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            # start_new_session made the peer the leader of a group numbered by its own PID.
            os.killpg(proc.pid, sig)

    def __enter__(self) -> PeerProcess:
        if self._proc is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def running_peer(
    name: str,
    argv: Sequence[str],
    *,
    workdir: Path,
    ready: Callable[[], bool],
    timeout: float = 10.0,
    env: Mapping[str, str] | None = None,
) -> Iterator[PeerProcess]:
    """Start a peer, wait until ``ready()``, yield it, and stop it (only it) afterwards."""
    peer = PeerProcess(name, argv, workdir=workdir, env=env).start()
    try:
        peer.wait_ready(ready, timeout=timeout)
        yield peer
    finally:
        peer.stop()
