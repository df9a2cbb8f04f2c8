"""DigestServer (proto/auth_server.py): replays, stale nonces, bounded state, no enumeration,
failed-authentication limits. Pure: time is passed in."""

from __future__ import annotations

import random

import pytest

from trio_sip.proto import auth_digest
from trio_sip.proto.auth import (
    Challenge,
    CredentialStore,
    DigestClient,
    make_credentials,
    parse_challenge,
)
from trio_sip.proto.auth_server import DigestServer, NonceTable, NonceUse
from trio_sip.proto.limits import Limits
from trio_sip.proto.message import Request

REALM = "example.com"
URI = "sip:example.com"


def register(
    *, branch: str = "z9hG4bKb1", call_id: str = "c1", seq: int = 1, auth: str | None = None
) -> Request:
    headers = [
        ("Via", f"SIP/2.0/UDP 10.0.0.5:5060;branch={branch}"),
        ("Max-Forwards", "70"),
        ("From", "<sip:bob@example.com>;tag=f1"),
        ("To", "<sip:bob@example.com>"),
        ("Call-ID", call_id),
        ("CSeq", f"{seq} REGISTER"),
        ("Contact", "<sip:bob@10.0.0.5>"),
    ]
    if auth is not None:
        headers.append(("Authorization", auth))
    return Request("REGISTER", URI, headers)


def server(**kw: object) -> DigestServer:
    return DigestServer(REALM, {"bob": "zanzibar"}, rng=random.Random(1), **kw)  # type: ignore[arg-type]


def answer(srv: DigestServer, now: float, password: str = "zanzibar", user: str = "bob") -> str:
    """Credentials for a fresh challenge of ``srv`` (the first request: nc=1)."""
    challenge = srv.challenge(now)
    client = DigestClient(CredentialStore(default=(user, password)), random.Random(2))
    client.handle_challenge(401, [challenge.headers[0][1]], sent=[])
    return client.authorization_headers("REGISTER", URI)[0][1]


def test_good_credentials_then_a_replay_is_challenged_never_accepted() -> None:
    srv = server()
    auth = answer(srv, 100.0)
    assert srv.check(register(auth=auth), 101.0).username == "bob"
    # The same Authorization in another request (a new branch): a replay.
    replay = srv.check(register(auth=auth, branch="z9hG4bKother", seq=2), 102.0)
    assert (replay.ok, replay.status) == (False, 401)
    assert parse_challenge(replay.headers[0][1]).stale is False
    # The very request again within 64*T1 (a retransmission a stateless site sees): the same.
    assert srv.check(register(auth=auth), 120.0).ok
    # ...but not later: then it is a replay too.
    assert not srv.check(register(auth=auth), 140.0).ok
    assert srv.statistics().replays == 2


def test_nonce_count_must_grow() -> None:
    srv = server()
    challenge = srv.challenge(0.0)
    client = DigestClient(CredentialStore(default=("bob", "zanzibar")), random.Random(3))
    client.handle_challenge(401, [challenge.headers[0][1]], sent=[])
    first = client.authorization_headers("REGISTER", URI)[0][1]  # nc=1
    second = client.authorization_headers("REGISTER", URI)[0][1]  # nc=2
    third = client.authorization_headers("REGISTER", URI)[0][1]  # nc=3
    assert srv.check(register(auth=third, branch="z9hG4bK3"), 1.0).ok
    # Lower counts after a higher one: refused (new challenges), even though never used.
    assert not srv.check(register(auth=first, branch="z9hG4bK1"), 2.0).ok
    assert not srv.check(register(auth=second, branch="z9hG4bK2"), 3.0).ok


def test_expired_nonce_with_good_credentials_is_stale() -> None:
    srv = server(nonce_lifetime=300.0)
    auth = answer(srv, 0.0)
    stale = srv.check(register(auth=auth), 300.0)
    assert (stale.ok, stale.status) == (False, 401)
    assert parse_challenge(stale.headers[0][1]).stale is True
    # A wrong password with an expired nonce is a plain challenge (RFC 7616 §3.3).
    wrong = srv.check(register(auth=answer(srv, 0.0, password="x")), 300.0)
    assert parse_challenge(wrong.headers[0][1]).stale is False


def test_unknown_user_and_wrong_password_look_the_same() -> None:
    srv = server()
    unknown = srv.check(register(auth=answer(srv, 0.0, user="mallory")), 1.0)
    wrong = srv.check(register(auth=answer(srv, 0.0, password="nope")), 1.0)
    assert (unknown.status, unknown.username) == (wrong.status, wrong.username) == (401, None)
    assert [n for n, _ in unknown.headers] == [n for n, _ in wrong.headers]
    one, two = (parse_challenge(r.headers[0][1]) for r in (unknown, wrong))
    assert [p.name for p in one.params] == [p.name for p in two.params]
    assert (one.stale, one.realm) == (two.stale, two.realm)


