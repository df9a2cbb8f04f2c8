"""A headless baresip user agent for interop tests (loopback only, stopped by PID).

:func:`running_baresip` writes a config directory (``config``, ``accounts``) and runs
``baresip -f DIR`` in the foreground. Facts from docs/real-peers: no sound card is needed with
the ``ausine`` generator as the audio source (48 kHz stereo only) and ``aufile`` writing what
it hears to a WAV file; ``net_interface`` takes an IP address, not ``lo``; baresip also listens
for SIP-TLS on the SIP port + 1, so both ports must be free. The account registers at the given
registrar (digest password in ``auth_pass``) and answers every call by itself
(``answermode=auto``). Readiness: the log says the account registered.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import trio

from .peers import PeerProcess, assert_loopback, ensure_debian_packages, free_port
from .phone import Phone

_CONFIG = """\
poll_method epoll
sip_listen {host}:{port}
sip_trans_def udp
net_interface {host}
audio_source ausine,440
audio_player aufile,{workdir}/heard.wav
audio_alert aufile,{workdir}/alert.wav
ausrc_srate 48000
auplay_srate 48000
ausrc_channels 2
auplay_channels 2
rtp_ports 42000-42100
module_path {module_path}
module stdio.so
module g711.so
module ausine.so
module aufile.so
module_app account.so
module_app menu.so
"""


@attrs.define
class Baresip:
    host: str
    port: int
    process: PeerProcess

    def log(self) -> str:
        return self.process.log_path.read_text(errors="replace")


def _port_pair(host: str) -> int:
    """A port free for UDP and TCP whose successor is free for TCP too (baresip's SIP-TLS)."""
    for _ in range(50):
        port = free_port(host)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host, port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port pair on {host}")


@contextlib.contextmanager
def running_baresip(
    workdir: Path,
    *,
    user: str,
    password: str,
    registrar: tuple[str, int],
    host: str = "127.0.0.1",
) -> Iterator[Baresip]:
    """Start baresip registered as ``user`` at ``registrar``, answering calls by itself."""
    binary = ensure_debian_packages("baresip")["baresip"]
    assert_loopback(host)
    port = _port_pair(host)
    workdir.mkdir(parents=True, exist_ok=True)
    module_path = "/usr/lib/baresip/modules"
    (workdir / "config").write_text(
        _CONFIG.format(host=host, port=port, workdir=workdir, module_path=module_path)
    )
    r_host, r_port = registrar
    (workdir / "accounts").write_text(
        f"<sip:{user}@example.com>;auth_pass={password};"
        f'outbound="sip:{r_host}:{r_port};transport=udp";regint=60;answermode=auto\n'
    )
    process = PeerProcess("baresip", [binary, "-f", str(workdir)], workdir=workdir).start()
    try:
        process.wait_ready(
            lambda: "200 OK" in process.log_path.read_text(errors="replace"), timeout=20
        )
        yield Baresip(host, port, process)
    finally:
        process.stop()


_PHONE_CONFIG = _CONFIG.replace("module stdio.so\n", "module cons.so\n") + "cons_listen {cons}\n"


class BaresipPhone(Phone):
    """baresip as a phone of the interop matrix, driven through its ``cons`` module (commands
    as UDP datagrams to ``cons_listen``: ``/dial``, ``/accept``, ``/hangup``, ``/hold``,
    ``/resume``, ``/answermode``). It listens on UDP, TCP (and TLS on the port + 1)."""

    name = "baresip"
    PATTERNS: Mapping[str, str] = {
        "incoming": r"Incoming call from",
        "ringing": r"180 Ringing|call: SIP Progress: 18\d",
        "answered": r"Call established",
        "ended": r"session closed|terminated \(duration|Call terminated|call: terminate call",
        "held": r"Call .*hold|put call on hold|hold",
        "resumed": r"resum",
        "registered": r"200 OK",
    }
    transports = frozenset({"UDP", "TCP"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cons_port = free_port(self.host, tcp=False)

    def argv(self) -> Sequence[str]:
        binary = ensure_debian_packages("baresip")["baresip"]
        (self.workdir / "config").write_text(
            _PHONE_CONFIG.format(
                host=self.host,
                port=self.port,
                workdir=self.workdir,
                module_path="/usr/lib/baresip/modules",
                cons=f"{self.host}:{self.cons_port}",
            )
        )
        line = f"<sip:{self.user}@{self.host}:{self.port}>;regint=0;answermode=manual"
        # With an account, the user agent is made by register() (``/uanew``), so that the
        # REGISTER and its digest challenge happen when the scenario asks for them.
        (self.workdir / "accounts").write_text("" if self.account else line + "\n")
        return [binary, "-f", str(self.workdir)]

    async def started(self) -> None:
        await self.wait_for(r"baresip is ready|All \d+ useragent", 20, "ready")

    async def command(self, line: str) -> None:
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        with sock:
            # cons reads keystrokes: a long command ends with a newline.
            await sock.sendto(line.encode() + b"\n", (self.host, self.cons_port))

    async def quit(self) -> None:
        await self.command("/quit")

    async def dial(self, uri: str) -> None:
        await self.command(f"/dial {uri}")

    async def answer(self) -> None:
        await self.command("/accept")

    async def hangup(self) -> None:
        await self.command("/hangup")

    async def hold(self) -> None:
        await self.command("/hold")

    async def resume(self) -> None:
        await self.command("/resume")

    async def auto_answer(self, on: bool) -> None:
        await self.command(f"/answermode {'auto' if on else 'manual'}")

    async def register(self) -> None:
        if self.account is None:
            raise ValueError("no account to register")
        account = self.account
        await self.command(
            f"/uanew <sip:{account.user}@{account.domain}>;auth_pass={account.password};"
            f'outbound="sip:{account.host}:{account.port};transport=udp";regint=60;'
            "answermode=manual"
        )
