"""sipp helpers for interop tests: install, command lines, bounded runs (loopback only).

Facts from docs/real-peers: every run is bounded (``-m``, ``-timeout`` with
``-timeout_error`` and the caller's ``trio.fail_after``), every instance gets its own control
(``-cp``) and media (``-mp``) ports, and ``-bg`` is never used (the PID would be lost). The
process runs in its own session; ``trio.run_process`` kills it if the test is cancelled.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import attrs
import trio

from .peers import assert_loopback, ensure_debian_packages, free_port

#: sipp exit statuses (sipp(1)): 0 every call succeeded, 1 at least one failed.
ALL_CALLS_OK = 0

#: An INVITE rejected with 486 and ACKed (the ACK shares the INVITE's branch, §17.1.1.3: the
#: INVITE is message 0, the ACK message 3). Run with ``-lost`` so that sipp drops INVITEs,
#: 486s and ACKs: our server transaction must absorb the INVITE retransmissions, re-send the
#: 486 on each (§17.2.1) and retransmit it on Timer G until an ACK gets through.
INVITE_REJECTED = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="INVITE rejected with 486">
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="486"/>
  <send>
    <![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch-3]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <pause milliseconds="4000"/>
</scenario>
"""

#: A plain OPTIONS transaction (run with ``-lost`` to make sipp drop messages).
OPTIONS = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="OPTIONS">
  <send retrans="500">
    <![CDATA[
      OPTIONS sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 OPTIONS
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200"/>
</scenario>
"""


def sipp_binary() -> str:
    """The sipp executable (installs Debian's sip-tester on a clean root CI machine)."""
    return ensure_debian_packages("sip-tester")["sip-tester"]


@attrs.frozen
class SippRun:
    argv: list[str]
    returncode: int
    output: str

    def describe(self) -> str:
        return f"sipp exited {self.returncode}: {' '.join(self.argv)}\n{self.output[-3000:]}"


def sipp_argv(
    *,
    scenario: str | Path,
    local: tuple[str, int],
    remote: tuple[str, int] | None = None,
    calls: int = 1,
    timeout: int = 20,
    transport: str = "u1",
    extra: Sequence[str] = (),
) -> list[str]:
    """A bounded sipp command line. ``scenario``: a built-in name (``"uac"``) or an XML path."""
    host, port = local
    assert_loopback(host)
    argv = [sipp_binary()]
    if remote is not None:
        argv.append(f"{assert_loopback(remote[0])}:{remote[1]}")
    argv += ["-sf", str(scenario)] if isinstance(scenario, Path) else ["-sn", scenario]
    argv += ["-i", host, "-p", str(port), "-t", transport]
    argv += ["-cp", str(free_port(host)), "-mp", str(free_port(host))]
    argv += ["-m", str(calls), "-timeout", f"{timeout}s", "-timeout_error", "-nostdin"]
    argv += ["-trace_err", *extra]
    return argv


async def run_sipp(argv: list[str], workdir: Path) -> SippRun:
    """Run sipp to completion in ``workdir`` (the caller bounds it with ``trio.fail_after``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    done = await trio.run_process(
        argv,
        cwd=workdir,
        check=False,
        stdin=subprocess.DEVNULL,
        capture_stdout=True,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    output = done.stdout.decode(errors="replace")
    for log in sorted(workdir.glob("*_errors.log")):
        output += f"\n--- {log.name}\n{log.read_text(errors='replace')[-2000:]}"
    return SippRun(argv, done.returncode, output)


def write_scenario(workdir: Path, name: str, xml: str) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"{name}.xml"
    path.write_text(xml)
    return path


async def wait_udp_bound(address: tuple[str, int], *, timeout: float = 10.0) -> None:
    """Wait until something (sipp starting up) has bound UDP ``address``: polls by trying to
    bind it ourselves, every 20 ms, at most ``timeout`` seconds."""
    import socket

    host, port = address
    assert_loopback(host)
    with trio.fail_after(timeout):
        for _ in range(int(timeout / 0.02) + 1):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                try:
                    probe.bind(address)
                except OSError:
                    return  # taken: sipp is listening
            await trio.sleep(0.02)
    raise TimeoutError(f"nothing bound UDP {host}:{port} within {timeout} s")
