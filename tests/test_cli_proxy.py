"""``trio-sip proxy``: a registrar + proxy node run as a real subprocess on loopback."""

from __future__ import annotations

import io
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from trio_sip.cli import main


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_node(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[str], int]:
    users = tmp_path / "users.toml"
    users.write_text('[users]\nalice = "secret"\n')
    port = _free_udp_port()
    argv = [sys.executable, "-m", "trio_sip", "proxy", "--listen", f"UDP:127.0.0.1:{port}"]
    argv += ["--domain", "geo.example", "--users", str(users), *extra]
    node = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert node.stdout is not None
    first = node.stdout.readline()  # blocks until it listens (or dies: "")
    assert first == f"listening on udp:127.0.0.1:{port}\n", (first, node.stderr)
    second = node.stdout.readline()
    assert second.startswith("domain geo.example, location memory:"), second
    return node, port


def _stop(node: subprocess.Popen[str], signum: int) -> tuple[str, str]:
    node.send_signal(signum)
    try:
        return node.communicate(timeout=20)
    finally:
        node.kill()


async def test_proxy_node_registers_proxies_and_stops_on_sigterm(tmp_path: Path) -> None:
    node, port = _start_node(tmp_path, "--verbose")
    try:
        server = f"127.0.0.1:{port}"
        out = io.StringIO()
        argv = ["register", "--server", server, "--user", "alice@geo.example",
                "--password", "secret", "--once"]  # fmt: skip
        with trio.fail_after(30):
            status = await trio.to_thread.run_sync(main, argv, out)
        assert status == 0, out.getvalue()
        assert f"[{server}] registering -> REGISTERED  (200 OK)" in out.getvalue()
        # An INVITE is challenged (407), then finds nobody registered as bob: 480.
        argv = ["call", "sip:bob@geo.example", "--server", server, "--user",
                "alice@geo.example", "--password", "secret"]  # fmt: skip
        with trio.fail_after(30):
            result = await trio.to_thread.run_sync(
                lambda: subprocess.run(
                    [sys.executable, "-m", "trio_sip", *argv],
                    capture_output=True,
                    text=True,
                    timeout=30,
                    check=False,
                )
            )
        assert result.returncode == 1 and "480" in result.stderr, result
    finally:
        stdout, stderr = _stop(node, signal.SIGTERM)
    assert node.returncode == 143
    assert stderr.strip().splitlines() == ["trio-sip proxy: stopped by SIGTERM"], stderr
    # --verbose: one line per request received (REGISTERs, the challenged INVITE and its ACK).
    assert "REGISTER sip:geo.example from 127.0.0.1:" in stdout
    assert "INVITE sip:bob@geo.example from 127.0.0.1:" in stdout


def test_proxy_node_stops_on_ctrl_c(tmp_path: Path) -> None:
    node, _ = _start_node(tmp_path)
    _, stderr = _stop(node, signal.SIGINT)
    assert node.returncode == 130
    assert stderr.strip().splitlines() == ["trio-sip proxy: stopped by SIGINT"], stderr


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--users", "{missing}"], "--users="),
        (["--users", "{bad}"], '[users] table of name = "password"'),
        (["--location", "mysql://127.0.0.1/0"], "location="),
        (["--secret-file", "{short}"], "at least 16 bytes"),
        (["--min-expires", "0"], "--min-expires=0"),
        (["--trusted", "not-an-address"], "trusted="),
    ],
)
def test_bad_proxy_options_exit_one_with_a_one_line_reason(
    tmp_path: Path, args: list[str], reason: str
) -> None:
    (tmp_path / "bad.toml").write_text("[users]\nalice = 3\n")
    (tmp_path / "short").write_bytes(b"tiny")
    paths = {"missing": tmp_path / "none.toml", "bad": tmp_path / "bad.toml"}
    paths["short"] = tmp_path / "short"
    args = [a.format(**paths) for a in args]
    result = subprocess.run(
        [sys.executable, "-m", "trio_sip", "proxy", "--listen", "UDP:127.0.0.1:0", *args],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and reason in lines[0], lines
    assert lines[0].startswith("trio-sip proxy: ")
