"""Requests and responses: parsing, the typed views, building, editing, serialising."""

from __future__ import annotations

import random

import pytest

from trio_sip.proto.errors import ParseError
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
