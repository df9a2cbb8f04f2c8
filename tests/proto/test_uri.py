"""URIs, parameters and name-addr / addr-spec."""

from __future__ import annotations

import pytest

from trio_sip.proto.errors import ParseError
from trio_sip.proto.uri import (
    WILDCARD,
    AbsoluteUri,
    Params,
    SipUri,
    TelUri,
    parse_name_addr,
    parse_uri,
    unescape,
)


def test_full_sip_uri() -> None:
    uri = parse_uri("sips:alice:secret@atlanta.example.com:5061;transport=tls;lr?subject=hi&x=y")
    assert isinstance(uri, SipUri)
    assert (uri.scheme, uri.user, uri.password) == ("sips", "alice", "secret")
    assert (uri.host, uri.port, uri.transport, uri.secure) == (
        "atlanta.example.com",
        5061,
        "tls",
        True,
    )
    assert "lr" in uri.params and uri.params.get("lr") is None
    assert uri.headers == (("subject", "hi"), ("x", "y"))
    assert str(uri) == "sips:alice:secret@atlanta.example.com:5061;transport=tls;lr?subject=hi&x=y"


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("sip:[2001:db8::10]", "2001:db8::10", None),
        ("sip:[2001:db8::10]:5070", "2001:db8::10", 5070),
        ("sip:u@[2001:db8::10:5070]", "2001:db8::10:5070", None),
        ("sip:192.0.2.1:0", "192.0.2.1", 0),
    ],
)
def test_hosts(text: str, host: str, port: int | None) -> None:
    uri = parse_uri(text)
    assert (uri.host, uri.port) == (host, port)
    assert parse_uri(str(uri)) == uri


@pytest.mark.parametrize(
    "text",
    [
        "sip:2001:db8::10",
        "sip:[2001:db8:::1]",
        "sip:host:99999",
        "sip:host:",
        "sip:us er@host",
        "<sip:a@b>",
        "sip:a@b;",
        "sip:a%zz@b",
        "nocolon",
        "sip:",
    ],
)
def test_bad_uris(text: str) -> None:
    with pytest.raises(ParseError):
        parse_uri(text)


def test_tel_and_absolute() -> None:
    tel = parse_uri("tel:+1-201-555-0123;phone-context=example.com")
    assert isinstance(tel, TelUri) and tel.number == "+1-201-555-0123" and tel.user == tel.number
    assert tel.params.get("PHONE-CONTEXT") == "example.com"
    other = parse_uri("urn:service:sos")
    assert isinstance(other, AbsoluteUri) and (other.scheme, other.opaque) == ("urn", "service:sos")
    assert str(other) == "urn:service:sos"


def test_unescape_once() -> None:
    assert unescape("v%61lue%25%34%31") == "value%41"
    assert unescape("%00%00") == "\x00\x00"


def test_params_case_insensitive_and_immutable_edits() -> None:
    p = Params([("Tag", "abc"), ("lr", None)])
    assert p.get("tag") == "abc" and "LR" in p and len(p) == 2
    q = p.with_param("TAG", "x").with_param("new", "1")
    assert str(q) == ";Tag=x;lr;new=1" and str(p) == ";Tag=abc;lr"
    assert str(q.without("lr")) == ";Tag=x;new=1"
    assert Params([("a", '"x;y"')]).unquoted("a") == "x;y"


def test_name_addr_forms() -> None:
    a = parse_name_addr('"Mr. \\"X\\"" <sip:x@h;lr>;tag=1;q=0.5')
    assert a.display_name == 'Mr. "X"' and a.tag == "1" and a.q == 0.5
    assert "lr" in a.uri.params
    b = parse_name_addr("sip:x@h;tag=2")  # addr-spec: parameters belong to the header
    assert b.tag == "2" and not b.uri.params and b.display_name is None
    c = parse_name_addr("caller<sip:caller@example.com>")
    assert c.display_name == "caller"
    d = parse_name_addr("Alice  Liddell <sip:a@b>")
    assert d.display_name == "Alice Liddell"
    star = parse_name_addr(" * ")
    assert star.is_wildcard and star.uri is WILDCARD and str(star) == "*"
    assert parse_name_addr(str(a)) == a


@pytest.mark.parametrize(
    "text",
    [
        '"unterminated <sip:a@b>',
        "Bell, Alexander <sip:a@b>",
        "< sip:a@b >",
        "sip:a@b?Route=x",
        "<sip:a@b",
        "<sip:a@b> junk",
        "<sip:a@b>;;",
    ],
)
def test_bad_name_addr(text: str) -> None:
    with pytest.raises(ParseError):
        _ = parse_name_addr(text).uri  # the URI itself is parsed on first read


def test_proto_uri_reexports_the_pieces_it_shares_with_via() -> None:
    from trio_sip.proto import uri, uri_parts

    for name in [*uri_parts.__all__, "_ascii_hostname", "_ascii_port", "_token_params"]:
        assert getattr(uri, name) is getattr(uri_parts, name), name
