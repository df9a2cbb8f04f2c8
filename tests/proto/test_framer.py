"""StreamFramer: framing by Content-Length on TCP/TLS, keep-alives, limits, errors."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


def test_a_ping_split_across_reads_is_one_ping_on_the_answering_side() -> None:
    f = StreamFramer(expect_pongs=False)
    f.receive_data(b"\r\n")
    assert f.next_event() is NEED_DATA  # a pong, or half a ping: not known yet
    f.receive_data(b"\r\n" + RESP)
    assert norm(drain(f)) == [PING, RESP]


def test_a_held_lone_crlf_becomes_a_pong_at_the_next_byte_or_the_end() -> None:
    f = StreamFramer(expect_pongs=False)
    f.receive_data(b"\r\n")
    assert f.next_event() is NEED_DATA
    f.receive_data(RESP[:1])
    assert f.next_event() is PONG
    assert f.trailing_data == RESP[:1]
    g = StreamFramer(expect_pongs=False)
    g.receive_data(b"\r\n")
    assert drain(g) == []
    g.receive_data(b"")
    assert drain(g) == [PONG]


def test_the_pinging_side_sees_a_pong_at_once() -> None:
    # RFC 5626 §4.4.1: the pong is a lone CRLF and the peer may then say nothing for minutes.
    f = StreamFramer()
    f.receive_data(b"\r\n")
    assert f.next_event() is PONG
    # Its peer never pings it (§3.5.1), so a ping cut after its first CRLF reads as pongs.
    f.receive_data(b"\r\n")
    assert f.next_event() is PONG


def test_the_role_can_change_while_a_lone_crlf_is_held() -> None:
    f = StreamFramer(expect_pongs=False)
    f.receive_data(b"\r\n")
    assert f.next_event() is NEED_DATA
    f.expect_pongs = True
    assert f.next_event() is PONG


def test_a_cr_that_is_not_a_keepalive_is_an_error_in_both_roles() -> None:
    for expect_pongs in (True, False):
        f = StreamFramer(expect_pongs=expect_pongs)
        f.receive_data(b"\r\n\rX")
        assert f.next_event() is PONG
        with pytest.raises(ParseError, match="stray CR"):
            f.next_event()
        g = StreamFramer(expect_pongs=expect_pongs)
        g.receive_data(b"\r\n\r")
        assert g.next_event() is NEED_DATA
        g.receive_data(b"")
        with pytest.raises(ParseError, match="closed"):
            g.next_event()


# -- properties: keep-alives and messages under any split ---------------------------------

KEEPALIVES = {"ping": b"\r\n\r\n", "pong": b"\r\n"}
PIECES = {**KEEPALIVES, "req": REQ, "resp": RESP}


def model(pieces: list[str]) -> list[object]:
    """The events the bytes mean: a run of n CRLFs between messages is n // 2 pings and then,
    for an odd n, one pong (CRLFs are counted, not the pieces that wrote them)."""
    out: list[object] = []
    for is_keepalive, run in itertools.groupby(pieces, lambda p: p in KEEPALIVES):
        if not is_keepalive:
            out += [PIECES[p] for p in run]
            continue
        crlfs = sum(len(KEEPALIVES[p]) // 2 for p in run)
        out += [PING] * (crlfs // 2) + [PONG] * (crlfs % 2)
    return out


def feed_cut(data: bytes, cuts: list[int], *, expect_pongs: bool) -> list[object]:
    f = StreamFramer(expect_pongs=expect_pongs)
    out: list[Event] = []
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    for a, b in itertools.pairwise(points):
        f.receive_data(data[a:b])
        out += drain(f)
    f.receive_data(b"")
    out += drain(f)
    return norm(out)


STREAMS = st.lists(st.sampled_from(sorted(PIECES)), max_size=8)
CUTS = st.lists(st.integers(0, 2000), max_size=12)


@settings(max_examples=300, deadline=None)
@given(STREAMS, CUTS)
def test_answering_side_any_split_gives_the_same_events(pieces: list[str], cuts: list[int]) -> None:
    data = b"".join(PIECES[p] for p in pieces)
    assert feed_cut(data, cuts, expect_pongs=False) == model(pieces)


@settings(max_examples=300, deadline=None)
@given(STREAMS, CUTS)
def test_pinging_side_any_split_gives_the_same_events_when_the_peer_only_pongs(
    pieces: list[str], cuts: list[int]
) -> None:
    # What a pinging side receives: pongs and messages, never a ping, and at most one CRLF in
    # a row (the peer answers each ping once).
    pieces = [p for p in pieces if p != "ping"]
    pieces = [p for i, p in enumerate(pieces) if p != "pong" or pieces[i - 1 : i] != ["pong"]]
    data = b"".join(PIECES[p] for p in pieces)
    assert feed_cut(data, cuts, expect_pongs=True) == model(pieces)


@settings(max_examples=300, deadline=None)
@given(STREAMS)
def test_both_roles_agree_on_unsplit_data(pieces: list[str]) -> None:
    data = b"".join(PIECES[p] for p in pieces)
    assert feed_cut(data, [], expect_pongs=True) == model(pieces)
    assert feed_cut(data, [], expect_pongs=False) == model(pieces)


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
    big = b"OPTIONS sip:a@b SIP/2.0\r\n" + (b"X: " + b"y" * 97 + b"\r\n") * 200 + b"l: 0\r\n\r\n"
    events = []
    for i in range(len(big)):
        f.receive_data(big[i : i + 1])
        events += drain(f)
    assert len(events) == 1
