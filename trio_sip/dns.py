"""DNS for RFC 3263: the resolver protocol, a TTL cache, and the dnspython-backed resolver.

Theory of operation. :class:`trio_sip.proto.resolve.Planner` decides *what* to look up (NAPTR,
then SRV, then A/AAAA, RFC 3263 §4); this module does the lookups on Trio and feeds the answers
back, running each step's queries concurrently. The planner's rules are quoted there.

* :class:`Resolver` is the small protocol the stack needs: ``naptr(name)``, ``srv(name)``,
  ``addresses(name)`` and ``resolve(uri) -> list[Target]``. :class:`CachingResolver` implements
  ``resolve`` and the cache on top of one primitive, ``_lookup(rdtype, name)``;
  :class:`DnspythonResolver` (here) and :class:`trio_sip.testing.dns.FakeResolver` provide it.
* Cache: "the TTL ... specifies the time interval that the resource record may be cached"
  (RFC 1035 §3.2.1). Positive answers are kept for their TTL (capped at ``max_ttl``); NXDOMAIN
  and empty answers for ``negative_ttl`` (RFC 2308 negative caching, with a fixed TTL instead of
  the SOA minimum). The clock is :func:`trio.current_time`, so virtual-time tests see expiry.
* Errors: a name that does not exist, or has no records of the asked type, is an empty answer
  (the planner moves on: no NAPTR → SRV → A/AAAA). When nothing yields an address,
  :meth:`CachingResolver.resolve` raises :class:`DnsError` naming the URI's host and what was
  looked up. A nameserver that does not answer at all raises :class:`DnsError` with
  ``timed_out`` set, at once: the later steps would only time out too.
* dnspython's async resolver runs on Trio through ``dns.asyncbackend``; the Trio backend is
  passed explicitly on every query, so nothing depends on sniffing the running event loop.
* :func:`default_resolver` is what ``open_user_agent``, ``open_endpoint`` and ``open_proxy`` use
  when given no resolver: dnspython with the system's configuration (resolv.conf), as the CLI,
  or the one server ``$TRIO_SIP_DNS_SERVER`` names (``ADDRESS[:PORT]``, the ``--dns-server``
  form). A system without a resolver configuration gets a resolver whose lookups fail with a
  DnsError that says so (numeric hosts never need one).
"""

from __future__ import annotations

import abc
import os
import random
from collections.abc import Sequence
from typing import Protocol

import attrs
import dns.asyncbackend
import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver
import trio

from .errors import DnsError as DnsError
from .proto.errors import ConfigError
from .proto.resolve import (
    AddressQuery,
    NaptrQuery,
    NaptrRecord,
    Planner,
    Query,
    SrvQuery,
    SrvRecord,
    UriParts,
)
from .proto.target import TRANSPORTS, Target

__all__ = [
    "CachingResolver",
    "DnsError",
    "DnspythonResolver",
    "Resolver",
    "ResolverStatistics",
    "default_resolver",
    "parse_dns_server",
]

#: Names one DNS server (``ADDRESS[:PORT]``) for :func:`default_resolver`, like ``--dns-server``.
DNS_SERVER_ENV = "TRIO_SIP_DNS_SERVER"

Record = NaptrRecord | SrvRecord | str


class Resolver(Protocol):
    """What the stack needs from DNS (see the module doc)."""

    async def naptr(self, name: str) -> list[NaptrRecord]: ...

    async def srv(self, name: str) -> list[SrvRecord]: ...

    async def addresses(self, name: str) -> list[str]: ...

    async def resolve(self, uri: UriParts) -> list[Target]: ...


@attrs.frozen(slots=True)
class ResolverStatistics:
    """Counters: lookups sent (cache misses), cache hits, entries cached now."""

    lookups: int
    cache_hits: int
    cached: int


