"""Network faults on loopback for interop tests and benchmarks: nftables black holes.

A dead remote proxy looks like silence: packets go out and nothing comes back. On loopback that
is an nftables rule on the *input* hook dropping packets to ADDR:PORT (a drop on the output hook
makes ``send()`` fail with EPERM, which no remote failure looks like). :func:`blackhole` creates a
table of its own (``inet trio_sip_faults_<pid>_<n>``), adds one drop rule per address, yields,
and deletes that table only: other tables on the machine are never touched. A "refused" proxy
needs no rule at all: nothing listening on a loopback port gives ICMP port unreachable (UDP) or
a RST (TCP).

Needs root and the ``nft`` binary (Debian package ``nftables``, installed by
``tests.interop.peers.ensure_debian_packages`` when missing). When the kernel refuses (no
netfilter in a container) the test is skipped with nft's message.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import os
import subprocess
from collections.abc import Iterator

_tables = itertools.count(1)


class Blackhole:
    """One nftables table of ours; :meth:`drop` adds a rule, :meth:`heal` removes them all."""

    def __init__(self, nft: str) -> None:
        self.nft = nft
        self.table = f"trio_sip_faults_{os.getpid()}_{next(_tables)}"
        self.rules: list[tuple[str, str, int]] = []

    def _run(self, *args: str) -> None:
        done = subprocess.run(
            [self.nft, *args], capture_output=True, text=True, timeout=10, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"nft {' '.join(args)}: {done.stderr.strip()}")

    def create(self) -> None:
        self._run("add", "table", "inet", self.table)
        self._run(
            "add",
            "chain",
            "inet",
            self.table,
            "input",
            "{ type filter hook input priority -10 ; policy accept ; }",
        )

    def drop(self, transport: str, address: str, port: int) -> None:
        """Drop every packet to ``address:port`` (``transport`` "UDP" or "TCP") from now on."""
        if not ipaddress.ip_address(address).is_loopback:
            raise ValueError(f"{address} is not a loopback address: faults stay on loopback")
        proto = {"UDP": "udp", "TCP": "tcp", "TLS": "tcp"}[transport.upper()]
        family = "ip6" if ":" in address else "ip"
        self._run(
            "add",
            "rule",
            "inet",
            self.table,
            "input",
            family,
            "daddr",
            address,
            proto,
            "dport",
            str(port),
            "drop",
        )
        self.rules.append((transport.upper(), address, port))

    def heal(self) -> None:
        """Remove every rule of this table (the table stays until the context ends)."""
        self._run("flush", "chain", "inet", self.table, "input")
        self.rules.clear()

    def delete(self) -> None:
        self._run("delete", "table", "inet", self.table)


@contextlib.contextmanager
def blackhole(*drops: tuple[str, str, int]) -> Iterator[Blackhole]:
    """An nftables table of our own dropping each ``(transport, address, port)`` on input."""
    import pytest  # only the tests' helper skips; benchmarks use Blackhole directly

    from .peers import ensure_debian_packages

    nft = ensure_debian_packages("nftables")["nftables"]
    hole = Blackhole(nft)
    try:
        hole.create()
    except RuntimeError as exc:
        pytest.skip(f"nftables is not usable here: {exc}")
    try:
        for transport, address, port in drops:
            hole.drop(transport, address, port)
        yield hole
    finally:
        hole.delete()
