"""SDP (RFC 4566) parsing and serialising, RFC 3264 offer/answer, hold and retrieve."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_sip.proto.errors import ProtocolError
from trio_sip.proto.sdp import (
    Attribute,
    Connection,
    MediaDescription,
    Origin,
    SdpError,
    SessionDescription,
    Timing,
    answer_for,
    audio_offer,
    parse_sdp,
)


def body_of(corpus: Path, name: str) -> bytes:
    return (corpus / name).read_bytes().split(b"\r\n\r\n", 1)[1]


CORPUS_BODIES = [
    "basic/invite-sdp.dat",
    "basic/200-ok-sdp.dat",
    "rfc5118/wire/ipv6-in-sdp.dat",
    "rfc5118/wire/mult-ip-in-sdp.dat",
    "rfc4475/wsinv.dat",
]


@pytest.mark.parametrize("name", CORPUS_BODIES)
def test_corpus_bodies_round_trip_byte_for_byte(corpus: Path, name: str) -> None:
    body = body_of(corpus, name)
    assert bytes(parse_sdp(body)) == body


def test_fields_of_a_real_offer(corpus: Path) -> None:
    sdp = parse_sdp(body_of(corpus, "basic/invite-sdp.dat"))
    assert sdp.origin == Origin("alice", "2890844526", 2890844526, "192.0.2.101")
    assert sdp.name == "-"
    assert sdp.connection == Connection("192.0.2.101", "IN", "IP4")
    assert sdp.timings == (Timing(0, 0),)
    (audio,) = sdp.media
    assert (audio.media, audio.port, audio.proto, audio.formats) == (
        "audio",
        49170,
        "RTP/AVP",
        ("0", "8", "101"),
    )
    assert audio.rtpmap() == {"0": "PCMU/8000", "8": "PCMA/8000", "101": "telephone-event/8000"}
    assert audio.attribute("fmtp") == "101 0-15"
    assert sdp.media_direction(0) == "sendrecv"


def test_media_level_connection_overrides_session(corpus: Path) -> None:
    sdp = parse_sdp(body_of(corpus, "rfc5118/wire/mult-ip-in-sdp.dat"))
    assert sdp.connection is None
    assert sdp.name == ""
    assert sdp.media_connection(0) == Connection("192.0.2.1", "IN", "IP4")
    assert sdp.media_connection(1) == Connection("2001:db8::1", "IN", "IP6")


def test_bare_lf_is_accepted_and_written_back_as_crlf(corpus: Path) -> None:
    body = body_of(corpus, "basic/invite-sdp.dat")
    assert bytes(parse_sdp(body.replace(b"\r\n", b"\n"))) == body
    assert bytes(parse_sdp(body.decode().rstrip("\r\n"))) == body


def test_every_line_type_and_unknown_lines_keep_their_order() -> None:
    text = (
        "v=0\r\no=- 1 2 IN IP4 h.example\r\ns= \r\ni=info\r\nu=http://x.example/\r\n"
        "e=j@x.example\r\np=+1 555\r\nc=IN IP4 224.2.1.1/127\r\nb=CT:128\r\nt=2873397496 0\r\n"
        "r=604800 3600 0 90000\r\nz=2882844526 -1h\r\nk=prompt\r\nx=unknown\r\na=recvonly\r\n"
        "m=audio 49170/2 RTP/AVP 0\r\ni=media info\r\nc=IN IP4 192.0.2.7\r\nb=AS:64\r\n"
        "k=clear:abc\r\ny=other unknown\r\na=ptime:20\r\nm=application 9 TCP/BFCP *\r\n"
    )
    sdp = parse_sdp(text)
    assert str(sdp) == text
    assert [line.type for line in sdp.lines] == list("iuepcbtrzkxa")
    assert sdp.direction == "recvonly"
    assert sdp.media[0].port_count == 2
    assert sdp.media[0].attribute("ptime") == "20"
    assert [line.type for line in sdp.media[0].lines] == list("icbkya")
    assert sdp.media[1].formats == ("*",)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "v=0\r\no=- 1 1 IN IP4 h\r\n",
        "v=1\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\n",
        "o=- 1 1 IN IP4 h\r\nv=0\r\ns=-\r\nt=0 0\r\n",
        "v=0\r\no=- 1 1 IN IP4\r\ns=-\r\nt=0 0\r\n",
        "v=0\r\no=- 1 x IN IP4 h\r\ns=-\r\nt=0 0\r\n",
        "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\n",
        "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0\r\n",
        "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nc=IN IP4\r\n",
        "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nb=AS\r\n",
        "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nnot a line\r\n",
        "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\n\r\na=x\r\n",
        "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\na=\r\n",
        "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=audio 5004 RTP/AVP\r\n",
        "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=audio 70000 RTP/AVP 0\r\n",
        "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=audio x RTP/AVP 0\r\n",
        "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\r\nt=0 0\r\n",
        "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\ns=again\r\nt=0 0\r\n",
    ],
)
def test_malformed_bodies_raise_sdp_error_with_400(text: str) -> None:
    with pytest.raises(SdpError) as info:
        parse_sdp(text)
    assert isinstance(info.value, ProtocolError)
    assert info.value.status_hint == 400
    assert str(info.value)


def test_invalid_utf8_is_an_sdp_error() -> None:
    with pytest.raises(SdpError, match="UTF-8"):
        parse_sdp(b"v=0\r\no=- 1 1 IN IP4 h\r\ns=\xff\r\nt=0 0\r\n")


_text = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\r\n"), max_size=12
)
_word = st.text(st.sampled_from("abcdefghXYZ0123456789.-+:/"), min_size=1, max_size=10)
_attribute = st.builds(Attribute, st.text("abcdefg-", min_size=1, max_size=6), st.none() | _text)
_line = st.one_of(
    _attribute,
    st.builds(Connection, _word.filter(lambda w: " " not in w)),
    st.builds(Timing, st.integers(0, 2**40), st.integers(0, 2**40)),
)
_media = st.builds(
    MediaDescription,
    st.sampled_from(["audio", "video", "text"]),
    st.integers(0, 65535),
    st.sampled_from(["RTP/AVP", "RTP/SAVP", "UDP/TLS/RTP/SAVPF"]),
    st.lists(st.integers(0, 127).map(str), min_size=1, max_size=4).map(tuple),
    st.lists(st.one_of(_attribute, st.builds(Connection, _word)), max_size=4).map(tuple),
)


@given(
    origin=st.builds(Origin, _word, st.integers(0, 2**62).map(str), st.integers(0, 2**62), _word),
    name=_text,
    lines=st.lists(_line, max_size=5),
    media=st.lists(_media, max_size=3),
)
def test_any_description_survives_serialise_then_parse(
    origin: Origin, name: str, lines: list[Attribute], media: list[MediaDescription]
) -> None:
    sdp = SessionDescription(origin, name, (Timing(), *lines), tuple(media))
    text = str(sdp)
    assert parse_sdp(text) == sdp
    assert str(parse_sdp(text)) == text


def offer_with(session_direction: str | None, media_direction: str | None) -> SessionDescription:
    sdp = audio_offer("192.0.2.1", 5004, session_id=1)
    sdp = sdp.evolve_media(0, sdp.media[0].with_direction(media_direction))
    if session_direction:
        sdp = sdp.evolve(lines=(*sdp.lines, Attribute(session_direction)))
    return sdp


@pytest.mark.parametrize(
    ("session", "media", "effective"),
    [
        (None, None, "sendrecv"),
        ("sendonly", None, "sendonly"),
        ("sendonly", "recvonly", "recvonly"),
        (None, "inactive", "inactive"),
    ],
)
def test_media_level_direction_wins(session: str | None, media: str | None, effective: str) -> None:
    sdp = parse_sdp(str(offer_with(session, media)))
    assert sdp.media_direction(0) == effective


def test_with_direction_is_a_new_offer_with_the_next_version() -> None:
    offer = audio_offer("192.0.2.1", 5004, session_id=7)
    rejected = MediaDescription("video", 0, "RTP/AVP", ("31",))
    offer = offer.evolve(
        media=(*offer.media, rejected), lines=(*offer.lines, Attribute("sendrecv"))
    )
    new = offer.with_direction("inactive")
    text = str(new)
    assert "o=- 7 8 IN IP4 192.0.2.1\r\n" in text
    assert text.count("a=inactive") == 1 and "a=sendrecv" not in text
    assert new.media[1] == rejected
    assert str(offer) != text  # the old value is untouched
    with pytest.raises(ValueError, match="direction"):
        offer.with_direction("sideways")


@pytest.mark.parametrize(
    ("before", "on_hold"),
    [("sendrecv", "sendonly"), ("recvonly", "inactive"), ("sendonly", "sendonly")],
)
def test_hold_follows_rfc3264_section_8_4(before: str, on_hold: str) -> None:
    offer = audio_offer("192.0.2.1", 5004, session_id=100, direction=before)
    held = offer.hold()
    assert held.origin.version == 101
    assert f"a={on_hold}\r\n" in str(held)
    retrieved = held.retrieve()
    assert retrieved.origin.version == 102
    assert "a=sendrecv\r\n" in str(retrieved) and f"a={on_hold}" not in str(retrieved)


@pytest.mark.parametrize(
    ("offered", "answered"),
    [
        ("sendonly", "recvonly"),
        ("inactive", "inactive"),
        ("recvonly", "sendonly"),
        ("sendrecv", "sendrecv"),
    ],
)
def test_answer_mirrors_the_offered_direction(offered: str, answered: str) -> None:
    offer = audio_offer("192.0.2.1", 5004, session_id=1).with_direction(offered)
    local = audio_offer("192.0.2.2", 6000, session_id=2)
    answer = answer_for(parse_sdp(bytes(offer)), local)
    assert answer.media_direction(0) == answered
    assert f"a={answered}\r\n" in str(answer)


def test_answerer_on_hold_narrows_the_direction() -> None:
    offer = audio_offer("192.0.2.1", 5004, session_id=1)
    local = audio_offer("192.0.2.2", 6000, session_id=2, direction="sendonly")
    assert answer_for(offer, local).media_direction(0) == "sendonly"
    assert answer_for(offer.hold(), local).media_direction(0) == "inactive"


def test_the_corpus_answer_is_reproduced_exactly(corpus: Path) -> None:
    offer = parse_sdp(body_of(corpus, "basic/invite-sdp.dat"))
    local = audio_offer(
        "192.0.2.201",
        3456,
        session_id=2808844564,
        username="bob",
        codecs=["PCMU", "telephone-event"],
        dtmf_events="0-15",
    )
    assert bytes(answer_for(offer, local)) == body_of(corpus, "basic/200-ok-sdp.dat")


def test_answer_keeps_m_line_count_and_order_and_rejects_what_it_cannot_take() -> None:
    offer = parse_sdp(
        "v=0\r\no=a 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
        "m=video 5006 RTP/AVP 31\r\n"
        "m=audio 0 RTP/AVP 0\r\n"
        "m=audio 5004 RTP/AVP 18\r\n"
        "m=audio 5008 RTP/AVP 8 100\r\na=rtpmap:100 telephone-event/8000\r\na=fmtp:100 0-15\r\n"
    )
    local = audio_offer("192.0.2.2", 6000, session_id=5)
    answer = answer_for(offer, local)
    assert [(m.media, m.port) for m in answer.media] == [
        ("video", 0),
        ("audio", 0),
        ("audio", 0),
        ("audio", 6000),
    ]
    assert "m=video 0 RTP/AVP 31\r\nm=audio 0 RTP/AVP 0\r\nm=audio 0 RTP/AVP 18\r\n" in str(answer)
    accepted = answer.media[3]
    # PCMA by its static number; telephone-event takes the offer's dynamic number 100.
    assert accepted.formats == ("8", "100")
    assert accepted.rtpmap() == {"8": "PCMA/8000", "100": "telephone-event/8000"}
    assert accepted.attribute("fmtp") == "100 0-16"
    assert "a=rtpmap:0 " not in str(answer)


def test_answer_version_only_moves_when_the_answer_changes() -> None:
    offer = audio_offer("192.0.2.1", 5004, session_id=1)
    local = audio_offer("192.0.2.2", 6000, session_id=40)
    first = answer_for(offer, local)
    assert first.origin.version == 40
    again = answer_for(offer.next_version(), local, previous=first)
    assert again == first
    on_hold = answer_for(offer.hold(), local, previous=first)
    assert on_hold.origin == Origin("-", "40", 41, "192.0.2.2")
    assert on_hold.media_direction(0) == "recvonly"


def test_audio_offer_matches_the_corpus_invite(corpus: Path) -> None:
    offer = audio_offer(
        "192.0.2.101", 49170, session_id=2890844526, username="alice", dtmf_events="0-15"
    )
    assert bytes(offer) == body_of(corpus, "basic/invite-sdp.dat")


def test_audio_offer_options() -> None:
    a = audio_offer("2001:db8::5", 4000, rng=random.Random(3), codecs=["PCMA"], ptime=20)
    b = audio_offer("2001:db8::5", 4000, rng=random.Random(3), codecs=["PCMA"], ptime=20)
    assert a == b
    text = str(a)
    assert "c=IN IP6 2001:db8::5\r\n" in text
    assert "m=audio 4000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=ptime:20\r\na=sendrecv\r\n" in text
    with pytest.raises(ValueError, match="session_id"):
        audio_offer("192.0.2.1", 4000)
    with pytest.raises(ValueError, match="codecs"):
        audio_offer("192.0.2.1", 4000, session_id=1, codecs=["OPUS"])


def test_a_version_with_leading_zeros_is_written_back_without_them() -> None:
    sdp = parse_sdp("v=0\r\no=- 1 007 IN IP4 h\r\ns=-\r\nt=0 0\r\n")
    assert sdp.origin.version == 7
    assert "o=- 1 7 IN IP4 h\r\n" in str(sdp)
