"""Proxy decisions (RFC 3261 §16) and the location service (§10.3), pure: inputs → outputs."""

from __future__ import annotations

import pytest

from trio_sip.proto.location import LocationService
from trio_sip.proto.message import Request, Response, make_response
from trio_sip.proto.proxy import (
    Cancel,
    Forward,
    ProxyIdentity,
    Respond,
    ResponseContext,
    determine_targets,
    find_loop,
    forward_request,
    preprocess_routes,
    proxy_branch,
    stateless_branch,
    strip_own_via,
    validate_request,
)
from trio_sip.proto.uri import SipUri

ME = ProxyIdentity("example.com", frozenset({("10.0.0.1", 5060)}), frozenset({"alias.example"}))
UPSTREAM_VIA = "SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKup1;received=10.0.0.9;rport=5060"


def req(
    method: str = "INVITE",
    uri: str = "sip:bob@example.com",
    *extra: tuple[str, str],
    mf: str | None = "70",
    to_tag: str | None = None,
    via: str = UPSTREAM_VIA,
) -> Request:
    headers = [("Via", via)]
    if mf is not None:
        headers.append(("Max-Forwards", mf))
    to = "<sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else "")
    headers += [
        ("From", "<sip:alice@example.com>;tag=a1"),
        ("To", to),
        ("Call-ID", "c1@example.com"),
        ("CSeq", f"1 {method}"),
        *extra,
    ]
    return Request(method, uri, headers)


# -- §16.3 -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (req(), None),
        (req(mf="0"), Respond(483)),
        (req("BYE", mf="0"), Respond(483)),
        (req("INVITE", "mailto:bob@example.com"), Respond(416)),
        (req("INVITE", "sip:bob@example.com", ("Proxy-Require", "foo")), "420 foo"),
        (req("INVITE", "sip:bob@example.com", ("Require", "foo")), None),  # not ours to check
        (Request("INVITE", "sip:bob@example.com", [("Via", UPSTREAM_VIA)]), 400),
    ],
)
def test_validate_request(request_: Request, expected: object) -> None:
    verdict = validate_request(request_, ME)
    if expected == "420 foo":
        assert verdict == Respond(420, (("Unsupported", "foo"),))
    elif isinstance(expected, int):
        assert verdict is not None and verdict.status == expected
    else:
        assert verdict == expected


def test_options_with_max_forwards_zero_is_answered() -> None:
    verdict = validate_request(req("OPTIONS", mf="0"), ME)
    assert verdict is not None and verdict.status == 200
    assert dict(verdict.headers)["Allow"].startswith("ACK, BYE, CANCEL, INFO, INVITE")


def _returned(forwarded: Request, branch: str, uri: str | None = None) -> Request:
    """``forwarded`` with our Via (branch) and a downstream element's Via, sent back to us."""
    headers = forwarded.headers.prepend("Via", f"SIP/2.0/UDP 10.0.0.1:5060;branch={branch}")
    headers = headers.prepend("Via", "SIP/2.0/UDP 10.0.0.7:5060;branch=z9hG4bKother")
    return forwarded.evolve(headers=headers, uri=uri or forwarded.uri_text)


def test_loop_detected_and_spiral_allowed() -> None:
    received = req()
    branch = proxy_branch(received, "u1")
    assert branch.startswith("z9hG4bKu1.") and len(branch.split(".")[1]) == 16
    # Back with the same Request-URI: a loop (482), whatever its Max-Forwards now is.
    forwarded = forward_request(received, received.uri).request
    back = _returned(forwarded, branch)
    assert find_loop(back, ME)
    assert validate_request(back, ME) == Respond(482)
    # Back with another Request-URI (a spiral through a different target): forwarded.
    assert not find_loop(_returned(forwarded, branch, "sip:bob@10.0.0.30"), ME)
    # Someone else's Via with our branch shape is not our loop.
    other = ProxyIdentity("example.com", frozenset({("10.0.0.2", 5060)}))
    assert not find_loop(back, other)


def test_branches_ignore_the_method() -> None:
    invite = req()
    cancel = req("CANCEL")
    assert proxy_branch(invite, "x") == proxy_branch(cancel, "x")
    # §16.11: retransmissions, the CANCEL and the non-2xx ACK get the same stateless branch.
    assert stateless_branch(invite) == stateless_branch(req()) == stateless_branch(cancel)
    assert stateless_branch(req("ACK")) == stateless_branch(invite)
    other = req(via="SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKup2")
    assert stateless_branch(other) != stateless_branch(invite)


