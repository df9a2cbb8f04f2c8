"""RFC 3263 client-side resolution as a pure, step-wise planner.

Theory of operation. A :class:`Planner` is built from a URI's parts (:class:`UriParts`) and says
what to look up next (:meth:`Planner.queries`: a batch that may run concurrently); the caller
feeds each answer back (:meth:`Planner.answer`) and, once no query is outstanding, reads the
ordered :meth:`Planner.targets`. No I/O happens here: the shell (:mod:`trio_sip.dns`) or a test
answers the queries. The rules, from RFC 3263 §4:

* Transport (§4.1): "If the URI specifies a transport protocol in the transport parameter, that
  transport protocol SHOULD be used. Otherwise, if no transport protocol is specified, but the
  TARGET is a numeric IP address, the client SHOULD use UDP for a SIP URI, and TCP for a SIPS
  URI. Similarly, if no transport protocol is specified, and the TARGET is not numeric, but an
  explicit port is provided, the client SHOULD use UDP for a SIP URI, and TCP for a SIPS URI."
  A SIPS URI always means TLS (over TCP).
* NAPTR (§4.1): "the client performs a NAPTR query for the domain in the URI"; records are used
  in order, then preference; only the services SIP+D2U, SIP+D2T and SIPS+D2T with the "S" flag
  and a transport we support count ("SIPS+D2T" only, for a SIPS URI).
* No NAPTR (§4.1): "If no NAPTR records are found, the client constructs SRV queries for those
  transport protocols it supports, and does a query for each." We ask _sips._tcp, _sip._tcp,
  _sip._udp (in that order of preference; _sips._tcp only for a SIPS URI).
* Port (§4.2): "If the TARGET was not a numeric IP address, but a port is present in the URI,
  the client performs an A or AAAA record lookup of the domain name." No SRV then.
* SRV (§4.2, RFC 2782): records by priority, lowest first; inside one priority "a weighted
  random" choice: each record is picked with a probability proportional to its weight (drawn
  from the injected :class:`random.Random`); weight-0 records come after the weighted ones, in
  random order. A target of "." means "decidedly not available" and is dropped.
* No SRV (§4.2): "If no SRV records were found, the client performs an A or AAAA record lookup
  of the domain name ... at the default port for that transport" (the NAPTR transport, the
  transport parameter, else UDP for sip: and TLS for sips:).
* Every address of a name is a target, in the order DNS gave them: one proxy name with several
  A records is the common deployment, and each address is a failover target.

Beyond §4.1 (which uses only the first usable NAPTR record and moves to the next one when its
SRV lookup is empty), all usable NAPTR records are followed at once and their targets are
concatenated in NAPTR order, so the list also holds the failover targets. ``hostname`` on each
:class:`~trio_sip.proto.target.Target` is the URI's host: RFC 5922 §4 checks a TLS server
against the domain of the URI, not against the SRV target.
"""

from __future__ import annotations

import enum
import ipaddress
import random
from collections.abc import Iterable, Sequence

import attrs

from .errors import LocalProtocolError
from .target import TRANSPORTS, Target, default_port

__all__ = [
    "AddressQuery",
    "NaptrQuery",
    "NaptrRecord",
    "Planner",
    "Query",
    "SrvQuery",
    "SrvRecord",
    "UriParts",
    "order_srv",
]

#: NAPTR service field -> transport (RFC 3263 §4.1, RFC 3261 §26.4).
NAPTR_SERVICES = {"SIP+D2U": "UDP", "SIP+D2T": "TCP", "SIPS+D2T": "TLS"}
#: SRV prefixes tried when there is no NAPTR record, most preferred first.
SRV_FALLBACK = (("_sips._tcp", "TLS"), ("_sip._tcp", "TCP"), ("_sip._udp", "UDP"))
#: The transport parameter's values (RFC 3261 §19.1.1; "tls" is the pre-RFC 3261 spelling).
TRANSPORT_PARAMS = {"udp": "UDP", "tcp": "TCP", "tls": "TLS"}


def _norm(name: str) -> str:
    return name.strip().rstrip(".").lower()


@attrs.frozen(slots=True)
class UriParts:
    """The parts of a SIP or SIPS URI that resolution reads (plain values, no URI class)."""

    scheme: str
    host: str
    port: int | None = None
    transport: str | None = None


@attrs.frozen(slots=True)
class NaptrRecord:
    """One NAPTR answer (RFC 3403): ``service`` like "SIP+D2T", ``replacement`` an SRV name."""

    order: int
    preference: int
    flags: str
    service: str
    regexp: str
    replacement: str


@attrs.frozen(slots=True)
class SrvRecord:
    """One SRV answer (RFC 2782)."""

    priority: int
    weight: int
    port: int
    target: str