class CachingResolver(abc.ABC):
    """``resolve()`` and a TTL cache on top of :meth:`_lookup`; subclasses do the lookups.

    ``transports`` are the transports the caller can use; ``families`` the address record types
    asked for a host, in the order their addresses are listed.
    """

    def __init__(
        self,
        *,
        rng: random.Random | None = None,
        transports: Sequence[str] = TRANSPORTS,
        families: Sequence[str] = ("A", "AAAA"),
        negative_ttl: float = 30.0,
        max_ttl: float = 3600.0,
        max_entries: int = 4096,
    ) -> None:
        self._rng = rng if rng is not None else random.Random()
        self._transports = tuple(transports)
        self._families = tuple(f.upper() for f in families)
        if not self._families or set(self._families) - {"A", "AAAA"}:
            raise ConfigError("families", families, "A and/or AAAA")
        self._negative_ttl = negative_ttl
        self._max_ttl = max_ttl
        self._max_entries = max_entries
        self._cache: dict[tuple[str, str], tuple[float, list[Record]]] = {}
        self._lookups = 0
        self._hits = 0

    @abc.abstractmethod
    async def _lookup(self, rdtype: str, name: str) -> tuple[list[Record], float | None]:
        """Ask DNS once: (records, TTL), ``TTL=None`` for NXDOMAIN / no data; DnsError else."""

    async def naptr(self, name: str) -> list[NaptrRecord]:
        return [r for r in await self._cached("NAPTR", name) if isinstance(r, NaptrRecord)]

    async def srv(self, name: str) -> list[SrvRecord]:
        return [r for r in await self._cached("SRV", name) if isinstance(r, SrvRecord)]

    async def addresses(self, name: str) -> list[str]:
        """A and AAAA records of ``name`` (asked concurrently), in ``families`` order."""
        found: dict[str, list[Record]] = {}
        errors: list[DnsError] = []

        async def one(rdtype: str) -> None:
            try:
                found[rdtype] = await self._cached(rdtype, name)
            except DnsError as exc:
                errors.append(exc)

        async with trio.open_nursery() as nursery:
            for rdtype in self._families:
                nursery.start_soon(one, rdtype)
        result = [str(a) for f in self._families for a in found.get(f, [])]
        if errors and not result:
            raise errors[0]
        return result

    async def resolve(self, uri: UriParts) -> list[Target]:
        """The ordered targets for ``uri`` (RFC 3263); :class:`DnsError` when there are none."""
        planner = Planner(uri, rng=self._rng, transports=self._transports)
        failures: list[DnsError] = []
        while queries := planner.queries():
            answers: dict[Query, list[object]] = {}
            async with trio.open_nursery() as nursery:
                for query in queries:
                    nursery.start_soon(self._answer, query, answers, failures)
            for failure in failures:
                if failure.timed_out:
                    raise failure
            for query in queries:
                planner.answer(query, answers[query])
        targets = planner.targets()
        if not targets:
            looked_up = ", ".join(_describe(q) for q in planner.looked_up)
            reason = f"no usable records ({looked_up})"
            if failures:
                reason += f"; {failures[0].reason}"
            raise DnsError(uri.host, reason)
        return targets

    def statistics(self) -> ResolverStatistics:
        now = trio.current_time()
        live = sum(1 for expires, _ in self._cache.values() if expires > now)
        return ResolverStatistics(self._lookups, self._hits, live)

    def flush(self) -> None:
        """Forget every cached answer."""
        self._cache.clear()

    async def _answer(
        self, query: Query, answers: dict[Query, list[object]], failures: list[DnsError]
    ) -> None:
        result: Sequence[object]
        try:
            if isinstance(query, NaptrQuery):
                result = await self.naptr(query.name)
            elif isinstance(query, SrvQuery):
                result = await self.srv(query.name)
            else:
                result = await self.addresses(query.name)
        except DnsError as exc:
            failures.append(exc)
            result = []
        answers[query] = list(result)

    async def _cached(self, rdtype: str, name: str) -> list[Record]:
        key = (rdtype, name.rstrip(".").lower())
        now = trio.current_time()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            self._hits += 1
            return list(hit[1])
        self._lookups += 1
        records, ttl = await self._lookup(rdtype, key[1])
        ttl = self._negative_ttl if ttl is None else min(float(ttl), self._max_ttl)
        if ttl > 0:
            self._store(key, trio.current_time() + ttl, records)
        return list(records)

    def _store(self, key: tuple[str, str], expires: float, records: list[Record]) -> None:
        self._cache.pop(key, None)
        self._cache[key] = (expires, records)
        if len(self._cache) > self._max_entries:
            now = trio.current_time()
            for stale in [k for k, (exp, _) in self._cache.items() if exp <= now]:
                del self._cache[stale]
            while len(self._cache) > self._max_entries:
                del self._cache[next(iter(self._cache))]


def _describe(query: Query) -> str:
    kind = {NaptrQuery: "NAPTR", SrvQuery: "SRV", AddressQuery: "A/AAAA"}[type(query)]
    return f"{kind} {query.name}"