# -- §16.4 -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "routes", "expected_uri", "expected_routes"),
    [
        # Our own Route is popped; the next one stays.
        (
            "sip:bob@10.0.0.20",
            ["<sip:10.0.0.1:5060;lr>", "<sip:p2.example.org;lr>"],
            "sip:bob@10.0.0.20",
            ["<sip:p2.example.org;lr>"],
        ),
        ("sip:bob@10.0.0.20", ["<sip:10.0.0.1;lr>"], "sip:bob@10.0.0.20", []),
        ("sip:bob@10.0.0.20", ["<sip:example.com;lr>"], "sip:bob@10.0.0.20", []),
        # Another proxy's Route is left alone.
        (
            "sip:bob@10.0.0.20",
            ["<sip:10.0.0.2:5060;lr>"],
            "sip:bob@10.0.0.20",
            ["<sip:10.0.0.2:5060;lr>"],
        ),
        # A strict router put our Record-Route URI in the Request-URI: the last Route is the
        # real Request-URI.
        (
            "sip:10.0.0.1:5060;lr",
            ["<sip:p2.example.org;lr>", "<sip:bob@10.0.0.20>"],
            "sip:bob@10.0.0.20",
            ["<sip:p2.example.org;lr>"],
        ),
        # maddr naming us: stripped with port and transport.
        ("sip:bob@example.com:5070;maddr=10.0.0.1;transport=udp", [], "sip:bob@example.com", []),
        # maddr naming someone else: kept.
        ("sip:bob@example.com;maddr=10.9.9.9", [], "sip:bob@example.com;maddr=10.9.9.9", []),
    ],
)
def test_preprocess_routes(
    uri: str, routes: list[str], expected_uri: str, expected_routes: list[str]
) -> None:
    request = req("BYE", uri, *[("Route", r) for r in routes], to_tag="b1")
    out = preprocess_routes(request, ME)
    assert out.uri_text == expected_uri
    assert out.headers.get_list("Route") == expected_routes


# -- §16.5 -------------------------------------------------------------------------------------


def _lookup(aor: str) -> list[str] | None:
    return {
        "sip:bob@example.com": ["sip:bob@10.0.0.20:5060", "sip:bob@10.0.0.21:5062"],
        "sip:gone@example.com": [],
    }.get(aor)


@pytest.mark.parametrize(
    ("uri", "routes", "expected"),
    [
        ("sip:bob@example.com", [], ["sip:bob@10.0.0.20:5060", "sip:bob@10.0.0.21:5062"]),
        (
            "sip:bob@EXAMPLE.com;user=phone",
            [],
            ["sip:bob@10.0.0.20:5060", "sip:bob@10.0.0.21:5062"],
        ),
        ("sip:bob@alias.example", [], ["sip:bob@10.0.0.20:5060", "sip:bob@10.0.0.21:5062"]),
        ("sip:bob@10.0.0.1", [], ["sip:bob@10.0.0.20:5060", "sip:bob@10.0.0.21:5062"]),
        ("sip:bob@10.0.0.1:5060", [], ["sip:bob@10.0.0.20:5060", "sip:bob@10.0.0.21:5062"]),
        # Our IP on a port we do not listen on is another element on our host: forwarded.
        ("sip:bob@10.0.0.1:5070", [], ["sip:bob@10.0.0.1:5070"]),
        ("sip:bob@alias.example:5070", [], ["sip:bob@10.0.0.20:5060", "sip:bob@10.0.0.21:5062"]),
        ("sip:bob@other.org", [], ["sip:bob@other.org"]),  # not our domain: the R-URI
        ("sip:bob@example.com;maddr=10.9.9.9", [], ["sip:bob@example.com;maddr=10.9.9.9"]),
        ("sip:bob@example.com", ["<sip:p2.example.org;lr>"], ["sip:bob@example.com"]),
        # Never registered or no longer registered: the same 480 (§16.5), no enumeration.
        ("sip:nobody@example.com", [], 480),
        ("sip:gone@example.com", [], 480),
    ],
)
def test_determine_targets(uri: str, routes: list[str], expected: list[str] | int) -> None:
    request = req("INVITE", uri, *[("Route", r) for r in routes])
    targets = determine_targets(request, ME, _lookup)
    if isinstance(expected, int):
        assert targets == Respond(expected)
    else:
        assert isinstance(targets, list)
        assert [str(t) for t in targets] == expected


