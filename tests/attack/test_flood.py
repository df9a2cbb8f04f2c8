"""A flood against ``trio-sip serve`` while sipp places calls (issue #10; ``nox -s attack``).

``trio-sip serve`` (default limits) listens on 127.0.0.1. sipp's built-in ``uac`` places 20
calls/s from 127.0.0.3 for the whole run; after 5 s a second process
(tests/attack/flooder.py) sends distinct INVITEs from 127.0.0.2 as fast as it can for
``FLOOD`` seconds (10; 3 in the short variant); a probe sends an OPTIONS from 127.0.0.4 every
0.1 s and times each answer; the server's RSS is sampled every 0.5 s. The test prints every
figure and checks the issue's bounds: at least 95% of sipp's calls complete, answers recover
within 5 s of the flood's end, and (full variant) the RSS is back within 20% of its value at
the start of the flood ``SETTLE`` (60) seconds after the flood's end.

Everything stays on 127.0.0.0/8; every loop and process is bounded in count and time.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ..interop.peers import ensure_debian_packages, free_port
from .conftest import attack_mode

pytestmark = pytest.mark.attack

REPO = Path(__file__).resolve().parent.parent.parent
SERVER, FLOODER, CALLER, PROBE = "127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"
CALL_RATE = 20
LEAD = 5.0  # seconds of calls before the flood


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class Probe(threading.Thread):
    """An OPTIONS every ``period`` seconds from PROBE; records (sent, answered or None)."""

    def __init__(self, port: int, period: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.port, self.period = port, period
        self.sent: dict[int, float] = {}
        self.answered: dict[int, float] = {}
        self.statuses: dict[int, int] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((PROBE, 0))
        sock.settimeout(0.02)
        local = sock.getsockname()[1]
        n = 0
        while not self.stop.is_set() and n < 100_000:
            n += 1
            request = (
                f"OPTIONS sip:serve@{SERVER}:{self.port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {PROBE}:{local};branch=z9hG4bKprobe{n}\r\n"
                f"Max-Forwards: 70\r\nFrom: <sip:probe@{PROBE}>;tag=p{n}\r\n"
                f"To: <sip:serve@{SERVER}>\r\nCall-ID: probe{n}@{PROBE}\r\n"
                "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            ).encode()
            self.sent[n] = time.monotonic()
            sock.sendto(request, (SERVER, self.port))
            until = self.sent[n] + self.period
            while (now := time.monotonic()) < until:
                try:
                    data = sock.recv(65535)
                except TimeoutError:
                    continue
                found = re.search(rb"Call-ID: probe(\d+)@", data)
                if found and int(found.group(1)) not in self.answered:
                    self.answered[int(found.group(1))] = now
                    self.statuses[int(found.group(1))] = int(data[8:11])
        sock.close()

    def unanswered_after(self, start: float, end: float, patience: float = 2.0) -> list[float]:
        """Send times in [start, end) of probes not answered within ``patience`` seconds."""
        return [
            t
            for n, t in self.sent.items()
            if start <= t < end and (n not in self.answered or self.answered[n] - t > patience)
        ]

    def recovered(self, start: float, end: float, steady: float = 10.0) -> float | None:
        """Seconds from ``start`` to the first probe from which every probe for ``steady``
        seconds was answered within 2 s (None: never before ``end``)."""
        bad = sorted(self.unanswered_after(start, end))
        times = sorted(t for t in self.sent.values() if start <= t < end - steady)
        for t in times:
            if not any(t <= b < t + steady for b in bad):
                return t - start
        return None


def sipp_counts(output: str) -> tuple[int, int]:
    """(successful, failed) calls from sipp's final statistics screen."""
    ok = re.findall(r"Successful call\s*\|\s*\d+\s*\|\s*(\d+)", output)
    failed = re.findall(r"Failed call\s*\|\s*\d+\s*\|\s*(\d+)", output)
    return int(ok[-1]), int(failed[-1])


