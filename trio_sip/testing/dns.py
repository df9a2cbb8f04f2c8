"""FakeResolver: DNS from a record table, in virtual time.

Theory of operation. Failover tests need DNS answers they control: several A records for one
proxy name, SRV priorities, a name that does not exist, a slow or dead nameserver, a record that
changes while cached. :class:`FakeResolver` implements the same :class:`trio_sip.dns.Resolver`
protocol as :class:`trio_sip.dns.DnspythonResolver` and shares its planner and TTL cache
(:class:`trio_sip.dns.CachingResolver`), so RFC 3263 ordering and caching behave as in
production; only the lookup itself reads a table. Every lookup sleeps ``latency`` seconds of Trio
time, which the ``autojump_clock`` fixture skips. The table is a scenario::

    resolver = FakeResolver({
        "proxy.example.test": ["192.0.2.1", "192.0.2.2"],                  # A / AAAA
        "_sip._udp.example.test": [SrvRecord(10, 60, 5060, "proxy.example.test")],
        "example.test": [NaptrRecord(10, 10, "S", "SIP+D2U", "", "_sip._udp.example.test")],
    })

Strings are addresses (IPv4 answers A queries, IPv6 answers AAAA); :class:`NaptrRecord` and
:class:`SrvRecord` answer NAPTR and SRV. A name absent from the table is NXDOMAIN.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterable, Mapping, Sequence

import trio

from ..dns import CachingResolver, DnsError, Record
from ..proto.resolve import NaptrRecord, SrvRecord
from ..proto.target import TRANSPORTS

__all__ = ["FakeResolver"]


class FakeResolver(CachingResolver):
    """A :class:`trio_sip.dns.Resolver` answering from a table (see the module doc).

    ``ttl`` is the TTL of every record (0: never cached); ``latency`` the Trio-time delay of each
    lookup. ``lookups`` lists every ``(rdtype, name)`` that missed the cache, in order. Setting
    ``unreachable`` makes lookups wait ``timeout`` seconds and fail like a dead nameserver.
    """

    def __init__(
        self,
        records: Mapping[str, Iterable[Record]] | None = None,
        *,
        ttl: float = 300.0,
        latency: float = 0.0,
        timeout: float = 3.0,
        rng: random.Random | None = None,
        transports: Sequence[str] = TRANSPORTS,
        families: Sequence[str] = ("A", "AAAA"),
        negative_ttl: float = 30.0,
    ) -> None:
        super().__init__(
            rng=rng if rng is not None else random.Random(0),
            transports=transports,
            families=families,
            negative_ttl=negative_ttl,
        )
        self._table: dict[str, tuple[list[Record], float]] = {}
        self.ttl = ttl
        self.latency = latency
        self.timeout = timeout
        self.unreachable = False
        self.lookups: list[tuple[str, str]] = []
        for name, recs in (records or {}).items():
            self.set(name, recs)

    def set(self, name: str, records: Iterable[Record], *, ttl: float | None = None) -> None:
        """Replace the records of ``name`` (cached answers stay until their TTL runs out)."""
        self._table[_key(name)] = (list(records), self.ttl if ttl is None else ttl)

    def remove(self, name: str) -> None:
        """Make ``name`` NXDOMAIN."""
        self._table.pop(_key(name), None)

    async def _lookup(self, rdtype: str, name: str) -> tuple[list[Record], float | None]:
        self.lookups.append((rdtype, name))
        if self.unreachable:
            await trio.sleep(self.timeout)
            raise DnsError(name, f"no answer to {rdtype} within {self.timeout:g} s", timed_out=True)
        await trio.sleep(self.latency)
        entry = self._table.get(_key(name))
        if entry is None:
            return [], None
        records, ttl = entry
        matching = [r for r in records if _rdtype(r) == rdtype]
        return (matching, ttl) if matching else ([], None)


def _key(name: str) -> str:
    return name.rstrip(".").lower()


def _rdtype(record: Record) -> str:
    if isinstance(record, NaptrRecord):
        return "NAPTR"
    if isinstance(record, SrvRecord):
        return "SRV"
    return "A" if ipaddress.ip_address(record).version == 4 else "AAAA"