def test_unknown_user_costs_the_same_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    # The same work for a user we do not know as for a wrong password: count the hashes.
    calls: list[str] = []
    real = auth_digest._h

    def counting(hash_name: str, data: str | bytes) -> str:
        calls.append(hash_name)
        return real(hash_name, data)

    srv = server()
    unknown_auth = answer(srv, 0.0, user="mallory")
    wrong_auth = answer(srv, 0.0, password="nope")
    monkeypatch.setattr(auth_digest, "_h", counting)
    srv.check(register(auth=unknown_auth), 1.0)
    unknown_hashes = len(calls)
    calls.clear()
    srv.check(register(auth=wrong_auth), 1.0)
    assert unknown_hashes == len(calls) > 0


def test_failed_authentications_are_limited_per_source() -> None:
    limits = Limits(failed_auth_rate=1.0, failed_auth_burst=10)
    srv = server(limits=limits)
    bad = answer(srv, 0.0, password="guess")
    for i in range(10):
        assert not srv.blocked("10.6.6.6", 1.0)
        srv.check(register(auth=bad, branch=f"z9hG4bK{i}"), 1.0, source="10.6.6.6")
    assert srv.blocked("10.6.6.6", 1.0)  # the caller drops its requests now
    assert not srv.blocked("10.0.0.5", 1.0)  # another source is not affected
    assert not srv.blocked("10.6.6.6", 2.0)  # one token back after a second
    # Requests without credentials, and good ones, cost nothing.
    other = server(limits=limits)
    for i in range(20):
        other.check(register(branch=f"z9hG4bKn{i}"), 1.0, source="10.0.0.5")
    assert not other.blocked("10.0.0.5", 1.0)
    assert server(limits=Limits(failed_auth_rate=None)).failures is None


def test_nonce_state_is_bounded_and_fails_closed() -> None:
    limits = Limits(max_auth_nonces=16)
    srv = server(limits=limits)
    first = answer(srv, 0.0)
    assert srv.check(register(auth=first), 0.5).ok
    for i in range(16):
        assert srv.check(register(auth=answer(srv, 1.0 + i), branch=f"z9hG4bK{i}"), 1.5 + i).ok
    assert srv.statistics().nonces == 16
    # The first nonce was forgotten: its replay cannot succeed, it is answered stale.
    again = srv.check(register(auth=first, branch="z9hG4bKlater", seq=2), 20.0)
    assert not again.ok and parse_challenge(again.headers[0][1]).stale is True


def test_nonce_table_forgets_expired_entries() -> None:
    table = NonceTable(max_entries=100, lifetime=300.0)
    for i in range(50):
        assert table.use(f"n{i}", i, 1, ("b", "c", 1), float(i)) is NonceUse.FRESH
    assert len(table) == 50
    assert table.use("late", 400, 1, ("b", "c", 1), 400.0) is NonceUse.FRESH
    assert len(table) == 1  # everything issued before 100 s has expired


def test_ack_and_cancel_reuse_the_invites_credentials() -> None:
    srv = server()
    challenge = srv.challenge(0.0, proxy=True)
    assert challenge.status == 407 and challenge.headers[0][0] == "Proxy-Authenticate"
    client = DigestClient(CredentialStore(default=("bob", "zanzibar")), random.Random(4))
    client.handle_challenge(407, [challenge.headers[0][1]], sent=[])
    (header, value) = client.authorization_headers("INVITE", "sip:alice@example.com")[0]
    assert header == "Proxy-Authorization"

    def req(method: str) -> Request:
        return Request(
            method,
            "sip:alice@example.com",
            [
                ("Via", "SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKinv"),
                ("From", "<sip:bob@example.com>;tag=f1"),
                ("To", "<sip:alice@example.com>"),
                ("Call-ID", "call-1"),
                ("CSeq", f"1 {method}"),
                ("Max-Forwards", "70"),
                (header, value),
            ],
        )

    assert srv.check(req("INVITE"), 1.0, proxy=True).ok
    assert srv.check(req("CANCEL"), 2.0, proxy=True).ok  # §22.1: the INVITE's credentials
    assert srv.check(req("ACK"), 3.0, proxy=True).ok
    # The same credentials on another method are not the INVITE's: refused.
    assert not srv.check(req("BYE"), 4.0, proxy=True).ok


def test_without_qop_a_nonce_serves_one_request() -> None:
    """RFC 2069 credentials (no qop, so no nc) cannot be ordered: the nonce is good once, and
    the next request with good credentials gets stale=true (a new nonce, no re-prompt)."""
    srv = server()
    offered = parse_challenge(srv.challenge(0.0).headers[0][1])
    assert offered.nonce is not None
    no_qop = Challenge.digest(REALM, offered.nonce, qop=())
    creds = make_credentials(
        no_qop, method="REGISTER", uri=URI, username="bob", password="zanzibar", cnonce="c"
    )
    assert creds.qop is None and creds.nc is None
    assert srv.check(register(auth=str(creds)), 1.0).ok
    again = srv.check(register(auth=str(creds), branch="z9hG4bK2", seq=2), 2.0)
    assert (again.ok, again.status) == (False, 401)
    assert parse_challenge(again.headers[0][1]).stale is True
