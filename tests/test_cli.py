"""The ``trio-sip`` command, run in-process (``main(argv, out)``) and as a real subprocess."""

from __future__ import annotations

import io
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
