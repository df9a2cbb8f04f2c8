"""The ``trio-sip`` command's edges (issue #12): ``--version``, plain-text ``--help``, a failed
call's line with its session id, the ``--config`` warnings printed by every command (``serve``:
tests/test_cli_config.py::test_serve_uses_the_configured_listeners_and_prints_the_file_warnings;
``demo`` takes no ``--config``)."""

from __future__ import annotations

import io
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import trio

import trio_sip
from trio_sip.cli import build_parser, main, plain_text

from .shell.test_default_resolver import DnsServer

MARKUP = re.compile(r"``|:(class|func|meth|attr|mod|exc):`")


def test_version() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "trio_sip", "--version"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (0, f"trio-sip {trio_sip.__version__}\n")


def test_help_is_plain_text() -> None:
    parser = build_parser()
    helps = {"trio-sip": parser.format_help()}
    for action in parser._subparsers._group_actions:  # type: ignore[union-attr]
        for name, sub in action.choices.items():  # type: ignore[union-attr]
            helps[name] = sub.format_help()
    assert set(helps) >= {"trio-sip", "demo", "options", "register", "call", "keepalive", "serve"}
    for name, text in helps.items():
        assert not MARKUP.search(text), (name, MARKUP.search(text))
    assert "trio-sip call URI [--server URI ...]" in helps["call"]  # was ``trio-sip call URI
    assert plain_text("``a`` and :class:`~trio_sip.Call`") == "a and trio_sip.Call"
    shown = subprocess.run(
        [sys.executable, "-m", "trio_sip", "register", "--help"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert shown.returncode == 0 and "--reg-interval" in shown.stdout
    assert not MARKUP.search(shown.stdout)


def _closed_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(
    "argv",
    [
        ["options", "sip:127.0.0.1:{port}"],
        ["keepalive", "127.0.0.1", "{port}", "--count", "1", "--period", "0.01"],
        ["call", "sip:bob@127.0.0.1:{port}", "--listen", "UDP:127.0.0.1:0"],
        ["register", "--server", "127.0.0.1:{port}", "--once", "--listen", "UDP:127.0.0.1:0"],
    ],
    ids=lambda argv: argv[0],
)
def test_every_command_prints_the_config_warnings(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "edges.toml"
    config.write_text("colour = 'red'\n")
    port = str(_closed_udp_port())
    main([a.replace("{port}", port) for a in argv] + ["--config", str(config)], io.StringIO())
    errors = capsys.readouterr().err.splitlines()
    assert any(
        line.startswith(f"trio-sip {argv[0]}: warning: {config}: ") and "colour" in line
        for line in errors
    ), errors


async def test_a_call_that_never_left_still_shows_a_session_id() -> None:
    """No INVITE could go out (the server's name does not resolve): the ended line names the
    session like any other call (it was ``call  on ...`` with an empty id)."""
    dns = DnsServer({})
    async with trio.open_nursery() as nursery:
        await nursery.start(dns.serve)
        out = io.StringIO()
        argv = ["call", "sip:bob@example.test", "--server", "nowhere.example.test",
                "--dns-server", f"127.0.0.1:{dns.port}", "--listen", "UDP:127.0.0.1:0"]  # fmt: skip
        with trio.fail_after(30):
            status = await trio.to_thread.run_sync(main, argv, out)
        nursery.cancel_scope.cancel()
    assert status == 1
    ended = [line for line in out.getvalue().splitlines() if "ended (failed)" in line]
    assert len(ended) == 1
    assert re.search(r" call \w{6} on nowhere\.example\.test: ended \(failed\): ", ended[0]), ended
    assert "cannot resolve nowhere.example.test" in ended[0]
