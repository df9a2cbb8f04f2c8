"""Public names of ``trio_sip.proto`` that no other test named
(tests/test_public_names_used.py lists them): each is reached the way a user reaches it, and
what it carries is checked."""

from __future__ import annotations

import math

import pytest

from trio_sip.proto import (
    Binding,
    Blacklist,
    BlacklistStatistics,
    Credentials,
    FailureReason,
    LocationService,
    MediaType,
    Rejection,
    Request,
    RetryAfter,
    Target,
    TimerConfig,
    Timers,
    Uri,
    check_request,
    parse_credentials,
    parse_message,
    parse_uri,
    serialize,
)


def request(*extra: tuple[str, str], method: str = "INVITE", body: bytes = b"") -> Request:
    return Request(
        method,
        "sip:bob@example.com",
        [
            ("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-names"),
            ("Max-Forwards", "70"),
            ("From", "<sip:alice@example.com>;tag=a1"),
            ("To", "<sip:bob@example.com>"),
            ("Call-ID", "names@192.0.2.1"),
            ("CSeq", f"1 {method}"),
            *extra,
        ],
        body,
    )


def test_timers_are_the_rfc_3261_table_for_each_kind_of_transport() -> None:
    udp = TimerConfig().timers(reliable=False)
    tcp = TimerConfig().timers(reliable=True)
    assert isinstance(udp, Timers) and isinstance(tcp, Timers)
    # Table 4 of RFC 3261: B, F, H, J = 64*T1; D > 32 s over UDP; K, I = T4.
    assert (udp.a, udp.b, udp.d, udp.f, udp.i, udp.j, udp.k) == (0.5, 32, 32, 32, 5, 32, 5)
    assert (tcp.d, tcp.i, tcp.j, tcp.k) == (0, 0, 0, 0)  # reliable: nothing to absorb
    assert TimerConfig(sip_transaction_timeout=4000).timers(reliable=False).f == 4.0


def test_location_bindings() -> None:
    location = LocationService()
    register = request(
        ("Contact", "<sip:bob@192.0.2.4:5060>;q=0.5"), ("Expires", "600"), method="REGISTER"
    )
    assert location.register(register, "sip:bob@example.com", 100.0).status == 200
    (binding,) = location.lookup("sip:bob@example.com", 400.0)
    assert isinstance(binding, Binding)
    assert (binding.aor, binding.expires_at, binding.remaining(400.0)) == (
        "sip:bob@example.com", 700.0, 300,
    )  # fmt: skip
    assert binding.q == 0.5 and binding.call_id == "names@192.0.2.1" and not binding.static
    assert str(binding.uri) == "sip:bob@192.0.2.4:5060"
    assert location.lookup("sip:bob@example.com", 700.0) == []  # expired
    location.add_static("sip:carol@example.com", "sip:carol@192.0.2.9")
    (static,) = location.lookup("sip:carol@example.com", 1e9)
    assert isinstance(static, Binding) and static.static and static.expires_at == math.inf


def test_blacklist_statistics() -> None:
    blacklist = Blacklist()
    dead = Target("UDP", "192.0.2.7", 5060)
    blacklist.failed(dead, 10.0, FailureReason.UNREACHABLE)
    stats = blacklist.statistics(10.0)
    assert isinstance(stats, BlacklistStatistics)
    ((entry),) = stats.entries
    assert (
        entry.key == dead.key and entry.failures == 1 and entry.reason is FailureReason.UNREACHABLE
    )
    assert stats.penalty(dead) == entry.penalty > 0
    assert stats.penalty(Target("UDP", "192.0.2.8", 5060)) == 0.0
    assert blacklist.statistics(10.0 + 3600).entries == ()  # faded out


def test_credentials_views() -> None:
    value = (
        'Digest username="bob", realm="biloxi.example.com", nonce="abc",'
        ' uri="sip:biloxi.example.com", response="0123456789abcdef0123456789abcdef",'
        ' qop=auth, nc=00000002, cnonce="c0"'
    )
    creds = parse_credentials(value)
    assert isinstance(creds, Credentials) and creds.is_digest
    assert (creds.username, creds.realm, creds.nonce, creds.qop, creds.nc) == (
        "bob", "biloxi.example.com", "abc", "auth", 2,
    )  # fmt: skip
    assert str(creds) == value  # written back as read
    assert request(("Authorization", value)).authorization == (creds,)


def test_media_type_of_a_message() -> None:
    sdp = request(("Content-Type", "Application/SDP;charset=utf-8"), body=b"v=0\r\n")
    media = sdp.content_type
    assert isinstance(media, MediaType)
    assert (media.type, media.subtype, media.mime) == ("Application", "SDP", "application/sdp")
    assert media.matches("application/sdp") and not media.matches("text/plain")
    assert media.params.get("charset") == "utf-8"
    assert MediaType("application", "sdp").mime == media.mime  # compared by value
    assert MediaType("application", "sdp") == MediaType("application", "sdp")


def test_retry_after_of_a_503() -> None:
    data = (
        b"SIP/2.0 503 Service Unavailable\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
        b"From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n"
        b"Retry-After: 120 (maintenance);duration=3600\r\nContent-Length: 0\r\n\r\n"
    )
    retry = parse_message(data).retry_after
    assert isinstance(retry, RetryAfter)
    assert (retry.seconds, retry.comment, retry.duration) == (120, "maintenance", 3600)


def test_rejection_names_the_status_and_the_headers_to_add() -> None:
    refused = check_request(request(("Require", "foo")), role="uas")
    assert isinstance(refused, Rejection)
    assert refused.status_code == 420 and refused.headers == (("Unsupported", "foo"),)
    assert check_request(request(), role="uas") is None


@pytest.mark.parametrize(
    "text", ["sip:bob@example.com", "sips:bob@example.com:5061", "tel:+15551234", "mailto:b@x"]
)
def test_every_parsed_uri_is_a_uri(text: str) -> None:
    uri = parse_uri(text)
    assert isinstance(uri, Uri) and str(uri) == text


def test_serialize_writes_the_wire_form() -> None:
    message = request(body=b"hello")
    wire = serialize(message)
    assert wire == bytes(message)
    assert wire.startswith(b"INVITE sip:bob@example.com SIP/2.0\r\n")
    assert wire.endswith(b"Content-Length: 5\r\n\r\nhello")  # matches the body
    assert parse_message(wire).body == b"hello"
