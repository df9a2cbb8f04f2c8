"""The conformance corpus (RFC 4475, RFC 5118, basic/): every entry meets its manifest entry.

The corpus lives outside the repository (tests/conftest.py finds it); files are read as bytes
and handed to the parser as one datagram, as the corpus README asks.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import corpus_root, load_manifest
from trio_sip.proto.errors import ParseError
from trio_sip.proto.headers import canonical_name
from trio_sip.proto.message import Message, Request, Response
from trio_sip.proto.parse import StreamFramer, parse_message
from trio_sip.proto.validate import check_request, check_response

MANIFEST = load_manifest()
GROUPS = ("rfc4475", "rfc5118", "basic")
CASES = [(f"{g}.{name}", case) for g in GROUPS for name, case in MANIFEST[g].items()]
# baddn's archive file has no empty line after the headers; its wire form tests the fault alone.
CASES += [
    (f"rfc4475.{name}[wire]", {**case, "file": case["wire_file"], "sha256": None})
    for name, case in MANIFEST["rfc4475"].items()
    if "wire_file" in case
]

# Every typed view a receiver may read; reading one may only ever raise ParseError.
VIEWS = [
    "call_id",
    "cseq",
    "vias",
    "from_",
    "to",
    "contacts",
    "routes",
    "record_routes",
    "max_forwards",
    "expires",
    "min_expires",
    "content_type",
    "retry_after",
    "require",
    "proxy_require",
    "supported",
    "unsupported",
    "allow",
]
AUTH_VIEWS = ("www_authenticate", "proxy_authenticate", "authorization", "proxy_authorization")


def read(case: dict[str, Any]) -> bytes:
    data = (corpus_root() / case["file"]).read_bytes()
    if case.get("sha256"):
        assert hashlib.sha256(data).hexdigest() == case["sha256"], "corpus file altered"
    return data


def timed_parse(data: bytes) -> Request | Response:
    """Parse with a guard against a pathological case: 0.5 s of this thread's CPU time (not
    the wall clock, which a loaded machine stretches) for a message of a few KB, which takes
    tens of microseconds; growth with size is tests/proto/test_linear.py's, the real figures
    are ``python -m benchmarks parse``'s."""
    start = time.thread_time()
    try:
        return parse_message(data)
    finally:
        assert time.thread_time() - start < 0.5


def fields(msg: Message) -> list[tuple[str, str]]:
    """Header fields with canonical names and whitespace-normalised values, no Content-Length."""
    return [
        (canonical_name(n), " ".join(v.split()))
        for n, v in msg.headers
        if canonical_name(n) != "content-length"
    ]


def assert_round_trips(msg: Request | Response) -> None:
    # Both the fast path (unedited) and the re-formatting path (headers handed back in).
    for data in (bytes(msg), bytes(msg.evolve(headers=msg.headers))):
        again = parse_message(data)
        assert type(again) is type(msg)
        assert again.start_line() == msg.start_line()
        assert fields(again) == fields(msg)
        assert again.body == msg.body
        assert again.headers.get("content-length") == str(len(msg.body))


def read_every_view(msg: Message) -> None:
    for name in [*VIEWS, *(AUTH_VIEWS if _auth_available() else ())]:
        with contextlib.suppress(ParseError):
            getattr(msg, name)
    if isinstance(msg, Request):
        with contextlib.suppress(ParseError):
            _ = msg.uri


def _auth_available() -> bool:
    try:
        from trio_sip.proto import auth  # noqa: F401
    except ImportError:
        return False
    return True


def rejection_status(msg: Request | Response, case: dict[str, Any]) -> int | None:
    """What the message layer answers: a status, 0 for a dropped response, None = accepted."""
    if isinstance(msg, Response):
        return None if check_response(msg, role="proxy") else 0
    rejection = check_request(msg, role=case.get("role", "uas"), accepted_types=["application/sdp"])
    return None if rejection is None else rejection.status_code


def allowed(case: dict[str, Any]) -> set[int]:
    return {case["respond"], *case.get("respond_alt", ())}


@pytest.mark.parametrize(("name", "case"), CASES, ids=[n for n, _ in CASES])
def test_corpus_entry(name: str, case: dict[str, Any]) -> None:
    data = read(case)
    expected, parse = case["expected"], case["parse"]
    if parse == "error":
        with pytest.raises(ParseError) as info:
            timed_parse(data)
        assert str(info.value)
        return
    try:
        msg = timed_parse(data)
    except ParseError as exc:
        assert parse == "either", f"{name} must parse: {exc}"
        assert exc.status_code in allowed(case) or case["respond"] == 0
        return
    read_every_view(msg)
    if expected == "valid":
        assert_round_trips(msg)
        if isinstance(msg, Request):
            assert check_request(msg, role=case.get("role", "uas")) is None
        else:
            assert check_response(msg, role="proxy")
        return
    if expected == "valid-but-reject":
        assert_round_trips(msg)
    status = rejection_status(msg, case)
    # Accepting is "200" (RFC 4475 §3.3.7 lists it for a registrar that does not authenticate).
    assert (200 if status is None else status) in allowed(case), f"{name}: got {status}"


