"""Property tests: round trips, only ParseError on hostile input, chunking-independent framing."""

from __future__ import annotations

import contextlib
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import corpus_root, load_manifest
from trio_sip.proto.errors import ParseError
from trio_sip.proto.message import Message, Request, Response
from trio_sip.proto.parse import NEED_DATA, StreamFramer, parse_message

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VIEWS = [
    "call_id", "cseq", "vias", "from_", "to", "contacts", "routes", "record_routes",
    "max_forwards", "expires", "min_expires", "content_type", "retry_after", "require",
    "proxy_require", "supported", "unsupported", "allow", "www_authenticate",
    "proxy_authenticate", "authorization", "proxy_authorization",
]  # fmt: skip

TOKEN = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~", min_size=1
)
# No CR, LF or NUL: header values and reason phrases never hold them (the parser refuses them).
VALUE = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n\0"), max_size=40
).map(lambda s: s.strip(" \t"))
HEADER = st.tuples(TOKEN, VALUE).filter(lambda p: p[0].lower() not in ("l", "content-length"))
BODY = st.binary(max_size=200)


@st.composite
def messages(draw: st.DrawFn) -> Request | Response:
    headers = draw(st.lists(HEADER, max_size=12))
    body = draw(BODY)
    if draw(st.booleans()):
        uri = "sip:" + draw(TOKEN).replace("%", "a") + "@example.com"
        return Request(draw(TOKEN), uri, headers, body)
    reason = draw(VALUE)
    return Response(draw(st.integers(100, 699)), reason, headers, body)


def read_every_view(msg: Message) -> None:
    for name in VIEWS:
        with contextlib.suppress(ParseError, ImportError):
            getattr(msg, name)
    if isinstance(msg, Request):
        with contextlib.suppress(ParseError):
            _ = msg.uri


@SETTINGS
@given(messages())
def test_generated_messages_round_trip(msg: Request | Response) -> None:
    again = parse_message(bytes(msg))
    assert type(again) is type(msg)
    assert again.start_line() == msg.start_line()
    assert list(again.headers)[:-1] == list(msg.headers)
    assert again.headers.get("Content-Length") == str(len(msg.body))
    assert again.body == msg.body
    assert bytes(again) == bytes(msg)


@SETTINGS
@given(st.binary(max_size=400))
def test_random_bytes_raise_only_parse_error(data: bytes) -> None:
    try:
        msg = parse_message(data)
    except ParseError:
        return
    read_every_view(msg)


def _corpus() -> list[bytes]:
    manifest = load_manifest()
    root = corpus_root()
    return [
        (root / case["file"]).read_bytes()
        for group in ("rfc4475", "rfc5118", "basic")
        for case in manifest[group].values()
    ]


CORPUS = _corpus()
MUTATION = st.tuples(st.integers(0, 10_000), st.integers(0, 3), st.binary(min_size=1, max_size=4))


@SETTINGS
@given(st.sampled_from(CORPUS), st.lists(MUTATION, min_size=1, max_size=6))
def test_mutated_corpus_raises_only_parse_error(
    data: bytes, mutations: list[tuple[int, int, bytes]]
) -> None:
    buf = bytearray(data)
    for pos, kind, chunk in mutations:
        pos %= len(buf) + 1
        if kind == 0:
            buf[pos:pos] = chunk  # insert
        elif kind == 1:
            del buf[pos : pos + len(chunk)]  # delete
        else:
            buf[pos : pos + len(chunk)] = chunk  # overwrite
    try:
        msg = parse_message(bytes(buf))
    except ParseError:
        return
    read_every_view(msg)
    with contextlib.suppress(ParseError):
        parse_message(bytes(msg))


def _frame(data: bytes, cuts: list[int]) -> list[bytes]:
    framer = StreamFramer()
    out: list[bytes] = []
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    for a, b in itertools.pairwise(points):
        framer.receive_data(data[a:b])
        while (event := framer.next_event()) is not NEED_DATA:
            assert isinstance(event, Message)
            out.append(bytes(event))
    return out


@SETTINGS
@given(st.lists(messages(), min_size=1, max_size=4), st.lists(st.integers(0, 10_000)))
def test_framing_does_not_depend_on_chunking(
    msgs: list[Request | Response], cuts: list[int]
) -> None:
    wire = [bytes(m) for m in msgs]
    stream = b"".join(wire)
    assert _frame(stream, []) == wire
    assert _frame(stream, cuts) == wire
    framer = StreamFramer()
    framer.receive_data(stream + b"INVITE sip:trailing")
    got = []
    while (event := framer.next_event()) is not NEED_DATA:
        got.append(bytes(event))  # type: ignore[arg-type]
    assert got == wire and framer.trailing_data == b"INVITE sip:trailing"


# Stream bytes: random, or built from the pieces a framer must tell apart (keep-alive CRs and
# LFs, pings, a complete message, one cut in its header section or in its body).
SMALL = (
    b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nContent-Length: 2\r\n\r\nhi"
)
PIECES = st.sampled_from(
    [b"\r\n", b"\r", b"\n", b"\r\n\r\n", SMALL, SMALL[:30], SMALL[:-1], b"Content-Length: 5\r\n"]
)
STREAM = st.one_of(
    st.binary(max_size=300),
    st.lists(st.one_of(PIECES, st.binary(max_size=20)), max_size=10).map(b"".join),
)


@SETTINGS
@given(STREAM, st.lists(st.integers(0, 1000), max_size=5), st.booleans())
def test_framer_on_random_bytes_only_raises_parse_error(
    data: bytes, cuts: list[int], expect_pongs: bool
) -> None:
    # expect_pongs=False is the side that answers pings: it holds a trailing CRLF until EOF.
    framer = StreamFramer(max_header_size=256, max_body_size=256, expect_pongs=expect_pongs)
    try:
        _frame_any(framer, data, cuts)
        framer.receive_data(b"")  # the peer closed
        _settle_after_eof(framer)
    except ParseError as exc:
        # A framing error is final: the stream cannot be resynchronised, every later call
        # raises it again (the connection is closed after the answer).
        with pytest.raises(ParseError) as again:
            framer.next_event()
        assert str(again.value) == str(exc)


def _settle_after_eof(framer: StreamFramer) -> None:
    """After EOF the framer hands out what is complete, then NEED_DATA with nothing left over
    (or raises ParseError for a cut message): each event consumes bytes, so it settles within
    len(buffer) + 1 calls, never a loop, and never leaves bytes silently unreported."""
    for _ in range(len(framer.trailing_data) + 1):
        event = framer.next_event()
        if event is NEED_DATA:
            assert framer.trailing_data == b"", "bytes left over at EOF without an error"
            assert framer.next_event() is NEED_DATA  # and it stays settled
            return
    raise AssertionError(f"framer did not settle after EOF: {framer.trailing_data[:40]!r}")


def _frame_any(framer: StreamFramer, data: bytes, cuts: list[int]) -> None:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    for a, b in itertools.pairwise(points):
        framer.receive_data(data[a:b])
        for _ in range(len(data) + 2):
            event = framer.next_event()
            if event is NEED_DATA:
                break
            if isinstance(event, Message):
                read_every_view(event)
        else:
            raise AssertionError("framer did not settle")
