"""linphonec (Debian ``linphone-cli``, liblinphone 5.1) as a headless phone of the matrix.

Facts found running it here:

* it needs a writable ``$HOME/.local/share/linphone`` (its call-log database); without it the
  core never starts its SIP transports and every call fails at once ("Error from
  linphone_core_invite"), so ``HOME`` is the phone's own work directory;
* no sound card: ``soundcard use files`` makes it play and record WAV files instead;
* ``sip_tcp_port=0`` and ``sip_tls_port=0`` make it UDP-only (the issue's "UDP-only
  linphonec"); ``use_ipv6=0`` keeps its SDP on IPv4;
* it reads commands on stdin (``call``, ``answer``, ``terminate``, ``pause``, ``resume``,
  ``autoanswer enable``, ``register IDENTITY PROXY PASSWORD``) and prints call states.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from .peers import ensure_debian_packages
from .phone import Phone

_CONFIG = """\
[sip]
sip_port={port}
sip_tcp_port=0
sip_tls_port=0
use_ipv6=0
default_proxy=-1
inc_timeout=60
register_only_when_network_is_up=0
[rtp]
audio_rtp_port={rtp}
video_rtp_port={video}
[video]
automatically_initiate=0
automatically_accept=0
capture=0
display=0
"""


class Linphonec(Phone):
    name = "linphonec"
    PATTERNS: Mapping[str, str] = {
        "incoming": r"Receiving new incoming call from",
        "ringing": r"Remote ringing|Call \d+ to .* ringing",
        "answered": r"Call \d+ with .* connected\.|Call \d+ .*connected",
        "ended": r"Call \d+ with .* ended|Call \d+ with .* error",
        "held": r"Call \d+ .*(?:paused|has been paused|on hold)",
        "resumed": r"Call \d+ .*(?:resumed|connected\.)",
        "registered": r"[Rr]egistration on .* successful",
    }
    transports = frozenset({"UDP"})

    def argv(self) -> Sequence[str]:
        binary = ensure_debian_packages("linphone-cli")["linphone-cli"]
        config = self.workdir / "linphonerc"
        config.write_text(_CONFIG.format(port=self.port, rtp=44000 + self.port % 500 * 2, video=0))
        (self.workdir / ".local" / "share" / "linphone").mkdir(parents=True, exist_ok=True)
        return [binary, "-c", str(config), "-d", os.environ.get("TRIO_SIP_LINPHONEC_DEBUG", "0")]

    def env(self) -> Mapping[str, str]:
        return {"HOME": str(self.workdir)}

    async def started(self) -> None:
        await self.wait_for(r"linphonec> ", 20, "its prompt")
        self.mark()
        await self.command("soundcard use files")
        await self.wait_for(r"Using wav files")

    async def quit(self) -> None:
        await self.command("quit")

    async def dial(self, uri: str) -> None:
        await self.command(f"call {uri}")

    async def answer(self) -> None:
        await self.command("answer")

    async def hangup(self) -> None:
        await self.command("terminate")

    async def hold(self) -> None:
        await self.command("pause")

    async def resume(self) -> None:
        await self.command("resume")

    async def auto_answer(self, on: bool) -> None:
        await self.command(f"autoanswer {'enable' if on else 'disable'}")

    async def register(self) -> None:
        account = self.account
        if account is None:
            raise ValueError("no account to register")
        await self.command(
            f"register sip:{account.user}@{account.domain}"
            f" sip:{account.host}:{account.port};transport=udp {account.password}"
        )
