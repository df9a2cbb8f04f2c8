"""StreamFramer: framing by Content-Length on TCP/TLS, keep-alives, limits, errors."""

from __future__ import annotations

import pytest

from trio_sip.proto.errors import ParseError
from trio_sip.proto.message import Message
from trio_sip.proto.parse import NEED_DATA, PING, PONG, FramerEvent, StreamFramer

REQ = (
    b"OPTIONS sip:carol@chicago.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP pc33.atlanta.example.com;branch=z9hG4bKhjhs8ass877\r\n"
    b"Max-Forwards: 70\r\nTo: <sip:carol@chicago.example.com>\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710\r\nCSeq: 63104 OPTIONS\r\n"
    b"Content-Type: text/plain\r\nl: 5\r\n\r\nhello"
)
RESP = (
    b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nCall-ID: x\r\n"
    b"CSeq: 1 OPTIONS\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nContent-Length: 0\r\n\r\n"
)

Event = Message | FramerEvent


def drain(framer: StreamFramer) -> list[Event]:
    out: list[Event] = []
    while (event := framer.next_event()) is not NEED_DATA:
        out.append(event)
    return out


def feed_whole(data: bytes) -> list[Event]:
    f = StreamFramer()
    f.receive_data(data)
    return drain(f)


def feed_bytewise(data: bytes) -> list[Event]:
    f = StreamFramer()
    out = []
    for i in range(len(data)):
        f.receive_data(data[i : i + 1])
        out += drain(f)
    return out


def norm(events: list[Event]) -> list[object]:
    return [e if isinstance(e, FramerEvent) else bytes(e) for e in events]


def tr(data: bytes, expected: list[object]) -> None:
    """h11's test_io.tr: whole, a byte at a time, and with trailing data after it."""
    assert norm(feed_whole(data)) == expected
    assert norm(feed_bytewise(data)) == expected
    f = StreamFramer()
    f.receive_data(data + b"OPTIONS sip:x SIP/2.0\r\n")
    assert norm(drain(f)) == expected
    assert f.trailing_data == b"OPTIONS sip:x SIP/2.0\r\n"


def test_one_request() -> None:
    tr(REQ, [REQ])
    (msg,) = feed_whole(REQ)
    assert isinstance(msg, Message) and msg.body == b"hello" and msg.cseq.seq == 63104


def test_back_to_back_messages() -> None:
    tr(REQ + RESP + REQ, [REQ, RESP, REQ])


def test_keepalive_ping_between_messages() -> None:
    assert norm(feed_whole(REQ + b"\r\n\r\n" + RESP)) == [REQ, PING, RESP]
    assert norm(feed_whole(b"\r\n\r\n\r\n\r\n")) == [PING, PING]


def test_lone_crlf_is_a_pong() -> None:
    assert feed_whole(b"\r\n") == [PONG]
    assert norm(feed_whole(b"\r\n" + RESP)) == [PONG, RESP]


def test_body_may_contain_crlfcrlf_and_nul() -> None:
    body = b"a\r\n\r\nb\x00\nc"
    data = REQ.replace(b"l: 5", b"l: %d" % len(body)).replace(b"hello", body)
    tr(data, [data])


def test_missing_content_length_is_an_error_on_streams() -> None:
    f = StreamFramer()
    f.receive_data(REQ.replace(b"l: 5\r\n", b""))
    with pytest.raises(ParseError, match="Content-Length") as info:
        f.next_event()
    assert info.value.status_code == 400


def test_error_is_sticky_and_does_not_hang() -> None:
    f = StreamFramer()
    f.receive_data(b"GARBAGE\r\n\r\n")
    for _ in range(3):
        with pytest.raises(ParseError):
            f.next_event()
    f.receive_data(REQ)
    with pytest.raises(ParseError):
        f.next_event()


def test_header_limit_gives_513_without_waiting_for_the_end() -> None:
    f = StreamFramer(max_header_size=100)
    f.receive_data(b"OPTIONS sip:a@b SIP/2.0\r\n" + b"X: " + b"y" * 200)
    with pytest.raises(ParseError) as info:
        f.next_event()
    assert info.value.status_code == 513


def test_body_limit_gives_513() -> None:
    f = StreamFramer(max_body_size=3)
    f.receive_data(REQ)
    with pytest.raises(ParseError) as info:
        f.next_event()
    assert info.value.status_code == 513


def test_incomplete_message_waits_then_fails_at_eof() -> None:
    f = StreamFramer()
    f.receive_data(REQ[:-2])
    assert f.next_event() is NEED_DATA
    assert f.next_event() is NEED_DATA
    f.receive_data(b"")
    with pytest.raises(ParseError, match="closed"):
        f.next_event()


def test_eof_between_messages_is_quiet() -> None:
    f = StreamFramer()
    f.receive_data(REQ)
    f.receive_data(b"")
    assert len(drain(f)) == 1
    assert f.next_event() is NEED_DATA


def test_no_quadratic_rescan_on_slow_headers() -> None:
    # 20 000 one-byte writes of a header block: each call scans only the new bytes.
    f = StreamFramer()
    big = b"OPTIONS sip:a@b SIP/2.0\r\nX: " + b"y" * 20000 + b"\r\nl: 0\r\n\r\n"
    events = []
    for i in range(len(big)):
        f.receive_data(big[i : i + 1])
        events += drain(f)
    assert len(events) == 1
