"""``trio-sip proxy`` nodes as real processes (``python -m trio_sip proxy``), by PID."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import attrs

from tests.interop.kamailio import options_ok
from tests.interop.peers import PeerProcess, assert_loopback

# "  12.345 s  INVITE sip:u1@example.com from 127.0.0.30:5060 (Call-ID)"
_REQUEST = re.compile(r"^\s*([\d.]+) s\s+(\S+) (\S+) from (\S+) \((.*)\)\s*$")


@attrs.frozen
class Seen:
    """A request a node logged (``--verbose``)."""

    method: str
    uri: str
    source: str
    call_id: str


@attrs.define
class Node:
    name: str
    host: str
    port: int
    process: PeerProcess

    @property
    def uri(self) -> str:
        return f"sip:{self.host}:{self.port}"

    def seen(self) -> list[Seen]:
        out = []
        for line in self.process.log_path.read_text(errors="replace").splitlines():
            m = _REQUEST.match(line)
            if m:
                out.append(Seen(m.group(2), m.group(3), m.group(4), m.group(5)))
        return out

    def log(self) -> str:
        return self.process.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL, as a crash: no goodbye to anyone."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)


@contextlib.contextmanager
def running_nodes(
    workdir: Path,
    hosts: Sequence[str],
    *,
    port: int = 5060,
    args: Sequence[str] = (),
) -> Iterator[list[Node]]:
    """One ``trio-sip proxy`` per host (UDP at ``host:port``), ready when it answers OPTIONS."""
    nodes: list[Node] = []
    with contextlib.ExitStack() as stack:
        for i, host in enumerate(hosts, 1):
            assert_loopback(host)
            argv = [sys.executable, "-m", "trio_sip", "proxy", "--listen", f"UDP:{host}:{port}"]
            argv += list(args)
            process = PeerProcess(
                f"node{i}", argv, workdir=workdir, env={"PYTHONUNBUFFERED": "1"}
            ).start()
            stack.callback(process.stop)
            nodes.append(Node(f"node{i}", host, port, process))
        for node in nodes:
            node.process.wait_ready(lambda n=node: options_ok(n.host, n.port), timeout=60)
        yield nodes
