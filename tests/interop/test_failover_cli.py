"""A refused first proxy still costs next to nothing: ``trio-sip options`` through SRV.

dnsmasq (started here on 127.0.0.47) serves ``_sip._udp.fo.test`` as two SRV targets in
priority order: ``dead.fo.test`` (127.0.0.45: nothing listens, the kernel answers ICMP port
unreachable) and ``live.fo.test`` (127.0.0.46: our own stack answers 200). The request must go
to the dead one first, be refused, and be answered by the live one long before the
transaction timeout (8 s here). Once from the CLI (``trio-sip options``, no listener: a
connected socket per target), once from a stack that listens, whose datagrams leave from its
listening socket and whose ICMP errors come from that socket's error queue (IP_RECVERR: the
one-binding design of docs/transports.md). The precise figure, against a direct request, is
reported by ``python -m benchmarks failover``.
"""

from __future__ import annotations

import io
import re
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import pytest
import trio

from trio_sip.cli import main
from trio_sip.dns import DnspythonResolver
from trio_sip.failover import FailoverClient
from trio_sip.proto.timers import TimerConfig
from trio_sip.stack import IncomingRequest, open_stack

from .peers import assert_loopback, ensure_debian_packages, free_port, running_peer
from .test_failover_interop import make_request

pytestmark = pytest.mark.interop

DEAD, LIVE, DNS = (assert_loopback(f"127.0.0.{i}") for i in (45, 46, 47))
DOMAIN = "fo.test"
TIMEOUT_MS = 8000
BOUND = 1.0  # seconds: generous under load, far below the 8 s transaction timeout


@pytest.fixture(scope="module")
def port() -> int:
    """A UDP port free on both addresses (the dead one stays free: nothing listens there)."""
    for _ in range(50):
        port = free_port(LIVE, tcp=False)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind((DEAD, port))
            except OSError:
                continue
        return port
    raise RuntimeError("no common free port")


@pytest.fixture(scope="module")
def dns_server(tmp_path_factory: pytest.TempPathFactory, port: int) -> Iterator[tuple[str, int]]:
    binary = ensure_debian_packages("dnsmasq")["dnsmasq"]
    workdir: Path = tmp_path_factory.mktemp("dnsmasq-fo")
    conf = workdir / "dnsmasq.conf"
    conf.write_text(
        f"host-record=dead.{DOMAIN},{DEAD}\nhost-record=live.{DOMAIN},{LIVE}\n"
        f"srv-host=_sip._udp.{DOMAIN},dead.{DOMAIN},{port},10,0\n"
        f"srv-host=_sip._udp.{DOMAIN},live.{DOMAIN},{port},20,0\nlocal=/{DOMAIN}/\n"
    )
    dns_port = free_port(DNS)
    argv = [
        binary, "--keep-in-foreground", f"--conf-file={conf}", "--no-resolv", "--no-hosts",
        "--bind-interfaces", f"--listen-address={DNS}", f"--port={dns_port}",
        "--local-ttl=60", "--pid-file=", "--log-facility=-", "--user=root",
    ]  # fmt: skip

    def answers() -> bool:
        query = dns.message.make_query(f"live.{DOMAIN}", "A")
        return bool(dns.query.udp(query, DNS, port=dns_port, timeout=0.2).answer)

    with running_peer("dnsmasq", argv, workdir=workdir, ready=answers):
        yield DNS, dns_port


async def _ok(incoming: IncomingRequest) -> None:
    await incoming.respond(200)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ICMP on Linux sockets")
async def test_options_cli_leaves_a_refused_srv_target_at_once(
    port: int, dns_server: tuple[str, int]
) -> None:
    host, dns_port = dns_server
    async with open_stack([("UDP", LIVE, port)], handler=_ok):
        out = io.StringIO()
        argv = ["options", f"sip:{DOMAIN}", "--dns-server", f"{host}:{dns_port}",
                "--transaction-timeout-ms", str(TIMEOUT_MS)]  # fmt: skip
        with trio.fail_after(TIMEOUT_MS / 1000):
            status = await trio.to_thread.run_sync(main, argv, out)
    text = out.getvalue()
    assert status == 0, text
    found = re.search(r"#1 200 OK from (\S+) in [\d.]+ ms after (\d+) attempts, ([\d.]+) ms", text)
    assert found, text
    answered_by, attempts, total_ms = found.group(1), int(found.group(2)), float(found.group(3))
    assert LIVE in answered_by and attempts == 2, text  # the dead SRV target came first
    assert total_ms < BOUND * 1000, text


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="IP_RECVERR is Linux's")
async def test_a_listening_stack_leaves_a_refused_srv_target_at_once(
    port: int, dns_server: tuple[str, int]
) -> None:
    host, dns_port = dns_server
    async with (
        open_stack([("UDP", LIVE, port)], handler=_ok),
        open_stack(
            [("UDP", "127.0.0.1", 0)], timer_config=TimerConfig(sip_transaction_timeout=TIMEOUT_MS)
        ) as ua,
    ):
        client = FailoverClient(ua, resolver=DnspythonResolver([host], port=dns_port, timeout=2))
        destination = f"sip:{DOMAIN}"
        await client.targets(destination)  # DNS answers cached: only SIP is timed
        start = trio.current_time()
        with trio.fail_after(TIMEOUT_MS / 1000):
            result = await client.request(make_request("OPTIONS", DOMAIN), destination)
        took = trio.current_time() - start
        ours = ua.listening[0][1]
    assert result.response.status_code == 200
    assert [a.target.host for a in result.attempts] == [DEAD, LIVE]
    outcome = result.attempts[0].outcome or ""
    assert "ICMP port unreachable" in outcome, outcome
    assert took < BOUND, took
    assert ua.statistics().flows == 0, ours  # both datagrams left from the listening socket
