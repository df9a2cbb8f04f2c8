"""The soak's world on loopback: two Kamailio sites, a dnsmasq zone, a sipp UAS registered at
both, and the faults (kill, blackhole, restart, DNS change, TCP reset, packet loss).

Every process is started here and stopped by its PID (its own process group); every nftables
rule lives in a table of our own (tests/interop/faults.py) that is deleted at the end.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import trio

from tests.interop.faults import Blackhole
from tests.interop.kamailio import REALM, Kamailio, running_kamailio
from tests.interop.peers import (
    PeerProcess,
    assert_loopback,
    ensure_debian_packages,
    free_port,
    running_peer,
)
from tests.interop.sipp import run_sipp, sipp_argv, write_scenario

SITE_HOSTS = {"a": assert_loopback("127.0.0.141"), "b": assert_loopback("127.0.0.142")}
#: Where site A's name points during the "DNS answer changed" fault: nothing listens there, so
#: the first answer is refused and the endpoint must use the second (the real site A).
DEAD_HOST = assert_loopback("127.0.0.149")
DNS_HOST = assert_loopback("127.0.0.148")
UAS_HOST = assert_loopback("127.0.0.147")
ZONE = "soak.test"
USERS = {"alice": "wonderland", "uas": "answering"}


class Site:
    """One Kamailio site that can be killed (SIGKILL: the port is refused), restarted
    (SIGTERM, then a fresh Kamailio: an empty location table) and started again."""

    def __init__(self, name: str, workdir: Path, port: int) -> None:
        self.name = name
        self.host = SITE_HOSTS[name]
        self.port = port
        self.workdir = workdir
        self._stack: contextlib.ExitStack | None = None
        self.kamailio: Kamailio | None = None
        self._runs = 0

    def start(self) -> None:
        self._runs += 1
        stack = contextlib.ExitStack()
        self.kamailio = stack.enter_context(
            running_kamailio(
                self.workdir / f"{self.name}{self._runs}", USERS, host=self.host, port=self.port
            )
        )
        self._stack = stack

    def kill(self) -> None:
        """SIGKILL the site's process group: from now on its port is refused (ICMP / RST)."""
        if self.kamailio is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.kamailio.process.pid, signal.SIGKILL)
        self.stop()

    def stop(self) -> None:
        stack, self._stack, self.kamailio = self._stack, None, None
        if stack is not None:
            stack.close()

    @property
    def up(self) -> bool:
        return self.kamailio is not None


class Zone:
    """dnsmasq serving ``site-a.soak.test`` and ``site-b.soak.test`` from a hosts file that
    :meth:`set` rewrites (SIGHUP makes dnsmasq read it again); TTL 1 s."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.hosts = workdir / "hosts"
        self.port = free_port(DNS_HOST)
        self.process: PeerProcess | None = None

    def names(self) -> dict[str, str]:
        return {name: f"site-{name}.{ZONE}" for name in SITE_HOSTS}

    def set(self, answers: dict[str, list[str]]) -> None:
        lines = [f"{host} site-{name}.{ZONE}" for name, hosts in answers.items() for host in hosts]
        self.hosts.write_text("\n".join(lines) + "\n")
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGHUP)

    @contextlib.contextmanager
    def running(self) -> Iterator[Zone]:
        binary = ensure_debian_packages("dnsmasq")["dnsmasq"]
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.set({name: [host] for name, host in SITE_HOSTS.items()})
        argv = [
            binary, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
            f"--addn-hosts={self.hosts}", f"--local=/{ZONE}/", "--bind-interfaces",
            f"--listen-address={DNS_HOST}", f"--port={self.port}", "--local-ttl=1",
            "--pid-file=", "--log-facility=-", "--user=root",
        ]  # fmt: skip

        def answers() -> bool:
            query = dns.message.make_query(f"site-a.{ZONE}", "A")
            return bool(dns.query.udp(query, DNS_HOST, port=self.port, timeout=0.2).answer)

        with running_peer("dnsmasq", argv, workdir=self.workdir, ready=answers) as process:
            self.process = process
            try:
                yield self
            finally:
                self.process = None

    @property
    def server(self) -> str:
        return f"{DNS_HOST}:{self.port}"


REGISTER_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="register the UAS">
  <send retrans="500"><![CDATA[
      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:uas@{realm}>;tag=[pid]r[call_number]
      To: <sip:uas@{realm}>
      Call-ID: [call_id]
      CSeq: 1 REGISTER
      Contact: <sip:uas@{contact}>
      Max-Forwards: 70
      Expires: {expires}
      Content-Length: 0
    ]]></send>
  <recv response="401" auth="true"/>
  <send retrans="500"><![CDATA[
      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:uas@{realm}>;tag=[pid]r[call_number]
      To: <sip:uas@{realm}>
      Call-ID: [call_id]
      CSeq: 2 REGISTER
      Contact: <sip:uas@{contact}>
      [authentication username=uas password={password}]
      Max-Forwards: 70
      Expires: {expires}
      Content-Length: 0
    ]]></send>
  <recv response="200"/>
</scenario>
"""

