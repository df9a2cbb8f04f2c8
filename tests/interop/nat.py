"""A real NAT on loopback for interop tests: nftables source NAT with a short UDP timeout.

:func:`real_nat` puts a "private" loopback address behind a "public" one, for UDP to one
server address, the way a home router does:

* every UDP packet from ``private`` to ``server`` leaves with source ``public`` and a port the
  kernel picks (``snat to PUBLIC:40000-49999``): conntrack keeps one *binding* per private
  address:port, and the server's answers to the public address:port are translated back;
* a binding dies after ``timeout`` seconds without a packet (an nftables ``ct timeout``
  object, so nothing global is changed), like a router's UDP timer; only traffic *from* the
  private side through that binding (a REGISTER, a keep-alive) keeps it;
* anything the server sends to the private address that is not an answer through a binding
  (``ct direction original``) is dropped: the private address is unreachable from outside.

The rules live in a table of our own (``ip trio_sip_nat_<pid>_<n>``), deleted afterwards;
other tables are never touched. Named counters count the packets from the private side to the
server by source port (the SIP port or any other): a capture, from the kernel's point of view.
:meth:`Nat.public_address` reads the binding of a private address:port from conntrack
(``/proc/net/nf_conntrack``). Needs root and ``nft`` (Debian ``nftables``); the test is
skipped with nft's message when the kernel has no NAT.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import attrs

_tables = itertools.count(1)
PORTS = "40000-49999"


@attrs.define
class Nat:
    nft: str
    table: str
    private: str
    public: str
    server: tuple[str, int]
    sip_port: int

    def _run(self, *args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [self.nft, *args], input=stdin, capture_output=True, text=True, timeout=10,
            check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"nft {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def create(self, timeout: int) -> None:
        private, public, (server, _port) = self.private, self.public, self.server
        match = f"ip saddr {private} ip daddr {server}"
        self._run(
            "-f",
            "-",
            stdin=f"""
table ip {self.table} {{
    ct timeout binding {{ protocol udp; l3proto ip; policy = {{ unreplied : {timeout}, replied : {timeout} }}; }}
    counter from_sip_port {{ }}
    counter from_other_ports {{ }}
    chain out {{
        type filter hook output priority mangle; policy accept;
        {match} udp sport {self.sip_port} counter name from_sip_port
        {match} udp sport != {self.sip_port} counter name from_other_ports
        {match} meta l4proto udp ct timeout set "binding"
    }}
    chain post {{
        type nat hook postrouting priority srcnat; policy accept;
        {match} meta l4proto udp snat to {public}:{PORTS}
    }}
    chain in {{
        type filter hook input priority filter; policy accept;
        ip saddr {server} ip daddr {private} ct direction original drop
    }}
}}
""",  # noqa: E501
        )

    def delete(self) -> None:
        self._run("delete", "table", "ip", self.table)

    def counters(self) -> dict[str, int]:
        """Packets from the private side to the server: ``from_sip_port``, ``from_other_ports``."""
        text = self._run("list", "counters", "table", "ip", self.table)
        return {
            name: int(packets)
            for name, packets in re.findall(r"counter (\w+) \{\s*packets (\d+)", text)
        }

    def public_address(self, port: int) -> tuple[str, int] | None:
        """The public address:port of the live binding of ``private:port`` (conntrack)."""
        server, server_port = self.server
        pattern = re.compile(
            rf"udp .*src={re.escape(self.private)} dst={re.escape(server)} sport={port} "
            rf"dport={server_port} .*src={re.escape(server)} dst=(\S+) sport={server_port} "
            rf"dport=(\d+)"
        )
        for line in Path("/proc/net/nf_conntrack").read_text().splitlines():
            found = pattern.search(line)
            if found:
                return found.group(1), int(found.group(2))
        return None


@contextlib.contextmanager
def real_nat(
    private: str, public: str, server: tuple[str, int], sip_port: int, *, timeout: int
) -> Iterator[Nat]:
    """``private`` behind a NAT at ``public`` towards ``server`` (see the module doc)."""
    import pytest

    from .peers import ensure_debian_packages

    for address in (private, public, server[0]):
        if not ipaddress.ip_address(address).is_loopback:
            raise ValueError(f"{address} is not a loopback address: the NAT stays on loopback")
    nft = ensure_debian_packages("nftables")["nftables"]
    nat = Nat(nft, f"trio_sip_nat_{os.getpid()}_{next(_tables)}", private, public, server,
              sip_port)  # fmt: skip
    try:
        nat.create(timeout)
    except RuntimeError as exc:
        with contextlib.suppress(RuntimeError):
            nat.delete()
        pytest.skip(f"nftables NAT is not usable here: {exc}")
    try:
        yield nat
    finally:
        nat.delete()
