"""Proxy and registrar hardening, pure (issue #10): the access policy, signed branches and
Record-Route tokens, Route loops in one pass, bounded bindings."""

from __future__ import annotations

import pytest

from trio_sip.proto.errors import ConfigError
from trio_sip.proto.limits import Limits
from trio_sip.proto.location import LocationService
from trio_sip.proto.message import Request, make_response
from trio_sip.proto.proxy import (
    ProxyIdentity,
    branch_belongs,
    own_route,
    preprocess_routes,
    proxy_branch,
    record_route_value,
    route_token,
    route_token_ok,
    stateless_branch,
)
from trio_sip.proto.proxy_access import Access, AccessPolicy
from trio_sip.proto.uri import parse_uri

ME = ProxyIdentity("example.com", frozenset({("10.0.0.1", 5060)}))
UPSTREAM_VIA = "SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKup1;received=10.0.0.9;rport=5060"
SECRET = b"k" * 32
AOR = "sip:bob@example.com"


def req(
    method: str = "INVITE", uri: str = "sip:bob@example.com", *extra: tuple[str, str]
) -> Request:
    return Request(
        method,
        uri,
        [
            ("Via", UPSTREAM_VIA),
            ("Max-Forwards", "70"),
            ("From", "<sip:alice@example.com>;tag=a1"),
            ("To", "<sip:bob@example.com>"),
            ("Call-ID", "c1@example.com"),
            ("CSeq", f"1 {method}"),
            *extra,
        ],
    )


# -- access policy -----------------------------------------------------------------------------


def decide(policy: AccessPolicy, **kw: object) -> Access:
    args: dict[str, object] = {
        "source": "203.0.113.9",
        "in_dialog": False,
        "local_destination": True,
        "peer_destination": False,
        "local_from": True,
        "authenticating": True,
    }
    args.update(kw)
    return policy.decide(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("policy", "kw", "expected"),
    [
        # Default: relay nothing, authenticate everything from untrusted sources.
        (AccessPolicy(), {}, Access.AUTHENTICATE),
        (AccessPolicy(), {"local_from": False}, Access.AUTHENTICATE),
        (AccessPolicy(), {"local_destination": False}, Access.FORBID),
        (AccessPolicy(), {"local_destination": False, "peer_destination": True}, Access.FORBID),
        (AccessPolicy(), {"in_dialog": True, "local_destination": False}, Access.ALLOW),
        (AccessPolicy(), {"authenticating": False}, Access.ALLOW),
        (AccessPolicy(), {"authenticating": False, "local_destination": False}, Access.FORBID),
        # Trusted sources: everything, unchallenged.
        (AccessPolicy.make(["203.0.113.0/24"]), {"local_destination": False}, Access.ALLOW),
        (AccessPolicy.make(["203.0.113.10"]), {"local_destination": False}, Access.FORBID),
        # relay="peers": only to peer domains, and authenticated.
        (
            AccessPolicy.make(relay="peers"),
            {"local_destination": False, "peer_destination": True},
            Access.AUTHENTICATE,
        ),
        (AccessPolicy.make(relay="peers"), {"local_destination": False}, Access.FORBID),
        (
            AccessPolicy.make(relay="any"),
            {"local_destination": False, "authenticating": False},
            Access.ALLOW,
        ),
        # proxy_auth="local": other domains may call our users; our From must authenticate.
        (AccessPolicy.make(proxy_auth="local"), {"local_from": False}, Access.ALLOW),
        (AccessPolicy.make(proxy_auth="local"), {}, Access.AUTHENTICATE),
        (
            AccessPolicy.make(relay="any", proxy_auth="local"),
            {"local_from": False, "local_destination": False},
            Access.AUTHENTICATE,
        ),
        (AccessPolicy.make(proxy_auth="none"), {}, Access.ALLOW),
    ],
)
def test_access_policy(policy: AccessPolicy, kw: dict[str, object], expected: Access) -> None:
    assert decide(policy, **kw) is expected


@pytest.mark.parametrize(
    ("kw", "name"),
    [
        ({"relay": "everyone"}, "relay"),
        ({"proxy_auth": "some"}, "proxy_auth"),
        ({"trusted": ["not-an-address"]}, "trusted"),
    ],
)
def test_access_policy_config_errors(kw: dict[str, object], name: str) -> None:
    with pytest.raises(ConfigError) as info:
        AccessPolicy.make(**kw)  # type: ignore[arg-type]
    assert name in str(info.value)