# -- §16.6 -------------------------------------------------------------------------------------

RR = "<sip:10.0.0.1:5060;lr>"


def test_forward_request_invite() -> None:
    out = forward_request(req(), SipUri("10.0.0.20", "bob", port=5060), record_route=RR)
    assert out.request.uri_text == "sip:bob@10.0.0.20:5060"
    assert str(out.next_hop) == "sip:bob@10.0.0.20:5060"
    assert out.request.headers.items() == [
        ("Record-Route", RR),
        ("Via", UPSTREAM_VIA),
        ("Max-Forwards", "69"),
        ("From", "<sip:alice@example.com>;tag=a1"),
        ("To", "<sip:bob@example.com>"),
        ("Call-ID", "c1@example.com"),
        ("CSeq", "1 INVITE"),
    ]


@pytest.mark.parametrize(
    ("request_", "rr_expected", "mf_expected"),
    [
        (req("INVITE", mf=None), True, "70"),  # no Max-Forwards: 70 added
        (req("SUBSCRIBE"), True, "69"),
        (req("INVITE", to_tag="b1"), False, "69"),  # in a dialog: the route set is fixed
        (req("BYE", to_tag="b1"), False, "69"),
        (req("MESSAGE"), False, "69"),
        (req("REGISTER", "sip:other.org"), False, "69"),
    ],
)
def test_forward_request_record_route_and_max_forwards(
    request_: Request, rr_expected: bool, mf_expected: str
) -> None:
    out = forward_request(request_, request_.uri, record_route=RR).request
    assert (out.headers.get("Record-Route") == RR) is rr_expected
    assert out.headers["Max-Forwards"] == mf_expected


def test_forward_request_routes() -> None:
    loose = req("BYE", "sip:bob@10.0.0.20", ("Route", "<sip:p2.example.org;lr>"), to_tag="b1")
    out = forward_request(loose, loose.uri)
    assert str(out.next_hop) == "sip:p2.example.org;lr"
    assert out.request.uri_text == "sip:bob@10.0.0.20"
    # A strict router next: it goes into the Request-URI, the Request-URI to the end.
    strict = req(
        "BYE",
        "sip:bob@10.0.0.20",
        ("Route", "<sip:p2.example.org>, <sip:p3.example.org;lr>"),
        to_tag="b1",
    )
    out = forward_request(strict, strict.uri)
    assert out.request.uri_text == "sip:p2.example.org"
    assert out.request.headers.get_list("Route") == [
        "<sip:p3.example.org;lr>",
        "<sip:bob@10.0.0.20>",
    ]
    assert str(out.next_hop) == "sip:p2.example.org"


# -- §16.7 -------------------------------------------------------------------------------------

OUR_VIA = "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKb.1234"


def resp(status: int, *extra: tuple[str, str], request: Request | None = None) -> Response:
    """A response from downstream: our Via on top of the upstream one."""
    r = request or req()
    downstream = r.evolve(headers=r.headers.prepend("Via", OUR_VIA))
    return make_response(downstream, status, to_tag=f"t{status}", headers=extra)


def context(*branches: str, method: str = "INVITE") -> ResponseContext:
    ctx = ResponseContext(req(method), "ours")
    for b in branches:
        ctx.add_branch(b)
    return ctx


def statuses(actions: list[Forward | Cancel]) -> list[int | str]:
    return [
        a.response.status_code if isinstance(a, Forward) else f"cancel {a.branch}" for a in actions
    ]


def test_provisionals_and_via_removal() -> None:
    ctx = context("a")
    assert statuses(ctx.on_response("a", resp(100))) == []  # 100 is hop by hop
    actions = ctx.on_response("a", resp(180))
    assert statuses(actions) == [180]
    forwarded = actions[0]
    assert isinstance(forwarded, Forward)
    assert forwarded.response.headers.get_all("Via") == [UPSTREAM_VIA]
    # A response with only our Via was for us: nothing to forward.
    assert strip_own_via(Response(200, "OK", [("Via", OUR_VIA)])) is None


