"""Strict where laxity is a hole (issue #10): what the parser refuses (ParseError), what
``check_request`` refuses (Rejection), the parse-time bounds of ``Limits``, reason phrases we
build from a peer's text, and ``check_response`` never raising."""

from __future__ import annotations

import pytest

from trio_sip import Limits
from trio_sip.proto.errors import LocalProtocolError, ParseError
from trio_sip.proto.headers import Headers
from trio_sip.proto.message import (
    Request,
    Response,
    make_error_response,
    make_response,
    reason_phrase,
)
from trio_sip.proto.parse import StreamFramer, parse_message
from trio_sip.proto.validate import check_request, check_response

HEAD = (
    b"INVITE sip:bob@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776asdhds\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@example.com>\r\n"
    b"From: Alice <sip:alice@example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710\r\n"
    b"CSeq: 314159 INVITE\r\n"
)


def request(*extra: bytes, body: bytes = b"", head: bytes = HEAD) -> bytes:
    return head + b"".join(extra) + b"Content-Length: %d\r\n\r\n" % len(body) + body


def status_of(data: bytes, limits: Limits | None = None) -> int:
    with pytest.raises(ParseError) as info:
        parse_message(data, limits=limits or Limits())
    assert len(str(info.value)) < 300  # never an echo of the whole input
    return info.value.status_code


def rejection_of(data: bytes, **kwargs: object) -> tuple[int, dict[str, str]] | None:
    msg = parse_message(data)
    assert isinstance(msg, Request)
    rejection = check_request(msg, **kwargs)  # type: ignore[arg-type]
    if rejection is None:
        return None
    return rejection.status_code, dict(rejection.headers)


# -- the parser: bytes that cannot be split into lines the same way by every peer -------------


@pytest.mark.parametrize(
    "line",
    [
        b"Call-ID: a84b\rInjected: yes\r\n",  # bare CR: a peer splitting on CR sees a header
        b"Subject: one\rtwo\r\n",
        b"Call-ID: a84b\nInjected: yes\r\n",  # bare LF between CRLF lines
        b"Subject: a\x00b\r\n",  # NUL outside a quoted-pair
        b'To: "a\x00" <sip:b@example.com>\r\n',  # NUL in a quoted string, not escaped
        b"X-\x00: y\r\n",
    ],
)
def test_bare_cr_lf_and_nul_in_the_header_section_are_400(line: bytes) -> None:
    assert status_of(request(line)) == 400


def test_a_bare_cr_in_the_start_line_is_400_and_in_a_response_drops_it() -> None:
    assert status_of(request(head=HEAD.replace(b"SIP/2.0\r\n", b"SIP/2.0\rX\r\n", 1))) == 400
    resp = b"SIP/2.0 200 OK\rInjected: yes\r\nContent-Length: 0\r\n\r\n"
    assert status_of(resp) == 0


def test_what_rfc_4475_calls_valid_still_parses() -> None:
    # An escaped NUL in a quoted string (intmeth), folding, odd whitespace, a binary body.
    escaped = request(b'Subject: "NUL:\\\x00 BEL:\\\x07"\r\n', b"X: a\r\n  b\r\n\tc\r\n")
    msg = parse_message(escaped)
    assert msg.headers.get("X") == "a b c"
    binary = request(body=b"\x00\r\r\n\n\x00")
    assert parse_message(binary).body == b"\x00\r\r\n\n\x00"
    lf_only = request().replace(b"\r\n", b"\n")  # RFC 5118's archive form
    assert parse_message(lf_only).call_id == "a84b4c76e66710"


def test_two_content_length_fields_are_400_even_when_equal() -> None:
    data = HEAD + b"Content-Length: 0\r\nl: 0\r\n\r\n"
    assert status_of(data) == 400


def test_a_header_value_we_build_cannot_hold_a_nul_either() -> None:
    with pytest.raises(LocalProtocolError):
        Headers([("Subject", "a\x00b")])
    assert Headers([("To", '"a\\\x00" <sip:b@example.com>')])  # the quoted-pair form is fine


# -- Limits: 513, 414, 400 ---------------------------------------------------------------------


def test_message_header_section_and_body_sizes_are_513() -> None:
    small = Limits(max_message_size=2048, max_header_section=1024, max_body_size=512)
    assert status_of(request(body=b"x" * 600), small) == 513  # body over max_body_size
    assert status_of(request(b"X: " + b"y" * 1100 + b"\r\n"), small) == 513  # header section
    assert status_of(request(b"X: y\r\n", body=b"z" * 500) + b"." * 2000, small) == 513


def test_header_count_and_length_are_400() -> None:
    assert status_of(request(b"X: y\r\n" * 300)) == 400  # max_headers 256
    assert status_of(request(b"X: " + b"y" * 9000 + b"\r\n")) == 400  # max_header_length 8192
    # The bound is on the unfolded field, not on a line.
    folded = b"X: y\r\n" + b" " + b"y" * 5000 + b"\r\n" + b" " + b"y" * 5000 + b"\r\n"
    assert status_of(request(folded)) == 400