# -- signed branches ---------------------------------------------------------------------------


def test_a_response_belongs_only_with_the_via_we_forwarded_for() -> None:
    invite = req()
    branch = proxy_branch(invite, "u1", secret=SECRET)
    forwarded = invite.evolve(
        headers=invite.headers.prepend("Via", f"SIP/2.0/UDP 10.0.0.1:5060;branch={branch}")
    )
    ok = make_response(forwarded, 200, to_tag="b1")
    assert branch_belongs(ok, SECRET)
    assert not branch_belongs(ok, b"other secret")
    # Our Via on top, a victim's Via below: forged, it goes nowhere.
    forged_vias = [f"SIP/2.0/UDP 10.0.0.1:5060;branch={branch}", "SIP/2.0/UDP 198.51.100.7:5060"]
    forged = ok.evolve(
        headers=ok.headers.remove("Via")
        .append("Via", forged_vias[0])
        .append("Via", forged_vias[1] + ";branch=z9hG4bKvictim")
    )
    assert not branch_belongs(forged, SECRET)
    # A branch without a MAC (anyone's) never belongs.
    plain = proxy_branch(invite, "u1")
    unsigned = ok.evolve(
        headers=ok.headers.set_first("Via", f"SIP/2.0/UDP 10.0.0.1;branch={plain}")
    )
    assert not branch_belongs(unsigned, SECRET)


def test_stateless_signed_branch_is_stable_and_checkable() -> None:
    invite, cancel, ack = req(), req("CANCEL"), req("ACK")
    branch = stateless_branch(invite, secret=SECRET)
    assert branch == stateless_branch(cancel, secret=SECRET) == stateless_branch(ack, secret=SECRET)
    assert branch != stateless_branch(invite)  # keyed, unlike the unsigned one
    forwarded = invite.evolve(
        headers=invite.headers.prepend("Via", f"SIP/2.0/UDP 10.0.0.1:5060;branch={branch}")
    )
    assert branch_belongs(make_response(forwarded, 486, to_tag="t"), SECRET)


# -- Record-Route tokens -----------------------------------------------------------------------


def test_route_token_ties_in_dialog_requests_to_the_dialog() -> None:
    token = route_token(SECRET, "c1@example.com", "a1")
    rr = record_route_value("10.0.0.1", 5060, token=token)
    assert rr == f"<sip:10.0.0.1:5060;lr;dlg={token}>"
    uri = parse_uri(rr[1:-1])
    # The caller's BYE (From tag a1) and the callee's (To tag a1): both belong.
    caller_bye = req("BYE", "sip:bob@10.0.0.20", ("Route", rr))
    assert own_route(caller_bye, ME) == uri
    assert route_token_ok(uri, caller_bye, SECRET)
    callee_bye = Request(
        "BYE",
        "sip:alice@10.0.0.9",
        [
            ("Via", "SIP/2.0/UDP 10.0.0.20;branch=z9hG4bKx"),
            ("From", "<sip:bob@example.com>;tag=b1"),
            ("To", "<sip:alice@example.com>;tag=a1"),
            ("Call-ID", "c1@example.com"),
            ("CSeq", "1 BYE"),
            ("Route", rr),
        ],
    )
    assert route_token_ok(uri, callee_bye, SECRET)
    # Another dialog (Call-ID), a Route without token, or another key: no.
    other = Request("BYE", "sip:x@198.51.100.7", [*callee_bye.headers.replace("Call-ID", "c2")])
    assert not route_token_ok(uri, other, SECRET)
    assert not route_token_ok(parse_uri("sip:10.0.0.1:5060;lr"), caller_bye, SECRET)
    assert not route_token_ok(uri, caller_bye, b"another site")


# -- loops -------------------------------------------------------------------------------------


def test_leading_routes_naming_us_are_consumed_in_one_pass() -> None:
    ours = [f"<sip:10.0.0.1:5060;lr;n={i}>" for i in range(60)]
    request = req("INVITE", "sip:bob@198.51.100.7", *[("Route", r) for r in ours])
    out = preprocess_routes(request, ME)
    assert "Route" not in out.headers
    mixed = req("INVITE", "sip:bob@example.com", ("Route", ours[0]), ("Route", "<sip:p2;lr>"))
    assert preprocess_routes(mixed, ME).headers.get_list("Route") == ["<sip:p2;lr>"]


