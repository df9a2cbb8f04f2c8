"""Requests and responses: parsing, the typed views, building, editing, serialising."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_sip.proto import fields, uri
from trio_sip.proto import parse as parse_module
from trio_sip.proto.errors import ParseError
from trio_sip.proto.headers import _index
from trio_sip.proto.ids import new_branch, new_call_id, new_tag
from trio_sip.proto.message import Request, Response, make_response
from trio_sip.proto.parse import parse_message
from trio_sip.proto.uri import SipUri

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"v: SIP/2.0/TCP proxy.example.com;branch=z9hG4bKnashds8;received=192.0.2.1, "
    b"SIP/2.0/UDP [2001:db8::9]:5070;branch=z9hG4bK1\r\n"
    b"Max-Forwards: 70\r\n"
    b'To: "Bob" <sip:bob@biloxi.example.com>\r\n'
    b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com;transport=tcp>;expires=60\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"v=0\n"
)


def test_parse_request_views() -> None:
    msg = parse_message(INVITE)
    assert isinstance(msg, Request)
    assert msg.method == "INVITE"
    assert isinstance(msg.uri, SipUri)
    assert (msg.uri.user, msg.uri.host, msg.uri.port) == ("bob", "biloxi.example.com", None)
    assert msg.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert (msg.cseq.seq, msg.cseq.method) == (314159, "INVITE")
    assert [v.branch for v in msg.vias] == ["z9hG4bK776asdhds", "z9hG4bKnashds8", "z9hG4bK1"]
    assert [v.transport for v in msg.vias] == ["UDP", "TCP", "UDP"]
    assert msg.vias[0].port == 5060 and msg.vias[0].rport is True
    assert msg.vias[1].received == "192.0.2.1"
    assert msg.vias[2].sent_by == ("2001:db8::9", 5070)
    assert msg.from_.tag == "1928301774" and msg.from_.display_name == "Alice"
    assert msg.to.tag is None and msg.to.display_name == "Bob"
    assert msg.contacts[0].uri.host == "pc33.atlanta.example.com"
    assert msg.contacts[0].expires == 60
    assert msg.max_forwards == 70
    assert msg.content_length == 4 and msg.body == b"v=0\n"
    assert msg.content_type is not None and msg.content_type.mime == "application/sdp"
    assert msg.headers.get("i") == msg.call_id


def test_views_are_cached() -> None:
    msg = parse_message(INVITE)
    assert msg.vias is msg.vias
    assert msg.from_ is msg.from_


def test_unedited_message_serialises_to_the_same_bytes() -> None:
    assert bytes(parse_message(INVITE)) == INVITE


def test_missing_mandatory_header_raises_parse_error_on_read() -> None:
    msg = parse_message(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 0\r\n\r\n")
    with pytest.raises(ParseError, match="Call-ID"):
        _ = msg.call_id
    assert msg.vias == () and msg.max_forwards is None


def test_build_request_and_serialise() -> None:
    req = Request(
        "OPTIONS",
        "sip:carol@chicago.example.com",
        [("Via", "SIP/2.0/UDP h;branch=z9hG4bKx"), ("Call-ID", "c1"), ("CSeq", "1 OPTIONS")],
        b"hi",
    )
    data = bytes(req)
    assert data.endswith(b"Content-Length: 2\r\n\r\nhi")
    again = parse_message(data)
    assert again == req.evolve(headers=req.headers.append("Content-Length", "2"))
    assert again.cseq.method == "OPTIONS"


def test_serialise_fixes_a_wrong_content_length() -> None:
    req = Request("MESSAGE", "sip:a@b", [("Content-Length", "99"), ("l", "98")], b"abc")
    assert bytes(req) == b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 3\r\n\r\nabc"


def test_evolve_body_rewrites_content_length() -> None:
    msg = parse_message(INVITE)
    changed = msg.evolve(body=b"")
    assert parse_message(bytes(changed)).body == b""
    assert b"Content-Length: 0\r\n" in bytes(changed)
    assert msg.body == b"v=0\n"  # the original is untouched


def test_make_response_copies_the_dialog_headers() -> None:
    req = parse_message(INVITE)
    assert isinstance(req, Request)
    resp = make_response(req, 180, to_tag="a6c85cf", headers=[("Contact", "<sip:bob@h>")])
    assert isinstance(resp, Response)
    assert (resp.status_code, resp.reason) == (180, "Ringing")
    assert [v.branch for v in resp.vias] == [v.branch for v in req.vias]
    assert resp.call_id == req.call_id and resp.cseq == req.cseq
    assert resp.from_ == req.from_
    assert resp.to.tag == "a6c85cf" and resp.to.uri == req.to.uri
    assert resp.contacts[0].uri.host == "h"
    again = parse_message(bytes(resp))
    assert isinstance(again, Response) and again.to.tag == "a6c85cf"


def test_make_response_keeps_an_existing_to_tag() -> None:
    req = parse_message(INVITE.replace(b'"Bob" <sip:bob@biloxi.example.com>', b"<sip:b@h>;tag=x"))
    assert isinstance(req, Request)
    assert make_response(req, 200, to_tag="y").to.tag == "x"


def test_ids_are_deterministic_under_a_seeded_rng() -> None:
    a, b = random.Random(7), random.Random(7)
    assert new_branch(a) == new_branch(b)
    assert new_branch(random.Random(1)).startswith("z9hG4bK")
    assert new_tag(a) != new_tag(a)
    assert new_call_id(a, "host.example.com").endswith("@host.example.com")


def test_response_errors_have_status_zero() -> None:
    with pytest.raises(ParseError) as info:
        parse_message(b"SIP/2.0 99 Nope\r\nContent-Length: 0\r\n\r\n")
    assert info.value.status_code == 0


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"OPTIONS sip:a@b SIP/3.0\r\n\r\n", 505),
        (b"OPTIONS  sip:a@b SIP/2.0\r\n\r\n", 400),
        (b"OPTIONS sip:a@b SIP/2.0\r\nno colon here\r\n\r\n", 400),
        (b"OPTIONS sip:a@b SIP/2.0\r\nl: 5\r\n\r\nab", 400),
        (b"OPTIONS sip:a@b SIP/2.0\r\nl: -1\r\n\r\n", 400),
        (b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 1\r\n", 400),
        (b"", 400),
    ],
)
def test_parse_errors_carry_a_status(data: bytes, status: int) -> None:
    with pytest.raises(ParseError) as info:
        parse_message(data)
    assert info.value.status_code == status
    assert str(info.value)


def test_non_utf8_octets_round_trip() -> None:
    data = b"OPTIONS sip:a@b SIP/2.0\r\nX-Odd: \xff\xfe\x80\r\nContent-Length: 0\r\n\r\n"
    msg = parse_message(data)
    assert bytes(msg) == data
    edited = msg.evolve(headers=msg.headers.prepend("Via", "SIP/2.0/UDP h;branch=z9hG4bK1"))
    assert b"X-Odd: \xff\xfe\x80\r\n" in bytes(edited)


# -- fast paths agree with the general parsers ---------------------------------------------
# Each fast path (one regex for the usual shape) must give exactly what the general code
# gives, or leave the text to it; the general code is reached directly through the private
# names below.


def _outcome(func: Any, text: str) -> tuple[Any, ...]:
    try:
        value = func(text)
    except Exception as exc:  # the general parsers only raise ParseError; compare anyway
        return ("error", type(exc).__name__)
    if isinstance(value, fields.Via):
        return ("via", value.transport, value.host, value.port, value.params.items(),
                value.protocol)  # fmt: skip
    if isinstance(value, uri.NameAddress):
        return ("addr", value.display_name, value._uri_text, value._uri, value.params.items())
    if isinstance(value, uri.SipUri):
        return ("sip", value.scheme, value.user, value.password, value.host, value.port,
                value.params.items(), value.headers)  # fmt: skip
    if isinstance(value, fields.CSeq):
        return ("cseq", value.seq, value.method)
    return ("value", value)


def _or(value: Any, general: Any, text: str) -> Any:
    return general(text) if value is None else value


FAST_AND_GENERAL = [
    (fields.parse_via, fields._parse_via),
    (uri.parse_name_addr, uri._parse_name_addr),
    (uri.parse_uri, uri._parse_uri),
    # The string-operation fast paths (those of the compiled build), in either build.
    (lambda t: _or(fields._fast_via(t), fields._parse_via, t), fields._parse_via),
    (lambda t: _or(uri._fast_name_addr(t), uri._parse_name_addr, t), uri._parse_name_addr),
    (lambda t: _or(uri._fast_sip_uri(t), uri._parse_uri, t), uri._parse_uri),
    (fields.parse_cseq, fields._parse_cseq),
    (lambda t: fields.parse_int(t, "X", 255), lambda t: fields._parse_int(t, "X", 255)),
]

AGREEMENT_TABLE = [
    "SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;received=192.0.2.101",
    "SIP/2.0/udp host:5060;rport;BRANCH=z9hG4bK1",
    "SIP/2.0/TCP host:65536;branch=x",
    "SIP/2.0/TCP host:99999",
    "SIP/2.0/UDP host;branch",
    "SIP/2.0/UDP host;Branch;x=1",
    "SIP/2.0/UDP host;branch=",
    "SIP/2.0/UDP [2001:db8::9]:5070;branch=z9hG4bK1",
    "SIP/2.0/UDP host-.example.com",
    "SIP / 2.0 / UDP host",
    "Alice <sip:alice@atlanta.example.com>;tag=1928301774",
    "Bob <sip:bob@biloxi.example.com>",
    '"Bob B." <sip:bob@h>;tag=a;TAG=b;lr',
    '"" <sip:x@h>',
    "<sip:x@h>;tag",
    "<sip:x@h>;tag=;a=b",
    "sip:x@h;tag=1",
    "sip:x@h?a=b;tag=1",
    "*",
    "*;q=1",
    "A  B <sip:x>",
    "<sip:a>b",
    "sip:bob@192.0.2.201:5060",
    "sips:h;transport=tcp;lr",
    "SIP:bob@h",
    "sip:user;par=u%40example.net@example.com",
    "sip:a;b?c@h:5060;maddr=1.2.3.4",
    "sip:a:pw@h",
    "sip:h:",
    "sip:h:70000",
    "sip:h;=x",
    "sip:h;x=",
    '"a<b" <sip:x>',
    "A<sip:x>",
    " <sip:x>",
    '"a\\b" <sip:x>',
    '"a"<sip:x>;tag=1',
    "A  <sip:x>",
    "<sip:x>;",
    "<sip:x>;a==b",
    "<sip:x> ;a",
    "Ali é <sip:x>;tag=é",
    "sip:h;a=b?x",
    "sip:@h",
    "sip:h.;lr",
    "sip:.h",
    "sip:u@h@h",
    "sip:h:05060",
    "sip:h;maddr=[::1]",
    "SIP/2.0/UDP h ;branch=x",
    "SIP/2.0/UDP h:;x",
    "SIP/2.0/UDP h:1:2",
    "SIP/2.0/UDP _h;x=é",
    "314159 INVITE",
    "0000000001 ACK",
    "4294967296 INVITE",
    "1 INV ITE",
    "70",
    "256",
    "0255",
    "٣",
]


def test_fast_paths_agree_on_the_table() -> None:
    for text in AGREEMENT_TABLE:
        for fast, general in FAST_AND_GENERAL:
            assert _outcome(fast, text) == _outcome(general, text), (fast, text)


_PIECES = st.sampled_from(
    ["SIP/2.0/", "UDP", "tcp", " ", "  ", "\t", "host", "a.b-c", "1.2.3.4", "[::1]", ":",
     "5060", "70000", ";", "=", "branch", "tag", "Branch", "z9hG4bK1", "lr", "<", ">", '"',
     "\\", "sip:", "sips:", "bob", "@", "%41", "?", "&", ",", "*", "Alice", "é", "0", "9"]
)  # fmt: skip
_WIRE_LIKE = st.lists(_PIECES, max_size=12).map("".join)


@settings(max_examples=400, deadline=None)
@given(_WIRE_LIKE)
def test_fast_paths_agree_with_the_general_parsers(text: str) -> None:
    for fast, general in FAST_AND_GENERAL:
        assert _outcome(fast, text) == _outcome(general, text)


@settings(max_examples=200, deadline=None)
@given(st.from_regex(uri.SIMPLE_PARAMS, fullmatch=True))
def test_simple_params_match_parse_params(text: str) -> None:
    want = uri.parse_params(text[1:]).items() if text else ()
    assert uri.simple_params(text).items() == want
    got = uri.simple_params(text, "branch")
    assert got is None or got.items() == want


_NAMES = st.sampled_from(
    ["Via", "v", "VIA", "via", "To", "t", "From", "Call-ID", "i", "CSeq", "Contact", "m",
     "Content-Length", "l", "X-Custom", "Via ", " Via", "Bad Name", ""]
)  # fmt: skip
_LINE_VALUES = st.sampled_from(["", " x", "  y  ", " a, b", "\tz", " 0", ":", " 1 2"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_NAMES, st.booleans(), _LINE_VALUES), max_size=8))
def test_fast_header_loop_agrees_with_the_general_loop(
    spec: list[tuple[str, bool, str]],
) -> None:
    lines = ["OPTIONS sip:a@b SIP/2.0"]
    lines += [f"{n}{':' if colon else ''}{v}" for n, colon, v in spec]
    lines = [line for line in lines if line]  # an empty line would end the header section
    text = "\r\n".join(lines)
    try:
        pairs = parse_module._fields(lines)
    except ParseError:
        with pytest.raises(ParseError):
            parse_message(text.encode() + b"\r\n\r\n")
        return
    try:
        msg = parse_message(text.encode() + b"\r\n\r\n")
    except ParseError:  # only Content-Length problems are left to reject
        assert any(n.strip().lower() in ("l", "content-length") for n, _ in pairs)
        return
    first, more = _index(pairs)
    assert msg.headers._pairs == pairs
    assert (msg.headers._first, msg.headers._more) == (first, more)
