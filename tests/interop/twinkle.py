"""Twinkle 1.10 (Debian ``twinkle-console``) as a headless phone of the matrix.

Facts found running it here:

* ``twinkle-console`` takes no options (every argument is read as a profile file name); it
  reads ``$HOME/.twinkle/twinkle.sys`` (ports, audio devices) and the profile named on the
  command line, so ``HOME`` is the phone's own work directory;
* it picks its address from the network interfaces and skips loopback ("Local IP:
  255.255.255.255" on a machine whose only other interface is not ours to use); the
  profile's ``use_nat_public_ip=yes`` + ``nat_public_ip=127.0.0.1`` makes it put 127.0.0.1 in
  its Via, Contact and SDP, and the tests only ever send to 127.0.0.1;
* audio devices ``alsa:null`` are accepted without a sound card;
* commands on stdin: ``call``, ``answer``, ``bye``, ``hold``, ``retrieve``, ``register``,
  ``auto_answer on|off``, ``quit``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .peers import ensure_debian_packages
from .phone import Account, Phone

_SYS = """\
dev_ringtone=alsa:null
dev_speaker=alsa:null
dev_mic=alsa:null
sip_udp_port={port}
sip_port={port}
rtp_port={rtp}
log_show_sip=yes
"""

_PROFILE = """\
user_name={user}
user_domain={domain}
auth_name={user}
auth_pass={password}
registrar={registrar}
register_at_startup=no
registration_time=60
use_nat_public_ip=yes
nat_public_ip={host}
sip_transport=udp
auto_answer=no
"""


class Twinkle(Phone):
    name = "twinkle"
    PATTERNS: Mapping[str, str] = {
        "incoming": r"Line \d+: incoming call",
        "ringing": r"Line \d+: received 18\d|Ringing",
        "answered": r"Line \d+: far end answered call|Line \d+: call established"
        r"|Line \d+: .*answered",
        "ended": r"Line \d+: (?:far end ended call|call ended|call failed|far end cancelled)",
        "held": r"Line \d+: far end put you on hold|Line \d+: .*hold",
        "resumed": r"Line \d+: far end retrieved|Line \d+: .*retriev",
        "registered": r"registration succeeded|registered",
    }
    transports = frozenset({"UDP"})

    def argv(self) -> Sequence[str]:
        binary = ensure_debian_packages("twinkle-console")["twinkle-console"]
        home = self.workdir / ".twinkle"
        home.mkdir(parents=True, exist_ok=True)
        (home / "twinkle.sys").write_text(
            _SYS.format(port=self.port, rtp=46000 + self.port % 500 * 4)
        )
        account = self.account or Account(self.host, self.port, self.user, "", self.host)
        (home / "phone.cfg").write_text(
            _PROFILE.format(
                user=self.user,
                domain=account.domain,
                password=account.password,
                registrar=f"{account.host}:{account.port}",
                host=self.host,
            )
        )
        return [binary, "phone.cfg"]

    def env(self) -> Mapping[str, str]:
        return {"HOME": str(self.workdir)}

    async def started(self) -> None:
        await self.wait_for(r"Twinkle> ", 20, "its prompt")

    async def quit(self) -> None:
        await self.command("quit")

    async def dial(self, uri: str) -> None:
        await self.command(f"call {uri}")

    async def answer(self) -> None:
        await self.command("answer")

    async def hangup(self) -> None:
        await self.command("bye")

    async def hold(self) -> None:
        await self.command("hold")

    async def resume(self) -> None:
        await self.command("retrieve")

    async def auto_answer(self, on: bool) -> None:
        await self.command(f"auto_answer -a {'on' if on else 'off'}")

    async def register(self) -> None:
        await self.command("register")