def test_via_and_route_counts_are_400() -> None:
    vias = b"".join(b"Via: SIP/2.0/UDP h%d;branch=z9hG4bK%d\r\n" % (i, i) for i in range(80))
    assert status_of(request(vias)) == 400  # max_vias 70
    listed = b"Via: " + b", ".join(b"SIP/2.0/UDP h%d" % i for i in range(80)) + b"\r\n"
    assert status_of(request(listed)) == 400
    routes = b"Route: " + b",".join(b"<sip:p%d;lr>" % i for i in range(71)) + b"\r\n"
    assert status_of(request(routes)) == 400
    assert status_of(request(routes.replace(b"Route", b"Record-Route"))) == 400
    assert parse_message(request(b"Route: <sip:p;lr>\r\n" * 70)).routes


def test_request_uri_length_and_parameters_are_414() -> None:
    long_uri = HEAD.replace(b"sip:bob@example.com SIP", b"sip:" + b"b" * 2100 + b"@x SIP", 1)
    assert status_of(request(head=long_uri)) == 414
    params = b"".join(b";p%d=v" % i for i in range(40))
    many = HEAD.replace(b"sip:bob@example.com SIP", b"sip:bob@example.com" + params + b" SIP", 1)
    assert status_of(request(head=many)) == 414
    assert parse_message(request(head=many), limits=Limits(max_uri_params=64))


def test_uri_parameters_elsewhere_are_400() -> None:
    params = "".join(f";p{i}=v" for i in range(40))
    data = request(f"Contact: <sip:alice@pc33.example.com{params}>\r\n".encode())
    assert rejection_of(data) == (400, {})
    assert rejection_of(data, limits=Limits(max_uri_params=64)) is None


def test_stream_framer_takes_the_limits() -> None:
    framer = StreamFramer(limits=Limits(max_header_section=512))
    framer.receive_data(request(b"X: " + b"y" * 600 + b"\r\n"))
    with pytest.raises(ParseError) as info:
        framer.next_event()
    assert info.value.status_code == 513
    framer = StreamFramer(
        limits=Limits(max_message_size=1024, max_header_section=1024, max_body_size=1024)
    )
    framer.receive_data(request(body=b"x" * 900))
    with pytest.raises(ParseError) as info:
        framer.next_event()
    assert info.value.status_code == 513  # header section + body over max_message_size
    framer = StreamFramer()
    framer.receive_data(request(b"Subject: a\rb\r\n"))
    with pytest.raises(ParseError) as info:
        framer.next_event()
    assert info.value.status_code == 400


# -- check_request: duplicated and missing headers, 416, 420, 415, 406 -------------------------


@pytest.mark.parametrize(
    "extra",
    [
        b"Call-ID: other\r\n",
        b"CSeq: 1 INVITE\r\n",
        b"From: <sip:eve@example.com>;tag=2\r\n",
        b"t: <sip:eve@example.com>\r\n",
        b"Max-Forwards: 69\r\n",
        b"Expires: 10\r\nExpires: 20\r\n",
        b"Content-Type: application/sdp\r\nc: text/plain\r\n",
    ],
)
def test_duplicated_single_valued_headers_are_400(extra: bytes) -> None:
    got = rejection_of(request(extra))
    assert got is not None and got[0] == 400


@pytest.mark.parametrize("name", [b"Call-ID", b"From", b"To", b"CSeq"])
def test_missing_mandatory_headers_are_answered_400_with_what_can_be_copied(name: bytes) -> None:
    lines = [line for line in HEAD.split(b"\r\n") if not line.startswith(name + b":")]
    data = request(head=b"\r\n".join(lines))
    got = rejection_of(data)
    assert got is not None and got[0] == 400
    msg = parse_message(data)
    assert isinstance(msg, Request)
    with pytest.raises(ParseError):
        make_response(msg, 400)
    answer = make_error_response(msg, 400, to_tag="abc")
    assert answer is not None and answer.status_code == 400
    assert answer.headers.get("Via") == msg.headers.get("Via")
    copied = {n for n, _ in answer.headers}
    assert name.decode() not in copied
    if name != b"To":
        assert answer.to.tag == "abc"
    # The answer serialises and parses back: nothing of the request is lost on the way.
    assert parse_message(bytes(answer)).status_code == 400  # type: ignore[union-attr]


def test_no_via_means_nowhere_to_answer() -> None:
    lines = [line for line in HEAD.split(b"\r\n") if not line.startswith(b"Via:")]
    msg = parse_message(request(head=b"\r\n".join(lines)))
    assert isinstance(msg, Request)
    assert rejection_of(request(head=b"\r\n".join(lines))) == (400, {})
    assert make_error_response(msg, 400) is None


