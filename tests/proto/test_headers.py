"""Headers: order, case- and compact-insensitivity, list splitting, immutable edits."""

from __future__ import annotations

import pytest

from trio_sip.proto.errors import LocalProtocolError
from trio_sip.proto.headers import Headers, canonical_name, long_name

H = Headers(
    [
        ("v", "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2"),
        ("Via", "SIP/2.0/UDP c;branch=z9hG4bK3"),
        ("Contact", '"Doe, John" <sip:j@h;x=a,b>, <sip:k@h>'),
        ("WWW-Authenticate", 'Digest realm="a", nonce="b"'),
        ("Date", "Sat, 13 Nov 2010 23:29:00 GMT"),
        ("i", "abc@h"),
        ("X-Custom", "one, two"),
    ]
)


def test_lookup_by_any_spelling() -> None:
    assert H.get("call-id") == H.get("I") == H["Call-ID"] == "abc@h"
    assert "VIA" in H and "Route" not in H
    assert H.count("via") == 2 and H.get("route", "none") == "none"
    with pytest.raises(KeyError):
        H["Route"]


def test_list_splitting_respects_quotes_and_brackets() -> None:
    assert [v.split(";")[0] for v in H.get_list("Via")] == [
        "SIP/2.0/UDP a",
        "SIP/2.0/UDP b",
        "SIP/2.0/UDP c",
    ]
    assert H.get_list("m") == ['"Doe, John" <sip:j@h;x=a,b>', "<sip:k@h>"]


def test_non_list_headers_are_never_split() -> None:
    assert H.get_list("WWW-Authenticate") == ['Digest realm="a", nonce="b"']
    assert H.get_list("Date") == ["Sat, 13 Nov 2010 23:29:00 GMT"]
    assert H.get_list("X-Custom") == ["one, two"]


def test_edits_return_new_headers() -> None:
    h2 = H.prepend("Via", "SIP/2.0/TCP p;branch=z9hG4bKp")
    assert h2.get_list("via")[0].startswith("SIP/2.0/TCP p") and h2.items()[0][0] == "Via"
    assert H.get_list("via")[0].startswith("SIP/2.0/UDP a")
    assert H.remove_first("via").get_list("via")[0].startswith("SIP/2.0/UDP b")
    assert H.remove_first("Call-ID").get("i") is None
    top = H.set_first("Via", "SIP/2.0/UDP a;branch=z9hG4bK1;received=1.2.3.4")
    assert top.get_list("via")[0].endswith("received=1.2.3.4") and len(top.get_list("via")) == 3
    assert H.replace("via", "SIP/2.0/UDP z").get_list("via") == ["SIP/2.0/UDP z"]
    assert H.remove("Via").count("v") == 0 and len(H) == 7
    assert H.prepend("Route", "<sip:r>").items()[0] == ("Route", "<sip:r>")
    assert H.append("X", "1").items()[-1] == ("X", "1")


def test_header_injection_is_refused() -> None:
    with pytest.raises(LocalProtocolError):
        Headers([("X", "a\r\nVia: evil")])
    with pytest.raises(LocalProtocolError):
        H.append("Bad Name", "x")


def test_names() -> None:
    assert canonical_name("m") == "contact" and canonical_name("CONTACT") == "contact"
    assert long_name("i") == "Call-ID" and long_name("x-foo") == "x-foo"
