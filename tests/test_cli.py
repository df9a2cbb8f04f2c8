"""The ``trio-sip`` command, run in-process (``main(argv, out)``) and as a real subprocess."""

from __future__ import annotations

import io
import re
import socket
import subprocess
import sys

import pytest

from trio_sip.cli import main


def test_keepalive_command_sends_crlfs_and_exits_zero() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(5)
        port = receiver.getsockname()[1]
        out = io.StringIO()
        status = main(
            ["keepalive", "127.0.0.1", str(port), "--period", "0.05", "--count", "3"], out
        )
        got = [receiver.recvfrom(10)[0] for _ in range(3)]
    assert status == 0
    assert got == [b"\r\n"] * 3
    assert f"to 127.0.0.1:{port} every 0.05 s" in out.getvalue()
    assert out.getvalue().count("(sent)") == 3


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["keepalive", "127.0.0.1", "70000", "--period", "1"], "port=70000 is not allowed"),
        (["keepalive", "127.0.0.1", "5060", "--period", "0"], "seconds=0.0 is not allowed"),
        (["keepalive", "no-such-host.invalid", "5060", "--period", "1"], "cannot resolve"),
    ],
)
def test_bad_values_exit_one_with_a_one_line_reason(argv: list[str], reason: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "trio_sip", *argv],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and reason in lines[0], result.stderr


def test_bad_command_line_exits_two() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "trio_sip", "keepalive"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2


async def test_options_command_pings_a_uas_and_reports_status_address_and_rtt() -> None:
    import trio

    from trio_sip import IncomingRequest, open_stack

    async def answer(incoming: IncomingRequest) -> None:
        await incoming.respond(200, headers=[("Allow", "INVITE, ACK, BYE, OPTIONS")])

    async with open_stack([("UDP", "127.0.0.1", 0)], handler=answer) as uas:
        port = uas.listening[0][1][1]
        out = io.StringIO()
        argv = ["options", f"sip:127.0.0.1:{port}", "--count", "2", "--interval", "0.05"]
        with trio.fail_after(20):
            status = await trio.to_thread.run_sync(main, argv, out)
    lines = out.getvalue().splitlines()
    assert status == 0
    assert len(lines) == 2
    for number, line in enumerate(lines, 1):
        assert line.startswith(f"#{number} 200 OK from udp:127.0.0.1:{port} in ")
        assert line.endswith(" ms")


def test_options_to_a_closed_port_fails_fast_with_the_refusal() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    out = io.StringIO()
    status = main(["options", f"sip:127.0.0.1:{closed}"], out)
    assert status == 1
    assert "connection refused (ICMP port unreachable)" in out.getvalue()


def test_demo_runs_the_geo_redundancy_story_on_loopback() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "trio_sip", "demo"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "sip_transaction_timeout = 2000 ms" in out
    register, call1, down, retried, call3, summary = re.split(
        r"\n(?=Call 1|Site A goes down|Site A is retried|Call 3|Connections:)", out
    )
    for who in ("alice", "bob"):
        for site in ("site-a", "site-b"):
            assert re.search(rf"{who} +\[{site}\] registering -> REGISTERED +\(200 OK\)", register)
    assert "answered through site-a" in call1
    # Site A stopped: the INVITE is refused, the connection turns unavailable with the reason,
    # the call falls over to site B and is answered there.
    assert re.search(r"\[site-a\] registered -> UNAVAILABLE +\(transport error: .*refused", down)
    assert "FAILOVER: connection site-a: transport error" in down
    assert "incoming call from sip:alice@geo.example on site-b" in down
    assert "answered through site-b" in down
    assert "REGISTER failed (transport error" in retried
    assert "[site-a] unavailable -> REGISTERED  (200 OK)" in retried
    assert "answered through site-a" in call3
    assert summary.count("registered (200 OK)") == 4
    seconds = float(re.search(r"Done in ([0-9.]+) s", out).group(1))  # type: ignore[union-attr]
    assert seconds < 30


def test_demo_failover_part_shows_the_proxy_failover() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "trio_sip",
            "demo",
            "--part",
            "failover",
            "--transaction-timeout-ms",
            "500",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    call1, call2 = out.split("Call 2")
    # Call 1: blackhole for the whole transaction timeout, refusal in milliseconds, then answered.
    assert "INVITE -> udp:127.0.0.3" in call1
    assert "(udp:127.0.0.3:" in call1 and ": timeout)" in call1
    assert "connection refused (ICMP port unreachable)" in call1
    assert "<- 200 OK from udp:127.0.0.4" in call1
    answered = float(re.search(r"Call 1 was answered after ([0-9.]+) s", out).group(1))
    assert 0.5 <= answered < 1.5
    # Call 2 goes straight to the live proxy.
    assert "INVITE -> udp:127.0.0.4" in call2 and "failing over" not in call2
    assert "(ICMP unreachable / connection refused)" in call2
    assert "(transaction timeout)" in call2