@attrs.frozen(slots=True)
class NaptrQuery:
    """Look up the NAPTR records of ``name``; answer with a list of :class:`NaptrRecord`."""

    name: str


@attrs.frozen(slots=True)
class SrvQuery:
    """Look up the SRV records of ``name``; answer with a list of :class:`SrvRecord`."""

    name: str


@attrs.frozen(slots=True)
class AddressQuery:
    """Look up A and AAAA records of ``name``; answer with a list of IP address strings."""

    name: str


Query = NaptrQuery | SrvQuery | AddressQuery


def order_srv(records: Iterable[SrvRecord], rng: random.Random) -> list[SrvRecord]:
    """Order SRV records: priority ascending, weighted random choice inside each priority.

    Each pick takes a record with probability weight / (sum of remaining weights) (RFC 2782);
    records of weight 0 follow the weighted ones in uniformly random order.
    """
    by_priority: dict[int, list[SrvRecord]] = {}
    for rec in records:
        if _norm(rec.target) == "":
            continue  # "." : the service is decidedly not available at this name
        by_priority.setdefault(rec.priority, []).append(rec)
    result: list[SrvRecord] = []
    for priority in sorted(by_priority):
        remaining = [r for r in by_priority[priority] if r.weight > 0]
        zero = [r for r in by_priority[priority] if r.weight <= 0]
        while remaining:
            pick = rng.randrange(sum(r.weight for r in remaining))
            running = 0
            for i, rec in enumerate(remaining):
                running += rec.weight
                if running > pick:
                    result.append(remaining.pop(i))
                    break
        rng.shuffle(zero)
        result.extend(zero)
    return result


def _numeric_host(host: str) -> str | None:
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        return None


class _Stage(enum.Enum):
    NAPTR = "naptr"
    SRV = "srv"
    ADDRESS = "address"
    DONE = "done"


