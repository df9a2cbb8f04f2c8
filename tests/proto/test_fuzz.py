"""Fuzz targets (hypothesis) over the parser, the stream framer, digest header values and SDP.

Properties, for any input:

* nothing but the documented exception escapes: ``ParseError`` (parser, framer, every typed view,
  auth values) or ``SdpError`` (SDP); ``check_request`` / ``check_response`` never raise;
* nothing hangs: the framer settles within a bounded number of calls, and a watchdog turns a
  call that runs for minutes into a failure instead of a stuck suite (the time each parser takes
  is bounded by tests/proto/test_linear.py, not here);
* what parses is safe to pass on: no CR or LF inside a start line or header field (header
  injection toward a peer that splits lines differently) and no NUL outside a quoted-pair;
* what parses is stable: parse -> serialise -> parse gives the same message, and serialising
  that gives the same bytes again.

The default suite runs a short, fixed (derandomized) profile: a few seconds. A longer run:
``TRIO_SIP_FUZZ_EXAMPLES=20000 pytest tests/proto/test_fuzz.py`` (random, not derandomized), or
``nox -s fuzz`` (the same with 20,000 examples per target; ``nox -s fuzz -- N`` for N).
Every crasher found is kept as one file under tests/data/crashers/ (raw bytes; the file name's
prefix says which target: message-, stream-, auth-, sdp-; wire- for what the wire fuzzer of
tests/attack found) and replayed by ``test_crashers_stay_fixed``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import corpus_root, load_manifest
from trio_sip.proto.abnf import bad_nul
from trio_sip.proto.auth_values import parse_challenge, parse_credentials
from trio_sip.proto.errors import ParseError
from trio_sip.proto.message import Message, Request
from trio_sip.proto.parse import NEED_DATA, StreamFramer, parse_message
from trio_sip.proto.sdp import SdpError, answer_for, audio_offer, parse_sdp
from trio_sip.proto.validate import check_request, check_response

CRASHERS = Path(__file__).resolve().parent.parent / "data" / "crashers"
LONG = int(os.environ.get("TRIO_SIP_FUZZ_EXAMPLES", "0"))
settings.register_profile(
    "trio-sip-fuzz",
    max_examples=LONG or 120,
    derandomize=not LONG,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FUZZ = settings.get_profile("trio-sip-fuzz")
WATCHDOG = 60  # seconds of one example before it counts as a hang

VIEWS = [
    "call_id", "cseq", "vias", "from_", "to", "contacts", "routes", "record_routes",
    "max_forwards", "expires", "min_expires", "content_type", "retry_after", "require",
    "proxy_require", "supported", "unsupported", "allow", "www_authenticate",
    "proxy_authenticate", "authorization", "proxy_authorization",
]  # fmt: skip


@contextlib.contextmanager
def watchdog() -> Iterator[None]:
    def hang(signum: int, frame: object) -> None:
        raise AssertionError(f"no result after {WATCHDOG} s: a hang")

    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(WATCHDOG)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _corpus() -> list[bytes]:
    manifest = load_manifest()
    return [
        (corpus_root() / case["file"]).read_bytes()
        for group in ("rfc4475", "rfc5118", "basic")
        for case in manifest[group].values()
    ]


CORPUS = _corpus()
# Octets that matter to the grammar: separators, quotes, escapes, line ends, NUL, non-UTF-8.
HOSTILE = b"\r\n\t \x00\"\\<>;,:=?&@%[]/*#'()\x7f\xff\xc3"
CHUNK = st.binary(max_size=6) | st.lists(st.sampled_from(list(HOSTILE)), max_size=8).map(bytes)
MUTATION = st.tuples(st.integers(0, 10_000), st.integers(0, 3), CHUNK)


def mutate(data: bytes, mutations: list[tuple[int, int, bytes]]) -> bytes:
    buf = bytearray(data)
    for pos, kind, chunk in mutations:
        pos %= len(buf) + 1
        if kind == 0:
            buf[pos:pos] = chunk  # insert
        elif kind == 1:
            del buf[pos : pos + max(1, len(chunk))]  # delete
        elif kind == 2:
            buf[pos : pos + len(chunk)] = chunk  # overwrite
        else:
            buf[pos:pos] = buf[pos : pos + len(chunk) * 8]  # repeat a stretch
    return bytes(buf)


MUTATED = st.builds(mutate, st.sampled_from(CORPUS), st.lists(MUTATION, min_size=1, max_size=8))
MESSAGES = MUTATED | st.binary(max_size=300)


# -- the checks, shared by the targets and the crasher replay -----------------------------------


def fields(msg: Message) -> list[tuple[str, str]]:
    return [(n.lower(), v) for n, v in msg.headers if n.lower() not in ("l", "content-length")]


def check_message(data: bytes) -> None:
    try:
        msg = parse_message(data)
    except ParseError:
        return
    for text in (msg.start_line(), *(f"{n}: {v}" for n, v in msg.headers)):
        assert "\r" not in text and "\n" not in text, f"line break inside {text[:80]!r}"
        assert "\0" not in text or not bad_nul(text), f"NUL inside {text[:80]!r}"
    for name in VIEWS:
        with contextlib.suppress(ParseError):
            getattr(msg, name)
    if isinstance(msg, Request):
        with contextlib.suppress(ParseError):
            _ = msg.uri
        for role in ("uas", "proxy", "registrar"):
            check_request(msg, role=role)  # type: ignore[arg-type]
    else:
        assert isinstance(check_response(msg, role="uac"), bool)
        assert isinstance(check_response(msg, role="proxy"), bool)
    wire = bytes(msg)
    again = parse_message(wire)  # what we write, we parse
    assert type(again) is type(msg)
    assert again.start_line() == msg.start_line()
    assert fields(again) == fields(msg)
    assert again.body == msg.body
    assert bytes(parse_message(bytes(again))) == bytes(again)


def check_stream(data: bytes, cuts: list[int]) -> None:
    framer = StreamFramer(expect_pongs=False)
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    try:
        for a, b in [*itertools.pairwise(points), (len(data), len(data))]:
            framer.receive_data(data[a:b])  # the last piece is b"": the end of the stream
            for _ in range(len(data) + 3):  # every call consumes something, or waits
                event = framer.next_event()
                if event is NEED_DATA:
                    break
                if isinstance(event, Message):
                    check_message(bytes(event))
            else:
                raise AssertionError("the framer did not settle")
    except ParseError:
        with pytest.raises(ParseError):  # and it stays an error: close the connection
            framer.next_event()


def check_auth(text: str) -> None:
    for parse in (parse_challenge, parse_credentials):
        try:
            value = parse(text)
        except ParseError:
            continue
        assert parse(str(value)) == value


def check_sdp(data: bytes) -> None:
    try:
        sdp = parse_sdp(data)
    except SdpError:
        return
    assert parse_sdp(str(sdp)) == sdp
    assert parse_sdp(bytes(sdp)) == sdp
    local = audio_offer("127.0.0.1", 40000, session_id=1)
    answer = answer_for(sdp, local)
    assert len(answer.media) == len(sdp.media)
    for i in range(len(sdp.media)):
        sdp.media_direction(i)
        sdp.media_connection(i)
        sdp.media[i].rtpmap()
    sdp.hold()
    sdp.retrieve()


# -- the targets --------------------------------------------------------------------------------


@FUZZ
@given(MESSAGES)
def test_fuzz_parse_message(data: bytes) -> None:
    with watchdog():
        check_message(data)


@FUZZ
@given(
    st.lists(MESSAGES, min_size=1, max_size=3).map(b"".join) | st.binary(max_size=300),
    st.lists(st.integers(0, 10_000), max_size=6),
)
def test_fuzz_stream_framer(data: bytes, cuts: list[int]) -> None:
    with watchdog():
        check_stream(data, cuts)


_AUTH_SAMPLES = [
    'Digest realm="atlanta.example.com", domain="sip:ss1.carrier.com", qop="auth,auth-int", '
    'nonce="f84f1cec41e6cbe5aea9c8e88d359", opaque="", stale=FALSE, algorithm=MD5',
    'Digest username="bob", realm="biloxi.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
    'uri="sip:bob@biloxi.com", qop=auth, nc=00000001, cnonce="0a4f113b", '
    'response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41"',
    "NoOneKnowsThisScheme opaque-data=here",
    "Basic dXNlcjpwYXNz",
]
AUTH = st.builds(
    lambda base, mutations: mutate(base.encode(), mutations).decode("utf-8", "surrogateescape"),
    st.sampled_from(_AUTH_SAMPLES),
    st.lists(MUTATION, max_size=6),
) | st.text(alphabet=st.sampled_from(list(' \t"\\=,aZ09-_.~+/*')), max_size=80)


@FUZZ
@given(AUTH)
def test_fuzz_digest_header_values(text: str) -> None:
    with watchdog():
        check_auth(text)


def _sdp_bodies() -> list[bytes]:
    bodies = []
    for data in CORPUS:
        _head, sep, body = data.partition(b"\r\n\r\n")
        if sep and body.startswith(b"v=0"):
            bodies.append(body)
    return bodies


SDP = st.builds(mutate, st.sampled_from(_sdp_bodies()), st.lists(MUTATION, max_size=8)) | st.binary(
    max_size=200
)


@FUZZ
@given(SDP)
def test_fuzz_sdp(data: bytes) -> None:
    with watchdog():
        check_sdp(data)


# -- crashers found so far ------------------------------------------------------------------------

REPLAY = {
    "message": check_message,
    "stream": lambda data: check_stream(data, [1, 7, 64]),
    "auth": lambda data: check_auth(data.decode("utf-8", "surrogateescape")),
    "sdp": check_sdp,
    # Found by the wire fuzzer (tests/attack): replayed to a server over real sockets by
    # tests/attack/test_crashers_wire.py; here they must pass the parser's properties too.
    "wire": check_message,
}


def _crashers() -> list[Path]:
    return sorted(CRASHERS.glob("*")) if CRASHERS.is_dir() else []


@pytest.mark.parametrize("path", _crashers(), ids=lambda p: p.name)
def test_crashers_stay_fixed(path: Path) -> None:
    target = path.name.partition("-")[0]
    assert target in REPLAY, f"{path.name}: the name must start with one of {sorted(REPLAY)}"
    with watchdog():
        REPLAY[target](path.read_bytes())


def test_there_are_crashers_to_replay() -> None:
    assert len(_crashers()) >= 1
