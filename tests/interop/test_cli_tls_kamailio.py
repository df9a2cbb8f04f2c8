"""``trio-sip register`` and ``trio-sip call`` over TLS against Kamailio's TLS (Debian's
``kamailio-tls-modules``), with certificates made here by trustme: the CA file given with
``--tls-ca`` (our certificate with ``--tls-cert``/``--tls-key``: our TLS listener, where
Kamailio sends the call); a CA that did not sign Kamailio's certificate fails with the reason.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
import trio
import trustme

from trio_sip.cli import main
from trio_sip.config import ConnectionConfig, EndpointConfig
from trio_sip.endpoint import Endpoint, open_endpoint

from .kamailio import REALM, running_kamailio

pytestmark = pytest.mark.interop

HOST = "127.0.0.1"
USERS = {"alice": "wonderland", "bob": "builder"}


class Files:
    """PEM files: a CA, a certificate it signed for 127.0.0.1 (Kamailio's and ours), another
    CA."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA()
        cert = ca.issue_cert(HOST, "localhost")
        self.ca, self.stranger = folder / "ca.pem", folder / "stranger.pem"
        self.cert, self.key = folder / "cert.pem", folder / "key.pem"
        ca.cert_pem.write_to_path(str(self.ca))
        trustme.CA().cert_pem.write_to_path(str(self.stranger))
        cert.cert_chain_pems[0].write_to_path(str(self.cert))
        cert.private_key_pem.write_to_path(str(self.key))

    def options(self, ca: Path | None = None) -> list[str]:
        return ["--tls-ca", str(ca or self.ca), "--tls-cert", str(self.cert),
                "--tls-key", str(self.key)]  # fmt: skip


def cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trio_sip", *argv],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_cli_register_over_tls_and_a_wrong_ca(tmp_path: Path) -> None:
    files = Files(tmp_path / "pki")
    with running_kamailio(tmp_path / "kamailio", USERS, tls=(files.cert, files.key)) as kam:
        server = f"{HOST}:{kam.tls_port}"
        register = ["register", "--transport", "TLS", "--server", server, "--once",
                    "--user", f"alice@{REALM}", "--password", USERS["alice"]]  # fmt: skip
        done = cli(*register, *files.options())
        assert done.returncode == 0, done.stderr + done.stdout
        assert f"[{server}] registering -> REGISTERED  (200 OK)" in done.stdout
        assert "all 1 connections registered" in done.stdout

        done = cli(*register, *files.options(files.stranger))
        assert done.returncode == 1, done.stdout
        (line,) = done.stderr.strip().splitlines()
        assert line.startswith(f"trio-sip register: 1 of 1 not registered: {server}: transport")
        assert f"TLS handshake with {HOST}" in line and "certificate verify failed" in line


async def answer_all(endpoint: Endpoint) -> None:
    async for incoming in endpoint.incoming_calls():
        await incoming.accept()


async def test_cli_call_over_tls_through_kamailio(tmp_path: Path) -> None:
    """Bob (an endpoint of ours, TLS from its configuration) registers over TLS; the CLI calls
    him through Kamailio over TLS and hangs up."""
    files = Files(tmp_path / "pki")
    with running_kamailio(tmp_path / "kamailio", USERS, tls=(files.cert, files.key)) as kam:
        bob_config = EndpointConfig(
            sip_transaction_timeout=4000,
            tls_ca_file=str(files.ca), tls_cert_file=str(files.cert), tls_key_file=str(files.key),
            connections=[ConnectionConfig(
                id="kamailio", user=f"bob@{REALM}", server=f"{HOST}:{kam.tls_port}",
                transport="TLS", password=USERS["bob"], expires=60, reg_interval=5,
            )],
        )  # fmt: skip
        async with (
            open_endpoint(bob_config) as bob,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(answer_all, bob)
            with trio.fail_after(15):
                await bob.wait_registered()
            argv = ["call", f"sip:bob@{REALM}", "--server", f"{HOST}:{kam.tls_port}",
                    "--transport", "TLS", "--user", f"alice@{REALM}", "--hangup-after", "0.2",
                    *files.options()]  # fmt: skip
            out = io.StringIO()
            with trio.fail_after(30):
                status = await trio.to_thread.run_sync(main, argv, out)
            nursery.cancel_scope.cancel()
    text = out.getvalue()
    assert status == 0, text
    assert "ANSWERED (200 OK)" in text and "ended (local hangup, 200 OK)" in text