def parse_dns_server(spec: str) -> tuple[str, int]:
    """``"127.0.0.1"``, ``"127.0.0.1:5353"``, ``"[::1]:5353"`` or ``"::1"`` -> (address, port)."""
    spec = spec.strip()
    if spec.startswith("["):
        host, _, rest = spec[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif spec.count(":") == 1:
        host, port = spec.split(":")
    else:
        host, port = spec, ""
    try:
        number = int(port) if port else 53
    except ValueError:
        raise ConfigError("dns-server", spec, "ADDRESS or ADDRESS:PORT") from None
    if not host or not 0 < number < 65536:
        raise ConfigError("dns-server", spec, "ADDRESS or ADDRESS:PORT")
    return host, number


class DnspythonResolver(CachingResolver):
    """A :class:`Resolver` on dnspython's async resolver, running on Trio.

    ``nameservers`` are IP addresses asked on ``port`` (default: the system's resolv.conf);
    ``timeout`` bounds one lookup, retries included. Other keywords: :class:`CachingResolver`.
    """

    def __init__(
        self,
        nameservers: Sequence[str] | None = None,
        *,
        port: int = 53,
        timeout: float = 3.0,
        rng: random.Random | None = None,
        transports: Sequence[str] = TRANSPORTS,
        families: Sequence[str] = ("A", "AAAA"),
        negative_ttl: float = 30.0,
        max_ttl: float = 3600.0,
    ) -> None:
        super().__init__(
            rng=rng,
            transports=transports,
            families=families,
            negative_ttl=negative_ttl,
            max_ttl=max_ttl,
        )
        if nameservers is None:
            try:
                self._resolver = dns.asyncresolver.Resolver(configure=True)
            except dns.resolver.NoResolverConfiguration:
                raise ConfigError(
                    "dns-server", None, "an address: the system has no resolver configuration"
                ) from None
        else:
            self._resolver = dns.asyncresolver.Resolver(configure=False)
            self._resolver.nameservers = list(nameservers)
        self._resolver.port = port
        self._resolver.cache = None  # we cache ourselves, on Trio's clock
        self._timeout = timeout
        self._backend = dns.asyncbackend.get_backend("trio")
        self._servers = ", ".join(f"{ns}:{port}" for ns in self._resolver.nameservers)

    @classmethod
    def from_address(
        cls,
        spec: str,
        *,
        timeout: float = 3.0,
        rng: random.Random | None = None,
        transports: Sequence[str] = TRANSPORTS,
        families: Sequence[str] = ("A", "AAAA"),
        negative_ttl: float = 30.0,
        max_ttl: float = 3600.0,
    ) -> DnspythonResolver:
        """A resolver asking one server given as ``ADDRESS[:PORT]`` (the ``--dns-server``
        form); the keywords are the constructor's."""
        host, port = parse_dns_server(spec)
        return cls(
            [host], port=port, timeout=timeout, rng=rng, transports=transports,
            families=families, negative_ttl=negative_ttl, max_ttl=max_ttl,
        )  # fmt: skip

    async def _lookup(self, rdtype: str, name: str) -> tuple[list[Record], float | None]:
        try:
            answer = await self._resolver.resolve(
                dns.name.from_text(name),
                rdtype,
                search=False,
                raise_on_no_answer=False,
                lifetime=self._timeout,
                backend=self._backend,
            )
        except dns.resolver.NXDOMAIN:
            return [], None
        except dns.exception.Timeout:
            raise DnsError(
                name,
                f"no answer to {rdtype} from {self._servers} within {self._timeout:g} s",
                timed_out=True,
            ) from None
        except dns.resolver.NoNameservers as exc:
            raise DnsError(name, f"{rdtype} lookup failed at {self._servers}: {exc}") from None
        except dns.exception.DNSException as exc:
            raise DnsError(name, f"{rdtype} lookup failed: {exc}") from None
        if answer.rrset is None:
            return [], None
        records: list[Record] = []
        for rdata in answer.rrset:
            if rdata.rdtype == dns.rdatatype.NAPTR:
                records.append(
                    NaptrRecord(
                        order=rdata.order,
                        preference=rdata.preference,
                        flags=rdata.flags.decode("ascii", "replace"),
                        service=rdata.service.decode("ascii", "replace"),
                        regexp=rdata.regexp.decode("utf-8", "replace"),
                        replacement=rdata.replacement.to_text(omit_final_dot=True),
                    )
                )
            elif rdata.rdtype == dns.rdatatype.SRV:
                target = rdata.target.to_text(omit_final_dot=True)
                records.append(SrvRecord(rdata.priority, rdata.weight, rdata.port, target))
            elif rdata.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                records.append(str(rdata.address))
        return records, float(answer.rrset.ttl)


class _Unconfigured(CachingResolver):
    """The default resolver on a system without a resolver configuration."""

    async def _lookup(self, rdtype: str, name: str) -> tuple[list[Record], float | None]:
        raise DnsError(
            name,
            "the system has no resolver configuration (resolv.conf): pass resolver= "
            f"(e.g. DnspythonResolver.from_address('192.0.2.53')) or set ${DNS_SERVER_ENV}",
        )


def default_resolver(*, rng: random.Random | None = None) -> CachingResolver:
    """The resolver used when none is given (module comment): RFC 3263 with dnspython and the
    system's configuration, or the server ``$TRIO_SIP_DNS_SERVER`` names."""
    spec = os.environ.get(DNS_SERVER_ENV, "").strip()
    if spec:
        try:
            return DnspythonResolver.from_address(spec, rng=rng)
        except ConfigError as exc:
            raise ConfigError(DNS_SERVER_ENV, spec, exc.allowed) from None
    try:
        return DnspythonResolver(rng=rng)
    except ConfigError:
        return _Unconfigured(rng=rng)