@pytest.mark.parametrize(
    ("finals", "best"),
    [
        ([486, 603], 603),  # 6xx beats everything
        ([603, 486], 603),
        ([404, 486], 404),  # lowest class, first received
        ([486, 302], 302),
        ([486, 401], 401),  # within 4xx, resubmission information first
        ([500, 484], 484),
        ([503, 486], 486),
        ([503], 500),  # a lone 503 becomes 500
        ([503, 503], 500),
        (["timeout", 486], 408),  # a timed-out branch counts as 408 (class 4, first)
        (["timeout"], 408),
        (["transport"], 500),  # a transport error counts as 503 (§16.9) → 500
    ],
)
def test_best_response(finals: list[int | str], best: int) -> None:
    names = [f"b{i}" for i in range(len(finals))]
    ctx = context(*names)
    actions: list[Forward | Cancel] = []
    for name, final in zip(names, finals, strict=True):
        if final == "timeout":
            actions = ctx.on_timeout(name)
        elif final == "transport":
            actions = ctx.on_transport_error(name)
        else:
            assert isinstance(final, int)
            actions = ctx.on_response(name, resp(final))
    assert statuses(actions)[-1:] == [best]
    assert ctx.final is not None and ctx.final.status_code == best
    if best in (408, 500) and not any(f == 500 for f in finals):
        assert ctx.final.to.tag == "ours"  # we made it


def test_challenges_are_aggregated() -> None:
    ctx = context("a", "b")
    ctx.on_response("a", resp(401, ("WWW-Authenticate", 'Digest realm="a", nonce="1"')))
    actions = ctx.on_response("b", resp(407, ("Proxy-Authenticate", 'Digest realm="b", nonce="2"')))
    (forward,) = actions
    assert isinstance(forward, Forward)
    assert forward.response.status_code == 401
    assert forward.response.headers.get_all("WWW-Authenticate") == ['Digest realm="a", nonce="1"']
    assert forward.response.headers.get_all("Proxy-Authenticate") == ['Digest realm="b", nonce="2"']


def test_2xx_forwarded_at_once_and_others_cancelled() -> None:
    ctx = context("a", "b", "c")
    ctx.on_response("b", resp(180))
    # "a" answers: forwarded at once; "b" (ringing) is cancelled now, "c" once it rings.
    assert statuses(ctx.on_response("a", resp(200))) == [200, "cancel b"]
    assert statuses(ctx.on_response("c", resp(180))) == ["cancel c"]  # not forwarded
    # A second 2xx (another fork answered too) still goes upstream.
    assert statuses(ctx.on_response("b", resp(200))) == [200]
    assert statuses(ctx.on_response("c", resp(487))) == []
    assert ctx.complete and ctx.final is not None and ctx.final.status_code == 200
    with pytest.raises(ValueError, match="no new branches"):
        ctx.add_branch("d")


def test_6xx_cancels_pending_branches() -> None:
    ctx = context("a", "b")
    ctx.on_response("b", resp(183))
    assert statuses(ctx.on_response("a", resp(603))) == ["cancel b"]
    assert statuses(ctx.on_response("b", resp(487))) == [603]


def test_cancel_received() -> None:
    ctx = context("a", "b")
    ctx.on_response("a", resp(180))
    assert statuses(ctx.cancel()) == ["cancel a"]  # b waits for its provisional (§9.1)
    assert statuses(ctx.on_response("b", resp(100))) == ["cancel b"]
    assert statuses(ctx.on_response("a", resp(487))) == []
    assert statuses(ctx.on_response("b", resp(487))) == [487]


def test_non_invite_context_sends_no_cancel() -> None:
    ctx = context("a", "b", method="MESSAGE")
    assert statuses(ctx.on_response("a", resp(200, request=req("MESSAGE")))) == [200]
    assert statuses(ctx.on_response("b", resp(200, request=req("MESSAGE")))) == []


# -- §10.3 location service -------------------------------------------------------------------

AOR = "sip:bob@example.com"


