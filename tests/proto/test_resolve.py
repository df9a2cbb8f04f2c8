"""RFC 3263 planning: which lookups happen, and the ordered targets that come out."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence

import pytest

from trio_sip.proto.errors import LocalProtocolError
from trio_sip.proto.resolve import (
    AddressQuery,
    NaptrQuery,
    NaptrRecord,
    Planner,
    Query,
    SrvQuery,
    SrvRecord,
    UriParts,
    order_srv,
)
from trio_sip.proto.target import Target

Table = Mapping[Query, Sequence[object]]


def plan(
    uri: UriParts, table: Table, *, seed: int = 1, transports: Sequence[str] = ("UDP", "TCP", "TLS")
) -> tuple[list[Target], list[list[Query]]]:
    """Run the planner against a table; return the targets and the query batches asked."""
    planner = Planner(uri, rng=random.Random(seed), transports=transports)
    batches = []
    while queries := planner.queries():
        batches.append(queries)
        for query in queries:
            planner.answer(query, table.get(query, []))
    assert planner.done
    return planner.targets(), batches


def naptr(order: int, pref: int, service: str, replacement: str, flags: str = "S") -> NaptrRecord:
    return NaptrRecord(order, pref, flags, service, "", replacement)


def test_numeric_host_needs_no_lookup() -> None:
    targets, batches = plan(UriParts("sip", "192.0.2.7"), {})
    assert batches == []
    assert targets == [Target("UDP", "192.0.2.7", 5060)]


def test_numeric_ipv6_host_with_port_and_transport() -> None:
    targets, batches = plan(UriParts("sip", "[2001:db8::1]", 5070, "tcp"), {})
    assert batches == []
    assert targets == [Target("TCP", "2001:db8::1", 5070)]


def test_numeric_sips_host_is_tls_on_5061() -> None:
    targets, _ = plan(UriParts("sips", "192.0.2.7"), {})
    assert targets == [Target("TLS", "192.0.2.7", 5061)]


def test_explicit_port_means_addresses_only() -> None:
    table = {AddressQuery("proxy.example.com"): ["192.0.2.1", "192.0.2.2", "2001:db8::3"]}
    targets, batches = plan(UriParts("sip", "Proxy.Example.COM", 5080), table)
    assert batches == [[AddressQuery("proxy.example.com")]]
    assert targets == [
        Target("UDP", "192.0.2.1", 5080, "proxy.example.com"),
        Target("UDP", "192.0.2.2", 5080, "proxy.example.com"),
        Target("UDP", "2001:db8::3", 5080, "proxy.example.com"),
    ]


def test_explicit_port_with_transport_param() -> None:
    table = {AddressQuery("proxy.example.com"): ["192.0.2.1"]}
    targets, _ = plan(UriParts("sip", "proxy.example.com", 5090, "TCP"), table)
    assert targets == [Target("TCP", "192.0.2.1", 5090, "proxy.example.com")]


def test_transport_param_skips_naptr_and_asks_that_srv() -> None:
    table = {
        SrvQuery("_sip._tcp.example.com"): [SrvRecord(10, 0, 5070, "p1.example.com.")],
        AddressQuery("p1.example.com"): ["192.0.2.1"],
    }
    targets, batches = plan(UriParts("sip", "example.com", None, "tcp"), table)
    assert batches == [[SrvQuery("_sip._tcp.example.com")], [AddressQuery("p1.example.com")]]
    assert targets == [Target("TCP", "192.0.2.1", 5070, "example.com")]


def test_sips_uri_uses_tls_srv() -> None:
    table = {
        SrvQuery("_sips._tcp.example.com"): [SrvRecord(10, 0, 5061, "p1.example.com")],
        SrvQuery("_sip._udp.example.com"): [SrvRecord(10, 0, 5060, "p2.example.com")],
        AddressQuery("p1.example.com"): ["192.0.2.1"],
        AddressQuery("p2.example.com"): ["192.0.2.2"],
    }
    targets, batches = plan(UriParts("sips", "example.com"), table)
    assert batches[0] == [NaptrQuery("example.com")]
    assert batches[1] == [SrvQuery("_sips._tcp.example.com")]
    assert targets == [Target("TLS", "192.0.2.1", 5061, "example.com")]


def test_sips_with_transport_tcp_is_tls_and_udp_is_refused() -> None:
    table = {
        SrvQuery("_sips._tcp.example.com"): [SrvRecord(10, 0, 5061, "p1.example.com")],
        AddressQuery("p1.example.com"): ["192.0.2.1"],
    }
    targets, _ = plan(UriParts("sips", "example.com", None, "tcp"), table)
    assert targets == [Target("TLS", "192.0.2.1", 5061, "example.com")]
    with pytest.raises(LocalProtocolError, match="udp"):
        Planner(UriParts("sips", "example.com", None, "udp"))


def test_unknown_scheme_or_transport_is_refused() -> None:
    with pytest.raises(LocalProtocolError):
        Planner(UriParts("tel", "+15551234"))
    with pytest.raises(LocalProtocolError, match="sctp"):
        Planner(UriParts("sip", "example.com", None, "sctp"))
    with pytest.raises(LocalProtocolError, match="TLS"):
        Planner(UriParts("sip", "example.com", None, "tls"), transports=("UDP",))


def test_naptr_order_then_preference_picks_services() -> None:
    table = {
        NaptrQuery("example.com"): [
            naptr(20, 10, "SIP+D2U", "_sip._udp.example.com"),
            naptr(10, 20, "SIP+D2T", "_sip._tcp.example.com"),
            naptr(10, 10, "SIPS+D2T", "_sips._tcp.example.com"),
            naptr(5, 10, "SIP+D2S", "_sip._sctp.example.com"),  # SCTP: not supported
            naptr(5, 5, "E2U+sip", "!^.*$!sip:x@example.com!", flags="u"),  # ENUM: ignored
        ],
        SrvQuery("_sips._tcp.example.com"): [SrvRecord(0, 0, 5061, "tls.example.com")],
        SrvQuery("_sip._tcp.example.com"): [SrvRecord(0, 0, 5060, "tcp.example.com")],
        SrvQuery("_sip._udp.example.com"): [SrvRecord(0, 0, 5060, "udp.example.com")],
        AddressQuery("tls.example.com"): ["192.0.2.1"],
        AddressQuery("tcp.example.com"): ["192.0.2.2"],
        AddressQuery("udp.example.com"): ["192.0.2.3"],
    }
    targets, batches = plan(UriParts("sip", "example.com"), table)
    assert batches[1] == [
        SrvQuery("_sips._tcp.example.com"),
        SrvQuery("_sip._tcp.example.com"),
        SrvQuery("_sip._udp.example.com"),
    ]
    assert [(t.transport, t.host) for t in targets] == [
        ("TLS", "192.0.2.1"),
        ("TCP", "192.0.2.2"),
        ("UDP", "192.0.2.3"),
    ]


def test_naptr_services_limited_to_enabled_transports_and_sips() -> None:
    table = {
        NaptrQuery("example.com"): [
            naptr(10, 10, "SIPS+D2T", "_sips._tcp.example.com"),
            naptr(20, 10, "SIP+D2U", "_sip._udp.example.com"),
        ],
        SrvQuery("_sips._tcp.example.com"): [SrvRecord(0, 0, 5061, "tls.example.com")],
        SrvQuery("_sip._udp.example.com"): [SrvRecord(0, 0, 5060, "udp.example.com")],
        AddressQuery("tls.example.com"): ["192.0.2.1"],
        AddressQuery("udp.example.com"): ["192.0.2.3"],
    }
    no_tls, _ = plan(UriParts("sip", "example.com"), table, transports=("UDP", "TCP"))
    assert no_tls == [Target("UDP", "192.0.2.3", 5060, "example.com")]
    sips, _ = plan(UriParts("sips", "example.com"), table)
    assert sips == [Target("TLS", "192.0.2.1", 5061, "example.com")]


def test_no_naptr_queries_srv_for_each_supported_transport_in_order() -> None:
    table = {
        SrvQuery("_sip._tcp.example.com"): [SrvRecord(0, 0, 5070, "tcp.example.com")],
        SrvQuery("_sip._udp.example.com"): [SrvRecord(0, 0, 5080, "udp.example.com")],
        AddressQuery("tcp.example.com"): ["192.0.2.2"],
        AddressQuery("udp.example.com"): ["192.0.2.3"],
    }
    targets, batches = plan(UriParts("sip", "example.com"), table)
    assert batches == [
        [NaptrQuery("example.com")],
        [
            SrvQuery("_sips._tcp.example.com"),
            SrvQuery("_sip._tcp.example.com"),
            SrvQuery("_sip._udp.example.com"),
        ],
        [AddressQuery("tcp.example.com"), AddressQuery("udp.example.com")],
    ]
    assert targets == [
        Target("TCP", "192.0.2.2", 5070, "example.com"),
        Target("UDP", "192.0.2.3", 5080, "example.com"),
    ]
    _, batches = plan(UriParts("sip", "example.com"), table, transports=("UDP",))
    assert batches[1] == [SrvQuery("_sip._udp.example.com")]


def test_no_srv_means_every_address_on_the_default_port() -> None:
    # The common deployment: one proxy name, several A records, no NAPTR, no SRV.
    table = {AddressQuery("proxy.example.com"): ["192.0.2.1", "192.0.2.2", "192.0.2.3"]}
    targets, batches = plan(UriParts("sip", "proxy.example.com"), table)
    assert batches[-1] == [AddressQuery("proxy.example.com")]
    assert targets == [Target("UDP", f"192.0.2.{i}", 5060, "proxy.example.com") for i in (1, 2, 3)]
    tls, _ = plan(UriParts("sips", "proxy.example.com"), table)
    assert tls == [Target("TLS", f"192.0.2.{i}", 5061, "proxy.example.com") for i in (1, 2, 3)]
    tcp, _ = plan(UriParts("sip", "proxy.example.com", None, "tcp"), table)
    assert tcp == [Target("TCP", f"192.0.2.{i}", 5060, "proxy.example.com") for i in (1, 2, 3)]


def test_naptr_without_srv_falls_back_to_addresses_with_naptr_transport() -> None:
    table = {
        NaptrQuery("example.com"): [naptr(10, 10, "SIP+D2T", "_sip._tcp.example.com")],
        AddressQuery("example.com"): ["192.0.2.9"],
    }
    targets, _ = plan(UriParts("sip", "example.com"), table)
    assert targets == [Target("TCP", "192.0.2.9", 5060, "example.com")]


def test_srv_priority_order_and_every_address_of_each_target() -> None:
    table = {
        SrvQuery("_sip._udp.example.com"): [
            SrvRecord(20, 0, 5062, "backup.example.com"),
            SrvRecord(10, 0, 5060, "main.example.com"),
        ],
        AddressQuery("main.example.com"): ["192.0.2.1", "192.0.2.2"],
        AddressQuery("backup.example.com"): ["198.51.100.1"],
    }
    targets, _ = plan(UriParts("sip", "example.com", None, "udp"), table)
    assert [str(t) for t in targets] == [
        "udp:192.0.2.1:5060",
        "udp:192.0.2.2:5060",
        "udp:198.51.100.1:5062",
    ]


def test_srv_dot_target_is_dropped_and_nothing_is_left() -> None:
    table = {
        SrvQuery("_sip._udp.example.com"): [SrvRecord(0, 0, 0, ".")],
        AddressQuery("example.com"): ["192.0.2.1"],
    }
    targets, batches = plan(UriParts("sip", "example.com", None, "udp"), table)
    assert targets == []  # decidedly not available: no fallback to A records
    assert len(batches) == 1


def test_duplicate_targets_are_listed_once() -> None:
    table = {
        SrvQuery("_sip._udp.example.com"): [
            SrvRecord(10, 0, 5060, "a.example.com"),
            SrvRecord(20, 0, 5060, "b.example.com"),
        ],
        AddressQuery("a.example.com"): ["192.0.2.1"],
        AddressQuery("b.example.com"): ["192.0.2.1", "192.0.2.2"],
    }
    targets, _ = plan(UriParts("sip", "example.com", None, "udp"), table)
    assert [t.host for t in targets] == ["192.0.2.1", "192.0.2.2"]


def test_nothing_resolves_gives_no_targets() -> None:
    targets, batches = plan(UriParts("sip", "nowhere.example.com"), {})
    assert targets == []
    assert batches[-1] == [AddressQuery("nowhere.example.com")]


def test_answering_a_query_not_asked_is_an_error() -> None:
    planner = Planner(UriParts("sip", "example.com"))
    with pytest.raises(LocalProtocolError):
        planner.answer(SrvQuery("_sip._udp.example.com"), [])
    with pytest.raises(LocalProtocolError):
        planner.targets()


def test_srv_weights_are_honoured_statistically() -> None:
    records = [
        SrvRecord(10, 60, 5060, "a"),
        SrvRecord(10, 30, 5060, "b"),
        SrvRecord(10, 10, 5060, "c"),
        SrvRecord(10, 0, 5060, "z"),
    ]
    rng = random.Random(3263)
    n = 20000
    first = Counter(order_srv(records, rng)[0].target for _ in range(n))
    assert first["z"] == 0  # weight 0 only after the weighted ones
    assert abs(first["a"] / n - 0.6) < 0.02
    assert abs(first["b"] / n - 0.3) < 0.02
    assert abs(first["c"] / n - 0.1) < 0.02
    # Second place given "a" first: b with 30/40, c with 10/40.
    second = Counter(
        o[1].target for o in (order_srv(records, rng) for _ in range(n)) if o[0].target == "a"
    )
    total = sum(second.values())
    assert abs(second["b"] / total - 0.75) < 0.03
    # Every ordering keeps all records, weight 0 last.
    assert order_srv(records, rng)[-1].target == "z"


def test_srv_weights_never_cross_priorities() -> None:
    records = [SrvRecord(20, 1000, 1, "low"), SrvRecord(10, 1, 2, "high")]
    rng = random.Random(7)
    assert all(order_srv(records, rng)[0].target == "high" for _ in range(200))


def test_zero_weights_share_the_first_place() -> None:
    records = [SrvRecord(0, 0, 1, "a"), SrvRecord(0, 0, 2, "b")]
    rng = random.Random(11)
    first = Counter(order_srv(records, rng)[0].target for _ in range(2000))
    assert 800 < first["a"] < 1200


def test_zero_weights_follow_the_weighted_records() -> None:
    records = [SrvRecord(0, 0, 1, "zero"), SrvRecord(0, 1, 2, "light"), SrvRecord(0, 0, 3, "nil")]
    rng = random.Random(12)
    for _ in range(200):
        assert order_srv(records, rng)[0].target == "light"


def test_same_seed_same_plan() -> None:
    table = {
        SrvQuery("_sip._udp.example.com"): [
            SrvRecord(10, 50, 5060, f"p{i}.example.com") for i in range(5)
        ],
        **{AddressQuery(f"p{i}.example.com"): [f"192.0.2.{i}"] for i in range(5)},
    }
    uri = UriParts("sip", "example.com", None, "udp")
    assert plan(uri, table, seed=5)[0] == plan(uri, table, seed=5)[0]
    orders = {tuple(t.host for t in plan(uri, table, seed=s)[0]) for s in range(20)}
    assert len(orders) > 1