def test_route_stripping_looks_at_each_route_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # O(message), not O(routes x message): each Route value is examined once.
    from trio_sip.proto import proxy_request

    seen: list[str] = []
    real = proxy_request.is_own_uri

    def counting(uri: object, me: ProxyIdentity) -> bool:
        seen.append(str(uri))
        return real(uri, me)  # type: ignore[arg-type]

    monkeypatch.setattr(proxy_request, "is_own_uri", counting)
    routes = ", ".join(f"<sip:10.0.0.1:5060;lr;n={i}>" for i in range(69))
    out = preprocess_routes(req("INVITE", "sip:bob@example.com", ("Route", routes)), ME)
    assert "Route" not in out.headers
    assert len(seen) == 69


# -- bindings ----------------------------------------------------------------------------------


def register(*contacts: str, call_id: str = "r1", seq: int = 1, expires: int = 3600) -> Request:
    return Request(
        "REGISTER",
        "sip:example.com",
        [
            ("Via", "SIP/2.0/UDP 10.0.0.5;branch=z9hG4bKr"),
            ("From", "<sip:bob@example.com>;tag=r"),
            ("To", "<sip:bob@example.com>"),
            ("Call-ID", call_id),
            ("CSeq", f"{seq} REGISTER"),
            ("Expires", str(expires)),
            *[("Contact", c) for c in contacts],
        ],
    )


def test_bindings_per_aor_are_bounded() -> None:
    loc = LocationService(limits=Limits(max_bindings_per_aor=3))
    three = [f"<sip:bob@10.0.0.{i}>" for i in range(3)]
    assert loc.register(register(*three), AOR, 0.0).status == 200
    fourth = loc.register(register("<sip:bob@10.0.0.9>", seq=2), AOR, 1.0)
    assert fourth.status == 403 and "more than 3 bindings" in (fourth.reason or "")
    assert len(loc.lookup(AOR, 1.0)) == 3  # nothing committed
    # Refreshing and removing still work.
    assert loc.register(register(*three, seq=3), AOR, 2.0).status == 200
    assert loc.register(register(three[0], seq=4, expires=0), AOR, 3.0).status == 200
    assert loc.register(register("<sip:bob@10.0.0.9>", seq=5), AOR, 4.0).status == 200
    # 8,400 contacts in one REGISTER: refused before they are even parsed.
    many = register(*[f"<sip:bob@10.1.{i // 256}.{i % 256}>" for i in range(8400)], seq=6)
    assert loc.register(many, AOR, 5.0).status == 403


def test_total_bindings_are_bounded_with_retry_after() -> None:
    loc = LocationService(limits=Limits(max_bindings=5, retry_after=7))
    for i in range(5):
        assert loc.register(register(f"<sip:u@10.0.0.{i}>"), f"sip:u{i}@x", 0.0).status == 200
    full = loc.register(register("<sip:u@10.0.0.99>"), "sip:u99@x", 0.0)
    assert (full.status, full.headers) == (503, (("Retry-After", "7"),))
    assert loc.count(0.0) == 5
    # Room comes back as bindings expire.
    assert (
        loc.register(register("<sip:u@10.0.0.99>", expires=60), "sip:u99@x", 3600.0).status == 200
    )


def test_expired_aors_are_pruned() -> None:
    loc = LocationService(limits=Limits(max_bindings=100_000))
    for i in range(5000):
        loc.register(register(f"<sip:u@10.0.{i // 256}.{i % 256}>", expires=60), f"sip:u{i}@x", 0.0)
    assert loc.count(30.0) == 5000 and len(loc.aors(30.0)) == 5000
    # Nothing is read for a while; the next write prunes everything that expired.
    loc.register(register("<sip:late@10.9.9.9>", expires=60), "sip:late@x", 61.0)
    assert loc._bindings.keys() == {"sip:late@x"}
    assert loc.count(61.0) == 1 and loc.next_expiry() == 121.0


def test_refreshes_keep_the_expiry_heap_bounded() -> None:
    loc = LocationService(min_expires=1)
    for i in range(3000):
        loc.register(register("<sip:bob@10.0.0.5>", seq=i + 1), AOR, float(i))
    assert loc.count(3000.0) == 1
    assert len(loc._expiry) <= 2 * 1 + 1024 + 1
