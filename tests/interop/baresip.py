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
from collections.abc import Iterator
from pathlib import Path

import attrs

from .peers import PeerProcess, assert_loopback, ensure_debian_packages, free_port

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