class Planner:
    """Step-wise RFC 3263 planner for one URI.

    ``transports`` are the transports this client can use (a subset of ``("UDP", "TCP",
    "TLS")``); ``rng`` draws the SRV weighted choice. Usage::

        planner = Planner(UriParts("sip", "example.com"), rng=random.Random())
        while queries := planner.queries():
            for query in queries:
                planner.answer(query, lookup(query))
        targets = planner.targets()

    Raises :class:`LocalProtocolError` for a URI that cannot be reached with ``transports``
    (sips: with transport=udp, an unknown transport parameter, an unsupported transport).
    """

    def __init__(
        self,
        uri: UriParts,
        *,
        rng: random.Random | None = None,
        transports: Sequence[str] = TRANSPORTS,
    ) -> None:
        self.uri = uri
        self._rng = rng if rng is not None else random.Random()
        self._supported = tuple(t.upper() for t in transports)
        scheme = uri.scheme.lower()
        if scheme not in ("sip", "sips"):
            raise LocalProtocolError(f"cannot resolve a {uri.scheme}: URI", status_hint=416)
        self._secure = scheme == "sips"
        self._host = _norm(uri.host)
        self._forced = self._transport_param()
        # Outstanding queries of the current step, and what each one is for.
        self._pending: dict[Query, None] = {}
        self._answers: dict[Query, list[object]] = {}
        self._srv_plan: list[tuple[SrvQuery, str]] = []
        self._addr_plan: list[tuple[AddressQuery, str, int | None]] = []
        self._fallback_transport = self._forced or ("TLS" if self._secure else "UDP")
        self._targets: list[Target] = []
        self._stage = _Stage.DONE
        self._start()

    # -- public surface ---------------------------------------------------------------------

    def queries(self) -> list[Query]:
        """The unanswered queries of the current step; ``[]`` once :meth:`targets` is ready."""
        return list(self._pending)

    def answer(self, query: Query, records: Sequence[object]) -> None:
        """Feed the answer to one outstanding query (an empty list for NXDOMAIN / no data)."""
        if query not in self._pending:
            raise LocalProtocolError(f"{query!r} is not an outstanding query")
        del self._pending[query]
        self._answers[query] = list(records)
        if not self._pending:
            self._advance()

    @property
    def done(self) -> bool:
        return self._stage is _Stage.DONE

    def targets(self) -> list[Target]:
        """The ordered targets (possibly empty: nothing resolved). Only valid once done."""
        if not self.done:
            raise LocalProtocolError("resolution is not finished: answer queries() first")
        return list(self._targets)

    @property
    def looked_up(self) -> list[Query]:
        """Every query answered so far, in order (for error messages and logs)."""
        return list(self._answers)

    # -- steps -------------------------------------------------------------------------------

    def _transport_param(self) -> str | None:
        raw = self.uri.transport
        if raw is None:
            return None
        transport = TRANSPORT_PARAMS.get(raw.lower())
        if transport is None:
            raise LocalProtocolError(f"transport={raw} is not supported", status_hint=416)
        if self._secure:
            if transport == "UDP":
                raise LocalProtocolError("a sips: URI cannot use transport=udp", status_hint=416)
            transport = "TLS"  # sips: with transport=tcp is TLS over TCP (RFC 3261 §26.2.2)
        if transport not in self._supported:
            raise LocalProtocolError(f"transport {transport} is not enabled", status_hint=416)
        return transport

    def _default_transport(self) -> str:
        transport = self._forced or ("TLS" if self._secure else "UDP")
        if transport not in self._supported:
            raise LocalProtocolError(
                f"{self.uri.scheme}:{self.uri.host} needs {transport}, which is not enabled",
                status_hint=416,
            )
        return transport

    def _start(self) -> None:
        numeric = _numeric_host(self.uri.host)
        if numeric is not None:
            transport = self._default_transport()
            port = self.uri.port or default_port(transport)
            self._targets = [Target(transport, numeric, port, None)]
            self._stage = _Stage.DONE
        elif self.uri.port is not None:
            self._ask_addresses([(self._host, self._default_transport(), self.uri.port)])
        elif self._forced is not None:
            self._ask_srv([(self._srv_name(self._forced), self._forced)])
        else:
            self._stage = _Stage.NAPTR
            self._pending = {NaptrQuery(self._host): None}

    def _srv_name(self, transport: str) -> str:
        prefix = {"UDP": "_sip._udp", "TCP": "_sip._tcp", "TLS": "_sips._tcp"}[transport]
        return f"{prefix}.{self._host}"

    def _ask_srv(self, plan: list[tuple[str, str]]) -> None:
        self._stage = _Stage.SRV
        self._srv_plan = [(SrvQuery(_norm(name)), transport) for name, transport in plan]
        self._pending = {q: None for q, _ in self._srv_plan}

    def _ask_addresses(self, plan: list[tuple[str, str, int | None]]) -> None:
        self._stage = _Stage.ADDRESS
        self._addr_plan = [(AddressQuery(_norm(n)), t, p) for n, t, p in plan]
        self._pending = {q: None for q, _, _ in self._addr_plan}

    def _advance(self) -> None:
        if self._stage is _Stage.NAPTR:
            self._after_naptr()
        elif self._stage is _Stage.SRV:
            self._after_srv()
        elif self._stage is _Stage.ADDRESS:
            self._after_addresses()

    def _after_naptr(self) -> None:
        records = [r for r in self._answers[NaptrQuery(self._host)] if isinstance(r, NaptrRecord)]
        usable: list[tuple[NaptrRecord, str]] = []
        for rec in sorted(records, key=lambda r: (r.order, r.preference)):
            transport = NAPTR_SERVICES.get(rec.service.upper())
            if transport is None or rec.flags.lower() != "s" or transport not in self._supported:
                continue
            if self._secure and transport != "TLS":
                continue
            usable.append((rec, transport))
        if usable:
            self._fallback_transport = usable[0][1]
            self._ask_srv([(rec.replacement, transport) for rec, transport in usable])
            return
        prefixes = [
            (f"{prefix}.{self._host}", transport)
            for prefix, transport in SRV_FALLBACK
            if transport in self._supported and (transport == "TLS" or not self._secure)
        ]
        if not prefixes:
            self._default_transport()  # raises: nothing we support can reach this URI
        self._ask_srv(prefixes)

    def _after_srv(self) -> None:
        plan: list[tuple[str, str, int | None]] = []
        any_records = False
        for query, transport in self._srv_plan:
            records = [r for r in self._answers[query] if isinstance(r, SrvRecord)]
            any_records = any_records or bool(records)
            plan.extend((rec.target, transport, rec.port) for rec in order_srv(records, self._rng))
        if not any_records:
            transport = self._fallback_transport
            if transport not in self._supported:
                transport = self._default_transport()
            plan = [(self._host, transport, default_port(transport))]
        if not plan:  # SRV says "." everywhere: decidedly not available
            self._finish([])
            return
        self._ask_addresses(plan)

    def _after_addresses(self) -> None:
        targets: list[Target] = []
        for query, transport, port in self._addr_plan:
            for address in self._answers[query]:
                numeric = _numeric_host(str(address))
                if numeric is not None:
                    targets.append(
                        Target(transport, numeric, port or default_port(transport), self._host)
                    )
        self._finish(targets)

    def _finish(self, targets: list[Target]) -> None:
        seen: set[tuple[str, str, int]] = set()
        self._targets = []
        for target in targets:
            if target.key not in seen:
                seen.add(target.key)
                self._targets.append(target)
        self._stage = _Stage.DONE
        self._pending = {}