def test_a_malformed_to_is_copied_as_written_with_a_tag() -> None:
    data = request(head=HEAD.replace(b"To: Bob <sip:bob@example.com>", b"To: Bob, Jr <sip:b@x>"))
    msg = parse_message(data)
    assert isinstance(msg, Request)
    answer = make_error_response(msg, 400, to_tag="t1")
    assert answer is not None and answer.headers.get("To") == "Bob, Jr <sip:b@x>;tag=t1"


def test_unknown_scheme_require_and_bodies() -> None:
    head = HEAD.replace(b"sip:bob@example.com SIP", b"isbn:2983792873 SIP", 1)
    assert rejection_of(request(head=head)) == (416, {})
    assert rejection_of(request(b"Require: foo, bar\r\n")) == (420, {"Unsupported": "foo, bar"})
    assert rejection_of(request(b"Require: 100rel\r\n"), supported_extensions=["100rel"]) is None
    # A UAS takes SDP in an INVITE: anything else is 415 with what it takes.
    odd = request(b"Content-Type: application/unknownformat\r\n", body=b"<xml/>")
    assert rejection_of(odd) == (
        415,
        {"Accept": "application/sdp", "Accept-Encoding": "identity"},
    )
    assert rejection_of(odd, session_types=None) is None  # turned off
    assert rejection_of(odd, role="proxy") is None  # a proxy forwards it
    sdp = b"Content-Type: application/sdp\r\n"
    gz = request(sdp, b"Content-Encoding: gzip\r\n", body=b"v=0\r\n")
    assert rejection_of(gz) == (
        415,
        {"Accept-Encoding": "identity", "Accept": "application/sdp"},
    )
    message = HEAD.replace(b"INVITE", b"MESSAGE")
    text = request(b"Content-Type: text/plain\r\n", b"e: gzip\r\n", body=b"hi", head=message)
    assert rejection_of(text) == (415, {"Accept-Encoding": "identity"})
    assert rejection_of(request(sdp, body=b"v=0\r\n")) is None
    # §21.4.7: an INVITE whose Accept excludes what we would answer with.
    assert rejection_of(request(sdp, b"Accept: text/nobodyKnowsThis\r\n", body=b"v=0\r\n")) == (
        406,
        {},
    )
    assert rejection_of(request(b"Accept: application/*\r\n")) is None


# -- check_response never raises -----------------------------------------------------------------

RESPONSE = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776asdhds\r\n"
    b"To: Bob <sip:bob@example.com>;tag=a6c85cf\r\n"
    b"From: Alice <sip:alice@example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710\r\n"
    b"CSeq: 314159 INVITE\r\n"
)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"Via: SIP/2.0/UDP pc33", b"Via: SIP/2.0/FOO pc33;;;,,"),
        (b"Via: SIP/2.0/UDP pc33", b"Via: SIP/2.0/UDP [::1;received=x, SIP/2.0/UDP pc33"),
        (b"CSeq: 314159", b"CSeq: 99999999999999999999"),
        (b"To: Bob <sip:bob@example.com>", b'To: "Bob <sip:bob@example.com>'),
        (b"Call-ID: a84b4c76e66710\r\n", b"Call-ID: a\r\nCall-ID: b\r\n"),
        (b"From: Alice", b"Max-Forwards: 1000\r\nFrom: Alice"),
        (b"Via: SIP/2.0/UDP pc33.example.com", b"Via: SIP/2.0/UDP 255.255.255.255"),
    ],
)
@pytest.mark.parametrize("role", ["uac", "proxy"])
def test_check_response_returns_false_instead_of_raising(old: bytes, new: bytes, role: str) -> None:
    good = parse_message(RESPONSE + b"Content-Length: 0\r\n\r\n")
    assert isinstance(good, Response) and check_response(good, role=role)  # type: ignore[arg-type]
    bad = parse_message(RESPONSE.replace(old, new, 1) + b"Content-Length: 0\r\n\r\n")
    assert isinstance(bad, Response)
    assert check_response(bad, role=role) is False  # type: ignore[arg-type]


# -- reason phrases built from a peer's text ---------------------------------------------------


def test_reason_phrases_are_cut_and_cleaned() -> None:
    msg = parse_message(request())
    assert isinstance(msg, Request)
    hostile = "Bad Request (" + "x\r\nInjected: yes\x00\x07" * 400 + ")"
    answer = make_response(msg, 400, hostile)
    assert len(answer.reason) <= 128
    assert not any(c in answer.reason for c in "\r\n\x00\x07")
    wire = bytes(answer)
    # The status line, the headers, Content-Length, the empty line: no line of the peer's own.
    assert wire.count(b"\r\n") == 1 + len(answer.headers) + 1 + 1
    short = make_response(msg, 400, hostile, limits=Limits(max_reason_length=16))
    assert len(short.reason) <= 16
    assert make_response(msg, 400, "Bad Request").reason == "Bad Request"
    assert reason_phrase("Простое сообщение") == "Простое сообщение"  # UTF-8 stays
    assert reason_phrase("a\tb\udcff") == "a b"  # a tab and an undecodable octet: spaces
