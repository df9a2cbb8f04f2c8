"""The ``trio-sip`` command's listeners, media ports, TLS options and ``--config``, with real
sockets on loopback: the command runs in-process (``main(argv, out)`` in a thread) against
peers of this test, or as a subprocess (``serve``)."""

from __future__ import annotations

import io
import re
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import trustme

from trio_sip import IncomingRequest, open_stack
from trio_sip.cli import build_parser, main
from trio_sip.cli._listen import parse_listen
from trio_sip.cli.register import register_config
from trio_sip.proxy import open_proxy
from trio_sip.transports import TransportConfig
from trio_sip.ua import Call, UserAgent, open_user_agent

from .test_config_seeds import xml_blocks

HOST = "127.0.0.1"


async def run(*argv: str, timeout: float = 30) -> tuple[int, str]:
    """Run the command in a thread (the test's peers keep running); its status and stdout."""
    out = io.StringIO()
    with trio.fail_after(timeout):
        status = await trio.to_thread.run_sync(main, list(argv), out)
    return status, out.getvalue()


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def serve(*argv: str, listeners: int = 1) -> tuple[subprocess.Popen[str], list[str]]:
    """``trio-sip serve`` as a subprocess, and its first ``listeners`` lines of output."""
    server = subprocess.Popen(
        [sys.executable, "-m", "trio_sip", "serve", *argv],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert server.stdout is not None
    lines = [server.stdout.readline().strip() for _ in range(listeners)]
    return server, lines


def finish(server: subprocess.Popen[str]) -> str:
    try:
        served, errors = server.communicate(timeout=30)
    finally:
        server.kill()
    assert server.returncode == 0, errors
    return served


# --- --listen --------------------------------------------------------------------------------


def test_the_listen_forms_the_error_suggests_work(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--listen", "UDP:UDP:127.0.0.1:5060"], io.StringIO()) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("trio-sip serve: --listen='UDP:UDP:127.0.0.1:5060' is not allowed:")
    forms = re.split(r", | or ", line.split("e.g. ", 1)[1])
    assert forms == ["UDP:127.0.0.1:5060", "TCP:[::1]:5060", "127.0.0.1:5060"]
    # Each one parses, and binds (on a free port, as 5060 may be taken on this machine).
    expected = [{"UDP"}, {"TCP"}, {"UDP", "TCP"}]
    for form, transports in zip(forms, expected, strict=True):
        addresses = parse_listen([form.replace(":5060", ":0")], ("UDP", "TCP"))
        assert {a.transport for a in addresses} == transports

        listen = [(a.transport, a.host, a.port) for a in addresses]

        async def bind(listen: list[tuple[str, str, int]]) -> Any:
            async with open_stack(listen) as stack:
                return stack.listening

        listening = trio.run(bind, listen)
        assert {t for t, _ in listening} == transports
        assert len({port for _, (_, port) in listening}) == 1  # UDP and TCP: the same port


def test_serve_listens_on_udp_and_tcp_and_answers_both() -> None:
    server, lines = serve("--listen", f"{HOST}:0", "--calls", "2", listeners=2)
    try:
        port = int(lines[0].rsplit(":", 1)[1])
        assert lines == [f"serving on udp:{HOST}:{port}", f"serving on tcp:{HOST}:{port}"]
        for extra in ([], ["--transport", "TCP"]):
            argv = ["call", f"sip:bob@{HOST}:{port}", "--hangup-after", "0.05", *extra]
            assert main(argv, out := io.StringIO()) == 0, out.getvalue()
            assert "ANSWERED (200 OK)" in out.getvalue()
    finally:
        served = finish(server)
    assert "2 calls answered and ended" in served


def test_serve_with_transport_listen_forms() -> None:
    udp, tcp = free_port(), free_port(socket.SOCK_STREAM)
    server, lines = serve(
        "--listen",
        f"UDP:{HOST}:{udp}",
        "--listen",
        f"TCP:{HOST}:{tcp}",
        "--calls",
        "1",
        listeners=2,
    )
    try:
        assert lines == [f"serving on udp:{HOST}:{udp}", f"serving on tcp:{HOST}:{tcp}"]
        argv = ["call", f"sip:bob@{HOST}:{tcp};transport=tcp", "--hangup-after", "0.05"]
        assert main(argv, out := io.StringIO()) == 0, out.getvalue()
    finally:
        finish(server)


# --- --media-ports ---------------------------------------------------------------------------


@asynccontextmanager
async def answering_ua(
    listen: list[tuple[str, str, int]] | None = None, **kw: Any
) -> AsyncIterator[tuple[UserAgent, list[int]]]:
    """A UA on loopback that answers every call; the port of each SDP offer it got."""
    offers: list[int] = []
    listen = listen or [("UDP", HOST, 0)]
    async with (
        open_user_agent(listen, aor=f"sip:bob@{HOST}", **kw) as ua,
        trio.open_nursery() as nursery,
    ):

        async def answer_all() -> None:
            async for incoming in ua.incoming_calls():
                assert incoming.remote_sdp is not None
                offers.append(incoming.remote_sdp.media[0].port)
                await incoming.accept()

        nursery.start_soon(answer_all)
        yield ua, offers
        nursery.cancel_scope.cancel()


async def test_call_offers_a_port_of_media_ports() -> None:
    async with answering_ua() as (ua, offers):
        port = ua.stack.listening[0][1][1]
        for extra in (["--media-ports", "42010-42011"], []):
            status, out = await run("call", f"sip:bob@{HOST}:{port}", "--hangup-after", "0", *extra)
            assert status == 0, out
    assert offers == [42010, 40000]


async def test_serve_answers_concurrent_calls_with_distinct_media_ports() -> None:
    server, lines = await trio.to_thread.run_sync(
        lambda: serve("--listen", f"UDP:{HOST}:0", "--media-ports", "41000-41003", "--calls", "3")
    )
    port = int(lines[0].rsplit(":", 1)[1])
    early: list[str] = []
    try:
        with trio.fail_after(30):
            async with open_user_agent([("UDP", HOST, 0)], aor=f"sip:alice@{HOST}") as alice:
                uri = f"sip:bob@{HOST}:{port}"

                async def answer_port(call: Call) -> int:
                    await call.wait_answered()
                    assert call.remote_sdp is not None
                    return call.remote_sdp.media[0].port

                async with alice.call(uri) as first, alice.call(uri) as second:
                    both = {await answer_port(first), await answer_port(second)}
                assert both == {41000, 41002}
                # serve frees a call's port when the call ends, before it prints "#N ended"
                # (was: a 0.5 s sleep, which a loaded machine could outlast).
                early = await trio.to_thread.run_sync(
                    _lines_until_ended, server, 2, abandon_on_cancel=True
                )
                async with alice.call(uri) as third:
                    assert await answer_port(third) in both
    finally:
        served = "".join(early) + await trio.to_thread.run_sync(finish, server)
    assert "3 calls answered and ended" in served
    assert served.count(" ended (remote hangup)") == 3


def _lines_until_ended(server: subprocess.Popen[str], calls: int) -> list[str]:
    """serve's output lines up to its ``calls``-th "#N ended" line."""
    assert server.stdout is not None
    lines: list[str] = []
    while sum(" ended (" in line for line in lines) < calls:
        line = server.stdout.readline()
        assert line, f"serve stopped: {lines}"
        lines.append(line)
    return lines


def test_bad_media_ports(capsys: pytest.CaptureFixture[str]) -> None:
    for bad in ("40000", "40999-40000", "40000-40000", "x-y", "65535-65536"):
        assert main(["call", "sip:bob@127.0.0.1", "--media-ports", bad], io.StringIO()) == 1
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert f"--media-ports={bad!r} is not allowed: LOW-HIGH" in line, line
        assert "e.g. 40000-40999" in line


# --- TLS -------------------------------------------------------------------------------------


class Pki:
    """A CA (and a stranger CA) and a certificate for 127.0.0.1, as PEM files."""

    def __init__(self, folder: Path) -> None:
        self.ca = trustme.CA()
        self.cert = self.ca.issue_cert(HOST, "localhost")
        self.ca_file, self.stranger_file = folder / "ca.pem", folder / "stranger.pem"
        self.cert_file, self.key_file = folder / "cert.pem", folder / "key.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        trustme.CA().cert_pem.write_to_path(str(self.stranger_file))
        self.cert.cert_chain_pems[0].write_to_path(str(self.cert_file))
        self.cert.private_key_pem.write_to_path(str(self.key_file))

    def transport_config(self) -> TransportConfig:
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.cert.configure_cert(server)
        client = ssl.create_default_context()
        self.ca.configure_trust(client)
        return TransportConfig(server_ssl_context=server, client_ssl_context=client)

    def options(self) -> list[str]:
        return ["--tls-ca", str(self.ca_file), "--tls-cert", str(self.cert_file),
                "--tls-key", str(self.key_file)]  # fmt: skip


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


async def test_options_over_tls_with_the_right_and_a_wrong_ca(pki: Pki) -> None:
    async with open_proxy(
        [("TLS", HOST, 0)], domain="tls.example", transport_config=pki.transport_config()
    ) as site:
        uri = f"sips:{HOST}:{site.address[1]}"
        status, out = await run("options", uri, "--tls-ca", str(pki.ca_file))
        assert status == 0 and out.startswith(f"#1 200 OK from tls:{HOST}:"), out
        status, out = await run("options", uri, "--tls-ca", str(pki.stranger_file))
    assert status == 1
    assert f"#1 no answer: TLS handshake with {HOST}: TLS error:" in out
    assert "certificate verify failed" in out


async def test_register_and_call_over_tls(pki: Pki, tmp_path: Path) -> None:
    async with (
        open_proxy(
            [("TLS", HOST, 0)], domain="tls.example", transport_config=pki.transport_config()
        ) as site,
        answering_ua(listen=[("TLS", HOST, 0)], transport_config=pki.transport_config()) as (
            bob,
            offers,
        ),
    ):
        server = f"{HOST}:{site.address[1]}"
        register = ["register", "--transport", "TLS", "--server", server, "--once",
                    "--user", "alice@tls.example"]  # fmt: skip
        status, out = await run(*register, *pki.options())
        assert status == 0, out
        assert f"[{server}] registering -> REGISTERED  (200 OK)" in out
        # The same from a configuration file (paths relative to it).
        (tmp_path / "tls.toml").write_text(
            '[endpoint]\ntls_ca_file = "ca.pem"\ntls_cert_file = "cert.pem"\n'
            'tls_key_file = "key.pem"\n'
        )
        status, out = await run(*register, "--config", str(tmp_path / "tls.toml"))
        assert status == 0, out
        # A call over TLS, straight to Bob's TLS listener (a sips: URI means TLS).
        port = bob.stack.listening[0][1][1]
        status, out = await run(
            "call", f"sips:bob@{HOST}:{port}", "--hangup-after", "0", *pki.options()
        )
        assert status == 0, out
        assert offers == [40000]


def test_tls_without_a_certificate_or_with_bad_files(
    pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["register", "--transport", "TLS", "--server", f"{HOST}:5061", "--once"]
    cases = [
        ([], "--tls-cert=None is not allowed: a PEM certificate (with --tls-key"),
        (["--tls-ca", str(tmp_path / "none.pem")], "--tls-ca='"),
        (["--tls-cert", str(pki.ca_file), "--tls-key", str(pki.ca_file)], "--tls-key='"),
    ]
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    cases.append((["--tls-ca", str(tmp_path / "junk.pem"), *pki.options()[2:]], "--tls-ca='"))
    for extra, reason in cases:
        assert main([*argv, *extra], io.StringIO()) == 1
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith(f"trio-sip register: {reason}"), line
    assert "an existing PEM file" in main_error(capsys, [*argv, "--tls-ca", "/nonexistent.pem"])


def main_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv, io.StringIO()) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    return line


# --- --config --------------------------------------------------------------------------------


async def test_options_uses_the_configured_user_agent_and_dns_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    agents: list[str | None] = []

    async def answer(incoming: IncomingRequest) -> None:
        agents.append(incoming.request.headers.get("User-Agent"))
        await incoming.respond(200)

    dns = free_port()  # nothing answers there
    (tmp_path / "ep.toml").write_text(
        f'[endpoint]\nuser_agent = "cfg-agent/1"\ndns_server = "{HOST}:{dns}"\n'
    )
    config = ["--config", str(tmp_path / "ep.toml")]
    async with open_stack([("UDP", HOST, 0)], handler=answer) as uas:
        port = uas.listening[0][1][1]
        status, out = await run("options", f"sip:{HOST}:{port}", *config)
        assert status == 0, out
    assert agents == ["cfg-agent/1"]
    capsys.readouterr()
    status, _ = await run("options", "sip:nowhere.example", *config)
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert status == 1 and line.startswith("trio-sip options: cannot resolve nowhere.example")
    assert f"{HOST}:{dns}" in line  # the configured server was asked


async def test_register_applies_the_seed_proxy_sections_to_each_server(tmp_path: Path) -> None:
    """Seed 001's proxies block as the whole --config file: proxy0's reg_interval goes to the
    first --server, proxy1's to the second; reregister_in_seconds is the REGISTER Expires."""
    proxies = xml_blocks("001")[1]
    (tmp_path / "proxies.config").write_text(proxies)
    argv = ["register", "--server", "a.example", "--server", "b.example",
            "--config", str(tmp_path / "proxies.config")]  # fmt: skip
    config = register_config(build_parser().parse_args(argv))
    assert [(c.reg_interval, c.expires) for c in config.connections] == [(10, 600), (20, 600)]
    config = register_config(build_parser().parse_args([*argv, "--reg-interval", "5"]))
    assert [c.reg_interval for c in config.connections] == [5, 5]

    expires: list[str | None] = []

    async def registrar(incoming: IncomingRequest) -> None:
        request = incoming.request
        expires.append(request.headers.get("Expires"))
        contact = f"{request.headers.get('Contact')};expires={request.headers.get('Expires')}"
        await incoming.respond(200, headers=[("Contact", contact)])

    (tmp_path / "rereg.config").write_text(
        '<domain name="proxies"><section name="proxy0">'
        '<setting name="reregister_in_seconds" value="120"/></section></domain>'
    )
    async with open_stack([("UDP", HOST, 0)], handler=registrar) as site:
        server = f"{HOST}:{site.listening[0][1][1]}"
        status, out = await run(
            "register", "--server", server, "--once", "--config", str(tmp_path / "rereg.config")
        )
    assert status == 0, out
    assert expires == ["120", "0"]  # registered for 120 s, then unregistered


def test_keepalive_uses_the_configured_listener_and_period(tmp_path: Path) -> None:
    local = free_port()
    (tmp_path / "ka.toml").write_text(
        f'[endpoint]\nkeep_alive_period = 1\nlisten = ["UDP:{HOST}:{local}"]\n'
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind((HOST, 0))
        receiver.settimeout(10)
        port = receiver.getsockname()[1]
        argv = ["keepalive", HOST, str(port), "--count", "2", "--config", str(tmp_path / "ka.toml")]
        assert main(argv, out := io.StringIO()) == 0
        got = [receiver.recvfrom(10) for _ in range(2)]
    assert got == [(b"\r\n", (HOST, local))] * 2
    assert f"from {HOST}:{local} to {HOST}:{port} every 1 s" in out.getvalue()


def test_serve_uses_the_configured_listeners_and_prints_the_file_warnings(tmp_path: Path) -> None:
    udp = free_port()
    (tmp_path / "serve.config").write_text(
        '<domain name="policy"><section name="endpoint">'
        f'<setting name="listen" value="UDP:{HOST}:{udp}"/>'
        '<setting name="colour" value="red"/></section></domain>'
    )
    proc, lines = serve("--config", str(tmp_path / "serve.config"), "--calls", "1")
    try:
        assert lines == [f"serving on udp:{HOST}:{udp}"]
        assert main(["call", f"sip:bob@{HOST}:{udp}", "--hangup-after", "0"], io.StringIO()) == 0
    finally:
        try:
            _, errors = proc.communicate(timeout=30)
        finally:
            proc.kill()
    assert (
        f"trio-sip serve: warning: {tmp_path / 'serve.config'}: Genesys/policy/endpoint/colour: "
        "unknown setting 'colour' not applied"
    ) in errors


async def test_call_uses_the_configured_connection(tmp_path: Path) -> None:
    async with answering_ua() as (bob, offers):
        port = bob.stack.listening[0][1][1]
        (tmp_path / "call.config").write_text(
            f'<Container name="Basic"><Connectivity user="alice" server="{HOST}:{port}"/>'
            "</Container>"
        )
        status, out = await run(
            "call", "sip:bob@elsewhere.invalid", "--hangup-after", "0",
            "--config", str(tmp_path / "call.config"),
        )  # fmt: skip
    assert status == 0, out
    assert "calling sip:bob@elsewhere.invalid through proxy0" in out
    assert len(offers) == 1