def test_every_manifest_entry_is_covered() -> None:
    assert len(CASES) == 50 + 12 + 12 + 1


def test_dblreq_trailing_octets_do_not_reappear() -> None:
    case = MANIFEST["rfc4475"]["dblreq"]
    data = read(case)
    msg = parse_message(data)
    assert msg.body == b""
    assert bytes(msg) == data[: len(data) - case["body_bytes"]]
    assert b"INVITE" not in bytes(msg.evolve(headers=msg.headers.prepend("Via", "SIP/2.0/UDP p")))


def test_inv2543_without_content_length_gets_one_on_output() -> None:
    msg = parse_message(read(MANIFEST["rfc4475"]["inv2543"]))
    assert len(msg.body) == MANIFEST["rfc4475"]["inv2543"]["body_bytes"]
    assert parse_message(bytes(msg)).headers.get("Content-Length") == str(len(msg.body))


def test_torture_views() -> None:
    """Spot checks of what RFC 4475 / RFC 5118 say the parsed values are."""
    ws = parse_message(read(MANIFEST["rfc4475"]["wsinv"]))
    assert ws.max_forwards == 68 and ws.cseq.seq == 9 and ws.cseq.method == "INVITE"
    assert [v.transport for v in ws.vias] == ["UDP", "TCP", "UDP"]
    assert ws.vias[2].branch == "z9hG4bK30239"
    assert ws.from_.display_name == 'J Rosenberg \\"' and ws.from_.tag == "98asjd8"
    assert ws.to.tag == "1918181833n"
    assert ws.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    assert ws.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert (
        ws.contacts[0].params.get("secondparam") is None and "secondparam" in ws.contacts[0].params
    )
    semi = parse_message(read(MANIFEST["rfc4475"]["semiuri"]))
    assert isinstance(semi, Request)
    assert (semi.uri.user, semi.uri.host) == ("user;par=u%40example.net", "example.com")
    esc02 = parse_message(read(MANIFEST["rfc4475"]["esc02"]))
    assert esc02.headers.count("Contact") == 2 and "C%6Fntact" in esc02.headers
    esc01 = parse_message(read(MANIFEST["rfc4475"]["esc01"]))
    assert esc01.contacts[0].uri.params.get("n%61me") == "v%61lue%25%34%31"
    cp1 = parse_message(read(MANIFEST["rfc4475"]["cparam01"]))
    assert "unknownparam" in cp1.contacts[0].params and not cp1.contacts[0].uri.params
    cp2 = parse_message(read(MANIFEST["rfc4475"]["cparam02"]))
    assert "unknownparam" in cp2.contacts[0].uri.params
    good = parse_message(read(MANIFEST["rfc5118"]["ipv6-good"]))
    assert isinstance(good, Request) and (good.uri.host, good.uri.port) == ("2001:db8::10", None)
    amb = parse_message(read(MANIFEST["rfc5118"]["port-ambiguous"]))
    assert isinstance(amb, Request) and (amb.uri.host, amb.uri.port) == ("2001:db8::10:5070", None)
    una = parse_message(read(MANIFEST["rfc5118"]["port-unambiguous"]))
    assert isinstance(una, Request) and (una.uri.host, una.uri.port) == ("2001:db8::10", 5070)
    rcv = parse_message(read(MANIFEST["rfc5118"]["via-received-param-with-delim"]))
    assert rcv.vias[0].received == "2001:db8::9:255"
    un = parse_message(read(MANIFEST["rfc4475"]["unreason"]))
    assert isinstance(un, Response) and "простое" in un.reason


@pytest.mark.parametrize("group", GROUPS)
def test_stream_framer_on_the_valid_corpus(group: str) -> None:
    """All valid messages with a Content-Length, back to back on one stream, come out equal."""
    msgs = []
    for case in MANIFEST[group].values():
        if case["expected"] == "valid" and case.get("transport") != "udp":
            msgs.append(parse_message(read(case)))
    stream = b"".join(bytes(m) for m in msgs)
    framer = StreamFramer()
    framer.receive_data(stream)
    out = [framer.next_event() for _ in msgs]
    assert [bytes(m) for m in out] == [bytes(m) for m in msgs]


def test_corpus_root_exists() -> None:
    assert Path(corpus_root(), "manifest.toml").exists()