#: The answering UAS: 180, 200 (copying Record-Route), then any number of re-INVITEs (hold,
#: retrieve) until the BYE. INFO is answered by ``-aa``.
UAS_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="answer, hold, retrieve, bye">
  <recv request="INVITE" crlf="true"/>
  <send><![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      [last_Record-Route:]
      Contact: <sip:uas@[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0
    ]]></send>
  <send retrans="500"><![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      [last_Record-Route:]
      Contact: <sip:uas@[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
    ]]></send>
  <recv request="ACK"/>
  <label id="1"/>
  <recv request="INVITE" optional="true" next="2"/>
  <recv request="BYE" next="3"/>
  <label id="2"/>
  <send retrans="500"><![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      [last_Record-Route:]
      Contact: <sip:uas@[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687638 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
    ]]></send>
  <recv request="ACK" next="1"/>
  <label id="3"/>
  <send><![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]></send>
  <timewait milliseconds="2000"/>
</scenario>
"""


async def register_uas(workdir: Path, site: Site, uas_port: int) -> bool:
    """One REGISTER (with its 401) of the sipp UAS's contact at ``site``, by a sipp UAC."""
    xml = REGISTER_XML.format(
        realm=REALM, contact=f"{UAS_HOST}:{uas_port}", password=USERS["uas"], expires=30
    )
    scenario = write_scenario(workdir, "register", xml)
    argv = sipp_argv(
        scenario=scenario, local=(UAS_HOST, free_port(UAS_HOST)), remote=(site.host, site.port),
        calls=1, timeout=5,
    )  # fmt: skip
    with trio.move_on_after(8):
        return (await run_sipp(argv, workdir)).returncode == 0
    return False


def uas_argv(workdir: Path, port: int, calls: int) -> list[str]:
    scenario = write_scenario(workdir, "uas", UAS_XML)
    return sipp_argv(
        scenario=scenario, local=(UAS_HOST, port), calls=calls, timeout=3600,
        extra=("-aa", "-max_recv_loops", "10000", "-l", "100000", "-nr", "-pause_msg_ign"),
    )  # fmt: skip


class Faults:
    """nftables faults on loopback, in one table of ours: a black hole (both directions) and
    random packet loss for a site, and a TCP reset of our connection to a site (``ss -K``)."""

    def __init__(self) -> None:
        nft = ensure_debian_packages("nftables")["nftables"]
        self.hole = Blackhole(nft)

    def __enter__(self) -> Faults:
        self.hole.create()
        return self

    def __exit__(self, *exc: object) -> None:
        self.hole.delete()

    def blackhole(self, site: Site) -> None:
        """Drop everything to and from the site's SIP port (UDP and TCP)."""
        for proto in ("udp", "tcp"):
            self._rule("ip", "daddr", site.host, proto, "dport", str(site.port), "drop")
            self._rule("ip", "saddr", site.host, proto, "sport", str(site.port), "drop")

    def loss(self, percent: int, endpoint: str) -> None:
        """Drop ``percent`` % of the packets between our endpoint's address and either site, at
        random (the links our stack is responsible for; the sites' link to the sipp UAS stays
        clean: a scripted sipp UAS aborts a call when it meets a re-INVITE while still waiting
        for a lost ACK, which would measure sipp, not us)."""
        sites = "{ " + ", ".join(SITE_HOSTS.values()) + " }"
        self._rule(
            "ip",
            "saddr",
            endpoint,
            "ip",
            "daddr",
            sites,
            "numgen",
            "random",
            "mod",
            "100",
            "<",
            str(percent),
            "drop",
        )
        self._rule(
            "ip",
            "saddr",
            sites,
            "ip",
            "daddr",
            endpoint,
            "numgen",
            "random",
            "mod",
            "100",
            "<",
            str(percent),
            "drop",
        )

    def heal(self) -> None:
        self.hole.heal()

    def _rule(self, *words: str) -> None:
        self.hole._run("add", "rule", "inet", self.hole.table, "input", *words)


def tcp_reset(site: Site) -> int:
    """Kill (``ss -K``: the kernel resets them) our TCP connections to ``site``; returns how many
    there were."""
    ss = ensure_debian_packages("iproute2", binaries={"iproute2": "ss"})["iproute2"]
    dst = f"dst {site.host} and dport = :{site.port}"
    listed = subprocess.run(
        [ss, "-tnH", "state", "established", dst], capture_output=True, text=True, timeout=10,
        check=False,
    )  # fmt: skip
    count = len([line for line in listed.stdout.splitlines() if line.strip()])
    subprocess.run([ss, "-K", "-tn", dst], capture_output=True, timeout=10, check=False)
    return count
