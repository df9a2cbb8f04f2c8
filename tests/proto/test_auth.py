"""Digest authentication: RFC test vectors, SIP REGISTER exchanges, parsing, client and server."""

from __future__ import annotations

import hashlib
import random
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_sip.proto.auth import (
    AuthenticationFailed,
    Challenge,
    CredentialStore,
    DigestClient,
    Ha1,
    NonceStatus,
    check_nonce,
    make_credentials,
    make_nonce,
    parse_challenge,
    parse_credentials,
    verify,
)
from trio_sip.proto.errors import ParseError

RFC7616_CHALLENGE = (
    'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={alg}, '
    'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
    'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
)


@pytest.mark.parametrize(
    ("alg", "response"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_section_3_9_1_examples(alg: str, response: str) -> None:
    creds = make_credentials(
        parse_challenge(RFC7616_CHALLENGE.format(alg=alg)),
        method="GET",
        uri="/dir/index.html",
        username="Mufasa",
        password="Circle of Life",
        cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    )
    assert str(creds) == (
        'Digest username="Mufasa", realm="http-auth@example.org", '
        'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", uri="/dir/index.html", '
        f'response="{response}", algorithm={alg}, '
        'cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", '
        'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS", qop=auth, nc=00000001'
    )
    assert verify(creds, "GET", "Circle of Life")


def test_rfc2617_section_3_5_example() -> None:
    challenge = parse_challenge(
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    creds = make_credentials(
        challenge,
        method="GET",
        uri="/dir/index.html",
        username="Mufasa",
        password="Circle Of Life",
        cnonce="0a4f113b",
    )
    assert creds.response == "6629fae49393a05397450978507c4ef1"
    # The RFC's own Authorization (its parameter order) verifies too.
    rfc_header = (
        'Digest username="Mufasa", realm="testrealm@host.com", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, '
        'nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", '
        'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    assert verify(rfc_header, "GET", "Circle Of Life")
    assert not verify(rfc_header, "POST", "Circle Of Life")


def header_of(corpus: Path, name: str, header: str) -> str:
    text = (corpus / name).read_bytes().decode()
    (value,) = re.findall(rf"^{header}: (.*)\r$", text, re.MULTILINE)
    return value


def test_corpus_register_exchange_is_reproduced_exactly(corpus: Path) -> None:
    challenge = header_of(corpus, "basic/401-unauthorized.dat", "WWW-Authenticate")
    expected = header_of(corpus, "basic/register-digest.dat", "Authorization")
    assert str(parse_challenge(challenge)) == challenge
    creds = make_credentials(
        parse_challenge(challenge),
        method="REGISTER",
        uri="sip:registrar.biloxi.example.com",
        username="bob",
        password="zanzibar",
        cnonce="0a4f113b",
    )
    assert str(creds) == expected
    # And independently of this module: RFC 2617 arithmetic with hashlib.
    md5 = lambda s: hashlib.md5(s.encode()).hexdigest()  # noqa: E731
    ha1 = md5("bob:biloxi.example.com:zanzibar")
    ha2 = md5("REGISTER:sip:registrar.biloxi.example.com")
    response = md5(f"{ha1}:ea9c8e88df84f1cec4341ae6cbe5a359:00000001:0a4f113b:auth:{ha2}")
    assert f'response="{response}"' in expected
    assert verify(expected, "REGISTER", "zanzibar")
    assert verify(expected, "REGISTER", Ha1(ha1))
    assert not verify(expected, "REGISTER", "zanzibar!")


HASHLIB = {"MD5": "md5", "SHA-256": "sha256", "SHA-512-256": "sha512_256"}


def params_of(header: str) -> dict[str, str]:
    """Independent of the module's parser: a regex over name="value" / name=value."""
    return {m[0]: m[1] or m[2] for m in re.findall(r'(\w+)=(?:"([^"]*)"|([^\s,]+))', header)}


@pytest.mark.parametrize("alg", ["MD5", "MD5-sess", "SHA-256", "SHA-256-sess", "SHA-512-256",
                                 "SHA-512-256-sess"])  # fmt: skip
@pytest.mark.parametrize("qop", ["auth", "auth-int", None])
def test_sip_register_for_every_algorithm_matches_hashlib(alg: str, qop: str | None) -> None:
    body = b"v=0\r\n"
    offered = f', qop="{qop}"' if qop else ""
    challenge = f'Digest realm="atlanta.example.com", nonce="n0nce"{offered}, algorithm={alg}'
    client = DigestClient(CredentialStore(("alice", "s3cret")), random.Random(7))
    client.handle_challenge(401, [challenge])
    ((name, value),) = client.authorization_headers("REGISTER", "sip:atlanta.example.com", body)
    assert name == "Authorization"
    p = params_of(value)
    h = lambda s: hashlib.new(HASHLIB[alg.removesuffix("-sess")], s.encode()).hexdigest()  # noqa: E731
    ha1 = h("alice:atlanta.example.com:s3cret")
    if alg.endswith("-sess"):
        ha1 = h(f"{ha1}:n0nce:{p['cnonce']}")
    a2 = "REGISTER:sip:atlanta.example.com"
    if qop == "auth-int":
        a2 += ":" + hashlib.new(HASHLIB[alg.removesuffix("-sess")], body).hexdigest()
    if qop:
        expected = h(f"{ha1}:n0nce:00000001:{p['cnonce']}:{qop}:{h(a2)}")
    else:
        expected = h(f"{ha1}:n0nce:{h(a2)}")
        assert "qop" not in p and "nc" not in p
    assert p["response"] == expected
    assert p["algorithm"] == alg
    assert verify(value, "REGISTER", "s3cret", body=body)
    assert verify(value, "REGISTER", "s3cret", body=b"other") == (qop != "auth-int")


def test_parse_challenge_fields_case_escapes_and_unknown_params() -> None:
    value = (
        'digest REALM="a \\"quoted\\" realm\\\\", Nonce=abc, QOP="auth-int, AUTH", '
        'stale=true, domain="sip:a.example sip:b.example", Algorithm=sha-256, '
        'x-extension="kept, too", opaque=""'
    )
    chal = parse_challenge(value)
    assert chal.is_digest
    assert chal.realm == 'a "quoted" realm\\'
    assert chal.nonce == "abc"
    assert chal.qop_options == ("auth-int", "auth")
    assert chal.stale
    assert chal.domain == ("sip:a.example", "sip:b.example")
    assert chal.algorithm == "sha-256"
    assert chal.get("X-EXTENSION") == "kept, too"
    assert chal.opaque == ""
    assert str(parse_challenge(str(chal))) == str(chal)
    assert parse_challenge(str(chal)) == chal


def test_challenge_defaults_and_other_schemes() -> None:
    chal = parse_challenge('Digest realm="r", nonce="n"')
    assert (chal.algorithm, chal.qop_options, chal.stale, chal.opaque) == ("MD5", (), False, None)
    assert parse_challenge('Digest realm="r", nonce="n", stale=FALSE').stale is False
    bearer = parse_challenge("Bearer abc.def==")
    assert (bearer.scheme, bearer.token68, bearer.is_digest) == ("Bearer", "abc.def==", False)
    other = parse_credentials("NoOneKnowsThisScheme opaque-data=here")
    assert other.get("opaque-data") == "here" and not other.is_digest


def test_server_builds_challenges() -> None:
    chal = Challenge.digest("biloxi.example.com", "n1", opaque="o", algorithm="SHA-256")
    assert str(chal) == (
        'Digest realm="biloxi.example.com", qop="auth", nonce="n1", opaque="o", algorithm=SHA-256'
    )
    stale = Challenge.digest("r", "n2", stale=True, qop=(), domain=["sip:r"])
    assert str(stale) == 'Digest realm="r", domain="sip:r", nonce="n2", stale=TRUE, algorithm=MD5'
    assert parse_challenge(str(stale)).stale


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        '"Digest" realm="r"',
        'Digest realm="r"',
        'Digest nonce="n"',
        'Digest realm="r", nonce="n',
        'Digest realm="r", nonce="n", realm="again"',
        'Digest realm="r" nonce="n"',
        'Digest realm=, nonce="n"',
        'Digest realm "r", nonce="n"',
        'Digest realm="r", nonce="n", ="x"',
        'Digest,realm="r", nonce="n"',
    ],
)
def test_malformed_challenges_raise_parse_error_400(value: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_challenge(value)
    assert info.value.status_code == 400


@pytest.mark.parametrize(
    "value",
    [
        'Digest realm="r", nonce="n", uri="sip:r", response="x"',
        'Digest username="u", nonce="n", uri="sip:r", response="x"',
        'Digest username="u", realm="r", nonce="n", uri="sip:r"',
        'Digest username="u", realm="r", nonce="n", uri="sip:r", response="x", qop=auth',
        'Digest username="u", realm="r", nonce="n", uri="sip:r", response="x", qop=auth, '
        'cnonce="c", nc=1',
        "Digest",
    ],
)
def test_malformed_credentials_raise_parse_error(value: str) -> None:
    with pytest.raises(ParseError):
        parse_credentials(value)


def test_parse_credentials_fields() -> None:
    creds = parse_credentials(
        'Digest username="bob", realm="r", nonce="n", uri="sip:r", response="ab", '
        'qop="auth", nc=0000000a, cnonce="c", algorithm=MD5-sess, opaque="o"'
    )
    assert (creds.username, creds.realm, creds.nonce, creds.uri) == ("bob", "r", "n", "sip:r")
    assert (creds.response, creds.qop, creds.nc, creds.cnonce) == ("ab", "auth", 10, "c")
    assert (creds.algorithm, creds.opaque) == ("MD5-sess", "o")


_quoted_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=20
)


@given(realm=_quoted_text, nonce=_quoted_text, opaque=st.none() | _quoted_text)
def test_any_challenge_survives_format_then_parse(
    realm: str, nonce: str, opaque: str | None
) -> None:
    chal = Challenge.digest(realm, nonce, opaque=opaque)
    parsed = parse_challenge(str(chal))
    assert (parsed.realm, parsed.nonce, parsed.opaque) == (realm, nonce, opaque)


def client_for(**realms: tuple[str, str]) -> DigestClient:
    return DigestClient(CredentialStore(realms=realms), random.Random(1))


def test_the_strongest_offered_algorithm_wins_whatever_the_order() -> None:
    challenges = [
        'Digest realm="r", nonce="1", algorithm=MD5, qop="auth"',
        'Digest realm="r", nonce="2", algorithm=SHA-512-256, qop="auth"',
        'Digest realm="r", nonce="3", algorithm=SHA-256, qop="auth"',
        'Digest realm="r", nonce="4", algorithm=SHA3-512, qop="auth"',
    ]
    for order in (challenges, challenges[::-1]):
        client = client_for(r=("u", "p"))
        client.handle_challenge(401, order)
        ((_, value),) = client.authorization_headers("INVITE", "sip:b@r")
        assert "algorithm=SHA-512-256," in value and 'nonce="2"' in value
    client = client_for(r=("u", "p"))
    client.handle_challenge(401, [challenges[3], challenges[0]])
    assert "algorithm=MD5," in client.authorization_headers("INVITE", "sip:b@r")[0][1]


def test_nonce_count_increments_and_cnonce_changes() -> None:
    client = client_for(r=("u", "p"))
    client.handle_challenge(401, ['Digest realm="r", nonce="n", qop="auth"'])
    first, second = (client.authorization_headers("REGISTER", "sip:r")[0][1] for _ in range(2))
    assert params_of(first)["nc"] == "00000001" and params_of(second)["nc"] == "00000002"
    assert params_of(first)["cnonce"] != params_of(second)["cnonce"]
    assert verify(second, "REGISTER", "p")


def test_sess_keeps_the_first_cnonce() -> None:
    client = client_for(r=("u", "p"))
    client.handle_challenge(401, ['Digest realm="r", nonce="n", qop="auth", algorithm=MD5-sess'])
    first, second = (client.authorization_headers("REGISTER", "sip:r")[0][1] for _ in range(2))
    assert params_of(first)["cnonce"] == params_of(second)["cnonce"]
    assert verify(second, "REGISTER", "p") and params_of(second)["nc"] == "00000002"


def test_proxy_challenge_gives_proxy_authorization_next_to_authorization() -> None:
    client = client_for(proxy=("pu", "pp"), uas=("uu", "up"))
    client.handle_challenge(407, ['Digest realm="proxy", nonce="a", qop="auth"'])
    client.handle_challenge(401, ['Digest realm="uas", nonce="b", qop="auth"'])
    headers = client.authorization_headers("INVITE", "sip:bob@uas")
    assert [name for name, _ in headers] == ["Proxy-Authorization", "Authorization"]
    assert 'username="pu", realm="proxy"' in headers[0][1]
    assert 'username="uu", realm="uas"' in headers[1][1]


def test_one_authorization_per_challenged_realm_with_default_credentials() -> None:
    client = DigestClient(
        CredentialStore(default=("any", "pw"), realms={"b": ("bee", "bpw")}), random.Random(0)
    )
    client.handle_challenge(401, ['Digest realm="a", nonce="1"', 'Digest realm="b", nonce="2"'])
    headers = client.authorization_headers("BYE", "sip:x@y")
    assert [params_of(v)["username"] for _, v in headers] == ["any", "bee"]


def test_stale_retries_with_the_new_nonce_but_a_plain_rechallenge_fails() -> None:
    client = client_for(r=("u", "p"))
    client.handle_challenge(401, ['Digest realm="r", nonce="old", qop="auth"'])
    client.authorization_headers("REGISTER", "sip:r")
    ((_, sent),) = client.authorization_headers("REGISTER", "sip:r")
    client.handle_challenge(
        401, ['Digest realm="r", nonce="new", qop="auth", stale=true'], sent=[sent]
    )
    ((_, retry),) = client.authorization_headers("REGISTER", "sip:r")
    assert params_of(retry)["nonce"] == "new" and params_of(retry)["nc"] == "00000001"
    with pytest.raises(AuthenticationFailed, match="refused") as info:
        client.handle_challenge(401, ['Digest realm="r", nonce="newer", qop="auth"'], sent=[retry])
    assert info.value.realm == "r"
    assert client.authorization_headers("REGISTER", "sip:r") == []


@pytest.mark.parametrize(
    ("status", "challenges", "message"),
    [
        (401, ['Digest realm="other", nonce="n"'], "no credentials"),
        (401, ['Digest realm="r", nonce="n", algorithm=SHA3-256'], "no supported"),
        (401, ['Digest realm="r", nonce="n", qop="auth-conf"'], "no supported"),
        (401, ["Bearer token", "Digest nonce-less"], "no supported"),
        (401, [], "no supported"),
    ],
)
def test_challenges_the_client_cannot_answer(
    status: int, challenges: list[str], message: str
) -> None:
    with pytest.raises(AuthenticationFailed, match=message):
        client_for(r=("u", "p")).handle_challenge(status, challenges)


def test_only_401_and_407_are_challenges() -> None:
    with pytest.raises(ValueError, match="401 and 407"):
        client_for(r=("u", "p")).handle_challenge(403, ['Digest realm="r", nonce="n"'])


def test_verify_with_stored_ha1_checks_the_algorithm() -> None:
    chal = Challenge.digest("r", "n", algorithm="SHA-256-sess")
    creds = make_credentials(
        chal, method="INVITE", uri="sip:b@r", username="u", password="p", cnonce="c"
    )
    assert verify(creds, "INVITE", Ha1.compute("u", "r", "p", "SHA-256"))
    assert not verify(creds, "INVITE", Ha1.compute("u", "r", "p", "MD5"))
    assert not verify(creds, "INVITE", Ha1.compute("u", "r", "wrong", "SHA-256"))
    tampered = parse_credentials(str(creds).replace('uri="sip:b@r"', 'uri="sip:c@r"'))
    assert not verify(tampered, "INVITE", "p")
    assert not verify(parse_credentials("Basic dTpw"), "INVITE", "p")


def test_userhash_sends_the_hashed_username() -> None:
    chal = parse_challenge('Digest realm="r", nonce="n", qop="auth", userhash=true')
    creds = make_credentials(chal, method="GET", uri="/", username="u", password="p", cnonce="c")
    assert creds.username == hashlib.md5(b"u:r").hexdigest()
    assert str(creds).endswith(", userhash=true")
    assert verify(creds, "GET", Ha1(hashlib.md5(b"u:r:p").hexdigest()))


def test_nonces_are_valid_then_stale_and_cannot_be_forged() -> None:
    nonce = make_nonce(b"secret", 1000.0, random.Random(5))
    assert check_nonce(b"secret", nonce, 1000.0) is NonceStatus.VALID
    assert check_nonce(b"secret", nonce, 1299.0) is NonceStatus.VALID
    assert check_nonce(b"secret", nonce, 1300.0) is NonceStatus.STALE
    assert check_nonce(b"secret", nonce, 1000.0, lifetime=10) is NonceStatus.VALID
    assert check_nonce(b"other", nonce, 1000.0) is NonceStatus.INVALID
    forged = ("B" if nonce[0] != "B" else "C") + nonce[1:]
    assert check_nonce(b"secret", forged, 1000.0) is NonceStatus.INVALID
    assert check_nonce(b"secret", "not a nonce!", 1000.0) is NonceStatus.INVALID
    assert make_nonce(b"secret", 1000.0, random.Random(6)) != nonce


def test_proto_auth_is_the_public_face_of_its_split_modules() -> None:
    import importlib

    face = importlib.import_module("trio_sip.proto.auth")
    parts = [
        importlib.import_module(f"trio_sip.proto.{n}")
        for n in ("auth_values", "auth_digest", "auth_client")
    ]
    assert sorted(face.__all__) == sorted(n for part in parts for n in part.__all__)
    for part in parts:
        for name in part.__all__:
            assert getattr(face, name) is getattr(part, name), name