def test_flood_while_sipp_places_calls(tmp_path: Path) -> None:
    full = attack_mode() == "full"
    flood_s, settle_s = (10.0, 60.0) if full else (3.0, 15.0)
    sipp = ensure_debian_packages("sip-tester")["sip-tester"]
    port = free_port(SERVER)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    server = subprocess.Popen(
        [sys.executable, "-m", "trio_sip", "serve", "--listen", f"{SERVER}:{port}", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    samples: list[tuple[float, float]] = []
    sampling = threading.Event()
    probe = Probe(port)
    try:
        assert server.stdout is not None
        assert server.stdout.readline().startswith("serving on")
        server_log: list[str] = []
        threading.Thread(target=lambda: server_log.extend(server.stdout), daemon=True).start()

        def sample() -> None:
            while not sampling.is_set():
                samples.append((time.monotonic(), rss_mb(server.pid)))
                time.sleep(0.5)

        threading.Thread(target=sample, daemon=True).start()
        probe.start()
        time.sleep(1.0)
        rss_start = rss_mb(server.pid)
        calls = int(CALL_RATE * (LEAD + flood_s + 5))
        sipp_run = subprocess.Popen(
            [
                sipp, f"{SERVER}:{port}", "-sn", "uac", "-i", CALLER, "-p", str(free_port(CALLER)),
                "-r", str(CALL_RATE), "-m", str(calls), "-timeout", f"{int(flood_s + 90)}s",
                "-timeout_error", "-nostdin", "-cp", str(free_port(CALLER)),
                "-mp", str(free_port(CALLER)),
            ],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
            start_new_session=True,
        )  # fmt: skip
        try:
            time.sleep(LEAD)
            rss_flood = rss_mb(server.pid)
            flood_start = time.monotonic()
            flooder = subprocess.run(
                [sys.executable, str(REPO / "tests/attack/flooder.py"), SERVER, str(port),
                 FLOODER, str(flood_s)],
                capture_output=True, text=True, timeout=flood_s + 30, check=True,
            )  # fmt: skip
            flood_end = time.monotonic()
            sipp_output, _ = sipp_run.communicate(timeout=flood_s + 120)
        finally:
            if sipp_run.poll() is None:
                os.killpg(sipp_run.pid, 9)
        while time.monotonic() < flood_end + settle_s:
            time.sleep(0.5)
        rss_after = rss_mb(server.pid)
    finally:
        probe.stop.set()
        sampling.set()
        os.killpg(server.pid, 15)
        server.wait(10)
    probe.join(5)

    sent, seconds = flooder.stdout.split()[1:3]
    ok, failed = sipp_counts(sipp_output)
    during = probe.unanswered_after(flood_start, flood_end)
    recovery = probe.recovered(flood_end, flood_end + settle_s)
    relapses = [
        t - flood_end
        for t in probe.unanswered_after(flood_end + (recovery or 0), flood_end + settle_s)
    ]
    refused = sum(1 for n, t in probe.sent.items() if probe.statuses.get(n, 200) != 200)
    peak = max(r for _, r in samples)
    print(
        f"\nATTACK flood: {int(sent):,} INVITEs in {float(seconds):.1f} s "
        f"({int(sent) / float(seconds):,.0f}/s) from {FLOODER}"
        f"\nATTACK sipp: {ok} of {ok + failed} calls completed ({100 * ok / (ok + failed):.1f}%)"
        f" at {CALL_RATE}/s from {CALLER}"
        f"\nATTACK probe: {len(during)} of the OPTIONS sent during the flood unanswered within 2 s;"
        f" after its end all answered within 2 s (for 10 s at least) from "
        f"{'never' if recovery is None else f'+{recovery:.1f} s'};"
        f" later {len(relapses)} not ({', '.join(f'+{t:.1f} s' for t in relapses[:5])});"
        f" {refused} answered with a non-200"
        f"\nATTACK RSS: {rss_start:.1f} MB at start, {rss_flood:.1f} MB at the flood's start,"
        f" {peak:.1f} MB peak, {rss_after:.1f} MB {settle_s:.0f} s after the flood"
        f" ({100 * (rss_after / rss_flood - 1):+.0f}%)"
    )
    assert ok >= 0.95 * (ok + failed), sipp_output[-3000:]
    assert recovery is not None and recovery <= 5.0
    if full:
        assert rss_after <= 1.2 * rss_flood