def reg(
    *contacts: str, expires: int | None = None, call_id: str = "r1", seq: int = 1, branch: str = "b"
) -> Request:
    headers = [
        ("Via", f"SIP/2.0/UDP 10.0.0.20:5060;branch=z9hG4bK{branch}"),
        ("From", f"<{AOR}>;tag=f"),
        ("To", f"<{AOR}>"),
        ("Call-ID", call_id),
        ("CSeq", f"{seq} REGISTER"),
        *[("Contact", c) for c in contacts],
    ]
    if expires is not None:
        headers.append(("Expires", str(expires)))
    return Request("REGISTER", "sip:example.com", headers)


def contacts_of(outcome: object) -> list[str]:
    return [v for n, v in getattr(outcome, "headers", ()) if n == "Contact"]


def test_register_rules() -> None:
    loc = LocationService(min_expires=60, max_expires=7200)
    one = "<sip:bob@10.0.0.20>"
    out = loc.register(reg(one, "<sip:bob@10.0.0.21>;expires=120;q=0.5"), AOR, 0.0)
    assert out.status == 200
    assert contacts_of(out) == [
        "<sip:bob@10.0.0.20>;expires=3600",
        "<sip:bob@10.0.0.21>;expires=120;q=0.5",
    ]
    # Too brief → 423 with Min-Expires; nothing changes.
    out = loc.register(reg(one, expires=30, seq=2), AOR, 10.0)
    assert (out.status, out.headers) == (423, (("Min-Expires", "60"),))
    # Too long → shortened.
    out = loc.register(reg(one, expires=99999, seq=3), AOR, 10.0)
    assert contacts_of(out)[0] == "<sip:bob@10.0.0.20>;expires=7200"
    # Same Call-ID, CSeq not higher → refused (out of order)...
    assert loc.register(reg(one, expires=100, seq=2, branch="x"), AOR, 10.0).status == 400
    # ...unless it is the very same request again (a retransmission).
    assert loc.register(reg(one, expires=99999, seq=3), AOR, 11.0).status == 200
    # Another Call-ID may always update; Expires 0 removes.
    out = loc.register(reg(one, expires=0, call_id="r2", seq=1), AOR, 20.0)
    assert contacts_of(out) == ["<sip:bob@10.0.0.21>;expires=100;q=0.5"]
    # The rest expires on its own.
    assert [b.contact for b in loc.lookup(AOR, 119.0)] == ["sip:bob@10.0.0.21"]
    assert loc.known(AOR) and not loc.known("sip:x@y")
    # Nothing is kept of an AOR whose last binding expired (nor who it was: no enumeration).
    assert loc.lookup(AOR, 120.0) == [] and not loc.known(AOR)
    assert loc.aors(120.0) == [] and loc.count(120.0) == 0


def test_register_wildcard() -> None:
    loc = LocationService()
    loc.register(reg("<sip:bob@10.0.0.20>", "<sip:bob@10.0.0.21>"), AOR, 0.0)
    assert loc.register(reg("*", seq=2), AOR, 1.0).status == 400  # needs Expires: 0
    assert loc.register(reg("*", "<sip:bob@10.0.0.22>", expires=0, seq=2), AOR, 1.0).status == 400
    assert loc.register(reg("*", expires=0, seq=1, branch="y"), AOR, 1.0).status == 400  # old CSeq
    out = loc.register(reg("*", expires=0, seq=2), AOR, 1.0)
    assert (out.status, contacts_of(out)) == (200, [])
    assert loc.lookup(AOR, 1.0) == []


def test_static_bindings_never_expire() -> None:
    loc = LocationService()
    loc.add_static(AOR, "sip:bob@127.0.0.1:5070")
    assert [b.contact for b in loc.lookup(AOR, 1e9)] == ["sip:bob@127.0.0.1:5070"]
    # A wildcard unregister does not remove a static binding, nor list it.
    out = loc.register(reg("*", expires=0), AOR, 1.0)
    assert (out.status, contacts_of(out)) == (200, [])
    assert loc.count(1.0) == 1


def test_proto_proxy_is_the_public_face_of_its_split_modules() -> None:
    import importlib

    face = importlib.import_module("trio_sip.proto.proxy")
    parts = [
        importlib.import_module(f"trio_sip.proto.{n}")
        for n in ("proxy_request", "proxy_forward", "proxy_response")
    ]
    assert sorted(face.__all__) == sorted(n for part in parts for n in part.__all__)
    for part in parts:
        for name in part.__all__:
            assert getattr(face, name) is getattr(part, name), name
